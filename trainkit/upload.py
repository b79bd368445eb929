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
import sys
import time
from pathlib import Path

import requests

from trainkit.errors import TrainkitError, UsageError
from trainkit.tokens import read_token_file
from trainkit_runtime import bounded_json
from trainkit_runtime.redaction import mask_url_userinfo, safe_message, token_problem

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
        return read_token_file(token_file), f"--token-file {token_file}"
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise TrainkitError(f"no token: pass --token-file FILE or set {TOKEN_ENV}")
    if problem := token_problem(token):
        raise TrainkitError(f"${TOKEN_ENV} {problem}")
    return token, f"${TOKEN_ENV}"


def endpoint(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url {shown(url)!r}: must start with http:// or https://")
    return url.rstrip("/") + UPLOAD_PATH


def _detail(response: requests.Response, token: str) -> str:
    """The server's `detail` (or body), redacted in every form BEFORE it is cut to length."""
    try:
        body = bounded_json.loads(response.content, "answer", strict=False)
    except ValueError:
        text = response.content[: 1 << 20].decode("utf-8", "replace").strip()
        return safe_message(text, [token], 2000) or "(empty body)"
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        body = detail if isinstance(detail, str) else json.dumps(detail)
    text = body if isinstance(body, str) else json.dumps(body)
    return safe_message(text, [token], 2000)


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
                    f"cannot reach {shown(target)} after {attempt + 1} attempt(s): {reason}: "
                    f"{safe_message(str(exc), [token], 300)}"
                ) from None
            delay = BACKOFF_SECONDS * 2**attempt
            print(
                f"connection to {shown(target)} failed ({type(exc).__name__}); retrying in "
                f"{delay:.1f} s",
                file=sys.stderr,
            )
            time.sleep(delay)
            attempt += 1
        except requests.Timeout:
            raise TrainkitError(
                f"{shown(target)} did not answer within {timeout:g} s (not retried: the upload "
                "may have been received)"
            ) from None
        except requests.RequestException as exc:  # e.g. an invalid URL or header
            raise TrainkitError(
                f"cannot POST to {shown(target)}: {type(exc).__name__}: "
                f"{safe_message(str(exc), [token], 300)}"
            ) from None


def shown(url: str) -> str:
    """An URL as printed: user info (`user:password@`) masked, one line."""
    return safe_message(mask_url_userinfo(url), (), 300)


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
            f"dry run: would POST {args.zip} ({size} bytes) to {shown(target)} as multipart field "
            f"'{FIELD}' with a bearer token from --token-file or ${TOKEN_ENV}"
        )
        return 0

    log.debug("token from %s", source)
    response = post(args.zip, target, token, args.timeout, args.retries)
    if response.status_code in (200, 201):
        try:
            answer = bounded_json.loads(response.content, "answer", strict=False)
        except ValueError:
            answer = response.content[: 1 << 20].decode("utf-8", "replace")
        text = json.dumps(answer) if not isinstance(answer, str) else answer
        print(safe_message(text, [token], 10_000))
        if isinstance(answer, dict) and isinstance(answer.get("architecture"), dict):
            arch = answer["architecture"]
            summary = (
                f"uploaded: provider {answer.get('provider')}, category {arch.get('category')}, "
                f"architecture {arch.get('name')}"
            )
            print(safe_message(summary, [token], 1000), file=sys.stderr)
        return 0
    hint = " (check the token)" if response.status_code in (401, 403) else ""
    reason = safe_message(str(response.reason or ""), [token], 100)
    raise TrainkitError(
        f"{shown(target)} answered {response.status_code} {reason}{hint}: "
        f"{_detail(response, token)}"
    )
