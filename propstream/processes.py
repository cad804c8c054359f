"""Run one long-lived propstream process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kernel.exceptions import PropstreamError
from kernel.manifest import ServiceManifest, WorkerKind, service_of
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


def _run_worker(settings: Settings, kind: WorkerKind, name: str) -> None:
    """Run the manifest's worker `propstream run <kind> <name>` until signalled."""
    from propstream.manifests import SERVICES, worker

    try:
        entry = worker(kind, name)
    except KeyError as exc:
        raise SystemExit(str(exc.args[0])) from None
    settings = _service_settings(settings, service_of(SERVICES, entry))
    configure_logging(settings, process=entry.process)
    serve_metrics(settings)
    try:
        runner = entry.factory(settings)
    except PropstreamError as exc:
        raise SystemExit(f"error: {exc}") from None
    _run(_until_signalled(runner.start, runner.run, runner.stop, runner.name))


def _service_settings(settings: Settings, manifest: ServiceManifest) -> Settings:
    """The settings of the service a process belongs to: its own class (a core process has
    no venue settings, a market one no Stripe keys), with the values already read."""
    if type(settings) is manifest.settings:
        return settings
    wanted = set(manifest.settings.model_fields)
    built: Settings = manifest.settings(**{k: v for k, v in settings if k in wanted})
    return built


def run_decider(settings: Settings, family: str) -> None:
    _run_worker(settings, "decider", family)


def run_policy(settings: Settings, name: str) -> None:
    """A stateless policy that turns events of one family into commands of another."""
    _run_worker(settings, "policy", name)


def projection_runner(settings: Settings, name: str) -> ProjectionRunner:
    """The runner of projection `name`, whichever service owns it."""
    from propstream.manifests import worker

    runner = worker("projection", name).factory(settings)
    assert isinstance(runner, ProjectionRunner), name
    return runner


def run_projection(settings: Settings, name: str) -> None:
    _run_worker(settings, "projection", name)


def run_market(settings: Settings, part: str) -> None:
    """One market-data process: the API, or a worker (simulator, bars, prices, venues)."""
    from propstream.manifests import worker

    if part == "api":
        _run_api(settings, "market_data")
        return
    try:
        worker("market", part)
    except KeyError as exc:
        raise SystemExit(f"{exc.args[0]}, and api") from None
    _run_worker(settings, "market", part)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed: the same asyncio, with a fraction of the loop's CPU cost."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def run_api(settings: Settings) -> None:
    _run_api(settings, "core")


def run_ws_gateway(settings: Settings) -> None:
    """The WebSocket gateway: its own server (websockets), not an ASGI app under uvicorn."""
    from propstream.manifests import service

    manifest = service("ws_gateway")
    assert manifest.api is not None
    settings = _service_settings(settings, manifest)
    configure_logging(settings, process=manifest.api.process)
    serve_metrics(settings)
    settle_heap()
    _run(manifest.api.factory(settings))


def _run_api(settings: Settings, service_name: str) -> None:
    from propstream.manifests import service

    manifest = service(service_name)
    api = manifest.api
    assert api is not None, service_name
    settings = _service_settings(settings, manifest)
    configure_logging(settings, process=api.process)
    serve_metrics(settings)
    app = api.factory(settings)
    from propstream.gate import wait_at_gate

    wait_at_gate()  # under `propstream up`: until the infrastructure is up
    _serve(app, settings.host, api.port(settings))


def _serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    settle_heap()  # the app is built: what is alive now lives as long as the process
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                loop="auto", http="auto")


def _platform() -> dict[str, list[str]]:
    from propstream.manifests import platform

    return {name: list(argv) for name, argv in platform().items()}


# name -> argv after `propstream run`, from the services' manifests
PLATFORM = _platform()
