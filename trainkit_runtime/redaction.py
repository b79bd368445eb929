"""Keep secrets out of messages: every error text that may echo a token goes through here.

A server error body can echo the request, so a token may come back raw, URL-encoded (the STS
form body) or base64-encoded (a Basic auth header, a JWT segment); an URL may carry
``user:password@``. :func:`safe_message` removes all of these FIRST and only then makes the
text one line and cuts it to length, so no prefix of a secret survives the cut. Standard library
only: ``s3_credentials.py`` (run by path by ``mount-s3.sh``) imports it as a sibling module.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "mask_url_userinfo",
    "one_line",
    "redact",
    "safe_message",
    "secret_forms",
    "token_problem",
]

REDACTED = "<redacted>"
# Shorter secrets are not searched for in their encoded forms (too many false hits).
_MIN_ENCODED = 6
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@]*@")
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")


def _base64_cores(secret: bytes) -> set[str]:
    """The base64 text that encodes `secret` wherever it sits in a longer encoded string: for
    each of the 3 byte alignments, the characters whose 6 bits all come from the secret."""
    cores: set[str] = set()
    for offset in range(3):
        data = b"\0" * offset + secret + b"\0\0"
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(data).decode("ascii")
            first = -(-offset * 8 // 6)  # ceil
            last = (offset + len(secret)) * 8 // 6  # exclusive
            core = text[first:last]
            if len(core) >= _MIN_ENCODED:
                cores.add(core)
    return cores


def secret_forms(secret: str) -> list[str]:
    """`secret` and the forms it takes in requests and echoes: URL-encoded (``quote``,
    ``quote_plus``), base64 (standard and URL-safe, any alignment); longest first."""
    if not secret:
        return []
    forms = {secret}
    if len(secret) >= _MIN_ENCODED:
        forms |= {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
        forms |= {urllib.parse.quote(secret)}
        forms |= _base64_cores(secret.encode("utf-8"))
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every form of every secret replaced by REDACTED."""
    for secret in secrets:
        for form in secret_forms(secret or ""):
            text = text.replace(form, REDACTED)
    return text


def mask_url_userinfo(text: str) -> str:
    """``scheme://user:password@host`` → ``scheme://***@host`` anywhere in `text`."""
    return _USERINFO_RE.sub(r"\1***@", text)


def one_line(text: str) -> str:
    """`text` on one line: newlines and other control, bidi or separator characters escaped
    (so a message can never start a forged line or move the terminal's cursor)."""
    out = []
    for char in text:
        if char in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out).strip()


def safe_message(text: str, secrets: Iterable[str | None] = (), limit: int = 500) -> str:
    """Redact (all forms), mask URL user info, make one line, then cut to `limit` chars."""
    text = one_line(mask_url_userinfo(redact(text, list(secrets))))
    return text if len(text) <= limit else text[:limit] + "..."


def token_problem(token: str) -> str | None:
    """Why `token` (already stripped) cannot be a bearer token, without showing it; None if
    it is one line of printable ASCII without spaces."""
    if not token:
        return "is empty"
    lines = token.splitlines()
    if len(lines) > 1:
        return f"holds {len(lines)} lines; a token is one line (content not shown)"
    if not _TOKEN_RE.fullmatch(token):
        return (
            "holds spaces, control or non-ASCII characters; a token is printable ASCII "
            "(content not shown)"
        )
    return None
