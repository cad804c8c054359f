"""Run one long-lived propstream process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kernel.exceptions import PropstreamError
from kernel.observability import configure_logging, get_logger
from kernel.projection import ProjectionRunner
from kernel.runtime import settle_heap
from kernel.settings import Settings

log = get_logger(__name__)


async def _until_signalled(start: Callable[[], Awaitable[None]], work: Callable[[], Awaitable[Any]],
                           stop: Callable[[], Awaitable[None]], name: str) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await start()
    settle_heap()
    log.info("process started", name=name)
    task: asyncio.Future[Any] = asyncio.ensure_future(work())
    waiter = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # re-raise a crash so the supervisor restarts us
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        waiter.cancel()
        await stop()
        log.info("process stopped", name=name)


def serve_metrics(settings: Settings) -> None:
    """Expose Prometheus metrics (consumer lag among them) on PROPSTREAM_METRICS_PORT, when
    set; an API then leaves /metrics off its public port (kernel.http.health_router)."""
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_bind)
        log.info("metrics served",
                 url=f"http://{settings.metrics_bind}:{settings.metrics_port}/metrics")


def run_decider(settings: Settings, family: str) -> None:
    from core import bootstrap

    factories: dict[str, Callable[[Settings], Any]] = {
        "instrument": bootstrap.instrument_decider,
        "tier": bootstrap.tier_decider,
        "payment": bootstrap.payment_decider,
        "assessment": bootstrap.assessment_decider,
        "account": bootstrap.account_decider,
        "user": bootstrap.user_decider,
    }
    if family not in factories:
        raise SystemExit(f"unknown decider {family!r}; known: {', '.join(factories)}")
    configure_logging(settings, process=f"{family}-decider")
    serve_metrics(settings)
    runner = factories[family](settings)
    _run(_until_signalled(runner.start, runner.run, runner.stop, runner.name))


def run_policy(settings: Settings, name: str) -> None:
    """A stateless policy that turns events of one family into commands of another."""
    from core import bootstrap

    factories: dict[str, Callable[[Settings], Any]] = {
        "assessment": bootstrap.assessment_policy,
    }
    if name not in factories:
        raise SystemExit(f"unknown policy {name!r}; known: {', '.join(factories)}")
    configure_logging(settings, process=f"{name}-policy")
    serve_metrics(settings)
    runner = factories[name](settings)
    _run(_until_signalled(runner.start, runner.run, runner.stop, runner.name))


def projection_runner(settings: Settings, name: str) -> ProjectionRunner:
    """The runner of projection `name`, whichever service owns it."""
    from core import bootstrap as core
    from market_data import bootstrap as market
    from schemas import default_registry

    known = {**core.PROJECTIONS, **market.PROJECTIONS}
    if name not in known:
        raise KeyError(f"unknown projection {name!r}; known: {', '.join(sorted(known))}")
    return ProjectionRunner(settings, known[name](), default_registry(),
                            max_batch=settings.projection_batch)


def run_projection(settings: Settings, name: str) -> None:
    configure_logging(settings, process=f"projection-{name}")
    serve_metrics(settings)
    try:
        runner = projection_runner(settings, name)
    except KeyError as exc:
        raise SystemExit(str(exc.args[0])) from None
    _run(_until_signalled(runner.start, runner.run, runner.stop, runner.name))


def run_market(settings: Settings, part: str) -> None:
    """One market-data process: simulator, bars or prices."""
    from market_data import bootstrap

    factories: dict[str, Callable[[Settings], Any]] = {
        "simulator": bootstrap.simulator, "bars": bootstrap.bar_processor,
        "prices": bootstrap.prices_processor, "binance": bootstrap.binance,
        "polymarket": bootstrap.polymarket, "kalshi": bootstrap.kalshi}
    if part == "api":
        configure_logging(settings, process="market-api")
        serve_metrics(settings)
        _serve(bootstrap.api(settings), settings.host, settings.market_api_port)
        return
    if part not in factories:
        raise SystemExit(f"unknown market process {part!r}; known: api, {', '.join(factories)}")
    configure_logging(settings, process=f"market-{part}")
    serve_metrics(settings)
    try:
        runner = factories[part](settings)
    except PropstreamError as exc:
        raise SystemExit(f"error: {exc}") from None
    _run(_until_signalled(runner.start, runner.run, runner.stop, runner.name))


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed: the same asyncio, with a fraction of the loop's CPU cost."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def run_api(settings: Settings) -> None:
    from core import bootstrap

    configure_logging(settings, process="api")
    serve_metrics(settings)
    _serve(bootstrap.api(settings), settings.host, settings.api_port)


def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    settle_heap()  # the app is built: what is alive now lives as long as the process
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                loop="auto", http="auto")


# name -> argv after `propstream run`
PLATFORM = {
    "api": ["api"],
    "instrument-decider": ["decider", "instrument"],
    "projection-instruments": ["projection", "instruments"],
    "tier-decider": ["decider", "tier"],
    "projection-tiers": ["projection", "tiers"],
    "payment-decider": ["decider", "payment"],
    "projection-purchases": ["projection", "purchases"],
    "user-decider": ["decider", "user"],
    "projection-users": ["projection", "users"],
    "market-api": ["market", "api"],
    "market-simulator": ["market", "simulator"],
    "market-prices": ["market", "prices"],
    "market-bars": ["market", "bars"],
    "projection-bars": ["projection", "bars"],
    "assessment-decider": ["decider", "assessment"],
    "account-decider": ["decider", "account"],
    "assessment-policy": ["policy", "assessment"],
    "projection-assessments": ["projection", "assessments"],
    "projection-accounts": ["projection", "accounts"],
}
