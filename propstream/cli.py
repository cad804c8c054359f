"""The `propstream` command: everything an operator does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.exceptions import InfraError
from kernel.settings import ROOT, load_settings
from propstream.settings import PlatformSettings

if TYPE_CHECKING:
    from kernel.log import Log
    from propstream.supervisor import Supervisor

console = Console(stderr=False, highlight=False)
app = typer.Typer(help="propstream: an event-sourced trading-assessment platform on Kafka.",
                  no_args_is_help=True, add_completion=False)
infra_app = typer.Typer(help="Local Kafka, PostgreSQL, Redis and stripe-mock.",
                        no_args_is_help=True)
topics_app = typer.Typer(help="The topic catalogue on the broker.", no_args_is_help=True)
schemas_app = typer.Typer(help="Wire contracts: JSON Schema and AsyncAPI.", no_args_is_help=True)
run_app = typer.Typer(help="Run one platform process in the foreground.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: inspect and re-drive.", no_args_is_help=True)
docs_app = typer.Typer(help="Documentation tables and Helm values generated from the manifests.",
                       no_args_is_help=True)
users_app = typer.Typer(help="Users: the first admin of an empty platform; forgetting a user.",
                        no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(run_app, name="run")
app.add_typer(dlq_app, name="dlq")
app.add_typer(users_app, name="users")
app.add_typer(docs_app, name="docs")


def _settings() -> PlatformSettings:
    """Every service's settings: the commands here span services; a `run` process builds
    its own service's class from them (propstream.processes)."""
    return load_settings(PlatformSettings)


def _say(line: str) -> None:
    console.print(line, soft_wrap=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


# -- infrastructure ---------------------------------------------------------------------------


@infra_app.command("up")
def infra_up() -> None:
    """Install what is missing and start Kafka, PostgreSQL, Redis and stripe-mock (idempotent)."""
    from kernel import infra

    try:
        took, _ = infra.up(_settings(), _say)
    except InfraError as exc:
        _fail(str(exc))
    console.print(f"infrastructure ready in {took:.1f} s")


@infra_app.command("down")
def infra_down() -> None:
    """Stop the processes `infra up` started (by their pid files, never by name)."""
    from kernel import infra

    try:
        infra.down(_settings(), _say)
    except InfraError as exc:
        _fail(str(exc))


@infra_app.command("status")
def infra_status() -> None:
    """Show whether each component runs."""
    from kernel import infra

    table = Table("component", "status")
    for name, state in infra.status(_settings()).items():
        table.add_row(name, state)
    console.print(table)


# -- topics and schemas -----------------------------------------------------------------------


@topics_app.command("apply")
def topics_apply() -> None:
    """Create and update every topic of the catalogue (idempotent, never deletes)."""
    from kernel.exceptions import TopicChangeRefused
    from kernel.kafka import apply_topics
    from schemas.topics import CATALOGUE

    try:
        changes = asyncio.run(apply_topics(_settings(), CATALOGUE))
    except TopicChangeRefused as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(f"applying topics failed: {type(exc).__name__}: {exc}; is Kafka up "
              "(`propstream infra status`)?")
    for change in changes:
        console.print(f"{change.topic}: {change.action}")
    console.print(f"{len(CATALOGUE)} topics in the catalogue, {len(changes)} change(s)")


@topics_app.command("list")
def topics_list() -> None:
    """Print the topic catalogue."""
    from schemas.topics import CATALOGUE

    settings = _settings()
    table = Table("topic", "kind", "partitions", "key", "retention", "dead letters")
    for spec in CATALOGUE:
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 3600000} h"
        table.add_row(settings.topic(spec.name), spec.kind, str(spec.partitions), spec.key,
                      retention, spec.dead_letter or "")
    console.print(table)


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="folder to write into")] = ROOT / "schemas" / "export",
    check: Annotated[bool, typer.Option(help="fail if the committed export is stale")] = False,
) -> None:
    """Write JSON Schema for every type and an AsyncAPI 3.0 document of the topics."""
    from schemas.export import export_all, stale_files

    if check:
        stale = stale_files(out)
        if stale:
            _fail(f"schema export is stale ({', '.join(stale[:5])}); run `propstream schemas "
                  "export` and commit the result")
        console.print("schema export is up to date")
        return
    written = export_all(out)
    console.print(f"wrote {len(written)} files into {out}")


@docs_app.command("generate")
def docs_generate(
    check: Annotated[bool, typer.Option(help="fail if a generated block is stale")] = False,
) -> None:
    """Rewrite the topics and process tables and the chart's workers from the manifests."""
    from propstream.generated import generate
    from propstream.manifests import SERVICES
    from schemas.topics import CATALOGUE

    stale = generate(SERVICES, CATALOGUE, check=check)
    if check and stale:
        _fail(f"generated blocks are stale ({', '.join(stale)}); run `propstream docs "
              "generate` and commit the result")
    console.print(f"rewrote {', '.join(stale)}" if stale else "generated blocks are up to date")


# -- processes --------------------------------------------------------------------------------


@run_app.command("api")
def run_api() -> None:
    """The core HTTP API."""
    from propstream.processes import run_api as run

    run(_settings())


@run_app.command("decider")
def run_decider(family: str) -> None:
    """The decider of one aggregate family (e.g. `instrument`)."""
    from propstream.processes import run_decider as run

    run(_settings(), family)


@run_app.command("projection")
def run_projection(name: str) -> None:
    """One projection into PostgreSQL (e.g. `instruments`)."""
    from propstream.processes import run_projection as run

    run(_settings(), name)


@run_app.command("policy")
def run_policy(name: str) -> None:
    """A policy turning events into commands (e.g. `assessment`: purchases -> assessments ->
    accounts)."""
    from propstream.processes import run_policy as run

    run(_settings(), name)


@run_app.command("market")
def run_market(part: str) -> None:
    """A market-data process: `api`, `simulator`, `bars`, `prices`, or a live venue:
    `binance`, `polymarket`, `kalshi` (network needed; not part of `propstream up`)."""
    from propstream.processes import run_market as run

    run(_settings(), part)


@run_app.command("ws-gateway")
def run_ws_gateway() -> None:
    """The WebSocket gateway (`/ws`): market and private channels, resume, backpressure."""
    from propstream.processes import run_ws_gateway as run

    run(_settings())


@run_app.command("group")
def run_group(
    name: str,
    without: Annotated[list[str] | None, typer.Option(
        help="a worker to leave out, e.g. to run it in a process of its own "
             "(repeat for more)")] = None,
) -> None:
    """All platform workers of one service in one process (`core-workers`,
    `market-workers`): the laptop layout `propstream up` starts."""
    from propstream.groups import run_group as run

    run(_settings(), name, without=tuple(without or ()))


@app.command("seed")
def seed() -> None:
    """Register the default instruments, tiers, a dev admin and a demo trader (idempotent)."""
    from core.bootstrap import seed_demo_grant, seed_instruments, seed_tiers, seed_users

    settings = _settings()
    results = asyncio.run(seed_instruments(settings))
    for symbol, outcome in results.items():
        console.print(f"{symbol:<16} {outcome}")
    for tier_id, outcome in asyncio.run(seed_tiers(settings)).items():
        console.print(f"{tier_id:<16} {outcome}")
    for email, outcome in asyncio.run(seed_users(settings, _say)).items():
        console.print(f"{email:<24} {outcome}")
    console.print(f"{'demo grant':<24} {asyncio.run(seed_demo_grant(settings))}")


@users_app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="the admin's email")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    display_name: Annotated[str, typer.Option(help="shown in the app")] = "Admin",
) -> None:
    """Register an admin through the user decider (idempotent per email)."""
    from core.bootstrap import register_user

    try:
        outcome = asyncio.run(register_user(_settings(), email=email, password=password,
                                            display_name=display_name, role="admin"))
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"{email}: {outcome}")
    if outcome not in ("accepted", "already created"):
        raise typer.Exit(1)


@users_app.command("forget")
def forget(user_id: Annotated[str, typer.Argument(help="the user's id (a UUID)")]) -> None:
    """Erase a user's personal data (crypto-shredding), credentials and sessions; idempotent."""
    import uuid

    from core.bootstrap import forget_user

    try:
        target = str(uuid.UUID(user_id))
    except ValueError:
        _fail(f"{user_id!r} is not a user id (a UUID)")
    outcome = asyncio.run(forget_user(_settings(), target=target))
    console.print(f"{target}: {outcome}")
    if outcome not in ("accepted", "already forgotten") and not outcome.startswith("erased"):
        raise typer.Exit(1)


@app.command("replay")
def replay(projection: str,
           workers: Annotated[int | None, typer.Option(
               min=1, help="worker processes, each folding its own partitions (default: one "
                           "below 250k records on the log, else one per partition, at most "
                           "two per core)")] = None,
           resume: Annotated[bool, typer.Option(
               help="drop nothing: go on from the stored offsets (after a failed replay)")]
           = False) -> None:
    """Drop a projection and rebuild it from the log, with progress."""
    import functools

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from kernel.projection import ProjectionLeaseHeld
    from kernel.rebuild import RebuildFailed, RebuildReport, rebuild
    from propstream.processes import projection_runner

    settings = _settings()
    factory = functools.partial(projection_runner, settings, projection)

    async def go() -> RebuildReport:
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task(f"replaying {projection}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await rebuild(factory, workers=workers, resume=resume, progress=progress)

    try:
        factory()  # an unknown projection fails here, before anything is touched
        import uvloop

        report = uvloop.run(go())
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except ProjectionLeaseHeld as exc:
        _fail(f"{exc}; nothing was dropped")
    except RebuildFailed as exc:
        _fail(str(exc))
    took = report.seconds
    rate = report.events / took if took > 0 else 0.0
    console.print(f"rebuilt {projection}: {report.events} events in {took:.2f} s "
                  f"({rate:,.0f} events/s) by {len(report.workers)} worker(s); "
                  f"{report.total_s:.2f} s with their start-up")


@app.command("verify")
def verify(assessment: Annotated[str, typer.Argument(help="the assessment's id (a UUID)")],
           quiet: Annotated[bool, typer.Option(help="no progress lines")] = False) -> None:
    """Re-derive every rule verdict of an assessment from the log and compare its sha256.

    Exit 0 only when every recorded verdict's hash is re-derived and none is missing or
    extra; 1 otherwise; 2 for an unknown assessment."""
    import uuid

    from core.adapters.rule_audit import UnknownAssessment, verify_assessment
    from core.domain.trading.audit import all_match
    from schemas import default_registry

    try:
        assessment_id = str(uuid.UUID(assessment))
    except ValueError:
        console.print(f"[bold red]error:[/] {assessment!r} is not an assessment id (a UUID)")
        raise typer.Exit(2) from None
    settings = _settings()
    try:
        accounts = asyncio.run(verify_assessment(
            _verify_log(settings), topic=settings.topic, assessment_id=assessment_id,
            registry=default_registry(), progress=None if quiet else _say))
    except UnknownAssessment as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    checks = [c for a in accounts for c in a.checks]
    # One line per verdict, never wrapped: the two full hashes are what a reader compares.
    for a in accounts:
        _say(f"phase {a.phase} account {a.account_id}: {a.events} events, "
             f"{len(a.checks)} verdict(s)")
        for c in a.checks:
            mark = c.status if c.status == "match" else f"[bold red]{c.status}[/]"
            _say(f"  {c.type.removeprefix('rules.'):<18} {c.rule:<17} event {c.last_sequence:<6}"
                 f" recorded {c.recorded or '-':<64}  recomputed {c.recomputed or '-':<64}  "
                 f"{mark}")
    bad = [c for c in checks if c.status != "match"]
    console.print(f"{len(accounts)} account(s), {len(checks)} verdict(s): "
                  f"{len(checks) - len(bad)} match, {len(bad)} do not")
    if not all_match(checks):
        raise typer.Exit(1)


def _verify_log(settings: PlatformSettings) -> Log:
    """The broker `verify` reads (a seam: unit tests give it a memory log)."""
    from kernel.kafkalog import KafkaLog

    return KafkaLog(settings)


@dlq_app.command("list")
def dlq_list(topic: str,
             limit: Annotated[int, typer.Option(min=1, max=10000)] = 50) -> None:
    """Show dead letters of a catalogue dead-letter topic (e.g. instrument.events.dlq)."""
    from kernel.dlq import read_dead_letters

    letters = asyncio.run(read_dead_letters(_settings(), topic, limit=limit))
    table = Table("offset", "origin", "reason", "error", "consumer")
    for letter in letters:
        table.add_row(str(letter.offset),
                      f"{letter.origin_topic}/{letter.origin_partition}@{letter.origin_offset}",
                      letter.reason, letter.error[:80], letter.consumer)
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(topic: str,
               offset: Annotated[list[int] | None, typer.Option(help="only these")] = None) -> None:
    """Send dead letters back to the topic they came from. Parked Stripe webhooks
    (payment.webhooks.dlq) are translated again, as the endpoint does, into payment commands
    (the same command id per Stripe event: a second replay changes nothing)."""
    from kernel.dlq import NotRedrivable, replay_dead_letters

    settings = _settings()
    wanted = set(offset) if offset else None
    if topic == "payment.webhooks.dlq":
        from core.adapters.stripe_intake import replay_parked_webhooks

        results = asyncio.run(replay_parked_webhooks(settings, offsets=wanted))
        table = Table("offset", "stripe event", "action", "purchase", "detail")
        for r in results:
            table.add_row(str(r.offset), r.event_id, r.action, r.purchase_id or "", r.detail)
        console.print(table)
        sent = sum(1 for r in results if r.action == "command-sent")
        console.print(f"re-drove {sent} dead letter(s) of {len(results)} into payment.commands")
        return
    try:
        sent = asyncio.run(replay_dead_letters(settings, topic, offsets=wanted))
    except NotRedrivable as exc:
        _fail(str(exc))
    console.print(f"re-drove {sent} dead letter(s)")


# -- the platform -----------------------------------------------------------------------------


@app.command("up")
def up(
    seed_data: Annotated[bool, typer.Option("--seed/--no-seed")] = True,
    keep_infra: Annotated[bool, typer.Option(
        help="leave Kafka, PostgreSQL and Redis running after Ctrl-C")] = False,
) -> None:
    """Start infrastructure, each service's API and one process per service for its workers,
    seed once all are ready; Ctrl-C stops it all at any moment, also during start-up.

    Infrastructure that was already running before is left running."""
    import shutil
    import signal
    import tempfile

    from kernel import infra

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Until the supervisor takes over, SIGTERM stops start-up as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    settings = _settings()
    started = time.monotonic()
    ours: list[str] = []
    run_dir = Path(tempfile.mkdtemp(prefix="propstream-up-"))
    supervisor: Supervisor | None = None
    code = 0
    try:
        supervisor, ports = _platform(settings, run_dir)
        # The children import their code while the infrastructure starts, then wait at the
        # start gate (propstream.gate) until the topics are there.
        supervisor.prestart()
        try:
            _, ours = infra.up(settings, _say)
        except InfraError as exc:
            _fail(str(exc))
        code = _supervise(settings, supervisor, ports, run_dir / "gate", started=started,
                          seed_data=seed_data, stops_infra=ours if not keep_infra else [])
    except KeyboardInterrupt:
        console.print("interrupted during start-up; stopping what was started")
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if supervisor is not None:
            supervisor.shutdown()  # at once if `run` already stopped them
        if ours and not keep_infra:
            infra.down(settings, _say, only=ours, grace=4.0)
        shutil.rmtree(run_dir, ignore_errors=True)
    raise typer.Exit(code)


def _platform(settings: PlatformSettings, run_dir: Path) -> tuple[Supervisor, dict[str, int]]:
    """The supervisor of `up`'s children (each API, each service's group of workers) and the
    groups' metrics ports."""
    import os
    import sys

    from propstream.gate import GATE_ENV
    from propstream.groups import laptop_processes
    from propstream.manifests import SERVICES
    from propstream.supervisor import Child, Supervisor

    apis = {s.api.process: f"http://{settings.host}:{s.api.port(settings)}/readyz"
            for s in SERVICES if s.api is not None}
    children: list[Child] = []
    ports: dict[str, int] = {}
    for name, argv in laptop_processes(SERVICES).items():
        child = Child(name, [sys.executable, "-m", "propstream", "run", *argv],
                      ready_url=apis.get(name))
        if name not in apis:
            ports[name] = settings.api_port + 100 + len(ports)
            child.status_file = run_dir / f"{name}.status.json"
            child.env = {"PROPSTREAM_METRICS_PORT": str(ports[name])}
        children.append(child)
    env = dict(os.environ) | {GATE_ENV: str(run_dir / "gate")}
    return Supervisor(_say, children, env=env), ports


def _supervise(settings: PlatformSettings, supervisor: Supervisor, ports: dict[str, int],
               gate: Path, *, started: float, seed_data: bool, stops_infra: list[str]) -> int:
    """Apply the topics, open the start gate, then run the platform's processes until
    Ctrl-C."""
    from kernel.exceptions import TopicChangeRefused
    from kernel.kafka import apply_topics
    from schemas.topics import CATALOGUE

    try:
        changes = asyncio.run(apply_topics(settings, CATALOGUE))
    except TopicChangeRefused as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    for change in changes:
        console.print(f"topic {change.topic}: {change.action}")
    gate.touch()

    def ready() -> None:
        if seed_data:
            try:
                _seed_quietly(settings)
            except Exception as exc:  # the platform runs on; say why nothing was seeded
                console.print(f"[bold red]seeding failed:[/] {type(exc).__name__}: {exc}; "
                              "`propstream seed` retries it")
        if supervisor.stopping:  # Ctrl-C during seeding: no banner after "stopping"
            return
        base = f"http://{settings.host}:{settings.api_port}"
        console.print(f"\n[bold green]propstream is up[/] in {time.monotonic() - started:.1f} s")
        console.print(f"  API          {base}  (docs {base}/docs)")
        console.print(f"  instruments  {base}/instruments")
        console.print(f"  tiers        {base}/tiers")
        console.print(f"  demo         POST {base}/auth/login as trader@propstream.dev, then "
                      f"GET {base}/assessments and {base}/accounts (granted, no card)")
        market = f"http://{settings.host}:{settings.market_api_port}"
        console.print(f"  market data  {market}/market/prices  (docs {market}/docs, "
                      f"TradingView UDF {market}/udf)")
        console.print(f"  websocket    ws://{settings.host}:{settings.ws_port}/ws  (channels "
                      "market:<SYMBOL>, account:<id>; docs/decisions/0014-ws-gateway.md)")
        console.print(f"  health       {base}/readyz   metrics {base}/metrics")
        for name, port in ports.items():
            console.print(f"  {name:<24} metrics http://{settings.host}:{port}/metrics")
        if stops_infra:
            console.print(f"  Ctrl-C stops the services and {', '.join(stops_infra)}.\n")
        else:
            console.print("  Ctrl-C stops the services; `propstream infra down` stops the rest.\n")

    return supervisor.run(on_ready=ready)


def _seed_quietly(settings: PlatformSettings) -> None:
    """Seed the defaults once every process is ready: instruments, tiers and users at once
    (independent commands to different deciders), then the demo grant."""
    from core.bootstrap import seed_demo_grant, seed_instruments, seed_tiers, seed_users

    async def seed_all() -> tuple[dict[str, str], dict[str, str], dict[str, str], str]:
        results, tiers, users = await asyncio.gather(
            seed_instruments(settings), seed_tiers(settings), seed_users(settings, _say))
        return results, tiers, users, await seed_demo_grant(settings)

    results, tiers, users, grant = asyncio.run(seed_all())
    seeded = sum(1 for v in results.values() if v == "accepted")
    console.print(f"seeded {seeded} new instrument(s), {len(results)} in the default set")
    for symbol, outcome in results.items():
        if outcome not in ("accepted", "already seeded"):
            console.print(f"  {symbol}: {outcome}")
    console.print(f"seeded {sum(1 for v in tiers.values() if v == 'accepted')} new "
                  f"tier(s), {len(tiers)} in the default set")
    for tier_id, outcome in tiers.items():
        if outcome not in ("accepted", "already seeded"):
            console.print(f"  {tier_id}: {outcome}")
    for email, outcome in users.items():
        console.print(f"  {email}: {outcome}")
    console.print(f"  demo grant (trader@propstream.dev, starter-10k, no card): {grant}")


if __name__ == "__main__":
    app()
