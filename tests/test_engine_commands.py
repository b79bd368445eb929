"""The engine commands `trainkit run --engine` assembles (no engine needed)."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from trainkit import engine
from trainkit.errors import TrainkitError


def _spec(tmp_path: Path, **kw) -> engine.RunSpec:
    defaults = dict(
        image="trainkit/acme-classification-tinynet:latest",
        name="trainkit-acme-classification-tinynet",
        output=tmp_path / "out",
        dataset_id="7",
        minio=tmp_path / "minio",
        user=(1000, 1001),
    )
    return engine.RunSpec(**{**defaults, **kw})


def test_run_command_has_the_platform_flags(tmp_path):
    argv = engine.run_command(_spec(tmp_path), "docker")
    joined = " ".join(argv)
    assert argv[:3] == ["run", "--name", "trainkit-acme-classification-tinynet"]
    assert "--ipc host" in joined and "--shm-size" not in joined
    assert "--ulimit memlock=-1:-1" in joined and "--ulimit stack=67108864:67108864" in joined
    assert "-e DATASET_ID=7" in joined
    assert "-e USER_ID=1000 -e GROUP_ID=1001" in joined
    assert f"-v {(tmp_path / 'minio').resolve()}:/minio" in joined
    assert f"-v {(tmp_path / 'out').resolve()}:/workspace/output" in joined
    assert argv[-1] == "trainkit/acme-classification-tinynet:latest"
    assert "--device" not in argv and "--privileged" not in argv


def test_shm_size_replaces_host_ipc(tmp_path):
    argv = engine.run_command(_spec(tmp_path, shm_size="2g"), "docker")
    assert "--ipc" not in argv
    assert argv[argv.index("--shm-size") + 1] == "2g"


@pytest.mark.parametrize(
    ("engine_name", "privileged", "expected", "absent"),
    [
        ("podman", False, ["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN"], "--privileged"),
        ("docker", False, ["--security-opt", "apparmor=unconfined"], "--privileged"),
        ("podman", True, ["--privileged"], "--device"),
    ],
)
def test_fuse_flags(tmp_path, engine_name, privileged, expected, absent):
    spec = _spec(tmp_path, minio=None, fuse=True, privileged=privileged, network="host")
    argv = engine.run_command(spec, engine_name)
    for flag in expected:
        assert flag in argv
    assert absent not in argv
    assert argv[argv.index("--network") + 1] == "host"
    assert not any(a.endswith(":/minio") for a in argv)


def _s3_args(**kw) -> argparse.Namespace:
    base = dict(
        s3_host="http://127.0.0.1:9000",
        s3_bucket="data",
        s3_role_arn=None,
        s3_insecure=False,
        token_file=None,
    )
    return argparse.Namespace(**{**base, **kw})


def test_secrets_go_to_an_env_file_never_argv(tmp_path, monkeypatch):
    monkeypatch.setenv("OID_ACCESS_TOKEN", "s3cr3t-token")
    monkeypatch.delenv("S3_ROLE_ARN", raising=False)
    plain, secrets = engine.s3_settings(_s3_args())
    assert plain == {"S3_HOST": "http://127.0.0.1:9000", "S3_BUCKET_NAME": "data"}
    assert secrets == {"OID_ACCESS_TOKEN": "s3cr3t-token"}
    with engine.secret_env_file(secrets) as env_file:
        assert env_file is not None
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert env_file.read_text() == "OID_ACCESS_TOKEN=s3cr3t-token\n"
        argv = engine.run_command(_spec(tmp_path, s3_env=plain, env_file=env_file), "podman")
        shown = engine.Engine("podman", "/usr/bin/podman").display(argv)
    assert not env_file.exists()
    assert "s3cr3t" not in " ".join(argv) and "s3cr3t" not in shown
    assert argv[argv.index("--env-file") + 1] == str(env_file)


def test_s3_settings_token_file_and_role(tmp_path, monkeypatch):
    monkeypatch.delenv("OID_ACCESS_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text("from-file\n")
    plain, secrets = engine.s3_settings(
        _s3_args(token_file=str(token), s3_role_arn="arn:aws:iam::1:role/r")
    )
    assert secrets["OID_ACCESS_TOKEN"] == "from-file"
    assert plain["S3_ROLE_ARN"] == "arn:aws:iam::1:role/r"


def test_s3_settings_name_what_is_missing(monkeypatch):
    for key in ("OID_ACCESS_TOKEN", "S3_HOST", "S3_BUCKET_NAME"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(TrainkitError, match="--s3-bucket"):
        engine.s3_settings(_s3_args(s3_bucket=None))
    with pytest.raises(TrainkitError, match="OID_ACCESS_TOKEN"):
        engine.s3_settings(_s3_args())


def test_build_command_passes_build_args(tmp_path):
    argv = engine.build_command(
        tmp_path, "trainkit/x:latest", base_image="localhost/b:1", torch_index="https://i"
    )
    assert argv[:3] == ["build", "-t", "trainkit/x:latest"]
    assert "TORCH_CUDA_INDEX=https://i" in argv and "BASE_IMAGE=localhost/b:1" in argv
    assert argv[-1] == str(tmp_path)
    no_base = engine.build_command(tmp_path, "t", base_image=None, torch_index="https://i")
    assert not any(a.startswith("BASE_IMAGE=") for a in no_base)


def test_names_come_from_the_architecture_dir(tmp_path):
    arch = tmp_path / "Acme" / "Image Classification" / "TinyNet"
    assert engine.image_tag(arch) == "trainkit/acme-image-classification-tinynet:latest"
    assert engine.container_name(arch) == "trainkit-acme-image-classification-tinynet"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:9000", True),
        ("http://localhost:9000", True),
        ("http://minio:9000", False),
        ("https://s3.example.org", False),
    ],
)
def test_loopback_detection(url, loopback):
    assert engine._is_loopback(url) is loopback


def test_parse_user():
    assert engine.parse_user("1000") == (1000, 1000)
    assert engine.parse_user("1000:50") == (1000, 50)
    with pytest.raises(TrainkitError, match="UID"):
        engine.parse_user("alice")


def test_podman_gets_the_repo_containers_conf(monkeypatch):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(engine.shutil, "which", lambda name: f"/usr/bin/{name}")
    podman = engine.make_engine("podman")
    assert podman.env == {"CONTAINERS_CONF": str(engine.CONTAINERS_CONF)}
    assert 'runtime = "runc"' in engine.CONTAINERS_CONF.read_text()
    assert podman.display(["ps"]).startswith(f"CONTAINERS_CONF={engine.CONTAINERS_CONF} podman")
    assert engine.make_engine("docker").env == {}
    with pytest.raises(TrainkitError, match="choose one of"):
        engine.make_engine("lxc")
    assert os.environ.get("CONTAINERS_CONF") is None


def test_podman_ulimits_are_capped_at_the_hard_limits(monkeypatch):
    limits = {
        engine.resource.RLIMIT_MEMLOCK: (8388608, 8388608),
        engine.resource.RLIMIT_STACK: (8388608, engine.resource.RLIM_INFINITY),
    }
    monkeypatch.setattr(engine.resource, "getrlimit", limits.__getitem__)
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert engine.ulimit_flags("podman") == [
        "--ulimit",
        "nofile=16384:16384",
        "--ulimit",
        "nproc=16384:16384",
        "--ulimit",
        "memlock=8388608:8388608",
        "--ulimit",
        "stack=67108864:67108864",
    ]
    assert "memlock=-1:-1" in engine.ulimit_flags("docker")
