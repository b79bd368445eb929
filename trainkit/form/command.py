"""`trainkit form ARCH_DIR`: show the platform's form for an architecture and save its values.

Serves, on 127.0.0.1 only, the page the platform's frontend would show for the architecture's
config/config.jsonschema (@rjsf/core 4, material-ui theme, liveValidate + liveOmit +
omitExtraData, the backend's JSONSchemaDefault as initial values) and, beside it, the
platform's ONNX export form. "Save" writes train_config.json and export_config.json into --out
(validated against their schemas again, written atomically); then

    trainkit run ARCH_DIR --minio DIR --dataset-id N \\
        --config OUT/train_config.json --export-config OUT/export_config.json

trains with those values. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import signal
import sys
import webbrowser
from pathlib import Path
from types import FrameType

from trainkit.errors import TrainkitError
from trainkit.form import server

DEFAULT_PORT = 8750


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "form",
        help="show the platform's form for an architecture; save train/export configs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("arch_dir", type=Path, help="templates/<provider>/<category>/<arch>")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the URL, do not open a browser"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(),
        help="directory for train_config.json and export_config.json (default: current)",
    )
    parser.set_defaults(func=run)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise TrainkitError(f"--port {args.port}: must be 0..65535")
    out_dir = Path(args.out).resolve()
    if not out_dir.is_dir():
        raise TrainkitError(f"--out {args.out}: not a directory")
    page = server.page_for(Path(args.arch_dir), out_dir)
    form_server = server.FormServer(page, port=args.port)
    print(f"trainkit form: {page.title}: {form_server.url}  (saves into {out_dir}; Ctrl-C stops)")
    sys.stdout.flush()
    if not args.no_browser:
        webbrowser.open(form_server.url)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        form_server.serve_forever()
    except KeyboardInterrupt:
        print("trainkit form: stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        form_server.httpd.server_close()
    return 0
