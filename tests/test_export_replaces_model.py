"""`trainkit export` replacing a model file: what replaces it is a loadable ONNX model that
computes what the checkpoint's network computes (at the exported and at a dynamic batch size),
written atomically (a new file, no temp files left beside it)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import lightning
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from trainkit.export import export_checkpoint

MODEL_PY = textwrap.dedent(
    """
    import lightning as L
    from torch import nn


    class Model(L.LightningModule):
        def __init__(self, num_classes: int = 3, width: int = 8):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(width, num_classes),
            )

        def forward(self, x):
            return self.net(x)
    """
)
EXPORT_CONFIG = {
    "input_names": ["image"],
    "input_shapes": [[1, 3, 16, 16]],
    "input_types": ["float32"],
    "output_names": ["logits"],
    "dynamic_axes": {"image": {"0": "batch"}, "logits": {"0": "batch"}},
    "opset_version": 17,
}


def reference_net(num_classes: int, width: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, num_classes),
    ).eval()


def write_run(root: Path, net: torch.nn.Module, num_classes: int, width: int) -> Path:
    """A `trainkit run` directory: RUN/workspace (model code, export config) and
    RUN/output/checkpoints/last.ckpt holding `net`'s weights; returns RUN/output."""
    workspace, output = root / "workspace", root / "output"
    workspace.mkdir(parents=True)
    (workspace / "model.py").write_text(MODEL_PY)
    (workspace / "export_config.json").write_text(json.dumps(EXPORT_CONFIG))
    (workspace / "custom.json").write_text(
        json.dumps({"model_filepath": "/workspace/output/model.pt", "score_name": "Accuracy"})
    )
    ckpt = output / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"num_classes": num_classes, "width": width},
            "pytorch-lightning_version": lightning.__version__,
            "epoch": 1,
            "global_step": 4,
        },
        ckpt,
    )
    return output


def assert_onnx_computes(path: Path, net: torch.nn.Module, num_classes: int) -> None:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 5):
        image = np.random.default_rng(batch).random((batch, 3, 16, 16), dtype=np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(image)).numpy()
        (got,) = session.run(None, {"image": image})
        assert got.shape == (batch, num_classes)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("where", ["default", "--out"])
def test_export_replaces_an_old_model_with_the_checkpoints_network(tmp_path, where):
    net = reference_net(num_classes=4, width=6, seed=3)
    output = write_run(tmp_path / "run", net, num_classes=4, width=6)
    target = output / "model.onnx" if where == "default" else tmp_path / "elsewhere" / "m.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"old")
    old_inode = target.stat().st_ino

    written = export_checkpoint(output, out=None if where == "default" else target)

    assert written == target
    onnx.checker.check_model(onnx.load(target), full_check=True)
    assert_onnx_computes(target, net, num_classes=4)
    assert target.stat().st_ino != old_inode  # a new file moved into place, not rewritten
    assert sorted(p.name for p in target.parent.iterdir() if p.is_file()) == [target.name]
