"""`trainkit upload ZIP --url URL`: validate, then POST the ZIP to the platform.

`POST {url}/train/template/upload`, multipart field `template_zip`, `Authorization: Bearer
<token>`. The token comes from `--token-file` or the environment variable TRAINKIT_TOKEN — never
from the command line (other users can read argv) and it is never printed. Connection errors
are retried a few times with backoff; anything the server answered is not (an upload may have
happened). The platform answers 201 {"provider": P, "architecture": {"category": C, "name": A}}
or 4xx/5xx {"detail": "<reason>"}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
import time
from pathlib import Path

import requests

from trainkit.errors import TrainkitError, UsageError

log = logging.getLogger(__name__)

TOKEN_ENV = "TRAINKIT_TOKEN"
UPLOAD_PATH = "/train/template/upload"
FIELD = "template_zip"
BACKOFF_SECONDS = 0.5


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "upload",
        help="validate a template ZIP and upload it to the platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("zip", type=Path, help="train-container-publish.zip")
    parser.add_argument("--url", required=True, help="platform API base URL, e.g. https://host/api")
    parser.add_argument(
        "--token-file", type=Path, help=f"file holding the bearer token (else ${TOKEN_ENV})"
    )
    parser.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help="upload even if validation fails")
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the answer (%(default)s)"
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="retries on connection errors (%(default)s)"
    )
    parser.set_defaults(func=run)


class _RefuseToken(argparse.Action):
    """`--token VALUE` is refused without echoing VALUE: argv is visible to other users."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(
            f"{option_string} is not accepted (argv is visible to other users); "
            f"use --token-file FILE or ${TOKEN_ENV}"
        )


def read_token(token_file: Path | None) -> tuple[str, str]:
    """(token, where it came from)."""
    if token_file is not None:
        try:
            mode = token_file.stat().st_mode
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TrainkitError(f"--token-file {token_file}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("warning: %s is readable by others; chmod 600 it", token_file)
        if not token:
            raise TrainkitError(f"--token-file {token_file}: file is empty")
        return token, f"--token-file {token_file}"
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise TrainkitError(f"no token: pass --token-file FILE or set {TOKEN_ENV}")
    return token, f"${TOKEN_ENV}"


def endpoint(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url {url!r}: must start with http:// or https://")
    return url.rstrip("/") + UPLOAD_PATH


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000] or "(empty body)"
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(body)[:2000]


def post(
    zip_path: Path, target: str, token: str, timeout: float, retries: int
) -> requests.Response:
    """POST with bounded retries on connection errors only."""
    attempt = 0
    while True:
        try:
            with zip_path.open("rb") as fh:
                return requests.post(
                    target,
                    files={FIELD: (zip_path.name, fh, "application/zip")},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=(10.0, timeout),
                )
        except requests.ConnectionError as exc:
            if attempt >= retries:
                reason = type(exc).__name__
                raise TrainkitError(
                    f"cannot reach {target} after {attempt + 1} attempt(s): {reason}: {_short(exc)}"
                ) from None
            delay = BACKOFF_SECONDS * 2**attempt
            print(
                f"connection to {target} failed ({type(exc).__name__}); retrying in {delay:.1f} s",
                file=sys.stderr,
            )
            time.sleep(delay)
            attempt += 1
        except requests.Timeout:
            raise TrainkitError(
                f"{target} did not answer within {timeout:g} s (not retried: the upload may "
                "have been received)"
            ) from None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def run(args: argparse.Namespace) -> int:
    from trainkit.validation import validate_path

    if not args.zip.is_file():
        raise UsageError(f"{args.zip}: no such file")
    if args.retries < 0 or args.timeout <= 0:
        raise UsageError("--retries must be >= 0 and --timeout > 0")
    target = endpoint(args.url)
    token, source = read_token(args.token_file) if not args.dry_run else (None, None)

    report = validate_path(args.zip)
    for finding in report.findings:
        print(finding, file=sys.stderr)
    if not report.ok:
        if not args.force:
            raise TrainkitError(
                f"{args.zip} fails validation ({len(report.errors)} error(s) above); not "
                "uploading (--force uploads anyway)"
            )
        log.warning("uploading despite %d validation error(s) (--force)", len(report.errors))

    if args.dry_run:
        size = args.zip.stat().st_size
        print(
            f"dry run: would POST {args.zip} ({size} bytes) to {target} as multipart field "
            f"'{FIELD}' with a bearer token from --token-file or ${TOKEN_ENV}"
        )
        return 0

    log.debug("token from %s", source)
    response = post(args.zip, target, token, args.timeout, args.retries)
    if response.status_code in (200, 201):
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        print(json.dumps(answer) if not isinstance(answer, str) else answer)
        if isinstance(answer, dict) and isinstance(answer.get("architecture"), dict):
            arch = answer["architecture"]
            print(
                f"uploaded: provider {answer.get('provider')}, category {arch.get('category')}, "
                f"architecture {arch.get('name')}",
                file=sys.stderr,
            )
        return 0
    hint = " (check the token)" if response.status_code in (401, 403) else ""
    raise TrainkitError(
        f"{target} answered {response.status_code} {response.reason}{hint}: {_detail(response)}"
    )
