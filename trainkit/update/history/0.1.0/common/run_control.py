"""Run control for a train container's train.py: ranks, failure file, once-per-node setup,
resume decision, and the Lightning Trainer settings that make one script scale and survive.

Standalone runtime file (stdlib only at import; torch/lightning are imported lazily where
needed), copied next to train.py. Typical use in train.py::

    import run_control as rc

    config = vars(args)
    with rc.run_stage("setup"):
        rc.setup_once(prepare_dataset)           # once per node; other local ranks wait
    if rc.run_finished(config):                  # a finished run started again: no retraining
        ...re-export if the model file is missing, print the stored score, exit 0
    ckpt = rc.resume_checkpoint(config)          # last.ckpt of the same config, else None
    trainer = lightning.Trainer(max_epochs=..., **rc.trainer_kwargs(args, monitor="val_acc"))
    with rc.run_stage("train"):
        trainer.fit(model, datamodule, ckpt_path=ckpt)
    ...
    rc.mark_finished(config, score=...)

Files under $OUTPUT_DIR (default /workspace/output):
- ``failure`` — written when a stage fails: one JSON object
  ``{"stage", "type", "message", "rank", "time", "traceback"[, "hint"]}``. The first failure
  of a run wins (a later error on another rank, e.g. "connection closed by peer", does not
  overwrite the cause); a stale file from an earlier attempt is removed when the next attempt
  enters its first stage, and ``mark_finished`` removes it too.
- ``checkpoints/last.ckpt`` (+ ``best.ckpt``), ``checkpoints/run.json`` (the config hash the
  checkpoints belong to), ``checkpoints/finished.json`` (written by ``mark_finished``).
- ``logs/metrics.csv`` (CSVLogger), ``logs/tensorboard/`` when tensorboard is installed.
- ``previous-runs/<UTC time>/`` — checkpoints and logs moved aside on a fresh start (a changed
  config, an unreadable checkpoint); nothing is deleted.

Exit codes from ``run_stage``: 1 on an exception, 130 on Ctrl-C, 143 after SIGTERM (training
stopped cleanly after saving ``last.ckpt``; start the container again to resume).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT_DIR = "/workspace/output"
DEFAULT_DATASETS_ROOT = "/datasets"
DEFAULT_MINIO_ROOT = "/minio"

FAILURE_FILENAME = "failure"
CHECKPOINT_DIRNAME = "checkpoints"
LAST_CHECKPOINT_FILENAME = "last.ckpt"
BEST_CHECKPOINT_NAME = "best"  # ModelCheckpoint filename (without .ckpt)
RUN_STATE_FILENAME = "run.json"
FINISHED_FILENAME = "finished.json"
LOGS_DIRNAME = "logs"
PREVIOUS_RUNS_DIRNAME = "previous-runs"
SETUP_LOCK_FILENAME = ".trainkit-setup.lock"
SETUP_DONE_FILENAME = ".trainkit-setup-done"

# Keys that choose *how* to run, not *what* to train: changing them resumes instead of
# restarting (Lightning checkpoints hold the full state, so the number of devices may change).
HASH_IGNORED_KEYS = frozenset(
    {"accelerator", "devices", "num_nodes", "strategy", "num_workers", "workers"}
)

TRACEBACK_FRAMES = 8  # innermost frames kept in the failure file

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so redirection and capture work)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


log = logging.getLogger("run_control")
if not log.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("run_control: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


# --------------------------------------------------------------------------- ranks and paths


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return None


def global_rank() -> int:
    """This process's global rank: torch.distributed when initialised, else the launcher's env
    (torchrun / Kubeflow `RANK`, SLURM, Lightning's own launcher `NODE_RANK`+`LOCAL_RANK`)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        with contextlib.suppress(Exception):
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
    rank = _env_int("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    if rank is not None:
        return rank
    # Lightning's subprocess launcher sets NODE_RANK and LOCAL_RANK (no RANK) in its children.
    # The exact global rank needs the devices per node, which the env does not say; rank zero
    # (what callers need) is exact: node 0, local rank 0.
    node_rank = _env_int("NODE_RANK", "GROUP_RANK") or 0
    return node_rank * 1000 + local_rank()


def local_rank() -> int:
    """This process's rank on its node (0 when not launched by a distributed launcher)."""
    return _env_int("LOCAL_RANK", "SLURM_LOCALID", "JSM_NAMESPACE_LOCAL_RANK") or 0


def world_size() -> int:
    """Number of processes in the job as the launcher announced it (1 when not distributed)."""
    return _env_int("WORLD_SIZE", "SLURM_NTASKS") or 1


def is_rank_zero() -> bool:
    """True in exactly one process of the job: the one that prints the score line and writes
    the model, the checkpoints' run state and the failure file."""
    return global_rank() == 0


def output_dir() -> Path:
    """`$OUTPUT_DIR` (default /workspace/output): model, checkpoints, logs, failure file."""
    return Path(os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)


def datasets_root() -> Path:
    """`$DATASETS_ROOT` (default /datasets): where dataset setup writes images and labels."""
    return Path(os.environ.get("DATASETS_ROOT") or DEFAULT_DATASETS_ROOT)


def checkpoint_dir() -> Path:
    return output_dir() / CHECKPOINT_DIRNAME


def last_checkpoint_path() -> Path:
    return checkpoint_dir() / LAST_CHECKPOINT_FILENAME


def failure_path() -> Path:
    return output_dir() / FAILURE_FILENAME


# --------------------------------------------------------------------------- small file helpers


def _atomic_write_text(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write `text` to `path` via a temporary file in the same directory and a rename, so
    readers never see half a file. With `exclusive`, keep an existing file (first writer wins)
    and return False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        tmp.replace(path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _utc_stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _process_start_time() -> float:
    """Wall-clock start of this process (Linux /proc), else the import time of this module."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after "pid (comm)"
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_PROCESS_START = _process_start_time()


# --------------------------------------------------------------------------- failures and stages


class StageFailed(SystemExit):
    """Raised by run_stage after it reported a failure; outer stages pass it through."""


class Terminated(SystemExit):
    """SIGTERM outside Lightning's training loop (see run_stage)."""

    def __init__(self) -> None:
        super().__init__(EXIT_TERMINATED)


_stale_failure_checked = False
_lightning_handles_sigterm = False
_stopped_at_step: int | None = None


def _one_line(text: str, limit: int = 1000) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _hint(exc: BaseException) -> str | None:
    text = f"{type(exc).__name__} {exc}".lower()
    if "out of memory" in text or "outofmemory" in text:
        return (
            "the device ran out of memory: lower batch_size (or the image size), use "
            "precision 16-mixed/bf16-mixed, or spread the job over more devices"
        )
    return None


def write_failure(stage: str, exc: BaseException) -> Path | None:
    """Record why the run failed in `$OUTPUT_DIR/failure` (JSON, written atomically).

    The first failure of a run wins: a later secondary error (another rank losing its peer)
    keeps the original cause. Returns the path when this call wrote it."""
    record: dict[str, Any] = {
        "stage": stage,
        "type": type(exc).__name__,
        "message": str(exc) if str(exc) else type(exc).__name__,
        "rank": global_rank(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "traceback": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-TRACEBACK_FRAMES)
        ),
    }
    if hint := _hint(exc):
        record["hint"] = hint
    path = failure_path()
    try:
        text = json.dumps(record, indent=2) + "\n"
        return path if _atomic_write_text(path, text, exclusive=True) else None
    except OSError as write_exc:
        log.warning("could not write %s: %s", path, write_exc)
        return None


def read_failure(out_dir: Path | None = None) -> dict[str, Any] | None:
    """The failure record of the last attempt (None when it did not fail)."""
    return _read_json((out_dir or output_dir()) / FAILURE_FILENAME)


def _clear_stale_failure() -> None:
    """On the job's rank 0, once per process: remove a failure file left by an earlier attempt
    (older than this process), so a successful re-run does not look failed."""
    global _stale_failure_checked
    if _stale_failure_checked:
        return
    _stale_failure_checked = True
    if not is_rank_zero():
        return
    path = failure_path()
    with contextlib.suppress(OSError):
        if path.stat().st_mtime < _PROCESS_START - 1.0:
            path.unlink()


def _on_sigterm(signum: int, frame: Any) -> None:
    # While Lightning runs fit/validate/test it has its own SIGTERM handler, which calls this
    # one too: then Lightning stops at the next batch boundary and we must not interrupt it.
    if _lightning_handles_sigterm:
        return
    raise Terminated()


def _install_sigterm_handler() -> None:
    """Make SIGTERM stop the process cleanly (also as PID 1 in a container, where the default
    action is ignored) by raising Terminated, which run_stage turns into exit 143."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _is_lightning_sigterm(exc: BaseException) -> bool:
    return type(exc).__name__ == "SIGTERMException"


@contextlib.contextmanager
def run_stage(name: str) -> Iterator[None]:
    """Run one stage of the job (setup, train, test, export ...).

    An exception ends the process: one line ``error: <stage>: <Type>: <message>`` on stderr,
    the reason in ``$OUTPUT_DIR/failure`` (see write_failure), exit status 1. Ctrl-C exits 130
    with the failure file saying so. SIGTERM (``docker stop``, a cluster preempting the job)
    exits 143 without a failure file: during training, Lightning stops at the next batch and
    ``last.ckpt`` is saved first, so the next start resumes. Normal ``sys.exit(0)`` passes.
    """
    _clear_stale_failure()
    _install_sigterm_handler()
    try:
        yield
    except StageFailed:
        raise
    except (Terminated, KeyboardInterrupt, SystemExit, Exception) as exc:
        _handle_stage_exit(name, exc)


def _handle_stage_exit(stage: str, exc: BaseException) -> None:
    if isinstance(exc, Terminated) or _is_lightning_sigterm(exc):
        where = f" at step {_stopped_at_step}" if _stopped_at_step is not None else ""
        saved = (
            f"; checkpoint saved{where} in {last_checkpoint_path()}, start again to resume"
            if _stopped_at_step is not None
            else ""
        )
        if is_rank_zero():
            print(f"stopped: {stage}: SIGTERM received{saved}", file=sys.stderr, flush=True)
        raise StageFailed(EXIT_TERMINATED) from exc
    interrupted = isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)
    )
    if interrupted:
        exc = exc if isinstance(exc, KeyboardInterrupt) else exc.__context__  # type: ignore[assignment]
        print(f"error: {stage}: interrupted", file=sys.stderr, flush=True)
        write_failure(stage, KeyboardInterrupt("interrupted (Ctrl-C)"))
        raise StageFailed(EXIT_INTERRUPTED) from exc
    if isinstance(exc, SystemExit):
        if exc.code in (None, 0):
            raise exc
        if isinstance(exc.code, int):
            # Someone already explained (argparse usage error, a nested tool): keep its status.
            write_failure(stage, RuntimeError(f"exited with status {exc.code}"))
            raise StageFailed(exc.code) from exc
        exc_for_record: BaseException = RuntimeError(str(exc.code))
        print(f"error: {stage}: {_one_line(exc.code)}", file=sys.stderr, flush=True)
        write_failure(stage, exc_for_record)
        raise StageFailed(EXIT_FAILURE) from exc
    print(
        f"error: {stage}: {type(exc).__name__}: {_one_line(str(exc))}",
        file=sys.stderr,
        flush=True,
    )
    if os.environ.get("TRAINKIT_TRACEBACK"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    write_failure(stage, exc)
    raise StageFailed(EXIT_FAILURE) from exc


# --------------------------------------------------------------------------- once-per-node setup


def _stable_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _setup_key(key: Any) -> str:
    if key is None:
        parts: dict[str, Any] = {"dataset_id": os.environ.get("DATASET_ID", "")}
        with contextlib.suppress(OSError):
            parts["train_config"] = Path("train_config.json").read_text(encoding="utf-8")
        minio = Path(os.environ.get("MINIO_ROOT") or DEFAULT_MINIO_ROOT)
        annotations = minio / "datasets" / parts["dataset_id"] / "annotations" / "annotations.xml"
        with contextlib.suppress(OSError):
            st = annotations.stat()
            parts["annotations"] = [st.st_size, st.st_mtime_ns]
        key = parts
    text = key if isinstance(key, str) else _stable_json(key)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path, waiting_message: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            log.info(waiting_message)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def setup_once(fn: Callable[[], Any], key: Any = None) -> bool:
    """Run `fn` (dataset setup) once per node and return True, or skip it and return False.

    All processes of a node may call this at once: an fcntl lock under $DATASETS_ROOT lets one
    run `fn` while the others wait, then they see its done-marker and skip. The marker holds
    `key` (default: DATASET_ID + train_config.json + the annotation file's size/mtime; both
    before and after `fn`, since setup.py's finalize_config rewrites train_config.json), so a
    re-started container skips the work and a changed dataset or config redoes it. If `fn`
    raises, no marker is written and the exception propagates."""
    root = datasets_root()
    marker = root / SETUP_DONE_FILENAME
    lock = root / SETUP_LOCK_FILENAME
    with _file_lock(lock, f"waiting for dataset setup by another process ({lock})"):
        before = _setup_key(key)
        with contextlib.suppress(OSError):
            if before in marker.read_text(encoding="utf-8").split():
                log.info("dataset setup already done in %s, skipping", root)
                return False
        marker.unlink(missing_ok=True)
        fn()
        after = _setup_key(key)
        _atomic_write_text(marker, "\n".join(dict.fromkeys([before, after])) + "\n")
        return True


# --------------------------------------------------------------------------- resume decision


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "__dict__"):
        return dict(vars(config))
    raise TypeError(f"config must be a mapping or an argparse.Namespace, not {type(config)}")


def _hashed_config(config: Any) -> dict[str, Any]:
    return {k: v for k, v in _as_dict(config).items() if k not in HASH_IGNORED_KEYS}


def config_hash(config: Any) -> str:
    """sha256 of the effective config (a dict or argparse.Namespace), keys sorted; keys that
    only choose where to run (HASH_IGNORED_KEYS: devices, num_nodes ...) are left out."""
    return hashlib.sha256(_stable_json(_hashed_config(config)).encode("utf-8")).hexdigest()


def _run_identity(config: Any) -> tuple[str, dict[str, Any]]:
    """The hash that checkpoints belong to: the config plus the dataset it trains on."""
    shown = {**_hashed_config(config), "DATASET_ID": os.environ.get("DATASET_ID", "")}
    return hashlib.sha256(_stable_json(shown).encode("utf-8")).hexdigest(), shown


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = set(old) | set(new)
    return sorted(k for k in keys if _stable_json(old.get(k)) != _stable_json(new.get(k)))


def _checkpoint_readable(path: Path) -> bool:
    """A torch.save file is a zip archive; a truncated one (killed while writing) is not."""
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _move_aside(reason: str) -> Path | None:
    """Move checkpoints/ and logs/ to previous-runs/<time>/ (rank 0 only); never deletes."""
    out = output_dir()
    movable = [
        out / name
        for name in (CHECKPOINT_DIRNAME, LOGS_DIRNAME)
        if (out / name).exists() and any((out / name).iterdir())
    ]
    if not movable or not is_rank_zero():
        return None
    dest = out / PREVIOUS_RUNS_DIRNAME / _utc_stamp()
    n = 1
    while dest.exists():
        n += 1
        dest = out / PREVIOUS_RUNS_DIRNAME / f"{_utc_stamp()}-{n}"
    dest.mkdir(parents=True)
    for src in movable:
        shutil.move(str(src), str(dest / src.name))
    _write_json(dest / "reason.json", {"reason": reason})
    return dest


def resume_checkpoint(config: Any) -> Path | None:
    """The checkpoint to resume from, or None to start fresh.

    Returns $OUTPUT_DIR/checkpoints/last.ckpt when it exists, is readable and was written for
    the same config (hash stored beside it in run.json; the dataset id counts too). On a
    changed config it says "config changed, starting fresh" (naming the changed keys) and moves
    the old checkpoints and logs to $OUTPUT_DIR/previous-runs/<time>/. On rank 0 it records the
    config's hash for this run. Multi-node: OUTPUT_DIR must be shared storage (as Lightning
    itself requires to resume)."""
    digest, shown = _run_identity(config)
    ckpt = last_checkpoint_path()
    state = _read_json(checkpoint_dir() / RUN_STATE_FILENAME)
    stored = state.get("config_hash") if state else None
    result: Path | None = None
    if stored == digest:
        if ckpt.is_file() and _checkpoint_readable(ckpt):
            if is_rank_zero():
                log.info("resuming from %s", ckpt)
            return ckpt
        if ckpt.exists():
            reason = f"{ckpt} is unreadable (truncated while writing?), starting fresh"
            if is_rank_zero():
                log.warning(reason)
            _move_aside(reason)
        else:
            _move_aside("no checkpoint of an earlier attempt, starting fresh")
    elif stored is not None or ckpt.exists():
        old = state.get("config", {}) if state else {}
        changed = ", ".join(_changed_keys(old, shown)) if old else "unknown: no run.json"
        reason = f"config changed ({changed}), starting fresh"
        dest = _move_aside(reason)
        if is_rank_zero():
            where = f"; previous checkpoints and logs moved to {dest}" if dest else ""
            log.warning("%s%s", reason, where)
    else:
        _move_aside("starting fresh")
    if is_rank_zero():
        _write_json(
            checkpoint_dir() / RUN_STATE_FILENAME,
            {"config_hash": digest, "config": shown, "started": _utc_stamp()},
        )
    return result


def finished_info(config: Any) -> dict[str, Any] | None:
    """What mark_finished recorded for this config (None when this config has not finished)."""
    digest, _ = _run_identity(config)
    info = _read_json(checkpoint_dir() / FINISHED_FILENAME)
    if info and info.get("config_hash") == digest:
        return info
    return None


def run_finished(config: Any) -> bool:
    """True when a run with this config (and dataset) already finished in $OUTPUT_DIR: a
    restarted container then skips training (and re-exports only if the model is missing)."""
    return finished_info(config) is not None


def mark_finished(config: Any, **info: Any) -> None:
    """Record that the run with this config finished (rank 0; extra `info` such as the score is
    stored and returned by finished_info) and remove a stale failure file."""
    if not is_rank_zero():
        return
    digest, _ = _run_identity(config)
    _write_json(
        checkpoint_dir() / FINISHED_FILENAME,
        {**info, "config_hash": digest, "finished": _utc_stamp()},
    )
    with contextlib.suppress(FileNotFoundError):
        failure_path().unlink()


# --------------------------------------------------------------------------- Lightning Trainer


def _launcher() -> str | None:
    """'torchrun' (torch elastic), 'cluster' (MASTER_ADDR/WORLD_SIZE/RANK without LOCAL_RANK:
    e.g. a Kubeflow PyTorchJob, one process per pod) or None (Lightning launches processes)."""
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        return "torchrun"
    env = os.environ
    if (
        all(env.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"))
        and "LOCAL_RANK" not in env
        and "SLURM_PROCID" not in env
    ):
        return "cluster"
    return None


def _get(args: Any, key: str, default: Any) -> Any:
    value = args.get(key) if isinstance(args, Mapping) else getattr(args, key, None)
    return default if value is None or value == "" else value


def _parse_devices(value: Any) -> int | str | list[int]:
    if isinstance(value, (int, list)):
        return value
    text = str(value).strip()
    if text == "auto":
        return "auto"
    if "," in text:
        return [int(v) for v in text.split(",") if v.strip()]
    try:
        return int(text)
    except ValueError:
        return text


_PRECISIONS = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def _parse_precision(value: Any) -> str:
    text = str(value).strip()
    return _PRECISIONS.get(text, text)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def trainer_kwargs(
    args: Any,
    *,
    monitor: str | None = None,
    mode: str = "max",
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for lightning.Trainer from the parsed args (or config dict).

    - accelerator / devices / num_nodes / strategy / precision from args (defaults
      auto / auto / 1 / auto / 32). Under torchrun (devices = LOCAL_WORLD_SIZE, num_nodes =
      WORLD_SIZE / LOCAL_WORLD_SIZE) or a cluster env with MASTER_ADDR, MASTER_PORT,
      WORLD_SIZE, RANK (one process per node, NODE_RANK = RANK) the launcher's world wins, and
      Lightning joins its process group: DDP with gloo on CPU, nccl on GPU.
    - progress bar only when stderr is a terminal (platform logs stay readable);
    - CSVLogger in $OUTPUT_DIR/logs (+ TensorBoard in logs/tensorboard when installed);
    - ModelCheckpoints in $OUTPUT_DIR/checkpoints: best.ckpt by `monitor` (mode max|min) when
      given (first, so ckpt_path="best" finds it), and last.ckpt at every epoch end;
    - on SIGTERM Lightning stops at the next batch; our callback saves last.ckpt first.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    accelerator = str(_get(args, "accelerator", "auto"))
    devices = _parse_devices(_get(args, "devices", "auto"))
    num_nodes = int(_get(args, "num_nodes", 1))
    strategy: Any = _get(args, "strategy", "auto")
    precision = _parse_precision(_get(args, "precision", "32"))
    plugins: list[Any] = []

    launcher = _launcher()
    env_world = world_size()
    if launcher == "torchrun":
        per_node = _env_int("LOCAL_WORLD_SIZE") or 1
        want = (per_node, max(1, env_world // per_node))
        if (devices, num_nodes) != want and is_rank_zero():
            log.info(
                "torchrun started %d process(es) on each of %d node(s): using devices=%d "
                "num_nodes=%d (args said devices=%s num_nodes=%s)",
                want[0],
                want[1],
                want[0],
                want[1],
                devices,
                num_nodes,
            )
        devices, num_nodes = want
    elif launcher == "cluster" and env_world > 1:
        from lightning.pytorch.plugins.environments import KubeflowEnvironment

        if (devices, num_nodes) != (1, env_world) and is_rank_zero():
            log.info(
                "cluster launcher env: WORLD_SIZE=%d processes, one per node: using devices=1 "
                "num_nodes=%d",
                env_world,
                env_world,
            )
        devices, num_nodes = 1, env_world
        plugins.append(KubeflowEnvironment())

    processes = (devices if isinstance(devices, int) else 1) * num_nodes
    if isinstance(devices, list):
        processes = len(devices) * num_nodes
    if strategy == "auto" and processes > 1:
        from lightning.pytorch.strategies import DDPStrategy

        on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and _cuda_available())
        strategy = DDPStrategy(process_group_backend="nccl" if on_gpu else "gloo")

    _destroy_process_group_at_exit()
    out = output_dir()
    loggers: list[Any] = [_csv_logger(out)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(save_dir=str(out), name=LOGS_DIRNAME, version="tensorboard")
        )

    # Two callbacks: Lightning 2.6 writes `save_last` only in a step where a top-k checkpoint
    # was saved, so last.ckpt would go stale once the score stops improving. The best one comes
    # first: trainer.test/validate(ckpt_path="best") use the first ModelCheckpoint.
    checkpoints: list[Any] = []
    if monitor:
        checkpoints.append(
            ModelCheckpoint(
                dirpath=str(checkpoint_dir()),
                filename=BEST_CHECKPOINT_NAME,
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                save_last=False,
                enable_version_counter=False,
            )
        )
    checkpoints.append(
        ModelCheckpoint(
            dirpath=str(checkpoint_dir()),
            filename=Path(LAST_CHECKPOINT_FILENAME).stem,
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        )
    )
    kwargs: dict[str, Any] = {
        "accelerator": accelerator,
        "devices": devices,
        "num_nodes": num_nodes,
        "strategy": strategy,
        "precision": precision,
        "default_root_dir": str(out),
        "enable_progress_bar": sys.stderr.isatty(),
        "logger": loggers,
        "callbacks": [*checkpoints, _sigterm_callback(), *(callbacks or [])],
    }
    if plugins:
        kwargs["plugins"] = plugins
    return kwargs


_exit_hook_registered = False


def _destroy_process_group_at_exit() -> None:
    """Lightning leaves the DDP process group alive after fit/test; tearing it down explicitly
    at exit (rather than in the interpreter's finalisation, with gloo threads still running)
    lets ranks that finish early exit cleanly."""
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    _exit_hook_registered = True

    def destroy() -> None:
        dist = sys.modules.get("torch.distributed")
        if dist is None:
            return
        with contextlib.suppress(Exception):
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()

    atexit.register(destroy)


def _csv_logger(out: Path) -> Any:
    """CSVLogger writing $OUTPUT_DIR/logs/metrics.csv that, on resume, appends to the file of
    the interrupted attempt (Lightning's own writer deletes it) and keeps its columns."""
    import csv

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter
    from lightning.pytorch.loggers.logger import rank_zero_experiment

    class AppendingExperimentWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            try:
                with Path(self.metrics_file_path).open(newline="", encoding="utf-8") as fh:
                    header = next(csv.reader(fh), [])
            except OSError:
                return
            self.metrics_keys = sorted(set(header))

    class AppendingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self._experiment is None:
                Path(self.log_dir).mkdir(parents=True, exist_ok=True)
                self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
            return self._experiment

    return AppendingCSVLogger(save_dir=str(out), name=LOGS_DIRNAME, version="")


def _sigterm_callback() -> Any:
    from lightning.pytorch.callbacks import Callback

    class SigtermCheckpoint(Callback):
        """Saves last.ckpt when Lightning stops fit on SIGTERM (its SIGTERMException, raised
        on every rank at the same batch), atomically, so a restart resumes from there."""

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            global _lightning_handles_sigterm
            _lightning_handles_sigterm = True

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            global _lightning_handles_sigterm
            _lightning_handles_sigterm = False

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            global _stopped_at_step
            if not _is_lightning_sigterm(exception) or trainer.state.fn != "fit":
                return
            final = last_checkpoint_path()
            tmp = final.with_name(f".{final.name}.sigterm.tmp")
            trainer.save_checkpoint(str(tmp))  # collective: every rank is here (same batch)
            if trainer.is_global_zero:
                tmp.replace(final)
                log.info("SIGTERM: saved %s at step %d", final, trainer.global_step)
            _stopped_at_step = trainer.global_step

    return SigtermCheckpoint()
