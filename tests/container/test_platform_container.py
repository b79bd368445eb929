"""`trainkit run --runtime platform --engine podman|docker`: an example built into a real image
from the context the backend assembles, started with the stock entrypoint's commands (the
emulation bind-mounted, run by the image's python) on a mocked MinIO folder: exit 0, the score
from `logs --tail 50`, the `<stem>.onnx` the platform serves loading in onnxruntime; then the
platform's config edit with `cp` into the same container and a new DATASET_ID, and `start`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.support.repo import EXAMPLES_DIR, REPO_ROOT
from trainkit import engine as engine_mod
from trainkit.synthetic import write_cvat_dataset

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]

EXAMPLE = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"


@pytest.fixture
def container(engine: engine_mod.Engine):
    name = f"trainkit-platform-test-{uuid.uuid4().hex[:10]}"
    yield name
    engine_mod.remove_container(engine, name)
    subprocess.run(
        [engine.executable, "rmi", "-f", f"localhost/{name}:test"],
        env=engine.command_env(),
        capture_output=True,
        check=False,
    )


def trainkit_run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "run", *map(str, args)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(proc.stdout[-6000:], "\n--- stderr ---\n", proc.stderr[-6000:])
    return proc


def test_stock_runtime_in_a_container_then_the_platforms_edit(
    tmp_path: Path, engine, base_image, container
):
    minio = tmp_path / "minio"
    for dataset_id in (1, 2):
        write_cvat_dataset(minio, dataset_id, 24, "classification", seed=dataset_id, n_classes=2)
    run = tmp_path / "run"
    common = [EXAMPLE, "--runtime", "platform", "--minio", minio, "--output", run]
    common += ["--engine", engine.name]
    first = trainkit_run(
        *common,
        *("--dataset-id", 1, "--name", container, "--image", f"localhost/{container}:test"),
        *("--base-image", base_image, "--set", "epochs=1", "--set", "max-steps=2"),
    )
    assert first.returncode == 0
    run_line = next(line for line in first.stderr.splitlines() if f"run --name {container}" in line)
    assert "--entrypoint python" in run_line and "--network none" in run_line
    assert f"{Path(engine_mod.__file__).parent / 'platform' / 'stock_entrypoint.py'}:" in run_line
    logs = (run / "container.log").read_text()
    for step in ("Sourced additional environment", "/minio/datasets/1", "Training ended: "):
        assert step in logs
    assert re.search(r"^  score:  Accuracy = [0-9.]+ ", first.stdout, re.M)
    model = run / "output" / "model.onnx"
    assert f"/workspace/output/model.onnx (onnx) = {model}" in first.stdout
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"Input 1": np.zeros((1, 3, 224, 224), np.float32)})
    assert out.shape == (1, 2)

    second = trainkit_run(*common, "--dataset-id", 2, "--restart", "--set", "max-steps=3")
    assert second.returncode == 0
    cps = [line for line in second.stderr.splitlines() if " cp " in line]
    assert len(cps) == 3 and all(line.endswith(f"{container}:/workspace") for line in cps)
    assert f"start -a {container}" in second.stderr and " build " not in second.stderr
    logs = (run / "container.log").read_text()
    assert "DATASET_ID='2'" in logs and "/minio/datasets/2" in logs  # cat .env; tree
    assert re.search(r"config changed \([^)]*DATASET_ID", logs)
    assert '"max-steps": 3' in logs  # jq '.' < train_config.json
    assert json.loads((run / "container.json").read_text())["dataset_id"] == 2
    assert logs.count("Training ended: ") == 2
