"""A baked example built into a real image and run the platform's way (issue 5):
mocked MinIO folder → setup → a few training steps → score line → ONNX in the output volume,
owned by the calling user; the same container started again; `--s3` against moto on the host
network with the STS exchange and the s3fs mount inside the container; and a run without
DATASET_ID that fails with the reason in the output directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.support.repo import EXAMPLES_DIR as TEMPLATES_DIR
from tests.support.repo import REPO_ROOT
from trainkit import engine as engine_mod
from trainkit import workspace
from trainkit.synthetic import write_cvat_dataset

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]

EXAMPLE = TEMPLATES_DIR / "Acme" / "Classification" / "TinyNet"
DATASET_ID = "1"
QUICK = ["--set", "epochs=1", "--set", "max-steps=4", "--set", "workers=0"]
ROLE_ARN = "arn:aws:iam::123456789012:role/dataset-reader"
# As root, prove the privilege drop with another uid; otherwise the files must be ours.
USER = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minio")
    root.chmod(0o755)  # like a user's own folder: readable by USER after the privilege drop
    write_cvat_dataset(root, DATASET_ID, 24, "classification", seed=1)
    return root


@pytest.fixture
def container(engine: engine_mod.Engine):
    """A unique container name (also its image's tag), both removed afterwards: other
    checkouts may run these tests on the same engine at the same time."""
    name = f"trainkit-test-{uuid.uuid4().hex[:10]}"
    yield name
    engine_mod.remove_container(engine, name)
    subprocess.run(
        [engine.executable, "rmi", "-f", image_of(name)],
        env=engine.command_env(),
        capture_output=True,
        check=False,
    )


def image_of(container: str) -> str:
    return f"{container}:test"


def trainkit_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "run", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    # Shown on failure: what the container printed.
    print(proc.stdout[-6000:], "\n--- stderr ---\n", proc.stderr[-6000:])
    return proc


def score_lines(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"Accuracy:\s*([0-9]+(?:\.[0-9]+)?)", text)]


def assert_classifier_onnx(model: Path, num_classes: int = 3) -> None:
    """The model file is an ONNX classifier onnxruntime runs: the input of the platform's
    export form's initial values, one logit per class (synthetic datasets have 3 classes by
    default)."""
    import numpy as np
    import onnxruntime

    from trainkit import platform

    export_config = platform.export_form_values()
    export_config["input_names"] = ["Input 1"]  # [] in the form: the platform's naming
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == export_config["input_names"]
    image = np.zeros(export_config["input_shapes"][0], dtype=np.float32)
    (logits,) = session.run(None, {export_config["input_names"][0]: image})
    assert logits.shape == (1, num_classes) and np.isfinite(logits).all()


def owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def test_mocked_minio_run_then_restart(tmp_path, engine, base_image, minio, container):
    run_dir = tmp_path / "run"
    common = [str(EXAMPLE), "--minio", str(minio), "--dataset-id", DATASET_ID]
    common += ["--output", str(run_dir), "--engine", engine.name, "--name", container]
    common += ["--image", image_of(container)]
    user = f"--user={USER[0]}:{USER[1]}"

    first = trainkit_run(*common, *QUICK, "--base-image", base_image, user)
    assert first.returncode == 0
    assert f"{engine.name} build -t " in first.stderr
    run_line = next(
        line for line in first.stderr.splitlines() if f" run --name {container}" in line
    )
    for flag in (
        "--ipc host",
        "--ulimit memlock=",
        "--ulimit stack=",
        f"-e DATASET_ID={DATASET_ID}",
    ):
        assert flag in run_line
    assert f"{minio.resolve()}:/minio" in run_line
    assert score_lines(first.stdout), "no score line in the container's output"
    output = run_dir / "output"
    model = output / "model.onnx"
    assert_classifier_onnx(model)
    assert (output / "checkpoints" / "last.ckpt").is_file()
    assert not (output / "failure").exists()
    for path in (model, output / "checkpoints" / "last.ckpt"):
        assert owner(path) == USER, f"{path} belongs to {owner(path)}, not {USER}"

    # The platform re-runs the same container (`docker start`): still succeeds and reports its
    # score again (resume/skip of training itself is run_control's, tested in tests/lifecycle).
    second = trainkit_run(*common, "--restart")
    assert second.returncode == 0
    assert f"start -a {container}" in second.stderr
    assert " build " not in second.stderr
    assert score_lines(second.stdout)
    assert model.is_file() and owner(model) == USER
    assert not (output / "failure").exists()
    # Both runs went through the entrypoint's setup (idempotent) into run.log.
    assert (run_dir / "run.log").read_text().count("Setup ended") == 2


@pytest.mark.s3fs
def test_s3_mode_mounts_the_bucket_inside_the_container(
    tmp_path, engine, base_image, minio, container, moto
):
    bucket = f"datasets-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    for path in sorted((minio / "datasets").rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, path.relative_to(minio).as_posix())

    run_dir = tmp_path / "run"
    token = "header.payload.signature-of-an-oidc-token"
    result = trainkit_run(
        str(EXAMPLE),
        "--minio",
        str(minio),  # only for trainkit's own checks: --s3 does not mount it
        "--dataset-id",
        DATASET_ID,
        "--output",
        str(run_dir),
        "--engine",
        engine.name,
        "--name",
        container,
        "--image",
        image_of(container),
        "--base-image",
        base_image,
        f"--user={USER[0]}:{USER[1]}",
        "--s3",
        "--s3-host",
        moto.url,
        "--s3-bucket",
        bucket,
        "--s3-role-arn",
        ROLE_ARN,
        *QUICK,
        env={"OID_ACCESS_TOKEN": token},
    )
    assert result.returncode == 0
    run_line = next(
        line for line in result.stderr.splitlines() if f" run --name {container}" in line
    )
    assert "--network host" in run_line and "--device /dev/fuse" in run_line
    assert ":/minio" not in run_line
    assert token not in result.stdout + result.stderr
    assert score_lines(result.stdout)
    model = run_dir / "output" / "model.onnx"
    assert_classifier_onnx(model)
    assert owner(model) == USER
    seen = "\n".join(moto.requests_seen())
    assert "POST / " in seen or "POST /?" in seen, "no STS request reached moto"
    assert re.search(rf"GET /{bucket}/datasets/{DATASET_ID}/synthetic_\d+\.png", seen), (
        "s3fs never read an image from the bucket"
    )


def test_missing_dataset_id_fails_with_the_reason(tmp_path, engine, base_image, container):
    context = workspace.assemble_build_context(EXAMPLE, tmp_path / "context")
    assert not re.search(r"^\s*(export\s+)?DATASET_ID\s*=", (context / ".env").read_text(), re.M)
    tag = image_of(container)
    engine_mod.build_image(
        engine, context, tag, base_image=base_image, torch_index=engine_mod.DEFAULT_TORCH_INDEX
    )
    output = tmp_path / "output"
    spec = engine_mod.RunSpec(
        image=tag,
        name=container,
        output=output,
        dataset_id=None,
        minio=tmp_path,
        user=USER,
    )
    code, _ = engine_mod.run_new_container(engine, spec)
    assert code != 0
    failure = json.loads((output / "failure").read_text())
    assert "DATASET_ID" in failure["message"]
    assert owner(output / "failure") == USER
