"""Server bootstrap: the gRPC server with health and reflection, and a graceful stop.

``create_server(config, address)`` returns a started-ready server and the port
it bound (tests pass port 0). ``serve`` runs until SIGTERM or SIGINT, then
stops taking calls, lets those in flight finish within the grace period and
closes the HTTP session. SIGHUP reloads the subscriptions and filters files
(they are also watched for changes: :mod:`service.reload`).

With an outbox (KAMELEOON_OUTBOX, or KAMELEOON_DELIVERY=queued and the default
location) the server opens it at start-up (a file it cannot use stops start-up,
named), runs the deliverer beside the gRPC server, keeps the idempotency
window in it, and serves OutboxAdmin; on stop the deliverer gets the same
grace as the calls in flight, then the outbox is closed.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import signal
from dataclasses import dataclass

import grpc
import structlog
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kameleoon.destination.v1 import destination_pb2 as pb
from service.api import decoding
from service.api.auth import CallerInterceptor
from service.api.event_fate import candidates
from service.api.http import TrackingApi
from service.api.outbox_admin import OutboxAdminServicer
from service.api.overview_admin import DeliveryOverviewServicer
from service.api.page import OperatorPage, serve_page
from service.api.pipeline import Pipeline
from service.api.servicer import Servicer
from service.config import Config
from service.config.values import default_outbox_url
from service.delivery.client import KameleoonClient, longest_post_s
from service.delivery.credentials import Credentials
from service.delivery.idempotency import MemoryStore, NoStore
from service.delivery.sync import SyncDelivery
from service.errors import ConfigError
from service.ingest.consent import Consent
from service.ops import tracing
from service.ops.metrics import Metrics
from service.ops.overview import MemoryOverview, Recorder
from service.outbox import Outbox
from service.outbox import create as create_outbox
from service.outbox.accept import Acceptor, QueueSettings
from service.outbox.deliverer import Deliverer
from service.outbox.sealing import Sealer
from service.outbox.window import OutboxStore
from service.reload import Reloader, sources_for
from service.routing.router import Router
from service.workspace.model import DEFAULT, Instance, Source, Workspace, digest

log = structlog.get_logger("kameleoon.server")

# The cyclic garbage collector's first threshold: collections that many allocations apart. The
# default (700) makes it walk the young objects of hundreds of deliveries in flight several
# times per batch; 10,000 lets most of them die first (refcounting frees them: an event's
# objects hold no cycles).
GC_THRESHOLD = 10_000

# How often the outbox's file and filesystem are looked at (a stat and a statvfs).
OUTBOX_WATCH_S = 2.0

SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["KameleoonDestination"]
SERVICE_NAME = SERVICE_DESCRIPTOR.full_name
ADMIN_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["OutboxAdmin"]
ADMIN_NAME = ADMIN_DESCRIPTOR.full_name
OVERVIEW_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["DeliveryOverview"]
OVERVIEW_NAME = OVERVIEW_DESCRIPTOR.full_name


class Holder:
    """The workspace in force. Without a workspace file: one source ``default`` whose one instance's router
    the subscriptions and filters reloads reconfigure, and whose write keys are KAMELEOON_WRITE_KEYS; with
    one, each reload replaces the whole workspace (calls already started keep the one they read)."""

    def __init__(self) -> None:
        self.current: Workspace | None = None
        self._router: Router | None = None

    def start(self, config: Config, loaded: dict, make_router) -> None:
        if "workspace" in loaded:
            self.current = loaded["workspace"]
            return
        self._router = make_router(loaded["subscriptions"], loaded["filters"])
        instance = Instance(DEFAULT, DEFAULT, self._router, Consent(config.consent_categories))
        keys = {digest(key): DEFAULT for key in config.write_keys}
        self.current = Workspace((Source(DEFAULT, (instance,)),), keys)

    def get(self) -> Workspace:
        assert self.current is not None, "start() first"
        return self.current

    def apply(self, name: str, value) -> None:
        """A reload: the new workspace, or the new subscriptions or filters of the variables' one instance."""
        if name == "workspace":
            self.current = value
        else:
            assert self._router is not None
            self._router.reconfigure(**{name: value})

    def credentials(self, source: str, name: str) -> Credentials | None:
        """A workspace instance's credentials now (the deliverer's, for queued events); None when it is gone."""
        found = self.get().instance(source, name)
        return found.credentials if found is not None else None


@dataclass
class App:
    """A running service: the gRPC server, its port, and what it owns."""

    server: grpc.aio.Server
    port: int
    client: KameleoonClient
    health: health.aio.HealthServicer
    metrics: Metrics
    reloader: Reloader
    metrics_runner: web.AppRunner | None = None
    metrics_port: int | None = None
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None
    outbox: Outbox | None = None
    deliverer: Deliverer | None = None
    outbox_watch: asyncio.Task | None = None
    http_runner: web.AppRunner | None = None
    page_runner: web.AppRunner | None = None
    page_port: int | None = None
    http_port: int | None = None
    recorder: Recorder | None = None

    async def stop(self, grace: float | None) -> None:
        await self.reloader.stop()
        if self.http_runner is not None:  # no new HTTP events; those being committed finish (shutdown_timeout)
            await self.http_runner.cleanup()
        if self.page_runner is not None:
            await self.page_runner.cleanup()
        if self.outbox_watch is not None:
            self.outbox_watch.cancel()
        await self.health.enter_graceful_shutdown()
        if self.deliverer is not None:
            await asyncio.gather(self.server.stop(grace), self.deliverer.stop(grace))
        else:
            await self.server.stop(grace)
        await self.client.close()
        if self.recorder is not None:  # the last counts and samples, before the store closes
            await self.recorder.stop()
        if self.outbox is not None:
            await self.outbox.close()
        if self.health_server is not None:  # answered NOT_SERVING through the drain
            await self.health_server.stop(0)
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS from KAMELEOON_TLS_CERT/KEY; mutual TLS when KAMELEOON_TLS_CLIENT_CA is set too."""
    if not config.tls_cert:
        return None

    def read(path: str) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    assert config.tls_key is not None  # the configuration refuses a certificate without its key
    ca = read(config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials([(read(config.tls_key), read(config.tls_cert))], root_certificates=ca, require_client_auth=ca is not None)


async def serve_health(servicer: health.aio.HealthServicer, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """A plaintext gRPC server with grpc.health.v1 only (KAMELEOON_HEALTH_LISTEN), answering what ``servicer``
    says: probes and the image's HEALTHCHECK keep working when the main port speaks TLS."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)  # grpc raises RuntimeError when it cannot bind
    except RuntimeError:
        bound = 0
    if bound == 0:
        await server.stop(0)
        raise OSError(f"cannot listen on {address} (KAMELEOON_HEALTH_LISTEN)")
    await server.start()
    return server, bound


async def create_server(config: Config, address: str = "127.0.0.1:50051", tracer_provider=None, interceptors=()) -> App:
    """Build and start the server on ``address`` (port 0 picks a free one).

    ``tracer_provider`` overrides the one KAMELEOON_TRACING would make (tests pass an in-memory one);
    ``interceptors`` go innermost, next to the servicer (tests count what a stream reads).
    """
    metrics = Metrics()
    workspace = Holder()  # the sources and instances in force: a workspace file, or the variables' one of each
    make_router = functools.partial(Router, metrics=metrics)
    reloader = Reloader(sources_for(config, make_router), workspace.apply, metrics, config.config_poll_s)
    loaded = reloader.load_initial()  # a bad file stops the start here, naming the problem
    workspace.start(config, loaded, make_router)
    # The HTTP Tracking API is queued delivery: it takes the default outbox when none is configured.
    outbox_url = config.outbox_url() or (default_outbox_url() if config.http_listen else None)
    # The default location's directory is made; an explicit KAMELEOON_OUTBOX's must exist (a volume not mounted).
    outbox = create_outbox(outbox_url, config.outbox_min_free_bytes, create_directory=not config.outbox) if outbox_url else None
    if outbox is not None:
        await outbox.open()  # OutboxOpenError (a ConfigError) names the file
    provider = tracer_provider or tracing.provider_for(config.tracing)
    trace_configs = (tracing.client_trace_config(provider),) if provider else ()
    client = KameleoonClient(config, metrics, trace_configs)
    await client.start()
    metrics.concurrency.source = client.concurrency
    chain = [tracing.server_interceptor(provider)] if provider else []
    callers = CallerInterceptor(config.auth_tokens, config.admin_tokens, workspace.get, metrics)
    if callers.needed():
        chain.append(callers)
    chain.extend(interceptors)
    server = grpc.aio.server(
        interceptors=chain or None,
        options=(
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(config.grace_s * 1000)),
        ),
    )
    store: NoStore | OutboxStore | MemoryStore
    if not config.idempotency_window_s:
        store = NoStore()
    elif outbox is not None:
        store = OutboxStore(outbox, config.idempotency_window_s, log, longest_post_s(config))
    else:
        store = MemoryStore(config.idempotency_window_s, config.idempotency_max_entries)
    sealer = Sealer(config.outbox_key, config.api_key, workspace.credentials)
    queue_settings = QueueSettings(config.retry_window_s, config.idempotency_window_s, config.outbox_max_pending)
    sync = SyncDelivery(client, store, config.max_in_flight, metrics)
    acceptor = Acceptor(outbox, sealer, queue_settings, metrics)
    recorder = Recorder(outbox or MemoryOverview(), config.samples == "on", config.sample_retention_s)
    pipeline = Pipeline(sync, acceptor, metrics, recorder)
    metrics.events_in_flight.set_function(lambda: sync.in_flight)
    servicer = Servicer(config, pipeline, workspace.get)
    server.add_generic_rpc_handlers((decoding.handlers(SERVICE_DESCRIPTOR, servicer, metrics),))
    admin = OutboxAdminServicer(outbox, config.retry_window_s, event_keys=lambda message_id: candidates(workspace.get(), config, message_id))
    server.add_generic_rpc_handlers((decoding.handlers(ADMIN_DESCRIPTOR, admin, metrics),))
    server.add_generic_rpc_handlers((decoding.handlers(OVERVIEW_DESCRIPTOR, DeliveryOverviewServicer(recorder), metrics),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, ADMIN_NAME, OVERVIEW_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    credentials = server_credentials(config)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        await client.close()
        if outbox is not None:
            await outbox.close()
        raise OSError(f"cannot listen on {address}")
    await server.start()
    for name in ("", SERVICE_NAME, ADMIN_NAME, OVERVIEW_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    recorder.start()
    deliverer = None
    if outbox is not None:
        deliverer = Deliverer(outbox, client, sealer, config, metrics, recorder)
        acceptor.on_enqueued = admin.on_retried = deliverer.wake
        await deliverer.start()
    app = App(server, port, client, health_servicer, metrics, reloader, outbox=outbox, deliverer=deliverer, recorder=recorder)
    if outbox is not None:
        app.outbox_watch = asyncio.ensure_future(watch_outbox(outbox, health_servicer, metrics))
    if config.health_listen is not None:
        try:
            app.health_server, app.health_port = await serve_health(health_servicer, *config.health_listen)
        except OSError:
            await app.stop(0)
            raise
    if config.metrics_listen is not None:
        app.metrics_runner, app.metrics_port = await metrics.serve(*config.metrics_listen)
    if config.http_listen is not None:
        try:
            api = TrackingApi(config, pipeline, metrics, workspace.get)
            app.http_runner, app.http_port = await serve_http(api, *config.http_listen, config.grace_s, shared=config.workers > 1)
        except OSError:
            await app.stop(0)
            raise
    if config.admin_listen is not None:
        try:
            page = OperatorPage(config, recorder, outbox, workspace.get, lambda: dict(reloader.versions))
            app.page_runner, app.page_port = await serve_page(page, config)
        except (OSError, ConfigError):
            await app.stop(0)
            raise
    reloader.start_watching()
    return app


async def serve_http(api: TrackingApi, host: str, port: int, grace_s: float, shared: bool = False) -> tuple[web.AppRunner, int]:
    """The HTTP Tracking API on host:port (KAMELEOON_HTTP_LISTEN); the runner and the port bound. ``shared``:
    several workers listen on the port (SO_REUSEPORT), as they do on the gRPC one."""
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=grace_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=shared or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port} (KAMELEOON_HTTP_LISTEN): {exc.strerror}") from None
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def watch_outbox(outbox: Outbox, health_servicer: health.aio.HealthServicer, metrics: Metrics) -> None:
    """Every OUTBOX_WATCH_S: the outbox's filesystem into the metrics (free bytes, headroom), and whether its
    file is still the one opened. A file deleted or replaced under the process stops the service from
    writing it (the store refuses) and turns health NOT_SERVING, with one error line saying why."""
    while True:
        disk = outbox.disk()
        if disk is not None:
            metrics.outbox_disk(disk.free_bytes, disk.headroom_bytes)
        problem = outbox.verify()
        if problem is not None:
            log.error("outbox unusable: not serving until restarted", outbox=outbox.location, error=problem)
            for name in ("", SERVICE_NAME, ADMIN_NAME, OVERVIEW_NAME):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            return
        await asyncio.sleep(OUTBOX_WATCH_S)


def settle_gc() -> None:
    """Once started: what start-up made (modules, descriptors, the server) lives as long as the
    process, so it leaves the garbage collector's generations (gc.freeze) and full collections no
    longer walk it; young collections come less often (GC_THRESHOLD). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


async def serve(config: Config, address: str, worker: int | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain gracefully. ``worker`` numbers the process among KAMELEOON_WORKERS."""
    if worker is not None:
        structlog.contextvars.bind_contextvars(worker=worker)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # not yet: the files are about to be read anyway
    app = await create_server(config, address)
    settle_gc()
    host = address.rsplit(":", 1)[0]
    log.info(
        "serving",
        address=f"{host}:{app.port}",
        kameleoon=config.base_url,
        max_attempts=config.max_attempts,
        metrics=f"{config.metrics_listen[0]}:{app.metrics_port}" if config.metrics_listen else None,
        health=f"{config.health_listen[0]}:{app.health_port}" if config.health_listen else None,
        tls=bool(config.tls_cert),
        auth=bool(config.auth_tokens),
        subscriptions_version=app.reloader.versions["subscriptions"],
        filters_version=app.reloader.versions["filters"],
        delivery=config.delivery,
        outbox=app.outbox.location if app.outbox is not None else None,
    )
    loop.add_signal_handler(signal.SIGHUP, app.reloader.reload)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping", grace_s=config.grace_s)
    await app.stop(config.grace_s)
    log.info("stopped")
