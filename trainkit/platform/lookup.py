"""How the backend finds an architecture's Dockerfile and form schema: by substring.

`get_dockerfile_filepath(templates, provider, architecture)` takes every file below
`templates/<provider>` (no path part starting with "."), keeps those named Dockerfile whose
path *contains the architecture's name anywhere* (`architecture in str(path)`), and fails
unless exactly one is left; `get_config_filepaths` keeps the files with stem "config" by the
same substring test and the build takes the *first* (Path.rglob order), reading custom.json and
presets.json from its directory. So an architecture whose name is part of a sibling's name, of
its own category or provider, or of the platform's `model-training/templates` path, builds with
the wrong files or not at all; and a stray file with stem "config" may be taken as the schema.

`check(target, others)` runs the backend's own functions (backend_code.py) over a tree of empty
files laid out like the platform's templates directory (as the backend spells its paths,
relative to its own directory; the absolute prefix of a real installation is not known), with
the architecture being checked, its siblings under the same provider and the platform's stock
templates. The one thing it cannot run is the order: rglob lists a directory's entries before
descending, but siblings (and entries of one directory) come in the file system's order. So a
config file in a directory above config/ is taken for certain, one beside config.jsonschema or
in another branch may be, one below config/ never is.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trainkit import layout, vendor
from trainkit.platform import backend_code
from trainkit.platform.backend_code import HTTPException

TEMPLATES_REL = "model-training/templates"
# The templates the platform ships (model-training/templates of agri-gaia-backend 1.0.0).
STOCK_TEMPLATES = (
    "Torchvision/Classification/EfficientNet",
    "Torchvision/Instance Segmentation/Mask R-CNN",
    "Ultralytics/Object Detection/YOLOv11",
    "Ultralytics/Object Detection/YOLOv5",
)
SCHEMA = PurePosixPath(layout.CONFIG_DIR) / "config.jsonschema"
MAX_FILES = 20_000  # bounds the work a templates tree can cause


@dataclass(frozen=True)
class Arch:
    provider: str
    category: str
    name: str
    files: tuple[str, ...]  # relative to the architecture's directory, as installed
    origin: str = "sibling"  # "target", "sibling" or "stock"

    @property
    def path(self) -> str:
        return f"{self.provider}/{self.category}/{self.name}"

    def describe(self) -> str:
        if self.origin == "stock":
            return f"the platform's stock template {self.path}"
        return "this architecture" if self.origin == "target" else f"sibling {self.path}"


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR or WARNING
    file: str | None  # a file of the target (relative to it) the finding is about, if any
    message: str


def stock_architectures(provider: str) -> list[Arch]:
    """The platform's stock templates under `provider`, with the files every template has."""
    from trainkit.validation import schemas  # validation/template.json's entries

    files = tuple(
        rel for rel, kind in schemas.required_entries(schemas.template_schema()) if kind == "file"
    )
    result = []
    for path in STOCK_TEMPLATES:
        stock_provider, category, name = path.split("/")
        if stock_provider == provider:
            result.append(Arch(provider, category, name, files, "stock"))
    return result


def _excluded(name: str, is_dir: bool) -> bool:
    if is_dir:
        return name in layout.EXCLUDED_DIR_NAMES
    return any(fnmatch.fnmatchcase(name, p) for p in layout.EXCLUDED_FILE_PATTERNS)


def architecture_files(arch_dir: Path, *, add_runtime: bool) -> tuple[str, ...]:
    """The files an upload of `arch_dir` installs. A source tree (add_runtime): config/ and
    docker/ as `trainkit package` packs them, plus the runtime copy it adds; an uploaded tree
    (an extracted ZIP): everything in it, since install_template moves the whole directory."""
    files: list[str] = []
    bases = [arch_dir / sub for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR)]
    for base in bases if add_runtime else [arch_dir]:
        for current, dirnames, filenames in os.walk(base):
            here = Path(current)
            dirnames[:] = [d for d in dirnames if not (add_runtime and _excluded(d, True))]
            files += [
                (here / f).relative_to(arch_dir).as_posix()
                for f in filenames
                if not (add_runtime and _excluded(f, False))
            ]
            if len(files) > MAX_FILES:
                raise ValueError(f"{arch_dir}: more than {MAX_FILES} files")
    if add_runtime:
        files += [f"{layout.DOCKER_DIR}/{rel}" for rel, _ in vendor.runtime_files()]
    return tuple(sorted(set(files)))


def local_siblings(arch_dir: Path, *, add_runtime: bool) -> list[Arch]:
    """The other architectures under the same provider directory of a templates tree."""
    arch_dir = arch_dir.resolve()
    provider_dir = arch_dir.parent.parent
    siblings = []
    for candidate in sorted(provider_dir.glob("*/*")):
        subs = [candidate / sub for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR)]
        if (
            candidate == arch_dir
            or candidate.is_symlink()
            or candidate.parent.is_symlink()
            or not all(sub.is_dir() and not sub.is_symlink() for sub in subs)
        ):
            continue  # not an architecture, or a link out of the tree: not looked into
        files = architecture_files(candidate, add_runtime=add_runtime)
        siblings.append(Arch(provider_dir.name, candidate.parent.name, candidate.name, files))
    return siblings


@contextlib.contextmanager
def _virtual_tree(archs: Iterable[Arch]) -> Iterator[Path]:
    """A temporary directory holding model-training/templates/<arch>/<files> (empty files)."""
    with tempfile.TemporaryDirectory(prefix="trainkit-lookup-") as tmp:
        root = Path(tmp)
        count = 0
        for arch in archs:
            for rel in arch.files:
                target = root / TEMPLATES_REL / arch.path / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
                count += 1
                if count > MAX_FILES:
                    raise ValueError(f"more than {MAX_FILES} files to look through")
        before = Path.cwd()
        os.chdir(root)  # the backend's paths, relative: model-training/templates/...
        try:
            yield root
        finally:
            os.chdir(before)


def _owner(path: PurePosixPath, archs: list[Arch]) -> tuple[Arch, str] | None:
    rel = path.relative_to(TEMPLATES_REL)
    for arch in archs:
        prefix = PurePosixPath(arch.path)
        if rel.is_relative_to(prefix):
            return arch, rel.relative_to(prefix).as_posix()
    return None


def _order(candidate: PurePosixPath, schema: PurePosixPath) -> str:
    """Whether rglob lists `candidate` before `schema`: "first", "maybe" or "never"."""
    if candidate.parent == schema.parent:
        return "maybe"  # entries of one directory: the file system's order
    if candidate.parent in schema.parent.parents:
        return "first"  # a directory's entries come before anything below it
    if schema.parent in candidate.parents:
        return "never"
    return "maybe"  # another branch: which is visited first is the file system's order


def check(target: Arch, others: Iterable[Arch]) -> list[Finding]:
    """What the backend's look-ups do to `target` (and what target does to the others)."""
    same_provider = [a for a in others if a.provider == target.provider]
    archs = [target, *same_provider]
    util = backend_code.functions(
        backend_code.UTIL_TRAIN,
        ["get_filepaths", "get_config_filepaths", "get_dockerfile_filepath"],
    )
    findings: list[Finding] = []
    with _virtual_tree(archs):
        templates = TEMPLATES_REL
        provider_files = [
            PurePosixPath(p.as_posix())
            for p in util.get_filepaths(f"{templates}/{target.provider}")
        ]
        for arch in archs:
            dockerfile = _dockerfile_findings(util, arch, target, archs, provider_files)
            # with no Dockerfile there is no build: which schema the form shows is moot
            findings += dockerfile or _config_findings(util, arch, target, archs)
    findings += _listing_findings(target)
    if not any(f.message.startswith("the platform cannot build this") for f in findings):
        findings += _latent_findings(target)
    return list(dict.fromkeys(findings))


def _dockerfile_findings(util, arch: Arch, target: Arch, archs, provider_files) -> list[Finding]:
    try:
        util.get_dockerfile_filepath(TEMPLATES_REL, arch.provider, arch.name)
        return []
    except HTTPException as exc:
        detail = exc.detail
    matches = [p for p in provider_files if p.name == "Dockerfile" and arch.name in str(p)]
    owners = [_owner(p, archs) for p in matches]
    if arch is not target and not any(o and o[0] is target for o in owners):
        return []  # a sibling's own problem, not caused by this architecture
    found = ", ".join(f"{o[0].path}/{o[1]}" for o in owners if o) or "none"
    effect = f"the platform cannot build {arch.describe()}: {detail!r}"
    if arch is target:
        why = (
            f"its Dockerfile look-up keeps every Dockerfile whose path contains {arch.name!r}: "
            f"{found}"
        )
    else:
        why = (
            f"once this architecture is uploaded, the look-up for {arch.name!r} also finds this "
            f"one's Dockerfile ({found}); rename this architecture"
        )
    file = next((o[1] for o in owners if o and o[0] is target), None)
    return [Finding("ERROR", file, f"{effect} ({why})")]


def _config_findings(util, arch: Arch, target: Arch, archs: list[Arch]) -> list[Finding]:
    found = [
        PurePosixPath(p.as_posix())
        for p in util.get_config_filepaths(TEMPLATES_REL, arch.provider, arch.name)
    ]
    schema = PurePosixPath(TEMPLATES_REL) / arch.path / SCHEMA
    findings = []
    for candidate in found:
        if candidate == schema:
            continue
        owner = _owner(candidate, archs)
        if owner is None or (arch is not target and owner[0] is not target):
            continue
        order = _order(candidate, schema)
        if order == "never":
            continue
        where = f"{owner[0].path}/{owner[1]}"
        level = "ERROR" if order == "first" and owner[0] is arch else "WARNING"
        certainty = "takes" if level == "ERROR" else "may take"
        what = (
            f"the platform {certainty} {where} as the form schema of {arch.describe()} (the "
            f"first file with stem 'config' whose path contains {arch.name!r}; custom.json and "
            f"presets.json are then read from its directory){_extension_effect(candidate)}"
        )
        file = owner[1] if owner[0] is target else None
        findings.append(Finding(level, file, what))
    return findings


def _listing_findings(target: Arch) -> list[Finding]:
    """get_architectures lists every file with stem 'config' under the provider as an
    architecture (its grandparent directory) of a category (the one above)."""
    findings = []
    for rel in target.files:
        path = PurePosixPath(target.path) / rel
        if path.stem != "config" or PurePosixPath(rel) == SCHEMA:
            continue
        if any(part.startswith(".") for part in PurePosixPath(rel).parts):
            continue
        name, category = path.parent.parent.name, path.parent.parent.parent.name
        findings.append(
            Finding(
                "WARNING",
                rel,
                f"file with stem 'config': the platform's list of {target.provider!r}'s "
                f"architectures shows it as architecture {name!r} in category {category!r}"
                + (" a second time" if (name, category) == (target.name, target.category) else ""),
            )
        )
    return findings


def _extension_effect(path: PurePosixPath) -> str:
    if path.suffix == ".jsonschema":
        return ""
    if path.suffix == ".json":
        return ": its values become the form, with a schema guessed from them"
    return f": a {path.suffix or 'suffix-less'} file is its 400 'Unsupported config file extension'"


def _latent_findings(target: Arch) -> list[Finding]:
    """A name that every file below the provider (or the category) contains: whether the build
    works depends on the other architectures the platform holds there, not known here."""
    around = f"{TEMPLATES_REL}/{target.provider}/{target.category}/"
    if target.name not in around:
        return []
    return [
        Finding(
            "WARNING",
            None,
            f"architecture name {target.name!r} is part of the path "
            f"{around!r} the platform looks up: once provider {target.provider!r} holds another "
            "architecture on the platform, its Dockerfile look-up finds both and the build "
            "fails; choose a name that no path part contains",
        )
    ]
