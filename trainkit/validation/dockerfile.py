"""docker/Dockerfile, parsed with dockerfile-parse, against the platform's build context."""

from __future__ import annotations

import fnmatch
import io
import json
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

from trainkit import layout, vendor
from trainkit.platform import backend_code, recipe
from trainkit.validation.report import Report

ENTRYPOINT_SCRIPT = "docker-entrypoint.sh"
PLATFORM_DEFAULT_WORKDIR = "/workspace"


@dataclass
class Copy:
    instruction: str  # COPY or ADD
    sources: list[str]
    dest: str
    workdir: str | None  # WORKDIR in effect, None before any
    raw_value: str
    json_form: bool


def build_context(arch: Path) -> set[str]:
    """Relative paths the platform's build context holds for this architecture (its docker/
    files, with the runtime copy `trainkit package` adds, and the platform's own files)."""
    docker = arch / layout.DOCKER_DIR
    files = {rel for rel, _ in vendor.runtime_files()}
    if docker.is_dir():
        files |= {p.relative_to(docker).as_posix() for p in docker.rglob("*") if p.is_file()}
    return recipe.context_files(files)


def _is_glob(source: str) -> bool:
    return any(c in source for c in "*?[")


def _covers(source: str, target: str) -> bool:
    source = source.removeprefix("./").rstrip("/")
    if source in ("", ".", "*"):
        return True
    return (
        fnmatch.fnmatchcase(target, source)
        or target.startswith(source + "/")
        or fnmatch.fnmatchcase(target.split("/")[0], source)
    )


def _parse_copies(structure: list[dict], report: Report, where: str) -> list[Copy]:
    copies = []
    workdir: str | None = None
    for item in structure:
        instruction = item["instruction"].upper()
        value = item["value"].strip()
        if instruction == "FROM":
            workdir = None
        elif instruction == "WORKDIR":
            workdir = value if value.startswith("/") else posixpath.join(workdir or "/", value)
        elif instruction in ("COPY", "ADD"):
            json_form = value.startswith("[")
            if json_form:
                try:
                    tokens = json.loads(value)
                except ValueError:
                    report.error(where, f"line {item['startline'] + 1}: malformed {instruction}")
                    continue
                flags = []
            else:
                words = value.split()
                flags = [w for w in words if w.startswith("--")]
                tokens = [w for w in words if not w.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue  # copies from another stage, not the build context
            if len(tokens) < 2:
                report.error(
                    where, f"line {item['startline'] + 1}: {instruction} needs a destination"
                )
                continue
            copies.append(Copy(instruction, tokens[:-1], tokens[-1], workdir, value, json_form))
    return copies


def _destination(copy: Copy, filename: str) -> str:
    dest = copy.dest
    if dest.endswith("/") or dest in (".", "..") or len(copy.sources) > 1:
        dest = posixpath.join(dest, filename)
    if not dest.startswith("/"):
        dest = posixpath.join(copy.workdir or "/", dest)
    return posixpath.normpath(dest)


def platform_destination(dockerfile: Path, filename: str) -> str:
    """Where the platform's config edit and reads look for `filename` in the container: the
    backend's own get_config_container_filepath / get_env_container_filepath (the first COPY
    whose text contains the name, its last word, joined to the WORKDIR before it; /workspace
    when that fails)."""
    util = backend_code.functions(
        backend_code.UTIL_TRAIN,
        [
            "DEFAULT_CONTAINER_WORKSPACE",
            "ENV_FILENAME",
            "TRAIN_CONFIG_FILENAME",
            "EXPORT_CONFIG_FILENAME",
            "parse_dockerfile",
            "get_container_filepath",
            "get_config_container_filepath",
            "get_env_container_filepath",
            "default_container_filepath",
        ],
        {"get_dockerfile_filepath": lambda *_args: str(dockerfile)},
    )
    if filename == util.ENV_FILENAME:
        found = util.get_env_container_filepath("", "", "")
    else:
        found = util.get_config_container_filepath(filename, "", "", "")
    return posixpath.normpath(str(found))


_SHELLS = ("sh", "bash", "dash", "env")
_REMOTE_PREFIXES = ("http://", "https://", "ftp://", "git@", "git://", "ssh://")


def entrypoint_argv(value: str) -> list[str]:
    """The argv Docker runs for an ENTRYPOINT value: the exec form's JSON list, or the shell
    form as `/bin/sh -c VALUE` (Docker's rule: anything that is not a JSON list of strings is
    shell form; a trailing `# ...` is then a shell comment, not part of the command)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
        return parsed
    return ["/bin/sh", "-c", value]


def runs_entrypoint_script(value: str) -> bool:
    """True when the ENTRYPOINT's program is docker-entrypoint.sh, directly or as the script
    of a shell (`bash /docker-entrypoint.sh`, `/bin/sh -c "exec /docker-entrypoint.sh"`)."""
    argv = entrypoint_argv(value)
    for _ in range(5):  # unwrap sh -c "...", bash script, env bash script
        if not argv:
            return False
        program = posixpath.basename(argv[0])
        if program == ENTRYPOINT_SCRIPT:
            return True
        if program not in _SHELLS:
            return False
        rest = argv[1:]
        if rest[:1] == ["-c"] and len(rest) >= 2:
            try:
                argv = shlex.split(rest[1], comments=True)
            except ValueError:
                return False
            if argv[:1] == ["exec"]:
                argv = argv[1:]
            continue
        argv = [a for a in rest if not a.startswith("-")]
    return False


def check_remote_sources(structure: list[dict], where: str, report: Report) -> None:
    """ADD with an URL (or a git remote) fetches at build time: the image then depends on a
    server the template does not control; ship the file in docker/ and COPY it instead."""
    for item in structure:
        if item["instruction"].upper() != "ADD":
            continue
        value = item["value"].strip()
        try:
            tokens = json.loads(value) if value.startswith("[") else value.split()
        except ValueError:
            continue
        sources = [t for t in tokens[:-1] if isinstance(t, str) and not t.startswith("--")]
        for source in sources:
            if source.lower().startswith(_REMOTE_PREFIXES):
                report.error(
                    where,
                    f"line {item['startline'] + 1}: ADD fetches {source!r} from the network "
                    "at build time; ship the file in docker/ and COPY it",
                )


def check_dockerfile(arch: Path, rel, report: Report) -> None:
    path = arch / layout.DOCKER_DIR / "Dockerfile"
    if not path.is_file():
        return  # reported by the structure checks
    where = rel(path)
    try:
        parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()), env_replace=False)
        structure = parser.structure
    except Exception as exc:  # dockerfile-parse raises assorted errors on garbage
        report.error(where, f"cannot parse: {exc}")
        return
    instructions = [item["instruction"].upper() for item in structure]
    if "FROM" not in instructions:
        report.error(where, "no FROM instruction")
    if "WORKDIR" not in instructions:
        report.error(
            where,
            "no WORKDIR; the platform finds train_config.json and .env relative to it "
            f"(default {PLATFORM_DEFAULT_WORKDIR})",
        )

    first_from = instructions.index("FROM") if "FROM" in instructions else len(instructions)
    arg_positions = [
        i
        for i, item in enumerate(structure)
        if item["instruction"].upper() == "ARG"
        and item["value"].split("=", 1)[0].strip() == "TORCH_CUDA_INDEX"
    ]
    if not arg_positions:
        report.error(where, "no ARG TORCH_CUDA_INDEX (the platform passes it as a build arg)")
    elif all(i < first_from for i in arg_positions):
        report.warning(
            where, "ARG TORCH_CUDA_INDEX is declared only before FROM; redeclare it after FROM"
        )

    entrypoints = [
        item["value"] for item in structure if item["instruction"].upper() == "ENTRYPOINT"
    ]
    if not entrypoints or not runs_entrypoint_script(entrypoints[-1]):
        shown = f" (it runs {entrypoint_argv(entrypoints[-1])!r})" if entrypoints else ""
        report.error(where, f"ENTRYPOINT must run {ENTRYPOINT_SCRIPT}{shown}")
    check_remote_sources(structure, where, report)

    for name in (*recipe.WRITTEN_AFTER_DOCKER, *recipe.FORM_FILES):
        shadowed = arch / layout.DOCKER_DIR / name
        if shadowed.is_file():
            report.warning(
                rel(shadowed),
                f"the platform writes its own {name} into the build context after docker/, "
                "so this file is replaced there",
            )

    copies = _parse_copies(structure, report, where)
    context = build_context(arch)
    for copy in copies:
        # Docker accepts a wildcard that matches nothing when another source matches, so a
        # template may COPY optional files (e.g. `s3_credentials.py*`) that only trainkit has.
        checkable = [s for s in copy.sources if "$" not in s and "://" not in s]
        matched = [s for s in checkable if any(_covers(s, target) for target in context)]
        for source in checkable:
            if source in matched or (_is_glob(source) and matched):
                continue
            report.error(
                where,
                f"{copy.instruction} source {source!r} is not in the platform's build "
                "context (its common files, cvat_dataset.py, dataset.py, export.py, "
                "custom.json, presets.json, export_config.json, train_config.json and "
                "this template's docker/ files)",
            )

    real: dict[str, str] = {}
    for filename in (*layout.DOCKERFILE_MUST_COPY, "export_config.json"):
        actual = [c for c in copies if any(_covers(s, filename) for s in c.sources)]
        if not actual:
            if filename in layout.DOCKERFILE_MUST_COPY:
                report.error(
                    where, f"does not COPY {filename} (the platform expects it in WORKDIR)"
                )
            continue
        real[filename] = _destination(actual[0], filename)
        expected = platform_destination(path, filename)
        if real[filename] != expected:
            report.warning(
                where,
                f"the platform will look for {filename} at {expected}, but the Dockerfile "
                f"copies it to {real[filename]}",
            )
    if "export_config.json" in real and "train_config.json" in real:
        # update_train_container_config copies BOTH files to train_config.json's directory
        edited = posixpath.join(
            posixpath.dirname(platform_destination(path, "train_config.json")),
            "export_config.json",
        )
        if real["export_config.json"] != edited:
            report.warning(
                where,
                f"the platform's config edit of a built container copies the new "
                f"export_config.json to {edited} (beside train_config.json), but the image "
                f"has it at {real['export_config.json']}: an edited export form is not used",
            )
