"""The platform's stock docker-entrypoint.sh, step by step, without ever `source`ing or `eval`ing.

`trainkit run --runtime platform` runs the architecture with the commands of the platform's
stock entrypoint (model-training/common/docker-entrypoint.sh), in its order and with its
output, so that a template is tried the way that script treats it:

    source .env; cat .env              → .env parsed as bash would, then printed
    [[ -z "${DATASET_ID}" ]] → exit 1
    /bin/bash /mount-s3.sh -t ... -m /minio
                                       → not run: the mocked MinIO folder is /minio
    tree "/minio/datasets/${DATASET_ID}"
    nvidia-smi -L (when present); the export_config.json notice (jq)
    pwd && tree . && echo "Setup started: ..." && time python setup.py && echo "Setup ended"
      && jq '.' < train_config.json && echo "Training started: ..."
      && eval "time python train.py $(python config_to_args.py)" && echo "Training ended: ..."

`source .env` and the `eval` are emulated: each line (and the output of config_to_args.py) is
split into words the way bash would, and wherever bash would expand or execute something
(`$`, backticks, `;`, `&`, `|`, redirections, globs, braces, `~`, a comment, an unterminated
quote, a command in .env) the run is refused with one line naming the key, before anything of
it runs. `source` sets shell variables: only those marked `export` or already in the
environment reach setup.py and train.py (bash semantics). `time` prints bash's format to
stderr, so the log ends like the platform's (the score must be within its last 50 lines).

Stdlib only: the same file runs on the host (`trainkit run --runtime platform`, paths mapped
through MINIO_ROOT/DATASETS_ROOT/OUTPUT_DIR) and inside the image (`--engine`: bind-mounted
read-only and started instead of the image's entrypoint).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
ENV_FILE = ".env"
# Exit status when trainkit refuses what the platform's bash would expand or execute.
REFUSED = 3
REFUSAL_PREFIX = "trainkit: refused: "
# Lines the stock entrypoint prints after train.py's last one: bash's `time` report (a blank
# line, real, user, sys) and "Training ended: ...".
STOCK_TRAILER_LINES = 5
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Keys a .env may not set when the steps run on this machine (no container): they would steer
# the shell/loader of the host, or where the host paths of the image are mapped. (trainkit's own
# entrypoint refuses the shell/loader ones in its is_denied_key too.)
HOST_PROTECTED = re.compile(
    r"(BASH_.*|BASHOPTS|SHELLOPTS|ENV|IFS|PS4|PROMPT_COMMAND|CDPATH|GLOBIGNORE|LD_.*|PATH|"
    r"PYTHONHOME|PYTHONPATH|PYTHONSTARTUP|MINIO_ROOT|DATASETS_ROOT|OUTPUT_DIR|HOME)"
)


class ShellRefusal(Exception):
    """What bash would expand or execute; the message completes "the platform's ... would".
    `at`: the offset in the line where it happens (when known)."""

    def __init__(self, message: str, at: int | None = None) -> None:
        super().__init__(message)
        self.at = at


@dataclass
class Word:
    text: str  # after quote removal
    start: int  # offset in the line
    end: int
    name: str | None = None  # NAME of a NAME=VALUE assignment word
    value: str | None = None


def _snippet(text: str, at: int, width: int = 12) -> str:
    return text[at : at + width].split()[0] if text[at:].split() else text[at:]


def split_words(text: str, *, assignments: bool) -> list[Word]:
    """Bash's words of one simple command line, or ShellRefusal where bash would expand,
    run or redirect something. assignments: leading NAME=VALUE words are assignments (whose
    values bash does not glob), as in a `source`d file; else every word is an argument."""
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            if assignments:
                break  # a comment in .env: the rest of the line is ignored, as intended
            raise ShellRefusal(f"take the rest of the line as a comment (`{_snippet(text, i)}`)", i)
        start, chars, quoted = i, [], []
        while i < n and text[i] not in " \t":
            c = text[i]
            if c in ";&|":
                raise ShellRefusal(f"treat `{c}` as a command separator (`{_snippet(text, i)}`)", i)
            if c in "<>":
                raise ShellRefusal(f"redirect with `{c}` (`{_snippet(text, i)}`)", i)
            if c in "()":
                raise ShellRefusal(f"treat `{c}` as shell syntax (`{_snippet(text, i)}`)", i)
            if c == "\n":
                raise ShellRefusal("treat the line break as a command separator", i)
            if c in "$`":
                raise ShellRefusal(_expansion(text, i), i)
            if c == "\\":
                if i + 1 >= n:
                    raise ShellRefusal("read on past the end of the line (trailing `\\`)")
                chars.append(text[i + 1])
                quoted.append(True)
                i += 2
                continue
            if c == "'":
                close = text.find("'", i + 1)
                if close < 0:
                    raise ShellRefusal("fail: unterminated single quote", i)
                chars += list(text[i + 1 : close])
                quoted += [True] * (close - i - 1)
                i = close + 1
                continue
            if c == '"':
                i += 1
                while True:
                    if i >= n:
                        raise ShellRefusal("fail: unterminated double quote", start)
                    c = text[i]
                    if c == '"':
                        i += 1
                        break
                    if c in "$`":
                        raise ShellRefusal(_expansion(text, i), i)
                    if c == "\\" and i + 1 < n and text[i + 1] in '$`"\\':
                        c = text[i + 1]
                        i += 1
                    elif c == "\n":
                        raise ShellRefusal("treat the line break as a command separator", i)
                    chars.append(c)
                    quoted.append(True)
                    i += 1
                continue
            chars.append(c)
            quoted.append(False)
            i += 1
        may_assign = assignments and (
            all(w.name is not None for w in words) or words[0].text == "export"
        )
        words.append(_word("".join(chars), quoted, start, i, text, may_assign))
    return words


_EXPANSION = re.compile(r"\$(\{[^}]*\}?|\([^)]*\)?|[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]?)")


def _expansion(text: str, i: int) -> str:
    if text[i] == "`":
        return f"run the command in backticks (`{_snippet(text, i)}`)"
    match = _EXPANSION.match(text, i)
    return f"expand `{match.group(0) if match else '$'}`"


def _word(text: str, quoted: list[bool], start: int, end: int, line: str, may_assign: bool):
    eq = text.find("=")
    is_assignment = (
        may_assign and eq > 0 and _NAME.fullmatch(text[:eq]) and not any(quoted[: eq + 1])
    )
    if is_assignment:
        value_quoted = quoted[eq + 1 :]
        value = text[eq + 1 :]
        for k, c in enumerate(value):  # tilde expansion after = and : in assignments
            if c == "~" and not value_quoted[k] and (k == 0 or value[k - 1] == ":"):
                raise ShellRefusal(f"expand `~` to a home directory (`{text}`)", start)
        return Word(text, start, end, text[:eq], value)
    unquoted = "".join(c for c, q in zip(text, quoted, strict=True) if not q)
    if text.startswith("~") and not quoted[0]:
        raise ShellRefusal(f"expand `~` to a home directory (`{line[start:end]}`)", start)
    if any(c in unquoted for c in "*?["):
        raise ShellRefusal(
            f"expand the glob `{line[start:end]}` against the working directory", start
        )
    if "{" in unquoted and ("," in unquoted or ".." in unquoted) and "}" in unquoted:
        raise ShellRefusal(f"brace-expand `{line[start:end]}`", start)
    return Word(text, start, end)


# ---------------------------------------------------------------------------------------------
# source .env


@dataclass
class Assignment:
    name: str
    value: str | None  # None: `export NAME` without a value
    exported: bool
    line: int


def parse_env_file(text: str) -> list[Assignment]:
    """The assignments `source .env` makes, in order; ShellRefusal (naming the line and key)
    for anything else bash would do with the file."""
    result: list[Assignment] = []
    for number, line in enumerate(text.split("\n"), start=1):
        where = f".env line {number}"
        if line.endswith("\r"):
            key = line.split("=", 1)[0].strip() or "?"
            raise ShellRefusal(
                f"{where} ({key}) ends with a carriage return (Windows line ending): the "
                "platform's `source .env` would keep it in the value"
            )
        try:
            words = split_words(line, assignments=True)
        except ShellRefusal as exc:
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip() or "?"
            raise ShellRefusal(
                f"{where} ({key}): the platform's `source .env` would {exc}"
            ) from None
        if not words:
            continue
        exported = words[0].text == "export" and words[0].name is None
        for word in words[1:] if exported else words:
            if word.name is not None:
                result.append(Assignment(word.name, word.value, exported, number))
            elif exported and _NAME.fullmatch(word.text):
                result.append(Assignment(word.text, None, True, number))
            else:
                raise ShellRefusal(
                    f"{where}: the platform's `source .env` would run `{word.text}` as a command"
                )
    return result


def apply_env_file(
    assignments: list[Assignment], shell: dict[str, str], env: dict[str, str]
) -> None:
    """Bash semantics: every assignment sets a shell variable; it reaches the environment of
    the commands started later only when the name is exported (`export`, or an environment
    variable already), whether the export came before or after the value."""
    exported = set(env)
    for item in assignments:
        if item.exported:
            exported.add(item.name)
        if item.value is not None:
            shell[item.name] = item.value
        if item.name in exported and item.name in shell:
            env[item.name] = shell[item.name]


# ---------------------------------------------------------------------------------------------
# eval "time python train.py $(python config_to_args.py)"


def eval_arguments(output: str) -> list[str]:
    """train.py's argv from config_to_args.py's output as the platform's eval splits it;
    ShellRefusal naming the config key where eval would expand or execute something."""
    try:
        return [word.text for word in split_words(output, assignments=False)]
    except ShellRefusal as exc:
        at = len(output) if exc.at is None else exc.at
        keys = re.findall(r"(?:^|\s)--([^\s=]+)", output[: at + 1])
        where = f"train_config.json key {keys[-1]!r}" if keys else "config_to_args.py's output"
        raise ShellRefusal(f"{where}: the platform's eval would {exc}") from None


# ---------------------------------------------------------------------------------------------
# the steps


def time_report(wall: float, before: resource.struct_rusage) -> str:
    """bash's `time` output (TIMEFORMAT unset): `\\nreal\\t0m1.234s\\nuser\\t...\\nsys\\t...`."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)

    def fmt(seconds: float) -> str:
        minutes = int(seconds // 60)
        return f"{minutes}m{seconds - 60 * minutes:.3f}s"

    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return f"\nreal\t{fmt(wall)}\nuser\t{fmt(user)}\nsys\t{fmt(system)}\n"


def _utf8_locale(env: dict[str, str]) -> bool:
    for key in ("LC_ALL", "LC_CTYPE", "LANG"):
        if env.get(key):
            return env[key].lower().replace("-", "").endswith("utf8")
    return False


def tree_lines(root: Path, shown: str, utf8: bool = False) -> list[str]:
    """What `tree DIR` (tree 2.x, as Debian bookworm and Ubuntu 22.04 ship it) prints: no hidden
    entries, names in byte order, links shown and not followed, the top directory and links to
    directories counted as directories; line art in UTF-8 only under a UTF-8 locale."""
    if not root.is_dir():
        return [f"{shown}  [error opening dir]", "", "0 directories, 0 files"]
    # tree's UTF-8 continuation bar is "│" followed by two no-break spaces and a space
    tee, last_tee, bar = ("├── ", "└── ", "│\u00a0\u00a0 ") if utf8 else ("|-- ", "`-- ", "|   ")
    lines, counts = [shown], [1, 0]

    def walk(path: Path, prefix: str) -> None:
        try:
            entries = sorted(
                (e for e in os.scandir(path) if not e.name.startswith(".")),
                key=lambda e: os.fsencode(e.name),
            )
        except OSError:
            return
        for index, entry in enumerate(entries):
            last = index == len(entries) - 1
            name = entry.name
            if entry.is_symlink():
                name += f" -> {Path(entry.path).readlink()}"
            lines.append(prefix + (last_tee if last else tee) + name)
            if entry.is_dir():  # a link to a directory counts as one, but is not entered
                counts[0] += 1
                if not entry.is_symlink():
                    walk(Path(entry.path), prefix + ("    " if last else bar))
            else:
                counts[1] += 1

    walk(root, "")
    dirs, files = counts
    lines += [
        "",
        f"{dirs} director{'y' if dirs == 1 else 'ies'}, {files} file{'' if files == 1 else 's'}",
    ]
    return lines


def jq_pretty(path: Path) -> tuple[str | None, str]:
    """`jq '.' < FILE`: (pretty JSON, "") or (None, jq's error)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return None, f"parse error: {exc}"
    return json.dumps(data, indent=2, ensure_ascii=False), ""


@dataclass
class Container:
    """Where the steps run: the WORKDIR (host path, and as the container shows it), the
    environment the container starts with, `python`, and the image paths the steps name."""

    workdir: Path
    workdir_shown: str = "/workspace"
    env: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    minio: Path = Path("/minio")
    protected: re.Pattern | None = None  # .env keys refused (on the host)
    mount_skipped_because: str = "the mocked MinIO folder is /minio"


class StockEntrypoint:
    """docker-entrypoint.sh of the platform, as a sequence of emulated bash steps."""

    def __init__(self, container: Container) -> None:
        self.c = container
        self.env = dict(container.env)
        self.shell = dict(container.env)

    def out(self, text: str = "", err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def run(self) -> int:
        try:
            self.source_env()
        except ShellRefusal as exc:
            self.out(REFUSAL_PREFIX + str(exc), err=True)
            return REFUSED
        dataset_id = self.shell.get("DATASET_ID", "")
        if not dataset_id:
            self.out("Error: DATASET_ID not in environment.")
            return 1
        if self.c.protected is not None and not _PLAIN_ID.fullmatch(dataset_id):
            self.out(REFUSAL_PREFIX + f"DATASET_ID {dataset_id!r} is not a plain name", err=True)
            return REFUSED
        self.out(
            "trainkit: not running `/bin/bash /mount-s3.sh -t *** -s ${S3_HOST} -b "
            f"${{S3_BUCKET_NAME}} -m '/minio'`: {self.c.mount_skipped_because}"
        )
        self.lines(
            tree_lines(self.c.minio / "datasets" / dataset_id, f"/minio/datasets/{dataset_id}")
        )
        self.nvidia_smi()
        self.export_notice()
        return self.chain()

    def lines(self, lines: list[str]) -> None:
        self.out("\n".join(lines))

    def source_env(self) -> None:
        env_file = self.c.workdir / ENV_FILE
        if not env_file.is_file() or env_file.stat().st_size == 0:
            return
        data = env_file.read_bytes()
        assignments = parse_env_file(data.decode("utf-8", "surrogateescape"))
        if self.c.protected is not None:
            for item in assignments:
                if self.c.protected.fullmatch(item.name):
                    raise ShellRefusal(
                        f".env line {item.line} sets {item.name}: without a container trainkit "
                        "does not let .env change it (run with --engine)"
                    )
        apply_env_file(assignments, self.shell, self.env)
        self.out("Sourced additional environment from .env.")
        sys.stdout.buffer.write(data)  # `cat .env`, as the platform prints it
        sys.stdout.flush()

    def nvidia_smi(self) -> None:
        if shutil.which("nvidia-smi", path=self.env.get("PATH")):
            proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, env=self.env)
            if proc.returncode == 0:
                sys.stdout.buffer.write(proc.stdout)
                sys.stdout.flush()

    def export_notice(self) -> None:
        export_file = self.c.workdir / "export_config.json"
        if not export_file.is_file():
            return
        pretty, _error = jq_pretty(export_file)
        value = None if pretty is None else json.loads(pretty)
        # `jq 'length == 0'` prints "false" for a non-empty object/array/string and a non-zero
        # number (its length is its absolute value); null has length 0, a boolean no length.
        if isinstance(value, bool) or value is None:
            return
        if (len(value) if isinstance(value, (dict, list, str)) else abs(value)) != 0:
            self.out("ONNX model export will be attemped using the following configuration:")
            self.out(pretty)

    def python(self) -> str | None:
        return self.c.python or shutil.which("python", path=self.env.get("PATH"))

    def timed(self, argv: list[str]) -> int:
        python = self.python()
        if python is None:
            self.out("bash: python: command not found", err=True)
            return 127
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        status = subprocess.run([python, *argv], cwd=self.c.workdir, env=self.env).returncode
        sys.stderr.write(time_report(time.monotonic() - started, before))
        sys.stderr.flush()
        return status if status >= 0 else 128 - status

    def config_to_args(self) -> str:
        python = self.python()
        if python is None:
            self.out("bash: python: command not found", err=True)
            return ""
        proc = subprocess.run(
            [python, "config_to_args.py"], cwd=self.c.workdir, env=self.env, stdout=subprocess.PIPE
        )
        if b"\0" in proc.stdout:
            self.out("bash: warning: command substitution: ignored null byte in input", err=True)
        return proc.stdout.replace(b"\0", b"").decode("utf-8", "surrogateescape").rstrip("\n")

    def chain(self) -> int:
        def stamp(what: str) -> int:
            self.out(f"{what}: {time.strftime(DATETIME_FORMAT)}")
            return 0

        def pwd() -> int:
            self.out(self.c.workdir_shown)
            return 0

        def tree() -> int:
            self.lines(tree_lines(self.c.workdir, ".", _utf8_locale(self.env)))
            return 0

        def jq_config() -> int:
            pretty, error = jq_pretty(self.c.workdir / "train_config.json")
            if pretty is None:
                self.out(error, err=True)
                return 4
            self.out(pretty)
            return 0

        def train() -> int:
            args = eval_arguments(self.config_to_args())
            return self.timed(["train.py", *args])

        steps = (
            pwd,
            tree,
            lambda: stamp("Setup started"),
            lambda: self.timed(["setup.py"]),
            lambda: stamp("Setup ended"),
            jq_config,
            lambda: stamp("Training started"),
            train,
            lambda: stamp("Training ended"),
        )
        for step in steps:
            try:
                status = step()
            except ShellRefusal as exc:
                self.out(REFUSAL_PREFIX + str(exc), err=True)
                return REFUSED
            if status != 0:
                return status
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=Path, help="JSON description of a run on this machine")
    args = parser.parse_args(argv)
    if args.host is not None:
        spec = json.loads(args.host.read_text(encoding="utf-8"))
        container = Container(
            workdir=Path(spec["workdir"]),
            workdir_shown=spec["workdir_shown"],
            env=spec["env"],
            python=spec["python"],
            minio=Path(spec["minio"]),
            protected=HOST_PROTECTED,
        )
    else:  # inside the image: the WORKDIR is the current directory
        cwd = Path.cwd()
        container = Container(workdir=cwd, workdir_shown=str(cwd), env=dict(os.environ))
        if os.getpid() == 1:
            # bash as PID 1 (the stock entrypoint has no exec) gets no SIGTERM from `docker
            # stop`: the kernel drops signals PID 1 has no handler for. A handler that does
            # nothing has the same effect, and is reset for the children, unlike SIG_IGN.
            signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        return StockEntrypoint(container).run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
