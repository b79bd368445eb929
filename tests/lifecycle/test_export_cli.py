"""`trainkit export`: re-export ONNX from a checkpoint without retraining."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import lightning
import numpy as np
import onnx
import pytest
import torch

from trainkit.cli import main
from trainkit.errors import TrainkitError
from trainkit.export import export_checkpoint, find_checkpoint

MODEL_PY = textwrap.dedent(
    """
    import lightning as L
    import torch
    from torch import nn
    from layers import make_net  # a sibling module, imported like in the image's WORKDIR


    class Model(L.LightningModule):
        def __init__(self, num_classes: int = 3, width: int = 8):
            super().__init__()
            self.save_hyperparameters()
            self.net = make_net(num_classes, width)

        def forward(self, x):
            return self.net(x)
    """
)
LAYERS_PY = textwrap.dedent(
    """
    from torch import nn


    def make_net(num_classes, width):
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(width, num_classes),
        )
    """
)
EXPORT_CONFIG = {
    "model_type": "pytorch",
    "input_names": ["image"],
    "input_shapes": [[1, 3, 16, 16]],
    "input_types": ["float32"],
    "output_names": ["logits"],
    "dynamic_axes": {"image": {"0": "batch"}, "logits": {"0": "batch"}},
    "opset_version": 17,
}


def write_arch(root: Path, *, flat: bool = False) -> Path:
    """An architecture dir (config/ + docker/), or a flat run workspace."""
    code = root if flat else root / "docker"
    config = root if flat else root / "config"
    code.mkdir(parents=True, exist_ok=True)
    config.mkdir(parents=True, exist_ok=True)
    (code / "model.py").write_text(MODEL_PY)
    (code / "layers.py").write_text(LAYERS_PY)
    (config / "export_config.json").write_text(json.dumps(EXPORT_CONFIG))
    (config / "custom.json").write_text(
        json.dumps({"model_filepath": "/workspace/output/tinynet.pt", "score_name": "Accuracy"})
    )
    return root


def write_checkpoint(path: Path, num_classes: int = 4, width: int = 6, seed: int = 0) -> dict:
    """A Lightning checkpoint as trainer.save_checkpoint writes it (weights + hparams)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, num_classes),
    )
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": {"num_classes": num_classes, "width": width},
            "pytorch-lightning_version": lightning.__version__,
            "epoch": 3,
            "global_step": 12,
        },
        path,
    )
    return {"net": net}


def onnx_logits(path: Path, image: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image})[0]


def test_export_from_output_dir_with_arch(tmp_path, capsys):
    arch = write_arch(tmp_path / "templates" / "Acme" / "Classification" / "TinyNet")
    out = tmp_path / "run" / "output"
    ref = write_checkpoint(out / "checkpoints" / "best.ckpt")["net"].eval()
    write_checkpoint(out / "checkpoints" / "last.ckpt", seed=1)  # best wins

    assert main(["export", str(out), "--arch", str(arch)]) == 0
    onnx_path = out / "tinynet.onnx"  # custom.json's model_filepath name, .onnx suffix
    assert f"wrote {onnx_path}" in capsys.readouterr().out
    image = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)  # batch 2: dynamic
    with torch.no_grad():
        expected = ref(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(onnx_logits(onnx_path, image), expected, atol=1e-5)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_export_checkpoint_file_from_run_workspace(tmp_path):
    run = tmp_path / "run"
    write_arch(run / "workspace", flat=True)  # trainkit run's layout: RUN/{workspace,output}
    ckpt = run / "output" / "checkpoints" / "last.ckpt"
    write_checkpoint(ckpt)
    written = export_checkpoint(ckpt)
    assert written == run / "output" / "tinynet.onnx"
    onnx.checker.check_model(onnx.load(str(written)))


def test_out_option_and_replacing_an_old_model(tmp_path):
    arch = write_arch(tmp_path / "arch")
    out = tmp_path / "output"
    write_checkpoint(out / "checkpoints" / "last.ckpt")
    target = tmp_path / "elsewhere" / "m.onnx"
    target.parent.mkdir()
    target.write_bytes(b"old")
    assert export_checkpoint(out, arch=arch, out=target) == target
    onnx.checker.check_model(onnx.load(str(target)))  # the old bytes are gone: a real model
    # (what it computes is checked in tests/test_export_replaces_model.py)


def test_no_checkpoint(tmp_path):
    (tmp_path / "output").mkdir()
    with pytest.raises(TrainkitError, match=r"output: no checkpoint"):
        find_checkpoint(tmp_path / "output")
    assert main(["export", str(tmp_path / "missing")]) == 1


def test_no_model_code_says_use_arch(tmp_path):
    write_checkpoint(tmp_path / "output" / "checkpoints" / "last.ckpt")
    with pytest.raises(TrainkitError, match=r"no model.py found .*--arch"):
        export_checkpoint(tmp_path / "output")


def test_wrong_class_name_lists_candidates(tmp_path):
    arch = write_arch(tmp_path / "arch")
    write_checkpoint(tmp_path / "output" / "checkpoints" / "last.ckpt")
    with pytest.raises(TrainkitError, match=r"no LightningModule class 'Net' \(found: Model"):
        export_checkpoint(tmp_path / "output", arch=arch, model_class="Net")


def test_bad_export_config_fails_and_keeps_existing_model(tmp_path):
    arch = write_arch(tmp_path / "arch")
    (arch / "config" / "export_config.json").write_text("{}")
    out = tmp_path / "output"
    write_checkpoint(out / "checkpoints" / "last.ckpt")
    (out / "tinynet.onnx").write_bytes(b"previous model")
    with pytest.raises(TrainkitError, match=r"ONNX export of .*failed: .*input_shapes"):
        export_checkpoint(out, arch=arch)
    assert (out / "tinynet.onnx").read_bytes() == b"previous model"


def test_checkpoint_of_another_architecture(tmp_path):
    arch = write_arch(tmp_path / "arch")
    ckpt = tmp_path / "output" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {
            "state_dict": {"backbone.weight": torch.zeros(1)},
            "hyper_parameters": {},
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    with pytest.raises(TrainkitError, match=r"cannot load into Model"):
        export_checkpoint(ckpt, arch=arch)
