"""An architecture's image build context, made the way the platform makes it.

`assemble` packages the architecture (`trainkit package`'s files, as the ZIP extracts), installs
it like an upload, fills the two forms (the platform's initial values, then the user's), and
runs the backend's own `build_train_image` (local.py) over a model-training/ directory:

* the platform's stock one (shipped in trainkit/platform/backend, or a site's own) for
  `--runtime platform`;
* `trainkit_model_training()` for trainkit's runtime: the same directory shape, with trainkit's
  legacy shims and entry scripts in the stock files' place (and the platform's export form).

The backend's recipe, in its order (later copies overwrite earlier ones): common/, datasets/,
the template's docker/ (recursive), config/custom.json and config/presets.json, export/export.py,
then train_config.json (the train form's values, `json.dump`) and export_config.json (the export
form's, `{}` when there are none). The template's config/export_config.json is not part of it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit import layout, package, vendor
from trainkit.errors import TrainkitError
from trainkit.platform import MODEL_TRAINING_DIR, forms
from trainkit.platform.local import Build, LocalPlatform, PlatformError

# Written into every context trainkit assembles, so a later run may wipe it safely.
MARKER = ".trainkit-build-context"
TRAIN_START = "the platform's initial form values"
EXPORT_START = "the export form's initial values"
# What build_train_image writes after the template's docker/ (so same-named docker/ files are
# replaced there), in its order: the template's two config files, export/export.py, the forms.
WRITTEN_AFTER_DOCKER = ("custom.json", "presets.json", "export.py")
FORM_FILES = ("train_config.json", "export_config.json")


def stock_files(model_training: Path = MODEL_TRAINING_DIR) -> dict[str, tuple[str, ...]]:
    """The file names of a model-training/ directory's common/ and datasets/ (what every build
    context starts with)."""
    return {
        sub: tuple(sorted(p.name for p in (model_training / sub).iterdir() if p.is_file()))
        for sub in ("common", "datasets")
    }


def context_files(docker_files: set[str], model_training: Path = MODEL_TRAINING_DIR) -> set[str]:
    """Every relative path a build context holds for a template whose docker/ has
    `docker_files` (relative paths): what a Dockerfile may COPY."""
    stock = stock_files(model_training)
    return {
        *stock["common"],
        *stock["datasets"],
        *docker_files,
        *WRITTEN_AFTER_DOCKER,
        *FORM_FILES,
    }


def trainkit_model_training(dest: Path) -> Path:
    """trainkit's runtime in the stock files' place: a model-training/ directory shaped like the
    platform's, whose common/, datasets/ and export/export.py are trainkit's files of the same
    names (the legacy shims, the runtime's entry scripts), with the platform's export form."""
    shims = vendor.legacy_shims()
    scripts = dict(vendor.runtime_files())
    for sub, names in stock_files().items():
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            if name in shims:
                (dest / sub / name).write_text(shims[name], encoding="utf-8")
            elif name in scripts:
                shutil.copy2(scripts[name], dest / sub / name)
            else:
                raise TrainkitError(f"the platform's {sub}/{name} has no trainkit counterpart")
    (dest / "export").mkdir(parents=True, exist_ok=True)
    (dest / "export" / "export.py").write_text(shims["export.py"], encoding="utf-8")
    shutil.copy2(MODEL_TRAINING_DIR / "export" / "export.jsonschema", dest / "export")
    return dest


def architecture_parts(arch_dir: Path) -> tuple[str, str, str]:
    """(provider, category, architecture) of an architecture directory; checks its shape."""
    arch_dir = Path(arch_dir)
    for sub in (layout.CONFIG_DIR, layout.DOCKER_DIR):
        if not (arch_dir / sub).is_dir():
            raise TrainkitError(
                f"{arch_dir}: not an architecture directory (no {sub}/); expected "
                "templates/<provider>/<category>/<architecture>"
            )
    resolved = arch_dir.resolve()
    return resolved.parent.parent.name, resolved.parent.name, resolved.name


@contextlib.contextmanager
def installed(arch_dir: Path, model_training: Path, **kwargs: Any) -> Iterator[LocalPlatform]:
    """A LocalPlatform (temporary) with the packaged architecture installed, as after its
    upload. The platform always has the latest upload: this is the architecture as it is now."""
    provider, category, architecture = architecture_parts(arch_dir)
    templates = Path(arch_dir).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="trainkit-platform-") as tmp:
        entries = package.collect_entries(provider, category, architecture, templates)
        root = package.write_tree(entries, Path(tmp) / "upload")
        lp = LocalPlatform(model_training, Path(tmp) / "platform", **kwargs)
        lp.install(root, provider, category, architecture)
        yield lp


@dataclass
class Assembled:
    context: Path
    build: Build
    train_config: dict[str, Any]
    export_config: dict[str, Any]


def prepare_dest(dest: Path) -> None:
    """dest may be replaced only when missing, empty or made by trainkit (MARKER)."""
    if (
        dest.exists()
        and (not dest.is_dir() or any(dest.iterdir()))
        and not (dest / MARKER).exists()
    ):
        raise TrainkitError(f"{dest}: exists and was not made by trainkit; not touching it")


def assemble(
    arch_dir: Path,
    dest: Path,
    model_training: Path,
    *,
    train: forms.FormInput | None = None,
    export: forms.FormInput | None = None,
    dataset_id: Any = 1,
    torch_cuda_index: str | None = None,
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> Assembled:
    """Build the context at `dest` (replaced) the platform's way; see the module. check(train
    values, schema): called with the train form's values before anything is built."""
    dest = Path(dest).resolve()
    prepare_dest(dest)
    with installed(arch_dir, model_training, torch_cuda_index=torch_cuda_index) as lp:
        provider, category, architecture = architecture_parts(arch_dir)
        try:
            form = lp.train_form(provider, architecture)
        except PlatformError as exc:
            raise forms.FormError(f"the platform's train form: {exc}") from None
        forms.require_closed(form["schema"], f"{architecture}'s form schema")
        train_config = forms.fill(
            form["schema"], form["values"] or {}, train or forms.FormInput(), TRAIN_START
        )
        export_form = lp.export_form()
        export_config = forms.fill(
            export_form["schema"],
            export_form["values"] or {},
            export or forms.FormInput(),
            EXPORT_START,
            allow_empty=True,
        )
        if check is not None:
            check(train_config, form["schema"])
        build = lp.build(
            provider, category, architecture, dataset_id, train_config, export_config, dest
        )
    (dest / MARKER).write_text("assembled by trainkit; rebuilt on every run\n", encoding="utf-8")
    return Assembled(dest, build, train_config, export_config)
