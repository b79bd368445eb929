"""Model export: ONNX when possible, the template's own format otherwise — never silently.

Call-compatible with the platform's ``export.py``::

    export_model(model, model_filepath, model_format, default_model_export_func,
                 default_model_export_kwargs=None)

It reads ``export_config.json`` from the WORKDIR (``model_type``, ``input_names``,
``input_shapes``, ``input_types`` such as ``"float32"``, plus ``torch.onnx.export`` keyword
arguments like ``output_names``, ``dynamic_axes``, ``opset_version``) and writes the ONNX model
beside ``model_filepath`` with the ``.onnx`` suffix. Where it differs from the platform's, on
purpose:

* it exports with the TorchScript-based exporter (``dynamo=False``: ~0.2 s instead of ~5 s for a
  small CNN, and no ``onnxscript`` needed); ``"dynamo": true`` in the config switches;
* it checks the ONNX file with onnxruntime against PyTorch on a random sample (and, for inputs
  named in ``dynamic_axes``, on a sample whose dynamic dimensions differ); a mismatch is a
  failure. Without onnxruntime installed the check is skipped with a warning;
* on failure it logs the real exception (type and message) and says that it falls back to
  ``default_model_export_func(model, model_filepath, **kwargs)``;
* files appear atomically (written under a temporary name in the same directory, then renamed),
  so a failed or interrupted export never leaves a half-written model for the platform to fetch;
  a stale ``.onnx`` from an earlier run is removed when this export fails;
* it returns the path it wrote (the ``.onnx`` file, or ``model_filepath`` after the fallback).

Extra ``export_config.json`` keys (removed before calling torch): ``verify`` (default true),
``verify_atol`` (1e-4), ``verify_rtol`` (1e-3), ``save_native`` (also run the fallback exporter
after a successful ONNX export; default false).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from trainkit_runtime import bounded_json

EXPORT_CONFIG_FILENAME = "export_config.json"
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3

log = logging.getLogger(__name__)


class ModelFormat(str, Enum):
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    KERAS = "keras"


SUPPORTED_MODEL_FORMATS = {ModelFormat.PYTORCH.value}
# Our keys in export_config.json that are not torch.onnx.export arguments.
_OWN_KEYS = frozenset(
    {"model_type", "input_shapes", "input_types", "dynamo"}
    | {"verify", "verify_atol", "verify_rtol", "save_native"}
)


class ExportError(Exception):
    """The ONNX export could not be done or did not match PyTorch; the message says why."""


def onnx_model_filepath(model_filepath: str | os.PathLike[str]) -> Path:
    """``/out/model.pt`` → ``/out/model.onnx`` (where the platform looks for the ONNX model)."""
    return Path(model_filepath).with_suffix(".onnx")


def read_export_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``export_config.json`` (cwd unless ``path``/``$EXPORT_CONFIG`` says otherwise)."""
    path = Path(path or os.environ.get("EXPORT_CONFIG") or EXPORT_CONFIG_FILENAME)
    try:
        data = bounded_json.loads(path.read_bytes(), str(path), strict=False)
    except FileNotFoundError:
        raise ExportError(f"{path}: file not found (cwd: {Path.cwd()})") from None
    except bounded_json.JsonLimitError as exc:
        raise ExportError(str(exc)) from None
    if not isinstance(data, dict) or not data:
        raise ExportError(f"{path}: expected a non-empty JSON object")
    return data


@contextlib.contextmanager
def _staging_dir(target_dir: Path) -> Iterator[Path]:
    """A temp dir next to the target (same filesystem, so renames out of it are atomic)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(staged: Path, target: Path) -> None:
    """Move every staged file into the target dir; the main file last (external data first)."""
    for extra in sorted(p for p in staged.parent.iterdir() if p != staged):
        extra.replace(target.parent / extra.name)
    staged.replace(target)


# ---------------------------------------------------------------------------------------------
# PyTorch → ONNX


def _sample_inputs(
    shapes: list[list[int]],
    types: list[str],
    names: list[str],
    dynamic: Mapping[str, Any],
    scale: int = 1,
) -> list[Any]:
    """Random inputs seeded by ``scale``; dynamic dimensions multiplied by ``scale`` (doubling
    keeps sizes divisible by a network's strides, unlike adding)."""
    import torch

    gen = torch.Generator().manual_seed(scale)
    inputs = []
    for shape, type_name, name in zip(shapes, types, names, strict=True):
        dtype = getattr(torch, type_name, None)
        if not isinstance(dtype, torch.dtype):
            raise ExportError(f"export_config.json: input_types: unknown torch dtype {type_name!r}")
        dims = list(shape)
        axes = dynamic.get(name, {})
        for axis in axes if isinstance(axes, (list, dict)) else ():
            dims[int(axis)] *= scale
        if dtype.is_floating_point:
            inputs.append(torch.randn(dims, generator=gen).to(dtype))
        elif dtype == torch.bool:
            inputs.append(torch.randint(0, 2, dims, generator=gen).bool())
        else:
            inputs.append(torch.randint(0, 10, dims, generator=gen).to(dtype))
    return inputs


def _model_device(model: Any) -> Any:
    """Where the model's weights live (a model trained on GPU is exported from there)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()) if hasattr(model, "parameters") else ():
        return tensor.device
    return torch.device("cpu")


def _flatten(output: Any) -> list[Any]:
    """Torch outputs (tensor, tuple/list/dict of them) in the order the ONNX graph has them."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for v in output.values() for t in _flatten(v)]
    if isinstance(output, (list, tuple)):
        return [t for v in output for t in _flatten(v)]
    return []


def _verify(
    model: Any, onnx_path: Path, names: list[str], inputs: list[Any], atol: float, rtol: float
) -> None:
    import numpy as np
    import onnxruntime
    import torch

    with torch.no_grad():
        device = _model_device(model)
        outputs = model(*(t.to(device) for t in inputs))
        expected = [t.detach().float().cpu().numpy() for t in _flatten(outputs)]
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wanted = {arg.name for arg in session.get_inputs()}  # unused inputs may be pruned
    feeds = {
        name: tensor.cpu().numpy()
        for name, tensor in zip(names, inputs, strict=True)
        if name in wanted
    }
    got = session.run(None, feeds)
    if len(got) != len(expected):
        raise ExportError(f"ONNX model has {len(got)} outputs, PyTorch {len(expected)}")
    for index, (ours, ref) in enumerate(zip(got, expected, strict=True)):
        if ours.shape != ref.shape:
            raise ExportError(f"output {index}: ONNX shape {ours.shape} != PyTorch {ref.shape}")
        if not np.allclose(ours, ref, atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
            raise ExportError(
                f"output {index}: ONNX differs from PyTorch by up to {worst:.3g} "
                f"(atol {atol}, rtol {rtol}; input shapes {[list(t.shape) for t in inputs]})"
            )


def _torch_kwargs(config: Mapping[str, Any], names: list[str], dynamo: bool) -> dict[str, Any]:
    import torch

    kwargs = {k: v for k, v in config.items() if k not in _OWN_KEYS}
    kwargs["input_names"] = names
    for key, enum_class in (
        ("training", torch.onnx.TrainingMode),
        ("operator_export_type", torch.onnx.OperatorExportTypes),
    ):
        if isinstance(kwargs.get(key), str):  # e.g. "EVAL" or "TrainingMode.EVAL"
            member = kwargs[key].rsplit(".", 1)[-1]
            if not hasattr(enum_class, member):
                raise ExportError(f"export_config.json: {key}: unknown value {kwargs[key]!r}")
            kwargs[key] = getattr(enum_class, member)
    if isinstance(kwargs.get("dynamic_axes"), Mapping):  # JSON object keys are strings: "0" → 0
        kwargs["dynamic_axes"] = {
            name: {int(k): v for k, v in axes.items()}
            if isinstance(axes, Mapping)
            else [int(a) for a in axes]
            for name, axes in kwargs["dynamic_axes"].items()
        }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = dynamo
        if dynamo:
            kwargs.pop("operator_export_type", None)  # a TorchScript-exporter-only option
    return kwargs


def export_onnx(
    model: Any,
    model_filepath: str | os.PathLike[str],
    export_config: Mapping[str, Any],
    *,
    verify: bool | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    dynamo: bool | None = None,
) -> Path:
    """Export a torch module to ``<model_filepath>.onnx``, verified; raises on any failure."""
    import torch

    config = dict(export_config)
    shapes = config.get("input_shapes")
    if not isinstance(shapes, list) or not shapes or not all(isinstance(s, list) for s in shapes):
        raise ExportError(
            "export_config.json: input_shapes must be a list of shapes, e.g. [[1, 3, 32, 32]]"
        )
    types = config.get("input_types") or ["float32"] * len(shapes)
    if len(types) != len(shapes):
        raise ExportError(
            f"export_config.json: {len(shapes)} input_shapes but {len(types)} input_types"
        )
    names = list(config.get("input_names") or [])
    if len(names) > len(shapes):
        raise ExportError(
            f"export_config.json: {len(names)} input_names but only {len(shapes)} input_shapes"
        )
    names += [f"Input {n}" for n in range(len(names) + 1, len(shapes) + 1)]  # platform naming
    dynamo = bool(config.get("dynamo", False)) if dynamo is None else dynamo
    verify = bool(config.get("verify", True)) if verify is None else verify
    atol = float(config.get("verify_atol", DEFAULT_ATOL)) if atol is None else atol
    rtol = float(config.get("verify_rtol", DEFAULT_RTOL)) if rtol is None else rtol
    dynamic = config.get("dynamic_axes") or {}
    kwargs = _torch_kwargs(config, names, dynamo)

    target = onnx_model_filepath(model_filepath)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        inputs = _sample_inputs(shapes, types, names, dynamic)
        with _staging_dir(target.parent) as staging:
            staged = staging / target.name
            with torch.no_grad():
                device = _model_device(model)
                torch.onnx.export(model, tuple(t.to(device) for t in inputs), str(staged), **kwargs)
            if not staged.is_file():
                raise ExportError(f"torch.onnx.export wrote no file at {staged}")
            if verify:
                _verify_if_possible(model, staged, shapes, types, names, dynamic, atol, rtol)
            _publish(staged, target)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    log.info("ONNX model written to %s", target)
    return target


def _verify_if_possible(
    model: Any,
    staged: Path,
    shapes: list[list[int]],
    types: list[str],
    names: list[str],
    dynamic: Mapping[str, Any],
    atol: float,
    rtol: float,
) -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.warning("onnxruntime is not installed: %s not verified against PyTorch", staged.name)
        return
    # The traced sample, then a fresh one (a traced python `if` on values/shapes is baked in),
    # at doubled dynamic dimensions (the dynamic axes must really be dynamic).
    for scale in (1, 2):
        inputs = _sample_inputs(shapes, types, names, dynamic, scale=scale)
        _verify(model, staged, names, inputs, atol, rtol)


# ---------------------------------------------------------------------------------------------
# Fallback and the platform API


def save_with(
    func: Callable[..., Any],
    model: Any,
    model_filepath: str | os.PathLike[str],
    kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Run ``func(model, path, **kwargs)`` so ``model_filepath`` appears atomically.

    ``func`` writes to a temporary name with the same suffix in the same directory, which is
    renamed on success. A ``func`` that ignores the path it is given (writes elsewhere) still
    works; then nothing is renamed.
    """
    target = Path(model_filepath)
    with _staging_dir(target.parent) as staging:
        staged = staging / target.name
        func(model, str(staged), **dict(kwargs or {}))
        if staged.exists():
            _publish(staged, target)
        else:
            log.warning("%s did not write the path it was given; left as is", _name(func))
    return target


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def export_model(
    model: Any,
    model_filepath: str | os.PathLike[str],
    model_format: ModelFormat | str,
    default_model_export_func: Callable[..., Any],
    default_model_export_kwargs: Mapping[str, Any] | None = None,
    *,
    export_config_path: str | os.PathLike[str] | None = None,
    verify: bool | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    dynamo: bool | None = None,
    save_native: bool | None = None,
) -> Path:
    """Export ``model`` to ONNX beside ``model_filepath``; on failure, say why and fall back.

    Returns the ONNX path, or ``model_filepath`` when the fallback wrote the model. An exception
    from the fallback itself propagates: then there is no model at all, and the run must fail.
    """
    fmt = model_format.value if isinstance(model_format, ModelFormat) else str(model_format)
    config: dict[str, Any] = {}
    try:
        if fmt not in SUPPORTED_MODEL_FORMATS:
            raise ExportError(
                f"model format {fmt!r} cannot be exported to ONNX here "
                f"(supported: {', '.join(sorted(SUPPORTED_MODEL_FORMATS))})"
            )
        config = read_export_config(export_config_path)
        onnx_path = export_onnx(
            model, model_filepath, config, verify=verify, atol=atol, rtol=rtol, dynamo=dynamo
        )
    except Exception as exc:
        log.warning(
            "ONNX export failed: %s: %s. Falling back to %s(model, %r).",
            type(exc).__name__,
            exc,
            _name(default_model_export_func),
            str(model_filepath),
            exc_info=True,
        )
        stale = onnx_model_filepath(model_filepath)
        if stale != Path(model_filepath) and stale.is_file():
            stale.unlink()
            log.warning("removed stale %s from an earlier export", stale)
        return save_with(
            default_model_export_func, model, model_filepath, default_model_export_kwargs
        )
    if save_native if save_native is not None else bool(config.get("save_native", False)):
        save_with(default_model_export_func, model, model_filepath, default_model_export_kwargs)
    return onnx_path
