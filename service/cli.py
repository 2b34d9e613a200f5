"""The command line: ``kameleoon-destination serve | sink | demo | try | overview | samples | events | outbox ...``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import metadata

from service import config as config_module
from service.errors import ConfigError
from service.ops import logs

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_SINK_LISTEN = "127.0.0.1:8080"


def _host_port(text: str) -> tuple[str, int]:
    try:
        return config_module.host_port(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), as CHANGELOG.md names it."""
    try:
        return metadata.version("kameleoon-destination")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kameleoon-destination", description="Segment-spec events to Kameleoon over gRPC.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC service (configured from KAMELEOON_* variables)")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    sink = commands.add_parser("sink", help="run a local stand-in for Kameleoon that prints what it receives")
    sink.add_argument("--listen", default=DEFAULT_SINK_LISTEN, type=_host_port, help=f"HOST:PORT (default {DEFAULT_SINK_LISTEN})")
    sink.add_argument("--path", default="/segmentio", help="endpoint path (default /segmentio)")
    commands.add_parser("demo", help="run the service and a sink, send one event per action, show what Kameleoon received")
    from service.api.admin_commands import add_parser as add_admin_parsers
    from service.api.preview_command import add_parser as add_try_parser
    from service.outbox.commands import add_parser as add_outbox_parser

    add_try_parser(commands)
    add_admin_parsers(commands)
    add_outbox_parser(commands)
    args = parser.parse_args(argv)

    try:
        if args.command == "serve":
            _host_port(args.listen)
            cfg = config_module.from_env()
            logs.configure(cfg.log_level, cfg.log_format, trace_ids=cfg.tracing != "off")
            from service.api.server import serve as run_server
            from service.api.workers import run_loop, run_workers
            from service.reload import sources_for

            if cfg.workers > 1:
                for source in sources_for(cfg):
                    source.load()  # a bad file fails here, once, before any worker starts
                if outbox_url := cfg.outbox_url():
                    from service.outbox import check as check_outbox

                    asyncio.run(check_outbox(outbox_url, create_directory=not cfg.outbox))  # so does an outbox file that cannot be used
                return run_workers(cfg, args.listen, cfg.workers)
            run_loop(run_server(cfg, args.listen))
        elif args.command == "sink":
            from service.demo.sink import run_sink

            try:
                host, port = args.listen
                asyncio.run(run_sink(host, port, args.path))
            except KeyboardInterrupt:
                pass
        elif args.command == "try":
            from service.api.preview_command import run as run_try

            return asyncio.run(run_try(args))
        elif args.command in ("overview", "samples", "events"):
            from service.api.admin_commands import run as run_admin

            return asyncio.run(run_admin(args))
        elif args.command == "outbox":
            from service.outbox.commands import run as run_outbox

            return asyncio.run(run_outbox(args, config_module.from_env()))
        else:
            from service.demo.run import run_demo

            return asyncio.run(run_demo())
    except ConfigError as exc:
        print(f"kameleoon-destination: configuration error: {exc}", file=sys.stderr)
        return 2
    except argparse.ArgumentTypeError as exc:
        print(f"kameleoon-destination: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kameleoon-destination: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
