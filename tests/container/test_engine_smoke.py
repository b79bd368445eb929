"""engine.py against a real engine with a tiny hand-made image: build args, volumes, the
platform's run flags, the calling user's ownership of output files, restart, exit codes."""

from __future__ import annotations

import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from trainkit import engine as engine_mod

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]

DOCKERFILE = """\
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:24.01-py3
FROM ${BASE_IMAGE}
ARG TORCH_CUDA_INDEX
RUN python -c "import torch" || pip install torch --index-url "${TORCH_CUDA_INDEX}"
RUN echo "${TORCH_CUDA_INDEX}" > /torch-index
WORKDIR /workspace
COPY entry.sh /entry.sh
ENTRYPOINT ["/bin/bash", "/entry.sh"]
"""

# Counts its runs in the output volume, as USER_ID after dropping root like the real entrypoint.
ENTRY = """\
set -euo pipefail
out=/workspace/output
if [[ -z "${DATASET_ID:-}" ]]; then
  echo "DATASET_ID not set" > "$out/failure"
  exit 3
fi
test -f "/minio/datasets/$DATASET_ID/marker"
chown "$USER_ID:$GROUP_ID" "$out"
setpriv --reuid "$USER_ID" --regid "$GROUP_ID" --clear-groups bash -c '
  out=/workspace/output
  echo $(( $(cat "$out/runs" 2>/dev/null || echo 0) + 1 )) > "$out/runs"
  ulimit -l > "$out/memlock"
  cat /torch-index > "$out/torch-index"
  python -c "import torch; print(\\"torch\\", torch.__version__)"
'
"""


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "entry.sh").write_text(textwrap.dedent(ENTRY))
    return context


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def test_build_run_restart_and_failure(tmp_path, engine, base_image, capfd):
    minio = tmp_path / "minio"
    (minio / "datasets" / "5").mkdir(parents=True)
    (minio / "datasets" / "5" / "marker").write_text("x")
    out = tmp_path / "out"
    tag = f"trainkit-test/smoke-{uuid.uuid4().hex[:8]}:latest"
    name = f"trainkit-test-smoke-{uuid.uuid4().hex[:8]}"
    # As root, prove the drop with another uid; otherwise files must simply be ours.
    user = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    spec = engine_mod.RunSpec(
        image=tag, name=name, output=out, dataset_id="5", minio=minio, user=user
    )
    try:
        engine_mod.build_image(
            engine,
            _context(tmp_path),
            tag,
            base_image=base_image,
            torch_index="https://example.invalid/whl/cpu",
        )
        code, _ = engine_mod.run_new_container(engine, spec)
        captured = capfd.readouterr()
        assert code == 0, captured.err[-3000:]
        assert "torch 2." in captured.out
        assert f"$ {engine.display(engine_mod.run_command(spec, engine.name))}" in captured.err
        assert (out / "runs").read_text().strip() == "1"
        assert _owner(out / "runs") == user
        flags = engine_mod.ulimit_flags(engine.name)
        memlock = int(next(f for f in flags if f.startswith("memlock=")).split(":")[1])
        expected = "unlimited" if memlock == -1 else str(memlock // 1024)
        assert (out / "memlock").read_text().strip() == expected
        assert (out / "torch-index").read_text().strip() == "https://example.invalid/whl/cpu"

        # The platform re-runs the same container with `start`.
        assert engine_mod.start_container(engine, name) == (0, "")
        assert (out / "runs").read_text().strip() == "2"

        # A failing container's exit code and failure file reach the caller.
        bad = engine_mod.RunSpec(
            image=tag, name=name, output=out, dataset_id=None, minio=minio, user=user
        )
        assert engine_mod.run_new_container(engine, bad)[0] == 3
        assert (out / "failure").read_text().strip() == "DATASET_ID not set"
    finally:
        engine_mod.remove_container(engine, name)
        subprocess.run(
            [engine.executable, "rmi", "-f", tag],
            env=engine.command_env(),
            capture_output=True,
            check=False,
        )
