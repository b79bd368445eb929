"""Exchange the platform's OIDC access token for temporary S3 credentials (stdlib only).

    python s3_credentials.py            # STS AssumeRoleWithWebIdentity, write profile `dataset`
    python s3_credentials.py exec -- s3fs BUCKET MOUNTPOINT -o ...
                                        # run a command with that profile's keys in its env

`assume` (the default) POSTs `AssumeRoleWithWebIdentity` to `S3_HOST` (MinIO and moto serve
STS on the S3 endpoint). The token is read from the environment variable `OID_ACCESS_TOKEN`
only; it never appears on a command line, in a log line or in an error message. `RoleArn` is
sent only when `S3_ROLE_ARN` is set (MinIO rejects a wrong one, AWS and moto require one).
TLS certificates are verified unless `S3_INSECURE=1` (a warning says so); `AWS_CA_BUNDLE`
names an extra CA file. Redirects are not followed (the token stays with `S3_HOST`).

The keys go to the AWS shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
`~/.aws/credentials`) as profile `dataset` with `aws_session_token`; the file is replaced
atomically, created with mode 600, and other profiles in it are kept verbatim.

`exec` exists because s3fs 1.90 reads credentials files only from the *passwd* home directory
(`getpwuid`, not `$HOME` nor `AWS_SHARED_CREDENTIALS_FILE`) and its passwd-file format has no
session token: s3fs takes temporary keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN` (with `-o use_session_token`). Those are set only in the environment of
the exec'ed command (readable by its owner and root, unlike argv) and `OID_ACCESS_TOKEN` is
removed from it.

Other settings: `S3_STS_DURATION_SECONDS` (default 604800, the platform's value),
`S3_ROLE_SESSION_NAME` (default `trainkit-<hostname>`), `S3_STS_TIMEOUT` (seconds, default 30).
Exit status: 0 success, 2 usage/configuration error, 3 STS request failed, 4 bad STS response,
5 credentials file could not be written or read.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import socket
import ssl
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

try:
    from trainkit_runtime.redaction import mask_url_userinfo, safe_message, token_problem
except ImportError:  # run by path (mount-s3.sh): the runtime's directory is sys.path[0]
    from redaction import mask_url_userinfo, safe_message, token_problem  # type: ignore

PROFILE = "dataset"
DEFAULT_DURATION_SECONDS = 604800
MAX_RESPONSE_BYTES = 1 << 20
STS_VERSION = "2011-06-15"

_TRUE = {"1", "true", "yes", "on"}
_SECTION_RE = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]\s*(?:[#;].*)?$")
# What an STS credential value may contain: printable ASCII without spaces. Anything else
# (newlines, spaces) could corrupt the INI file or smuggle in another profile.
_CREDENTIAL_VALUE_RE = re.compile(r"^[\x21-\x7e]+$")
_SESSION_NAME_RE = re.compile(r"[^\w+=,.@-]")


class CredentialsError(Exception):
    """A failure with a one-line message that is safe to print (never contains the token)."""

    exit_code = 1


class ConfigError(CredentialsError):
    exit_code = 2


class StsRequestError(CredentialsError):
    exit_code = 3


class StsResponseError(CredentialsError):
    exit_code = 4


class CredentialsFileError(CredentialsError):
    exit_code = 5


@dataclasses.dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str = ""

    def __repr__(self) -> str:  # never show secrets, e.g. in a traceback or a debugger
        return f"Credentials(access_key_id={self.access_key_id!r}, expiration={self.expiration!r})"


# --------------------------------------------------------------------------- configuration


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def credentials_path() -> Path:
    """`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials` (what boto3 reads too)."""
    configured = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".aws" / "credentials"


def sts_endpoint(host: str) -> str:
    """`S3_HOST` as an URL; `minio:9000` → `https://minio:9000` (s3fs's default scheme too)."""
    host = host.strip()
    if not host:
        raise ConfigError("S3_HOST is not set (the S3/STS endpoint, e.g. http://minio:9000)")
    if "://" not in host:
        host = f"https://{host}"
    parsed = urllib.parse.urlsplit(host)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ConfigError(f"S3_HOST={_shown_endpoint(host)!r} is not an http(s) URL")
    return host


def duration_seconds() -> int:
    raw = os.environ.get("S3_STS_DURATION_SECONDS", "").strip()
    if not raw:
        return DEFAULT_DURATION_SECONDS
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"S3_STS_DURATION_SECONDS={raw!r} is not an integer") from None
    if not 900 <= value <= 31536000:
        raise ConfigError(f"S3_STS_DURATION_SECONDS={value} is outside 900..31536000")
    return value


def sts_timeout() -> float:
    raw = os.environ.get("S3_STS_TIMEOUT", "").strip() or "30"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"S3_STS_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"S3_STS_TIMEOUT={raw!r} must be positive")
    return value


def role_session_name() -> str:
    raw = os.environ.get("S3_ROLE_SESSION_NAME", "").strip() or f"trainkit-{socket.gethostname()}"
    name = _SESSION_NAME_RE.sub("-", raw)[:64]
    return name if len(name) >= 2 else "trainkit"


def ssl_context(insecure: bool) -> ssl.SSLContext:
    if insecure:
        print(
            "s3_credentials: WARNING: S3_INSECURE=1, TLS certificates of S3_HOST are NOT "
            "verified; the OIDC token and the S3 keys can be intercepted",
            file=sys.stderr,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    ca_bundle = os.environ.get("AWS_CA_BUNDLE", "").strip()
    try:
        return ssl.create_default_context(cafile=ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"AWS_CA_BUNDLE={ca_bundle!r} cannot be loaded: {exc}") from None


# --------------------------------------------------------------------------- STS


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the HTTPError for the 3xx is raised instead


def _redact(text: str, secret: str, limit: int = 500) -> str:
    """The token removed in raw, URL-encoded and base64 forms, URL user info masked, one line,
    THEN cut to `limit` (cutting first would let a prefix of the token survive)."""
    return safe_message(text, [secret], limit)


def _shown_endpoint(endpoint: str) -> str:
    return safe_message(mask_url_userinfo(endpoint), (), 200)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(body: bytes) -> ET.Element | None:
    """The document element, or None when `body` is not plain, small XML."""
    if len(body) > MAX_RESPONSE_BYTES:
        return None
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        return None  # an STS answer has no DTD: refuse entity tricks instead of parsing them
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _child_text(element: ET.Element, name: str) -> str:
    for child in element.iter():
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def describe_sts_error(status: int, body: bytes, token: str = "") -> str:
    """One line: HTTP status plus the STS error code/message (or a short body excerpt)."""
    root = _parse_xml(body)
    if root is not None:
        code = _child_text(root, "Code")
        message = _child_text(root, "Message")
        if code or message:
            detail = f"{code}: {message}" if code and message else code or message
            return _redact(f"HTTP {status}, {' '.join(detail.split())}", token, 500)
    text = re.sub(r"<[^>]*>", " ", body[:MAX_RESPONSE_BYTES].decode("utf-8", "replace"))
    return _redact(f"HTTP {status}, {' '.join(text.split()) or 'empty body'}", token, 240)


def parse_sts_response(body: bytes) -> Credentials:
    """The `<Credentials>` of an AssumeRoleWithWebIdentity answer (namespace-agnostic)."""
    root = _parse_xml(body)
    if root is None:
        raise StsResponseError("STS answered 200 but the body is not a plain XML document")
    credentials = next((el for el in root.iter() if _local(el.tag) == "Credentials"), None)
    if credentials is None:
        raise StsResponseError(
            f"STS answer <{_local(root.tag)}> has no <Credentials> element "
            "(is S3_HOST an STS endpoint?)"
        )
    values = {
        name: _child_text(credentials, name)
        for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    }
    for name in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        if not values[name]:
            raise StsResponseError(f"STS answer lacks <{name}> in <Credentials>")
        if not _CREDENTIAL_VALUE_RE.match(values[name]):
            raise StsResponseError(f"STS answer has a malformed <{name}> (unexpected characters)")
    return Credentials(
        access_key_id=values["AccessKeyId"],
        secret_access_key=values["SecretAccessKey"],
        session_token=values["SessionToken"],
        expiration=" ".join(values["Expiration"].split())[:64],
    )


def assume_role_with_web_identity(
    endpoint: str,
    token: str,
    *,
    role_arn: str | None = None,
    session_name: str = "trainkit",
    duration: int = DEFAULT_DURATION_SECONDS,
    insecure: bool = False,
    timeout: float = 30.0,
) -> Credentials:
    """POST AssumeRoleWithWebIdentity to `endpoint`; the token travels in the body only."""
    if not token:
        raise ConfigError("OID_ACCESS_TOKEN is not set (the platform's OIDC access token)")
    if problem := token_problem(token):
        raise ConfigError(f"OID_ACCESS_TOKEN {problem}")
    form = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": STS_VERSION,
        "WebIdentityToken": token,
        "RoleSessionName": session_name,
        "DurationSeconds": str(duration),
    }
    if role_arn:
        form["RoleArn"] = role_arn
    request = urllib.request.Request(
        endpoint,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if endpoint.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context(insecure)))
    elif insecure:
        ssl_context(insecure)  # the warning still applies to what the user asked for
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_RESPONSE_BYTES + 1) if exc.fp else b""
        except OSError:
            body = b""
        raise StsRequestError(
            f"STS AssumeRoleWithWebIdentity at {_shown_endpoint(endpoint)} failed: "
            f"{describe_sts_error(exc.code, body, token)}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = _redact(str(getattr(exc, "reason", exc)), token, 200)
        raise StsRequestError(
            f"STS AssumeRoleWithWebIdentity at {_shown_endpoint(endpoint)} failed: "
            f"cannot connect ({reason})"
        ) from None
    return parse_sts_response(body)


# --------------------------------------------------------------------------- credentials file


def _without_profile(text: str, profile: str) -> list[str]:
    """The lines of an INI text minus the section `[profile]` (header and body)."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        match = _SECTION_RE.match(line)
        if match:
            skipping = match.group(1) == profile
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def write_profile(path: Path, credentials: Credentials, profile: str = PROFILE) -> None:
    """Atomically replace `[profile]` in the credentials file; the file ends up mode 600."""
    section = [
        f"[{profile}]",
        f"aws_access_key_id = {credentials.access_key_id}",
        f"aws_secret_access_key = {credentials.secret_access_key}",
        f"aws_session_token = {credentials.session_token}",
    ]
    old_umask = os.umask(0o077)  # every file and directory below is private from creation on
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        kept = _without_profile(existing, profile)
        text = "\n".join([*kept, *([""] if kept else []), *section]) + "\n"
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".credentials.", suffix=".tmp")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o600)
        tmp.replace(path)
        tmp = None
    except (OSError, UnicodeError) as exc:
        raise CredentialsFileError(f"cannot write credentials file {path}: {exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        os.umask(old_umask)


def read_profile(path: Path, profile: str = PROFILE) -> Credentials:
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeError, configparser.Error) as exc:
        raise CredentialsFileError(f"cannot read credentials file {path}: {exc}") from None
    if not parser.has_section(profile):
        raise CredentialsFileError(f"credentials file {path} has no profile [{profile}]")
    section = parser[profile]
    values = [
        section.get(key, "").strip()
        for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    ]
    if not all(values[:2]):
        raise CredentialsFileError(
            f"profile [{profile}] in {path} lacks aws_access_key_id or aws_secret_access_key"
        )
    return Credentials(*values)


# --------------------------------------------------------------------------- commands


def assume() -> Path:
    """Run the exchange configured by the environment and write the profile; returns its file."""
    endpoint = sts_endpoint(os.environ.get("S3_HOST", ""))
    token = os.environ.get("OID_ACCESS_TOKEN", "").strip()
    credentials = assume_role_with_web_identity(
        endpoint,
        token,
        role_arn=os.environ.get("S3_ROLE_ARN", "").strip() or None,
        session_name=role_session_name(),
        duration=duration_seconds(),
        insecure=env_flag("S3_INSECURE"),
        timeout=sts_timeout(),
    )
    path = credentials_path()
    write_profile(path, credentials)
    expires = credentials.expiration or "an unknown time (no <Expiration> in the answer)"
    print(f"S3 access expires on {expires}.")
    print(f"Temporary S3 credentials written to {path} (profile '{PROFILE}').")
    return path


def exec_with_credentials(command: list[str]) -> None:
    """Replace this process with `command`, the profile's keys in its environment."""
    if not command:
        raise ConfigError("exec needs a command: s3_credentials.py exec -- CMD [ARG...]")
    path = credentials_path()
    credentials = read_profile(path)
    env = {key: value for key, value in os.environ.items() if key != "OID_ACCESS_TOKEN"}
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWSACCESSKEYID", "AWSSECRETACCESSKEY"):
        env.pop(key, None)
    env["AWS_ACCESS_KEY_ID"] = credentials.access_key_id
    env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_access_key
    if credentials.session_token:
        env["AWS_SESSION_TOKEN"] = credentials.session_token
    else:
        env.pop("AWS_SESSION_TOKEN", None)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise ConfigError(f"cannot run {command[0]!r}: {exc}") from None


USAGE = "usage: s3_credentials.py [assume] | s3_credentials.py exec -- CMD [ARG...]"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args == ["assume"]:
            assume()
            return 0
        if args[0] == "exec":
            rest = args[1:]
            exec_with_credentials(rest[1:] if rest[:1] == ["--"] else rest)
            return 0  # not reached
        if args[0] in {"-h", "--help"}:
            print(__doc__)
            print(USAGE)
            return 0
        print(f"s3_credentials: unknown arguments {args!r}\n{USAGE}", file=sys.stderr)
        return 2
    except CredentialsError as exc:
        token = os.environ.get("OID_ACCESS_TOKEN", "").strip()
        print(f"s3_credentials: error: {_redact(str(exc), token, 1000)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # never a traceback: it could show the token or the keys
        token = os.environ.get("OID_ACCESS_TOKEN", "").strip()
        detail = _redact(f"{type(exc).__name__}: {exc}", token, 300)
        print(f"s3_credentials: error: unexpected {detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
