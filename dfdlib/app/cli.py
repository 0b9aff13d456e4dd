"""`dfd app`: the web app (Gradio is imported when the app is built, not here)."""
from __future__ import annotations

import sys
import warnings

from dfdlib.app import web
from dfdlib.app.core import DEFAULT_MAX_MB


def add_cli(subparsers) -> None:
    """Register `dfd app [--models DIR] [--host H] [--port P] [--share]` (Gradio is imported only when run)."""
    p = subparsers.add_parser("app", help="web app: upload videos, get verdicts (needs pip install dfdlib[app])")
    p.add_argument("--models", default="models", help="models folder, rescanned on every request (default: models)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                       "0.0.0.0 = all interfaces, with a warning)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    p.add_argument("--max-size-mb", type=float, default=DEFAULT_MAX_MB, help="largest upload accepted, in MB")
    p.add_argument("--examples", default="data/sample", help="folder of example videos (real/, fake/); '' = none")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--concurrency", type=int, default=1, help="analyses run at once; the rest are queued")
    p.set_defaults(func=_cli_app)


def _cli_app(args) -> int:
    if args.host not in web.LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone on your network can use the app (and see the models "
              "folder's listing); use --host 127.0.0.1 to keep it on this machine", file=sys.stderr)
    with warnings.catch_warnings():  # said above, in the CLI's words
        warnings.filterwarnings("ignore", message="the app listens on")
        web.launch_app(args.models, args.host, args.port, args.share, max_size_mb=args.max_size_mb,
                       examples=args.examples or None, device=args.device, concurrency=args.concurrency)
    return 0
