"""common/export.py: verified ONNX export, and a loud, atomic fallback when it fails."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

from trainkit_runtime import export
from trainkit_runtime.export import export_model

EXPORT_CONFIG = {
    "model_type": "pytorch",
    "input_names": ["image"],
    "input_shapes": [[1, 3, 16, 16]],
    "input_types": ["float32"],
    "output_names": ["logits"],
    "dynamic_axes": {"image": {"0": "batch"}, "logits": {"0": "batch"}},
    "opset_version": 17,
}


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FailsToExport(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            raise RuntimeError("unsupported op frobnicate_2d in this graph")
        return super().forward(x)


class ExportsSomethingElse(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out + 1.0 if torch.onnx.is_in_onnx_export() else out


def save_pt(model: torch.nn.Module, path: str, **kwargs: Any) -> None:
    torch.save(model.state_dict(), path, **kwargs)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPORT_CONFIG", raising=False)
    (tmp_path / "export_config.json").write_text(json.dumps(EXPORT_CONFIG))
    torch.manual_seed(0)
    return tmp_path


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def onnx_output(path: Path, x: np.ndarray, input_name: str = "image") -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: x})[0]


def torch_output(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


SAMPLE = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)


def test_onnx_matches_pytorch_including_dynamic_batch(workdir: Path) -> None:
    model = TinyCNN()
    model.train()
    out_dir = workdir / "output"
    written = export_model(model, str(out_dir / "model.pt"), "pytorch", save_pt)
    assert written == out_dir / "model.onnx"
    assert listing(out_dir) == ["model.onnx"]  # no temp files, no fallback
    assert model.training  # mode restored
    model.eval()
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 3):
        x = torch.randn(batch, 3, 16, 16)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"image": x.numpy()})
        assert got.shape == (batch, 4)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_platform_style_config_keys_are_accepted(workdir: Path) -> None:
    config = {**EXPORT_CONFIG, "training": "TrainingMode.EVAL", "operator_export_type": "ONNX"}
    del config["input_names"]  # the platform names missing inputs "Input 1", ...
    config["dynamic_axes"] = {"Input 1": [0], "logits": [0]}
    (workdir / "export_config.json").write_text(json.dumps(config))
    model = TinyCNN()
    written = export_model(model, workdir / "model.pt", "pytorch", save_pt)
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["Input 1"]
    got = onnx_output(written, SAMPLE, "Input 1")
    np.testing.assert_allclose(got, torch_output(model, SAMPLE), atol=1e-4)


def test_save_native_writes_both(workdir: Path) -> None:
    written = export_model(TinyCNN(), workdir / "m.pt", "pytorch", save_pt, save_native=True)
    assert written == workdir / "m.onnx"
    assert (workdir / "m.pt").is_file()
    assert set(torch.load(workdir / "m.pt")) >= {"head.weight", "head.bias"}


def test_failing_export_falls_back_loudly(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[Any, str, dict[str, Any]]] = []

    def fallback(model: torch.nn.Module, path: str, **kwargs: Any) -> None:
        calls.append((model, path, kwargs))
        save_pt(model, path)

    stale = workdir / "model.onnx"
    stale.write_bytes(b"onnx from an earlier run")
    model = FailsToExport()
    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(model, str(workdir / "model.pt"), "pytorch", fallback, {"marker": 1})
    assert written == workdir / "model.pt"
    assert len(calls) == 1 and calls[0][0] is model and calls[0][2] == {"marker": 1}
    assert (workdir / "model.pt").is_file()
    assert not stale.exists()  # the platform must not fetch an old ONNX model
    text = caplog.text
    assert "ONNX export failed: RuntimeError: unsupported op frobnicate_2d in this graph" in text
    assert "Falling back to" in text and "fallback" in text
    assert listing(workdir) == ["export_config.json", "model.pt"]


def test_mismatching_onnx_is_a_failure(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(ExportsSomethingElse(), workdir / "model.pt", "pytorch", save_pt)
    assert written == workdir / "model.pt"
    assert "ONNX differs from PyTorch by up to 1" in caplog.text
    assert listing(workdir) == ["export_config.json", "model.pt"]


def test_tolerance_is_configurable(workdir: Path) -> None:
    config = {**EXPORT_CONFIG, "verify_atol": 2.0}
    (workdir / "export_config.json").write_text(json.dumps(config))
    model = ExportsSomethingElse()
    written = export_model(model, workdir / "model.pt", "pytorch", save_pt)
    assert written == workdir / "model.onnx"
    # Kept although it differs by 1 (within the configured 2): the graph exported, +1.
    np.testing.assert_allclose(
        onnx_output(written, SAMPLE), torch_output(model, SAMPLE) + 1.0, atol=1e-4
    )


def test_non_dynamic_axes_are_caught(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A model whose export bakes in the batch size fails the second, larger-batch check."""

    class BakesBatch(TinyCNN):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).reshape(int(x.shape[0]), 4)  # int(): traced as constant

    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(BakesBatch(), workdir / "model.pt", "pytorch", save_pt)
    assert written == workdir / "model.pt"
    assert "ONNX export failed" in caplog.text


def test_unsupported_operator_falls_back_with_torchs_message(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Eigen(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigvals(x).real

    config = {"input_names": ["x"], "input_shapes": [[2, 4, 4]], "input_types": ["float32"]}
    (workdir / "export_config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(Eigen(), workdir / "m.pt", "pytorch", save_pt)
    assert written == workdir / "m.pt"
    assert "Exporting the operator 'aten::linalg_eigvals' to ONNX" in caplog.text
    assert listing(workdir) == ["export_config.json", "m.pt"]


def test_traced_python_branch_is_caught(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tracing bakes a python `if` into the graph; the second sample exposes it."""

    class Branchy(TinyCNN):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)
            return out * 2 if x.shape[0] > 1 else out

    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(Branchy(), workdir / "m.pt", "pytorch", save_pt)
    assert written == workdir / "m.pt"
    assert "ONNX differs from PyTorch" in caplog.text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "export_config.json: file not found"),
        ("invalid", "export_config.json: invalid JSON at line 1"),
        ("empty", "expected a non-empty JSON object"),
        ("shapes", "2 input_shapes but 1 input_types"),
        ("dtype", "unknown torch dtype 'float33'"),
    ],
)
def test_bad_export_config_falls_back_with_reason(
    workdir: Path, caplog: pytest.LogCaptureFixture, setup: str, message: str
) -> None:
    path = workdir / "export_config.json"
    if setup == "missing":
        path.unlink()
    elif setup == "invalid":
        path.write_text("{nope")
    elif setup == "empty":
        path.write_text("{}")
    elif setup == "shapes":
        path.write_text(json.dumps({**EXPORT_CONFIG, "input_shapes": [[1, 3, 8, 8]] * 2}))
    else:
        path.write_text(json.dumps({**EXPORT_CONFIG, "input_types": ["float33"]}))
    with caplog.at_level(logging.WARNING, logger="export"):
        assert export_model(TinyCNN(), workdir / "m.pt", "pytorch", save_pt) == workdir / "m.pt"
    assert message in caplog.text


def test_export_config_path_can_be_overridden(workdir: Path, tmp_path_factory: Any) -> None:
    other = tmp_path_factory.mktemp("cfg") / "mine.json"
    other.write_text(json.dumps(EXPORT_CONFIG))
    (workdir / "export_config.json").unlink()
    model = TinyCNN()
    written = export_model(model, workdir / "m.pt", "pytorch", save_pt, export_config_path=other)
    assert written == workdir / "m.onnx"
    np.testing.assert_allclose(onnx_output(written, SAMPLE), torch_output(model, SAMPLE), atol=1e-4)


def test_unsupported_format_falls_back(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="export"):
        model = TinyCNN()
        written = export_model(model, workdir / "m.pt", "keras", save_pt)
    assert written == workdir / "m.pt"
    assert "model format 'keras' cannot be exported to ONNX here" in caplog.text
    saved = torch.load(written)
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert listing(workdir) == ["export_config.json", "m.pt"]


def test_interrupted_export_leaves_no_model(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_write(model: Any, args: Any, f: str, **kwargs: Any) -> None:
        Path(f).write_bytes(b"half an onnx")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", half_write)
    with pytest.raises(KeyboardInterrupt):
        export_model(TinyCNN(), workdir / "out" / "m.pt", "pytorch", save_pt)
    assert listing(workdir / "out") == []


def test_failing_fallback_propagates_and_leaves_nothing(workdir: Path) -> None:
    def broken(model: Any, path: str) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        export_model(FailsToExport(), workdir / "out" / "m.pt", "pytorch", broken)
    assert listing(workdir / "out") == []


def test_fallback_that_writes_elsewhere_still_works(workdir: Path) -> None:
    elsewhere = workdir / "elsewhere.pt"

    def own_path(model: Any, path: str) -> None:
        save_pt(model, str(elsewhere))

    assert export_model(FailsToExport(), workdir / "m.pt", "pytorch", own_path) == workdir / "m.pt"
    assert set(torch.load(elsewhere)) >= {"head.weight", "head.bias"}
    assert not (workdir / "m.pt").exists()


def test_without_onnxruntime_export_is_kept_unverified(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ort(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with caplog.at_level(logging.WARNING, logger="export"):
        written = export_model(ExportsSomethingElse(), workdir / "m.pt", "pytorch", save_pt)
    assert written == workdir / "m.onnx"
    assert "onnxruntime is not installed" in caplog.text


def test_onnx_model_filepath() -> None:
    assert export.onnx_model_filepath("/o/model.pt") == Path("/o/model.onnx")
    assert export.onnx_model_filepath("/o/model.tar.pt") == Path("/o/model.tar.onnx")


@pytest.mark.slow
def test_dynamo_exporter_on_request(workdir: Path) -> None:
    config = {**EXPORT_CONFIG, "dynamo": True, "opset_version": 18}
    (workdir / "export_config.json").write_text(json.dumps(config))
    written = export_model(TinyCNN(), workdir / "out" / "model.pt", "pytorch", save_pt)
    assert written == workdir / "out" / "model.onnx"
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": np.zeros((2, 3, 16, 16), np.float32)})
    assert got.shape == (2, 4)
    assert not [p for p in (workdir / "out").iterdir() if p.name.startswith(".")]


def test_two_inputs_with_types_and_enum_format(workdir: Path) -> None:
    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Embedding(10, 3)

        def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return x * 2 + self.table(index).sum(dim=1)

    config = {
        "input_names": ["x"],  # the second input gets the platform's name "Input 2"
        "input_shapes": [[2, 3], [2, 4]],
        "input_types": ["float32", "int64"],
        "dynamic_axes": {"x": [0], "Input 2": [0]},
    }
    (workdir / "export_config.json").write_text(json.dumps(config))
    written = export_model(Embed(), workdir / "m.pt", export.ModelFormat.PYTORCH, save_pt)
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("x", "tensor(float)"),
        ("Input 2", "tensor(int64)"),
    ]
