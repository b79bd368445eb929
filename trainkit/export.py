"""`trainkit export`: write the ONNX model again from a checkpoint, without retraining.

    trainkit export RUN/output                     # best.ckpt (else last.ckpt) of that run
    trainkit export RUN/output/checkpoints/last.ckpt --arch templates/Acme/Classification/TinyNet

It loads the architecture's LightningModule (class `Model` in its docker/model.py, overridable
with --model-class) from the checkpoint (hyperparameters come from `save_hyperparameters()`),
exports the module the template exports (`export_module()` if the LightningModule defines it,
else its `net` attribute, else the LightningModule itself) with the run's export_config.json
(with --arch and no run: the platform's export form's initial values), checks the ONNX file
against PyTorch with onnxruntime, and replaces the model file atomically. The export code is
trainkit_runtime.export's `export_onnx`, the same the container runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trainkit import platform
from trainkit.errors import TrainkitError
from trainkit_runtime import bounded_json

log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("best.ckpt", "last.ckpt")
DEFAULT_MODEL_FILENAME = "model.pt"


@dataclass(frozen=True)
class ExportSources:
    """Where the pieces of one export come from."""

    checkpoint: Path
    output_dir: Path
    code_dir: Path  # holds model.py (the architecture's docker/ dir or a run's workspace)
    export_config: Path | None  # None: the platform's export form's initial values
    custom: Path | None


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="re-export ONNX from a checkpoint without retraining",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target",
        type=Path,
        help="an output dir (uses checkpoints/best.ckpt, else last.ckpt) or a .ckpt file",
    )
    parser.add_argument(
        "--arch",
        type=Path,
        help="architecture dir (provider/category/architecture with config/ and docker/) or a "
        "run's workspace; default: the workspace next to the output dir",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="model file to write (default: custom.json's model_filepath name in the output "
        "dir, with the .onnx suffix)",
    )
    parser.add_argument("--model-class", default="Model", help="LightningModule class in model.py")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the onnxruntime check against PyTorch"
    )
    parser.set_defaults(func=run)


# --------------------------------------------------------------------------- locating inputs


def find_checkpoint(target: Path) -> tuple[Path, Path]:
    """(checkpoint, output dir) for an output dir, its checkpoints/ dir, or a .ckpt file."""
    if target.is_file():
        if target.suffix != ".ckpt":
            raise TrainkitError(f"{target}: not a checkpoint (.ckpt) file")
        out = target.parent.parent if target.parent.name == "checkpoints" else target.parent
        return target, out
    if not target.is_dir():
        raise TrainkitError(f"{target}: no such output dir or checkpoint")
    for ckpt_dir, out in ((target / "checkpoints", target), (target, target.parent)):
        for name in CHECKPOINT_NAMES:
            if (ckpt_dir / name).is_file():
                return ckpt_dir / name, out
    looked = " or ".join(f"checkpoints/{name}" for name in CHECKPOINT_NAMES)
    raise TrainkitError(f"{target}: no checkpoint (looked for {looked})")


def _arch_candidates(arch: Path | None, output_dir: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(code dir, export_config.json, custom.json) candidates, most specific first."""
    roots = (
        [arch]
        if arch is not None
        else [
            output_dir.parent / "workspace",  # trainkit run: RUN/{workspace,output}
            output_dir.parent / "image" / "workspace",  # trainkit run --runtime platform
            output_dir.parent,  # the image: /workspace/output
        ]
    )
    for root in roots:
        # an architecture dir (config/ + docker/) or a workspace (everything flat)
        yield (
            root / "docker",
            root / "config" / "export_config.json",
            root / "config" / "custom.json",
        )
        yield root, root / "export_config.json", root / "custom.json"


def find_sources(target: Path, arch: Path | None = None) -> ExportSources:
    checkpoint, output_dir = find_checkpoint(target)
    if arch is not None and not arch.is_dir():
        raise TrainkitError(f"--arch {arch}: no such directory")
    for code_dir, export_config, custom in _arch_candidates(arch, output_dir):
        if (code_dir / "model.py").is_file():
            # an architecture has no export_config.json: the platform's export form writes it
            return ExportSources(
                checkpoint=checkpoint,
                output_dir=output_dir,
                code_dir=code_dir,
                export_config=export_config if export_config.is_file() else None,
                custom=custom if custom.is_file() else None,
            )
    where = arch if arch is not None else f"{output_dir.parent}/workspace or {output_dir.parent}"
    raise TrainkitError(
        f"no model.py found in {where}: pass --arch templates/<provider>/<category>/<architecture>"
    )


def model_filepath(sources: ExportSources, out: Path | None) -> Path:
    if out is not None:
        return out
    name = DEFAULT_MODEL_FILENAME
    if sources.custom is not None:
        try:
            custom = bounded_json.load_file(sources.custom, strict=False)
            name = Path(custom["model_filepath"]).name
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrainkitError(f"{sources.custom}: no usable model_filepath ({exc})") from exc
    return sources.output_dir / name


# --------------------------------------------------------------------------- loading code


def _load_file_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TrainkitError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _code_on_path(code_dir: Path) -> Iterator[None]:
    """Import the architecture's flat modules (model.py imports its siblings by name) without
    leaking them into later imports."""
    before = set(sys.modules)
    sys.path.insert(0, str(code_dir))
    try:
        yield
    finally:
        sys.path.remove(str(code_dir))
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if str(getattr(module, "__file__", "") or "").startswith(str(code_dir)):
                del sys.modules[name]


def load_module_for_export(sources: ExportSources, class_name: str) -> Any:
    """The torch module to export, with the checkpoint's weights, in eval mode on CPU."""
    import lightning as L

    with _code_on_path(sources.code_dir):
        try:
            model_module = _load_file_module("model", sources.code_dir / "model.py")
        except Exception as exc:
            raise TrainkitError(
                f"{sources.code_dir / 'model.py'}: import failed: {type(exc).__name__}: {exc}"
            ) from exc
        cls = getattr(model_module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
            found = sorted(
                n
                for n, v in vars(model_module).items()
                if isinstance(v, type)
                and issubclass(v, L.LightningModule)
                and v is not L.LightningModule
            )
            raise TrainkitError(
                f"{sources.code_dir / 'model.py'}: no LightningModule class {class_name!r}"
                + (f" (found: {', '.join(found)}; use --model-class)" if found else "")
            )
        try:
            lightning_module = cls.load_from_checkpoint(
                str(sources.checkpoint), map_location="cpu", weights_only=False
            )
        except Exception as exc:
            raise TrainkitError(
                f"{sources.checkpoint}: cannot load into {class_name}: {type(exc).__name__}: {exc}"
            ) from exc
    from trainkit_runtime.lifecycle import exportable  # what train.py's train_task exports

    return exportable(lightning_module)


def export_checkpoint(
    target: Path,
    *,
    arch: Path | None = None,
    out: Path | None = None,
    model_class: str = "Model",
    verify: bool = True,
) -> Path:
    """Export the checkpoint at/in `target`; returns the ONNX path written."""
    sources = find_sources(target, arch)
    filepath = model_filepath(sources, out)
    if sources.export_config is None:
        export_config = platform.export_form_values()
    else:
        try:
            export_config = bounded_json.load_file(sources.export_config, strict=False)
        except (OSError, ValueError) as exc:
            raise TrainkitError(f"{sources.export_config}: not valid JSON: {exc}") from exc
    log.info("checkpoint %s, model code %s", sources.checkpoint, sources.code_dir)
    module = load_module_for_export(sources, model_class)
    from trainkit_runtime import export as runtime_export

    try:
        written = runtime_export.export_onnx(module, filepath, export_config, verify=verify)
    except Exception as exc:
        error = runtime_export.ExportError
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, error) else str(exc)
        raise TrainkitError(f"ONNX export of {sources.checkpoint} failed: {reason}") from exc
    return Path(written)


def run(args: argparse.Namespace) -> int:
    written = export_checkpoint(
        args.target,
        arch=args.arch,
        out=args.out,
        model_class=args.model_class,
        verify=not args.no_verify,
    )
    checked = "" if args.no_verify else " (checked against PyTorch with onnxruntime)"
    print(f"wrote {written}{checked}")
    return 0
