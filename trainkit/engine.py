"""Build and run a train container with Docker or Podman (`trainkit run --engine ...`).

The image is built from the same build context the platform assembles (DESIGN.md §3) and run
with the platform's flags: `--ipc host`, memlock/stack ulimits, `DATASET_ID`, and either a
mocked MinIO folder at `/minio` or, with `--s3`, the S3/STS settings plus FUSE access so the
container mounts the bucket itself. The output volume receives the model, checkpoints, logs and
the `failure` file; `USER_ID`/`GROUP_ID` make the entrypoint drop root after the mount so those
files belong to the calling user. Every engine command is printed before it runs (secrets never
appear on the command line: they go through a mode-600 env file).

Podman runs rootful with the settings in `containers.conf` next to this module (runc,
cgroupfs, explicit nofile/nproc ulimits), passed as `CONTAINERS_CONF` unless the caller set one.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from trainkit.errors import TrainkitError
from trainkit.paths import BASE_IMAGE_DIR
from trainkit.tokens import read_token_file
from trainkit_runtime.redaction import token_problem

log = logging.getLogger(__name__)

ENGINES = ("docker", "podman")
# `trainkit run --engine` values this module serves; `auto`: docker when its daemon answers.
ENGINE_CHOICES = ("auto", *ENGINES)
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
BASE_IMAGE_SCRIPT = BASE_IMAGE_DIR / "build-test-base-image"
# `--base-image local`: the offline Debian image base_image/build-test-base-image builds (cached).
LOCAL_BASE_IMAGE = "local"
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Paths inside the image (the platform's, and common/'s defaults).
CONTAINER_MINIO = "/minio"
CONTAINER_OUTPUT = "/workspace/output"
# The ulimits NVIDIA recommends for PyTorch containers and the platform uses (-1 = unlimited).
ULIMITS = {"memlock": -1, "stack": 67108864}
_RLIMITS = {"memlock": resource.RLIMIT_MEMLOCK, "stack": resource.RLIMIT_STACK}


@dataclass(frozen=True)
class Engine:
    """A container engine CLI and the environment its commands run with."""

    name: str
    executable: str
    env: Mapping[str, str] = field(default_factory=dict)

    def command_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def display(self, argv: Sequence[str]) -> str:
        """The command as a user could paste it into a shell."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in self.env.items())
        return prefix + shlex.join([self.name, *argv])

    def run(
        self, argv: Sequence[str], *, check: bool = False, quiet: bool = False, **kwargs
    ) -> subprocess.CompletedProcess:
        if not quiet:
            print(f"$ {self.display(argv)}", file=sys.stderr, flush=True)
        try:
            return subprocess.run(
                [self.executable, *argv], env=self.command_env(), check=check, **kwargs
            )
        except subprocess.CalledProcessError as exc:
            raise TrainkitError(
                f"{self.name} {argv[0]} failed with exit code {exc.returncode}"
            ) from exc

    def answers(self) -> str | None:
        """None when the engine can run containers, else why not."""
        try:
            proc = self.run(
                ["info", "--format", "{{.Host.OS}}" if self.name == "podman" else "{{.OSType}}"],
                quiet=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{self.name} info` failed: {exc}"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`{self.name} info` exited {proc.returncode}: {last}"
        return None


def make_engine(name: str) -> Engine:
    """The engine called `name` (docker or podman); TrainkitError when its CLI is missing."""
    if name not in ENGINES:
        raise TrainkitError(f"--engine {name!r}: choose one of auto, {', '.join(ENGINES)}")
    executable = shutil.which(name)
    if executable is None:
        raise TrainkitError(f"--engine {name}: `{name}` is not on PATH")
    env = {}
    if name == "podman" and "CONTAINERS_CONF" not in os.environ:
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return Engine(name, executable, env)


def detect_engine(choice: str = "auto") -> Engine:
    """`docker` when its daemon answers, else `podman`; or the engine named by `choice`."""
    if choice != "auto":
        engine = make_engine(choice)
        if reason := engine.answers():
            raise TrainkitError(f"--engine {choice}: cannot run containers: {reason}")
        return engine
    reasons = []
    for name in ENGINES:
        if shutil.which(name) is None:
            reasons.append(f"{name}: not installed")
            continue
        engine = make_engine(name)
        if (reason := engine.answers()) is None:
            return engine
        reasons.append(reason)
    raise TrainkitError("--engine auto: no container engine can run here: " + "; ".join(reasons))


def engine_unavailable() -> str | None:
    """None when some engine can run containers here, else the reasons (for test skips)."""
    try:
        detect_engine("auto")
    except TrainkitError as exc:
        return str(exc)
    if os.geteuid() != 0 and shutil.which("docker") is None:
        return "rootless podman is not set up for trainkit's container tests; run them as root"
    return None


def ensure_local_base_image(engine: Engine) -> str:
    """Build (or take from the cache) the offline base image; return its tag."""
    # PYTHON: the script `pip download`s the training stack with this environment's pip.
    env = {"CONTAINER_ENGINE": engine.name, "PYTHON": sys.executable, **engine.env}
    print(f"$ {shlex.join([str(BASE_IMAGE_SCRIPT)])}", file=sys.stderr, flush=True)
    proc = subprocess.run(
        ["bash", str(BASE_IMAGE_SCRIPT)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise TrainkitError(f"{BASE_IMAGE_SCRIPT} failed (exit {proc.returncode})")
    return proc.stdout.strip().splitlines()[-1]


def _slug(*parts: str) -> str:
    slug = "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts if p)
    return slug or "train-container"


def image_tag(arch_dir: Path, suffix: str = "") -> str:
    """`trainkit/<provider>-<category>-<architecture><suffix>:latest` for an architecture dir."""
    parts = arch_dir.resolve().parts[-3:]
    return f"trainkit/{_slug(*parts)}{suffix}:latest"


def container_name(arch_dir: Path, suffix: str = "") -> str:
    return "trainkit-" + _slug(*arch_dir.resolve().parts[-3:]) + suffix


def build_command(
    context: Path, tag: str, *, base_image: str | None, torch_index: str
) -> list[str]:
    argv = ["build", "-t", tag, "-f", str(context / "Dockerfile")]
    argv += ["--build-arg", f"TORCH_CUDA_INDEX={torch_index}"]
    if base_image:
        argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    return [*argv, str(context)]


@dataclass
class RunSpec:
    """What `podman|docker run` needs; `run_command` turns it into argv."""

    image: str
    name: str
    output: Path
    dataset_id: str | None
    minio: Path | None = None
    user: tuple[int, int] | None = None
    s3_env: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    fuse: bool = False
    privileged: bool = False
    network: str | None = None
    shm_size: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None  # instead of the image's ENTRYPOINT
    command: list[str] = field(default_factory=list)  # arguments after the image
    volumes: list[tuple[Path, str, str]] = field(default_factory=list)  # (host, path, mode)


@dataclass(frozen=True)
class ContainerStart:
    """How a container is started when not with the image's own entrypoint (`trainkit run
    --runtime platform`: the stock entrypoint's emulation, bind-mounted read-only)."""

    entrypoint: str
    command: list[str]
    volumes: list[tuple[Path, str, str]]
    as_caller: bool = True  # USER_ID/GROUP_ID for trainkit's entrypoint
    network: str | None = None  # default network when --network is not given


def podman_default_ulimits() -> list[str]:
    """The `default_ulimits` of the containers.conf podman uses (CONTAINERS_CONF or ours)."""
    conf = Path(os.environ.get("CONTAINERS_CONF") or CONTAINERS_CONF)
    try:
        text = conf.read_text()
    except OSError:
        return []
    match = re.search(r"^\s*default_ulimits\s*=\s*\[(.*?)\]", text, re.M | re.S)
    return re.findall(r'"([a-z]+=[^"]+)"', match.group(1)) if match else []


def ulimit_flags(engine_name: str) -> list[str]:
    """`--ulimit` flags for ULIMITS.

    Podman: containers cannot exceed the limits of the podman process itself (without
    CAP_SYS_RESOURCE runc fails), so each is capped at this process's hard limit; and any
    `--ulimit` on the command line replaces containers.conf's `default_ulimits`, so those
    (nofile, nproc) are repeated. A Docker daemon has its own limits and gets ULIMITS as they are.
    """
    flags = []
    if engine_name == "podman":
        for ulimit in podman_default_ulimits():
            if ulimit.split("=", 1)[0] not in ULIMITS:
                flags += ["--ulimit", ulimit]
    for name, want in ULIMITS.items():
        value = want
        if engine_name == "podman":
            hard = resource.getrlimit(_RLIMITS[name])[1]
            if hard != resource.RLIM_INFINITY and (want == -1 or want > hard):
                log.info("--ulimit %s capped at this machine's hard limit %d", name, hard)
                value = hard
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def run_command(spec: RunSpec, engine_name: str) -> list[str]:
    argv = ["run", "--name", spec.name]
    if spec.shm_size:
        # A private /dev/shm of this size; the engines refuse --shm-size with --ipc host.
        argv += ["--shm-size", spec.shm_size]
    else:
        argv += ["--ipc", "host"]
    argv += ulimit_flags(engine_name)
    if spec.network:
        argv += ["--network", spec.network]
    if spec.privileged:
        argv.append("--privileged")
    elif spec.fuse:
        argv += ["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN"]
        if engine_name == "docker":
            # Docker's default AppArmor profile denies mount(2) even with CAP_SYS_ADMIN.
            argv += ["--security-opt", "apparmor=unconfined"]
    if spec.dataset_id is not None:
        argv += ["-e", f"DATASET_ID={spec.dataset_id}"]
    if spec.user is not None:
        argv += ["-e", f"USER_ID={spec.user[0]}", "-e", f"GROUP_ID={spec.user[1]}"]
    for key, value in {**spec.s3_env, **spec.extra_env}.items():
        argv += ["-e", f"{key}={value}"]
    if spec.env_file is not None:
        argv += ["--env-file", str(spec.env_file)]
    if spec.minio is not None:
        argv += ["-v", f"{spec.minio.resolve()}:{CONTAINER_MINIO}"]
    argv += ["-v", f"{spec.output.resolve()}:{CONTAINER_OUTPUT}"]
    for host, path, mode in spec.volumes:
        argv += ["-v", f"{Path(host).resolve()}:{path}:{mode}"]
    if spec.entrypoint is not None:
        argv += ["--entrypoint", spec.entrypoint]
    return [*argv, spec.image, *spec.command]


@contextlib.contextmanager
def secret_env_file(values: Mapping[str, str]) -> Iterator[Path | None]:
    """A mode-600 env file with `values` (deleted afterwards), or None when there are none."""
    if not values:
        yield None
        return
    for key, value in values.items():
        if "\n" in value:
            raise TrainkitError(f"${key}: the value must be a single line")
    fd, name = tempfile.mkstemp(prefix="trainkit-env-", suffix=".list")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates it with mode 600
            handle.writelines(f"{key}={value}\n" for key, value in values.items())
        yield path
    finally:
        path.unlink(missing_ok=True)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_user(value: str) -> tuple[int, int]:
    """`UID[:GID]` → (uid, gid); gid defaults to uid."""
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise TrainkitError(f"--user {value!r}: expected UID[:GID] as numbers") from None


def s3_settings(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """(plain env, secret env) for --s3 mode from options, falling back to the environment."""
    plain: dict[str, str] = {}
    for key, option in (
        ("S3_HOST", "s3_host"),
        ("S3_BUCKET_NAME", "s3_bucket"),
        ("S3_ROLE_ARN", "s3_role_arn"),
    ):
        value = getattr(args, option, None) or os.environ.get(key)
        if value:
            plain[key] = value
    if getattr(args, "s3_insecure", False) or os.environ.get("S3_INSECURE"):
        plain["S3_INSECURE"] = os.environ.get("S3_INSECURE") or "1"
    for key, option in (("S3_HOST", "--s3-host"), ("S3_BUCKET_NAME", "--s3-bucket")):
        if key not in plain:
            raise TrainkitError(f"--s3: set {option} or ${key}")
    token = (os.environ.get("OID_ACCESS_TOKEN") or "").strip()
    token_file = getattr(args, "token_file", None)
    if token_file:
        token = read_token_file(Path(token_file))
    if not token:
        raise TrainkitError("--s3: set $OID_ACCESS_TOKEN or --token-file with the OIDC token")
    if problem := token_problem(token):  # a second line would become an --env-file line
        raise TrainkitError(f"$OID_ACCESS_TOKEN {problem}")
    return plain, {"OID_ACCESS_TOKEN": token}


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The container options of `trainkit run` (`--engine` and the local-mode options are
    run.py's; its engine registry maps ENGINE_CHOICES to run_plan)."""
    group = parser.add_argument_group(
        "container engine (with --engine auto|docker|podman: build the real image and run it)"
    )
    group.add_argument(
        "--base-image",
        metavar="IMAGE",
        default=os.environ.get("TRAINKIT_BASE_IMAGE"),
        help="build arg BASE_IMAGE (default: the Dockerfile's, or $TRAINKIT_BASE_IMAGE); "
        f"'{LOCAL_BASE_IMAGE}' builds/uses the offline Debian image of "
        "trainkit/base_image/build-test-base-image (shipped with trainkit)",
    )
    group.add_argument(
        "--torch-index",
        metavar="URL",
        default=DEFAULT_TORCH_INDEX,
        help="build arg TORCH_CUDA_INDEX (default: %(default)s)",
    )
    group.add_argument(
        "--image", help="image tag to build and run (default: trainkit/<provider>-...:latest)"
    )
    group.add_argument("--name", help="container name (default: trainkit-<provider>-...)")
    group.add_argument("--no-build", action="store_true", help="use the image as last built")
    group.add_argument(
        "--user",
        metavar="UID[:GID]",
        help="owner of the files in the output volume (default: you)",
    )
    group.add_argument("--network", help="container network, e.g. host")
    group.add_argument(
        "--shm-size",
        help="private /dev/shm of this size instead of --ipc host",
    )
    group.add_argument(
        "--s3",
        action="store_true",
        help="mount the bucket with s3fs inside the container instead of --minio "
        "(needs --s3-host/--s3-bucket or $S3_HOST/$S3_BUCKET_NAME and $OID_ACCESS_TOKEN)",
    )
    group.add_argument("--s3-host", metavar="URL", help="S3/STS endpoint ($S3_HOST)")
    group.add_argument("--s3-bucket", metavar="NAME", help="bucket ($S3_BUCKET_NAME)")
    group.add_argument("--s3-role-arn", metavar="ARN", help="STS RoleArn ($S3_ROLE_ARN)")
    group.add_argument(
        "--token-file", metavar="FILE", help="file holding the OIDC token ($OID_ACCESS_TOKEN)"
    )
    group.add_argument(
        "--privileged",
        action="store_true",
        help="run privileged (as the platform does) instead of only /dev/fuse + SYS_ADMIN",
    )


# runner(argv, env) -> (exit code, last lines of output): how an attached engine command runs.
# Default: inherit stdout/stderr; `trainkit run` passes one that tees into run.log.
Runner = Callable[[list[str], dict[str, str]], tuple[int, str]]


def _inherit(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    return subprocess.run(argv, env=env, check=False).returncode, ""


def _attached(engine: Engine, argv: list[str], runner: Runner | None) -> tuple[int, str]:
    print(f"$ {engine.display(argv)}", file=sys.stderr, flush=True)
    return (runner or _inherit)([engine.executable, *argv], engine.command_env())


def container_exists(engine: Engine, name: str) -> bool:
    argv = ["container", "exists", name] if engine.name == "podman" else ["inspect", name]
    return engine.run(argv, quiet=True, capture_output=True).returncode == 0


def start_container(engine: Engine, name: str, runner: Runner | None = None) -> tuple[int, str]:
    """Re-run an existing container attached, like the platform's `docker start`."""
    if not container_exists(engine, name):
        raise TrainkitError(f"--restart: no container named {name!r}; run without --restart")
    return _attached(engine, ["start", "-a", name], runner)


def remove_container(engine: Engine, name: str) -> None:
    engine.run(["rm", "-f", name], quiet=True, capture_output=True)


def build_image(
    engine: Engine, context: Path, tag: str, *, base_image: str | None, torch_index: str
) -> None:
    """Build `tag` from `context`; `base_image` 'local' = the offline base image (cached)."""
    if base_image == LOCAL_BASE_IMAGE:
        base_image = ensure_local_base_image(engine)
    engine.run(
        build_command(context, tag, base_image=base_image, torch_index=torch_index), check=True
    )


def run_new_container(
    engine: Engine,
    spec: RunSpec,
    *,
    secrets: Mapping[str, str] | None = None,
    runner: Runner | None = None,
) -> tuple[int, str]:
    """Replace the container `spec.name` by a new one from `spec.image`, run it attached."""
    spec.output.mkdir(parents=True, exist_ok=True)
    remove_container(engine, spec.name)
    with secret_env_file(secrets or {}) as env_file:
        spec.env_file = env_file
        result = _attached(engine, run_command(spec, engine.name), runner)
    print(
        f"trainkit run: container {spec.name} exited {result[0]}; re-run it with "
        f"`trainkit run ... --restart` or `{engine.display(['start', '-a', spec.name])}`",
        file=sys.stderr,
        flush=True,
    )
    return result


def default_user() -> tuple[int, int]:
    """The calling user; under sudo the user who called sudo."""
    if os.getuid() == 0 and os.environ.get("SUDO_UID", "").isdigit():
        return int(os.environ["SUDO_UID"]), int(os.environ.get("SUDO_GID") or 0)
    return os.getuid(), os.getgid()


def run_plan(
    plan,
    args: argparse.Namespace,
    runner: Runner | None = None,
    start: ContainerStart | None = None,
) -> tuple[int, str]:
    """`trainkit run --engine auto|docker|podman` for run.py's RunPlan.

    Uses plan.arch_dir, plan.workspace (the assembled build context), plan.output_dir,
    plan.minio_root and plan.dataset_id; the options are add_engine_arguments'. `start`: run
    the container with another entrypoint than the image's.
    """
    engine = detect_engine(args.engine)
    arch_dir = Path(plan.arch_dir)
    name = args.name or container_name(arch_dir)
    if args.restart:
        return start_container(engine, name, runner)
    plain: dict[str, str] = {}
    secrets: dict[str, str] = {}
    network = args.network or (start.network if start else None)
    if args.s3:
        plain, secrets = s3_settings(args)
        if network is None and _is_loopback(plain["S3_HOST"]):
            network = "host"  # the container must reach the host's loopback
    elif plan.minio_root is None:
        raise TrainkitError("--engine: give --minio DIR (mocked MinIO folder) or --s3")
    spec = RunSpec(
        image=getattr(args, "image", None) or image_tag(arch_dir),
        name=name,
        output=Path(plan.output_dir),
        dataset_id=plan.dataset_id,
        minio=None if args.s3 else Path(plan.minio_root),
        user=None
        if start is not None and not start.as_caller
        else parse_user(args.user)
        if args.user
        else default_user(),
        s3_env=plain,
        fuse=args.s3,
        privileged=args.privileged,
        network=network,
        shm_size=args.shm_size,
    )
    if start is not None:
        spec.entrypoint, spec.command, spec.volumes = start.entrypoint, start.command, start.volumes
    if not args.no_build:
        build_image(
            engine,
            Path(plan.workspace),
            spec.image,
            base_image=args.base_image,
            torch_index=args.torch_index,
        )
    return run_new_container(engine, spec, secrets=secrets, runner=runner)
