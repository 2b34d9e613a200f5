"""Several serving processes on one port (KAMELEOON_WORKERS), for multi-core hosts.

gRPC binds with SO_REUSEPORT on Linux, so N processes can listen on the same
address and the kernel spreads connections among them. The parent starts the
workers, forwards SIGTERM/SIGINT to them (each drains its own calls) and
SIGHUP (each reloads its configuration), and exits with the worst of their
exit codes. Worker i serves metrics, when on, on KAMELEOON_METRICS_LISTEN's
port + i.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal

from service.config import Config


def run_loop(coroutine):
    """Run ``coroutine`` on uvloop when it is installed (faster I/O), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        import asyncio

        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _worker(config: Config, address: str, index: int) -> None:
    from service.api.server import serve
    from service.ops import logs

    if config.metrics_listen is not None:
        host, port = config.metrics_listen
        config = dataclasses.replace(config, metrics_listen=(host, port + index if port else 0))
    if config.admin_listen is not None:  # each worker's page on its own port, as its metrics
        host, port = config.admin_listen
        config = dataclasses.replace(config, admin_listen=(host, port + index if port else 0))
    logs.configure(config.log_level, config.log_format, trace_ids=config.tracing != "off")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM from it drains
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serve() reloads on it
    run_loop(serve(config, address, worker=index))


def run_workers(config: Config, address: str, count: int) -> int:
    """Start ``count`` workers serving ``address``; wait for them; forward stop and reload signals."""
    if address.rsplit(":", 1)[-1] == "0":
        raise OSError("several workers need a fixed port, not port 0")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(config, address, i), name=f"worker-{i}") for i in range(count)]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited by the workers until they can reload
    for worker in workers:
        worker.start()

    def stop(_signum, _frame) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: the worker drains, then exits

    def reload(_signum, _frame) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGHUP)  # each worker reloads its own configuration

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for worker in workers:
        worker.join()
    return max((worker.exitcode or 0) for worker in workers)
