"""The ``postbox`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from postbox import __version__
from postbox.mailbox.app import Settings, create_app


def _serve(args: argparse.Namespace) -> int:
    settings = Settings(host=args.host, port=args.port)
    print(f"Postbox {__version__} listening on http://{settings.host}:{settings.port}")
    print("Health check: GET /healthz")
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="postbox", description=__doc__)
    parser.add_argument("--version", action="version", version=f"postbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    serve.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
