"""Scale out for real, on loopback: the committed classification example (CPU, gloo, tiny step
counts) as (a) 2 nodes x 1 process (two torchrun agents, static rendezvous on 127.0.0.1),
(b) two Kubeflow PyTorchJob "pods" (MASTER_ADDR MASTER_PORT WORLD_SIZE RANK, each running the
entrypoint), (c) 1 node x 2 processes (torchrun directly, and the entrypoint's NPROC_PER_NODE).

Every node has its own image WORKDIR (a copy of the workspace) and its own node-local
DATASETS_ROOT; OUTPUT_DIR and the bucket are shared. Each scenario: dataset set-up once per
node, one score line, one ONNX file, the world size Lightning saw printed once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lifecycle.test_template_lifecycle import ARCH, TIMEOUT, make_run, score_lines
from tests.support.services import IN_CI

pytestmark = [
    pytest.mark.slow,
    # under CI=true a missing example is a failure, not a skip
    pytest.mark.skipif(
        not IN_CI and not (ARCH / "docker" / "train.py").is_file(), reason=f"{ARCH}: missing"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepared(tmp_path: Path, *settings: str):
    """The run's workspace after one setup.py (so train_config.json holds num-classes for the
    argv, as the entrypoint does), the argv, and the environment."""
    plan, env = make_run(tmp_path, "epochs=1", *settings)
    login = {**env, "DATASETS_ROOT": str(tmp_path / "login-datasets")}
    setup = subprocess.run(
        [sys.executable, "setup.py"], cwd=plan.workspace, env=login, capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stderr
    argv = subprocess.run(
        [sys.executable, "config_to_args.py", "--null"],
        cwd=plan.workspace,
        env=login,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return plan, env, [a for a in argv.split("\0") if a]


def node(tmp_path: Path, plan, env: dict, index: int, **extra: str) -> tuple[Path, dict]:
    """Node `index`: its own copy of the image's WORKDIR and its own DATASETS_ROOT."""
    workdir = shutil.copytree(plan.workspace, tmp_path / f"node{index}" / "workspace")
    datasets = tmp_path / f"node{index}" / "datasets"
    return workdir, {**env, "DATASETS_ROOT": str(datasets), **extra}


def run_all(commands: list[tuple[list[str], Path, dict]]) -> list[subprocess.CompletedProcess]:
    """Start every command at once (the nodes of one job), wait for all."""
    procs = [
        subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for cmd, cwd, env in commands
    ]
    results = []
    for (cmd, _, _), proc in zip(commands, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        results.append(
            subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())
        )
    return results


def assert_one_job(results, plan, world: str, node_roots: list[Path]) -> None:
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    stdout = "".join(r.stdout for r in results)
    stderr = "".join(r.stderr for r in results)
    assert len(score_lines(stdout)) == 1  # rank 0 only
    assert sorted(p.name for p in plan.output_dir.glob("*.onnx")) == ["model.onnx"]
    assert stderr.count("trainkit: world size ") == 1
    assert f"trainkit: world size {world}" in stderr
    for root in node_roots:  # set up exactly once on each node, in its own DATASETS_ROOT
        assert stderr.count(f"dataset set up in {root}\n") == 1, root
        assert any((root / "images" / "train").iterdir())
    assert not (plan.output_dir / "failure").exists()


def test_two_nodes_one_process_each_with_torchrun(tmp_path):
    plan, env, args = prepared(tmp_path)
    endpoint = f"127.0.0.1:{free_port()}"
    commands = []
    for rank in (0, 1):
        workdir, node_env = node(tmp_path, plan, env, rank)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
        torchrun += ["--node_rank", str(rank), "--nproc_per_node", "1"]
        torchrun += ["--rdzv-backend", "static", "--rdzv-endpoint", endpoint]
        commands.append(([*torchrun, "train.py", *args], workdir, node_env))
    results = run_all(commands)
    world = "2: 2 node(s) x 1 process(es), TorchElasticEnvironment, DDPStrategy (gloo)"
    assert_one_job(results, plan, world, [tmp_path / f"node{i}" / "datasets" for i in (0, 1)])
    assert len(score_lines(results[0].stdout)) == 1  # node 0 holds rank 0


def test_two_kubeflow_pods(tmp_path):
    """A PyTorchJob's env, one process per pod; each pod runs the image's entrypoint."""
    plan, env, _ = prepared(tmp_path)
    cluster = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    commands = []
    for rank in (0, 1):
        workdir, pod_env = node(tmp_path, plan, env, rank, **cluster, RANK=str(rank))
        commands.append((["bash", "docker-entrypoint.sh"], workdir, pod_env))
    results = run_all(commands)
    world = "2: 2 node(s) x 1 process(es), KubeflowEnvironment, DDPStrategy (gloo)"
    assert_one_job(results, plan, world, [tmp_path / f"node{i}" / "datasets" for i in (0, 1)])
    for result in results:  # the pod's setup.py did it; train.py found it done
        assert result.stderr.count("dataset setup already done") == 1


def test_one_node_two_processes_with_torchrun(tmp_path):
    """torchrun directly on a node whose DATASETS_ROOT is empty: train.py sets it up once (one
    rank does it under the node lock, the other waits and skips)."""
    plan, env, args = prepared(tmp_path)
    workdir, node_env = node(tmp_path, plan, env, 0)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    results = run_all([([*launcher, "--nproc_per_node=2", "train.py", *args], workdir, node_env)])
    world = "2: 1 node(s) x 2 process(es), TorchElasticEnvironment, DDPStrategy (gloo)"
    assert_one_job(results, plan, world, [tmp_path / "node0" / "datasets"])
    assert results[0].stderr.count("dataset setup already done") == 1


def test_one_node_two_processes_from_the_entrypoint(tmp_path):
    plan, env, _ = prepared(tmp_path)
    workdir, node_env = node(tmp_path, plan, env, 0, NPROC_PER_NODE="2")
    (result,) = run_all([(["bash", "docker-entrypoint.sh"], workdir, node_env)])
    assert "torch.distributed.run --nproc_per_node 2 --standalone train.py" in result.stdout
    world = "2: 1 node(s) x 2 process(es), TorchElasticEnvironment, DDPStrategy (gloo)"
    assert_one_job([result], plan, world, [tmp_path / "node0" / "datasets"])
    # setup.py ran before torchrun; both ranks found the dataset set up
    assert result.stderr.count("dataset setup already done") == 2
