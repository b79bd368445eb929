"""The run lifecycle of a train container's ``train.py``, on Lightning's own machinery.

A generated ``train.py`` is one decorated function (lightning-hydra-template's ``task_wrapper``
idea)::

    @lifecycle.train_task(score_name="Accuracy", monitor="val_accuracy", model_class=Model,
                          setup=setup.main)
    def main(run: lifecycle.Run) -> None:
        trainer = L.Trainer(max_epochs=run.args.epochs, **run.trainer_kwargs())
        trainer.fit(model, datamodule=datamodule, ckpt_path=run.resume)
        trainer.validate(model, datamodule=datamodule, ckpt_path="best")

``train_task`` does, around that function: dataset set-up once per node (``setup_once``), the
argv (``schema_args.parse_train_args``), the finished-run skip (re-export only a missing model,
re-print the stored score), the config-hash guard (a changed config starts fresh and moves the
old checkpoints and logs aside), the failure file and exit codes (``run_stage``), and on rank 0
the ONNX export and the score line. What Lightning does itself is left to it:

- launchers: ``TorchElasticEnvironment`` (torchrun), ``SLURMEnvironment`` and
  ``LightningEnvironment`` are detected by Lightning; ``KubeflowEnvironment`` (a PyTorchJob's
  ``MASTER_ADDR MASTER_PORT WORLD_SIZE RANK``, one process per pod) cannot be detected by
  Lightning 2.6 and is passed as a plugin here. ``devices``/``num_nodes`` follow the launcher's
  world (Lightning refuses a mismatch).
- checkpoints: ``ModelCheckpoint`` ``best.ckpt`` (by the score), ``last.ckpt`` at every epoch
  end, ``last.ckpt`` every ``checkpoint-minutes`` of training (``train_time_interval`` with
  ``save_last=True``) and, on SIGTERM, ``OnExceptionCheckpoint``; resume is
  ``trainer.fit(ckpt_path="last")``. Lightning 2.6's ``save_last=True`` on the monitored
  callback alone writes ``last.ckpt`` only in a step where the score improved
  (``ModelCheckpoint.on_validation_end``), so ``last.ckpt`` has its own unmonitored callback.
- ``CSVLogger`` in ``$OUTPUT_DIR/logs`` (appending on resume), ``rank_zero_only`` output.

Glue Lightning lacks, kept here: the config-hash guard, the finished marker, the first-wins
failure file, SIGTERM outside training and its exit code 143 (also when Python is not PID 1),
once-per-node set-up before the Trainer exists (an fcntl lock; ``setup.py`` adds
``num-classes`` to the config that becomes the argv, so Lightning's ``prepare_data`` would run
too late), atomic checkpoint writes (a SIGKILL while writing must not truncate ``last.ckpt``).

Files under ``$OUTPUT_DIR`` (default /workspace/output): ``failure`` (JSON ``{"stage", "type",
"message", "rank", "time", "traceback"[, "hint"]}``, first failure wins), ``checkpoints/``
(``last.ckpt``, ``best.ckpt``, ``run.json`` = the config hash they belong to,
``finished.json``), ``logs/metrics.csv``, ``previous-runs/<UTC time>/`` (moved aside, never
deleted). Exit codes: 1 on an exception, 130 on Ctrl-C, 143 after SIGTERM.

Stdlib only at import (``setup.py`` imports ``run_stage``/``setup_once``): torch and Lightning
are imported where they are used.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit_runtime.atomic_files import write_text_atomically

DEFAULT_OUTPUT_DIR = "/workspace/output"
DEFAULT_DATASETS_ROOT = "/datasets"
DEFAULT_MINIO_ROOT = "/minio"
DEFAULT_CHECKPOINT_MINUTES = 10.0  # = config.jsonschema's checkpoint-minutes default

FAILURE_FILENAME = "failure"
CHECKPOINT_DIRNAME = "checkpoints"
LAST_CHECKPOINT_FILENAME = "last.ckpt"
BEST_CHECKPOINT_NAME = "best"
RUN_STATE_FILENAME = "run.json"
FINISHED_FILENAME = "finished.json"
LOGS_DIRNAME = "logs"
PREVIOUS_RUNS_DIRNAME = "previous-runs"
SETUP_LOCK_FILENAME = ".trainkit-setup.lock"
SETUP_DONE_FILENAME = ".trainkit-setup-done"

# Keys that choose *how* to run, not *what* to train: changing them resumes (a Lightning
# checkpoint holds the full state, so the number of devices may change).
HASH_IGNORED_KEYS = frozenset(
    {"accelerator", "devices", "num_nodes", "strategy", "num_workers", "workers"}
    | {"checkpoint_minutes"}
)
TRACEBACK_FRAMES = 8
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


log = logging.getLogger("trainkit_runtime.lifecycle")
if not log.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("trainkit: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


# --------------------------------------------------------------------------- ranks and paths


def _env_int(*names: str) -> int | None:
    for name in names:
        with contextlib.suppress(KeyError, ValueError):
            return int(os.environ[name])
    return None


def global_rank() -> int:
    """This process's rank before and outside the Trainer (inside, ``trainer.global_rank``):
    the launcher's env in the order of Lightning's ``rank_zero_only`` (``RANK``, ``LOCAL_RANK``,
    ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``); under Lightning's own multi-node launcher (no
    ``RANK``) a node with ``NODE_RANK`` > 0 holds no rank zero."""
    rank = _env_int("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK") or 0
    if "RANK" not in os.environ and (node := _env_int("NODE_RANK") or 0) > 0:
        return node * 1000 + rank
    return rank


def is_rank_zero() -> bool:
    """True in exactly one process of the job: it prints the score, writes model and files."""
    return global_rank() == 0


def output_dir() -> Path:
    return Path(os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)


def datasets_root() -> Path:
    return Path(os.environ.get("DATASETS_ROOT") or DEFAULT_DATASETS_ROOT)


def checkpoint_dir() -> Path:
    return output_dir() / CHECKPOINT_DIRNAME


def last_checkpoint_path() -> Path:
    return checkpoint_dir() / LAST_CHECKPOINT_FILENAME


def failure_path() -> Path:
    return output_dir() / FAILURE_FILENAME


def _atomic_write_text(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write via a temp file + rename (readers never see half a file). ``exclusive``: keep an
    existing file (first writer wins) and return False."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, text, exclusive=exclusive)


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
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


# A failure file older than this (minus a second of /proc tick rounding) is an earlier attempt's.
ATTEMPT_START = _process_start_time()


# --------------------------------------------------------------------------- failures and stages


class StageFailed(SystemExit):
    """Raised by run_stage after it reported a failure; outer stages pass it through."""


class Terminated(SystemExit):
    """SIGTERM outside Lightning's fit (see run_stage)."""

    def __init__(self) -> None:
        super().__init__(EXIT_TERMINATED)


_state: dict[str, Any] = {"stale_checked": False, "in_fit": False, "stopped_at": None}


def _one_line(text: object, limit: int = 1000) -> str:
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
    """Record why the run failed in ``$OUTPUT_DIR/failure`` (JSON, atomic). The first failure
    of a run wins: another rank's later "connection closed by peer" keeps the cause."""
    record: dict[str, Any] = {
        "stage": stage,
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "rank": global_rank(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "traceback": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-TRACEBACK_FRAMES)
        ),
    }
    if hint := _hint(exc):
        record["hint"] = hint
    try:
        written = _atomic_write_text(
            failure_path(), json.dumps(record, indent=2) + "\n", exclusive=True
        )
    except OSError as write_exc:
        log.warning("could not write %s: %s", failure_path(), write_exc)
        return None
    return failure_path() if written else None


def read_failure(out_dir: Path | None = None) -> dict[str, Any] | None:
    return _read_json((out_dir or output_dir()) / FAILURE_FILENAME)


def clear_stale_failure(attempt_start: float | None = None) -> bool:
    """On rank 0: remove a failure file older than this attempt (an earlier attempt's), so a
    successful re-run does not look failed. Returns True when it removed one."""
    start = ATTEMPT_START if attempt_start is None else attempt_start
    if not is_rank_zero():
        return False
    with contextlib.suppress(OSError):
        if failure_path().stat().st_mtime < start - 1.0:
            failure_path().unlink()
            return True
    return False


def _on_sigterm(signum: int, frame: Any) -> None:
    # During fit Lightning's own handler calls this one too; then Lightning stops at the next
    # batch boundary (SIGTERMException on every rank) and we must not interrupt it.
    if not _state["in_fit"]:
        raise Terminated()


def _install_sigterm_handler() -> None:
    """SIGTERM raises Terminated (exit 143), also as PID 1 where the default action is none."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _is_sigterm(exc: BaseException) -> bool:
    return isinstance(exc, Terminated) or type(exc).__name__ == "SIGTERMException"


@contextlib.contextmanager
def run_stage(name: str | Callable[[], str]) -> Iterator[None]:
    """Run one stage (setup, args, train, validate, export ...; ``name`` may be a callable
    read when the stage fails). An exception ends the process: one line
    ``error: <stage>: <Type>: <message>`` on stderr, the failure file, exit 1. Ctrl-C exits 130
    (failure file says so); SIGTERM exits 143 without a failure file (the run was stopped, not
    broken). ``sys.exit(0)`` passes; a non-zero ``sys.exit`` keeps its status."""
    if not _state["stale_checked"]:
        _state["stale_checked"] = True
        clear_stale_failure()
    _install_sigterm_handler()
    try:
        yield
    except StageFailed:
        raise
    except (KeyboardInterrupt, SystemExit, Exception) as exc:
        _fail(name() if callable(name) else name, exc)


def _fail(stage: str, exc: BaseException) -> None:
    if _is_sigterm(exc):
        at = _state["stopped_at"]
        saved = "" if at is None else f"; checkpoint saved at step {at} in {last_checkpoint_path()}"
        if is_rank_zero():
            print(f"stopped: {stage}: SIGTERM received{saved}", file=sys.stderr, flush=True)
        raise StageFailed(EXIT_TERMINATED) from exc
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
        print(f"error: {stage}: interrupted", file=sys.stderr, flush=True)
        write_failure(stage, KeyboardInterrupt("interrupted (Ctrl-C)"))
        raise StageFailed(EXIT_INTERRUPTED) from exc
    if isinstance(exc, SystemExit):
        if exc.code in (None, 0):
            raise exc
        if isinstance(exc.code, int):  # someone already explained (argparse usage error)
            write_failure(stage, RuntimeError(f"exited with status {exc.code}"))
            raise StageFailed(exc.code) from exc
        exc = RuntimeError(str(exc.code))
        print(f"error: {stage}: {_one_line(exc)}", file=sys.stderr, flush=True)
    else:
        print(
            f"error: {stage}: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr, flush=True
        )
    if os.environ.get("TRAINKIT_TRACEBACK"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    write_failure(stage, exc)
    raise StageFailed(EXIT_FAILURE) from exc


# --------------------------------------------------------------------------- once-per-node setup


def _stable_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _data_mode() -> str:
    """The configured data mode (staging.py): switching stage/stream redoes the setup."""
    from trainkit_runtime.dataset import DatasetError
    from trainkit_runtime.staging import configured_mode

    try:
        return configured_mode()
    except DatasetError as exc:  # setup itself reports it
        return str(exc)


def _setup_key(key: Any) -> str:
    if key is None:
        parts: dict[str, Any] = {"dataset_id": os.environ.get("DATASET_ID", "")}
        with contextlib.suppress(OSError):
            parts["train_config"] = Path("train_config.json").read_text(encoding="utf-8")
        minio = Path(os.environ.get("MINIO_ROOT") or DEFAULT_MINIO_ROOT)
        xml = minio / "datasets" / parts["dataset_id"] / "annotations" / "annotations.xml"
        with contextlib.suppress(OSError):
            parts["annotations"] = [xml.stat().st_size, xml.stat().st_mtime_ns]
        parts["data_mode"] = _data_mode()
        key = parts
    text = key if isinstance(key, str) else _stable_json(key)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def node_lock(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on ``path`` (blocks while another process holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def setup_once(fn: Callable[[], Any], key: Any = None) -> bool:
    """Run ``fn`` (the dataset set-up) once per node and return True, or skip it (False).

    Every process of a node may call this at once: a lock under $DATASETS_ROOT lets one run
    ``fn`` while the others wait, then they find its done-marker and skip. The marker holds
    ``key`` (default: DATASET_ID + train_config.json + the annotation file's size/mtime + the
    data mode, before and after ``fn``, since setup.py's finalize_config rewrites
    train_config.json), so a restarted container skips the work and a changed dataset, config
    or data mode redoes it. If ``fn`` raises, no marker is written."""
    root = datasets_root()
    marker = root / SETUP_DONE_FILENAME
    with node_lock(root / SETUP_LOCK_FILENAME):
        before = _setup_key(key)
        with contextlib.suppress(OSError):
            if before in marker.read_text(encoding="utf-8").split():
                log.info("dataset setup already done in %s, skipping", root)
                return False
        marker.unlink(missing_ok=True)
        fn()
        after = _setup_key(key)
        _atomic_write_text(marker, "\n".join(dict.fromkeys([before, after])) + "\n")
        log.info("dataset set up in %s", root)
        return True


# --------------------------------------------------------------------------- config-hash guard


def _as_dict(config: Any) -> dict[str, Any]:
    return dict(config) if isinstance(config, Mapping) else dict(vars(config))


def _hashed_config(config: Any) -> dict[str, Any]:
    return {k: v for k, v in _as_dict(config).items() if k not in HASH_IGNORED_KEYS}


def config_hash(config: Any) -> str:
    """sha256 of the effective config (dict or Namespace, keys sorted), without the keys that
    only choose where to run (HASH_IGNORED_KEYS)."""
    return hashlib.sha256(_stable_json(_hashed_config(config)).encode("utf-8")).hexdigest()


def _run_identity(config: Any) -> tuple[str, dict[str, Any]]:
    """The hash checkpoints belong to: the config plus the dataset it trains on."""
    shown = {**_hashed_config(config), "DATASET_ID": os.environ.get("DATASET_ID", "")}
    return hashlib.sha256(_stable_json(shown).encode("utf-8")).hexdigest(), shown


def _readable(path: Path) -> bool:
    """A torch.save file is a zip archive; a truncated one is not."""
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
        if (out / name).is_dir() and any((out / name).iterdir())
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


def resume_from(config: Any) -> str | None:
    """``"last"`` (for ``trainer.fit(ckpt_path=...)``) when $OUTPUT_DIR/checkpoints holds a
    readable ``last.ckpt`` of the same config and dataset (hash in ``run.json``), else None.

    The decision is the same on every rank (read-only but for rank 0, which on a fresh start
    moves old checkpoints and logs to previous-runs/<time>/, says why — "config changed
    (<keys>), starting fresh" — and records this config's hash). Multi-node resume needs
    OUTPUT_DIR on storage the nodes share."""
    digest, shown = _run_identity(config)
    state = _read_json(checkpoint_dir() / RUN_STATE_FILENAME) or {}
    last = last_checkpoint_path()
    if state.get("config_hash") == digest and last.is_file() and _readable(last):
        if is_rank_zero():
            log.info("resuming from %s", last)
        return "last"
    if state.get("config_hash") == digest:
        reason = (
            f"{last} is unreadable, starting fresh"
            if last.exists()
            else "no checkpoint of an earlier attempt, starting fresh"
        )
    elif state or last.exists():
        old = state.get("config") or {}
        changed = ", ".join(
            sorted(
                k
                for k in set(old) | set(shown)
                if _stable_json(old.get(k)) != _stable_json(shown.get(k))
            )
        )
        reason = f"config changed ({changed or 'unknown: no run.json'}), starting fresh"
    else:
        reason = "starting fresh"
    earlier = bool(state) or last.exists()
    dest = _move_aside(reason)
    if is_rank_zero():
        if earlier:
            log.warning(
                "%s%s", reason, f"; previous checkpoints and logs moved to {dest}" if dest else ""
            )
        _write_json(
            checkpoint_dir() / RUN_STATE_FILENAME,
            {"config_hash": digest, "config": shown, "started": _utc_stamp()},
        )
    return None


def finished_info(config: Any) -> dict[str, Any] | None:
    """What mark_finished recorded for this config and dataset (None: not finished)."""
    info = _read_json(checkpoint_dir() / FINISHED_FILENAME)
    return info if info and info.get("config_hash") == _run_identity(config)[0] else None


def mark_finished(config: Any, **info: Any) -> None:
    """Record (rank 0) that the run with this config finished, with ``info`` (the score)."""
    if not is_rank_zero():
        return
    record = {**info, "config_hash": _run_identity(config)[0], "finished": _utc_stamp()}
    _write_json(checkpoint_dir() / FINISHED_FILENAME, record)
    failure_path().unlink(missing_ok=True)


# --------------------------------------------------------------------------- the Trainer


def _arg(args: Any, key: str, default: Any) -> Any:
    value = args.get(key) if isinstance(args, Mapping) else getattr(args, key, None)
    return default if value is None or value == "" else value


def launcher_world(args: Any) -> tuple[Any, int, list[Any]]:
    """(devices, num_nodes, cluster-environment plugins) for the Trainer: the config's, unless
    a launcher started the processes; then its world (Lightning refuses a mismatch):
    torchrun → LOCAL_WORLD_SIZE per node; SLURM → tasks per node; a PyTorchJob's env (MASTER_ADDR,
    MASTER_PORT, WORLD_SIZE, RANK, no LOCAL_RANK) → one process per pod, KubeflowEnvironment."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    env = os.environ
    world = _env_int("WORLD_SIZE") or 1
    if TorchElasticEnvironment.detect():
        per_node = _env_int("LOCAL_WORLD_SIZE") or 1
        return per_node, max(1, world // per_node), []
    if SLURMEnvironment.detect():
        nodes = _env_int("SLURM_NNODES") or 1
        return max(1, (_env_int("SLURM_NTASKS") or 1) // nodes), nodes, []
    keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
    if all(env.get(k) for k in keys) and "LOCAL_RANK" not in env and world > 1:
        from lightning.pytorch.plugins.environments import KubeflowEnvironment

        return 1, world, [KubeflowEnvironment()]
    return _arg(args, "devices", "auto"), int(_arg(args, "num_nodes", 1)), []


def trainer_kwargs(
    args: Any, *, monitor: str | None = None, mode: str = "max", run: Run | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``lightning.Trainer`` from the parsed args: accelerator, devices,
    num_nodes, strategy, precision (Lightning chooses DDP and gloo/nccl itself), the launcher's
    world (launcher_world), CSV logs and checkpoints under $OUTPUT_DIR, a progress bar only on
    a terminal, atomic checkpoint writes."""
    devices, num_nodes, plugins = launcher_world(args)
    out = output_dir()
    minutes = float(_arg(args, "checkpoint_minutes", DEFAULT_CHECKPOINT_MINUTES))
    _destroy_process_group_at_exit()
    return {
        "accelerator": _arg(args, "accelerator", "auto"),
        "devices": devices,
        "num_nodes": num_nodes,
        "strategy": _arg(args, "strategy", "auto"),
        "precision": str(_arg(args, "precision", "32")),
        "default_root_dir": str(out),
        "enable_progress_bar": sys.stderr.isatty(),
        "logger": _csv_logger(out),
        "callbacks": [_run_callback(run), *_checkpoints(monitor, mode, minutes)],
        "plugins": [*plugins, _atomic_checkpoint_io()],
    }


def _checkpoints(monitor: str | None, mode: str, minutes: float) -> list[Any]:
    """best.ckpt by ``monitor`` (first: ckpt_path="best" uses the first ModelCheckpoint);
    last.ckpt at every epoch end and every ``minutes`` of training; last.ckpt on SIGTERM."""
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    class StopCheckpoint(Callback):
        """last.ckpt when fit stops on SIGTERM. Lightning raises SIGTERMException on every
        rank at the same batch, so this collective save is safe. Not OnExceptionCheckpoint:
        that saves after any exception (a rank's peers may then sit in an all-reduce: a hang),
        deletes its file at teardown, and turns fit(ckpt_path=None) into "last" (the ranks
        would race rank 0 moving a changed config's checkpoints aside)."""

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if _is_sigterm(exception) and trainer.state.fn == "fit":
                trainer.save_checkpoint(last_checkpoint_path())
                _state["stopped_at"] = trainer.global_step
                if trainer.is_global_zero:
                    log.info(
                        "SIGTERM: saved %s at step %d", last_checkpoint_path(), trainer.global_step
                    )

    ckpt_dir = str(checkpoint_dir())
    last = Path(LAST_CHECKPOINT_FILENAME).stem
    best = (
        [
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename=BEST_CHECKPOINT_NAME,
                monitor=monitor,
                mode=mode,
                enable_version_counter=False,
            )
        ]
        if monitor
        else []
    )
    return [
        *best,
        ModelCheckpoint(dirpath=ckpt_dir, filename=last, enable_version_counter=False),
        ModelCheckpoint(
            dirpath=ckpt_dir,
            save_top_k=0,
            save_last=True,
            train_time_interval=_dt.timedelta(minutes=minutes),
            enable_version_counter=False,
        ),
        StopCheckpoint(),
    ]


def _atomic_checkpoint_io() -> Any:
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Writes a checkpoint under a temporary name and renames it, so a SIGKILL while
        saving leaves the previous last.ckpt intact (Lightning writes in place)."""

        def save_checkpoint(self, checkpoint: Any, path: Any, storage_options: Any = None) -> None:
            target = Path(path)
            tmp = target.with_name(f".{target.name}.partial")
            super().save_checkpoint(checkpoint, tmp, storage_options)
            tmp.replace(target)

    return AtomicCheckpointIO()


def _csv_logger(out: Path) -> Any:
    """CSVLogger writing $OUTPUT_DIR/logs/metrics.csv that appends on resume (Lightning's own
    writer deletes the file of the interrupted attempt) and keeps its columns."""
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter
    from lightning.pytorch.loggers.logger import rank_zero_experiment

    class AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            with contextlib.suppress(OSError), Path(self.metrics_file_path).open() as fh:
                self.metrics_keys = sorted(set(next(csv.reader(fh), [])))

    class AppendingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self._experiment is None:
                self._experiment = AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    return AppendingCSVLogger(save_dir=str(out), name=LOGS_DIRNAME, version="")


def _destroy_process_group_at_exit() -> None:
    """Tear the DDP process group down at exit (Lightning leaves it alive), so ranks that
    finish early exit cleanly instead of in the interpreter's finalisation."""
    if _state.get("atexit"):
        return
    _state["atexit"] = True

    def destroy() -> None:
        dist = sys.modules.get("torch.distributed")
        with contextlib.suppress(Exception):
            if dist is not None and dist.is_initialized():
                dist.destroy_process_group()

    import atexit

    atexit.register(destroy)


def _run_callback(run: Run | None) -> Any:
    from lightning.pytorch.callbacks import Callback

    class RunCallback(Callback):
        """Tells the runtime what Lightning is doing: the stage a failure belongs to, that
        Lightning handles SIGTERM during fit, the Trainer (for the score and the export), and
        prints the world Lightning runs in, once."""

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            stage = str(getattr(stage, "value", stage))  # TrainerFn: fit, validate, test
            _state["in_fit"] = stage == "fit"
            if run is not None:
                run.trainer = trainer
                run.stage = {"fit": "train"}.get(stage, stage)
            if stage == "fit" and trainer.is_global_zero:
                strategy = trainer.strategy
                env = getattr(strategy, "cluster_environment", None)
                backend = getattr(strategy, "_process_group_backend", None)
                log.info(
                    "world size %d: %d node(s) x %d process(es), %s, %s%s",
                    trainer.world_size,
                    trainer.num_nodes,
                    trainer.num_devices,
                    type(env).__name__ if env else "no launcher",
                    type(strategy).__name__,
                    f" ({backend})" if backend else "",
                )

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            # Lightning 2.6's SIGTERM handler calls dist.broadcast inside the signal handler; a
            # rank that sits in a gradient all-reduce then never matches it: both hang until
            # torchrun kills them. Here the handler only takes note ...
            _state["sigterm"] = False
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, lambda *_: _state.update(sigterm=True))

        def on_train_batch_start(self, trainer: Any, *_: Any) -> None:
            # ... and the ranks agree on it at the same batch (a max all-reduce), so Lightning
            # stops every rank after this batch (its SIGTERMException) and StopCheckpoint saves.
            import torch

            flag = torch.tensor([int(_state.get("sigterm", False))])
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                flag = flag.to(trainer.strategy.root_device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item():
                trainer._signal_connector.received_sigterm = True  # Lightning's own stop flag

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            _state["in_fit"] = False

    return RunCallback()


# --------------------------------------------------------------------------- the one API


@dataclass
class Run:
    """What ``train_task`` hands the train function."""

    args: Any  # argparse.Namespace from config.jsonschema (schema_args.parse_train_args)
    monitor: str  # the logged validation metric that is the score; ranks best.ckpt
    mode: str = "max"
    resume: str | None = None  # "last" or None: trainer.fit(..., ckpt_path=run.resume)
    trainer: Any = field(default=None, repr=False)  # the Trainer built with trainer_kwargs()
    stage: str = "train"  # the stage a failure is reported in (follows the Trainer)

    @property
    def datasets_root(self) -> str:
        """$DATASETS_ROOT as a str (it lands in the checkpoint's hyperparameters, which
        Lightning loads with torch's weights_only=True: no Path objects)."""
        return str(datasets_root())

    @property
    def best(self) -> str | None:
        """``"best"`` for ``trainer.validate(ckpt_path=...)`` once best.ckpt was written, else
        None (validate the weights as they are: fit stopped before its first validation)."""
        callback = getattr(self.trainer, "checkpoint_callback", None)
        return "best" if getattr(callback, "best_model_path", "") else None

    def trainer_kwargs(self, callbacks: list[Any] | None = None) -> dict[str, Any]:
        """``lightning.Trainer(**run.trainer_kwargs())``: see trainer_kwargs(); ``callbacks``
        (e.g. EarlyStopping) are added to the runtime's own."""
        kwargs = trainer_kwargs(self.args, monitor=self.monitor, mode=self.mode, run=self)
        kwargs["callbacks"] += callbacks or []
        return kwargs


def model_filepath() -> Path:
    """custom.json's model_filepath name, in $OUTPUT_DIR (the ONNX file goes beside it)."""
    custom = _read_json(Path("custom.json")) or {}
    return output_dir() / Path(str(custom.get("model_filepath") or "model.pt")).name


def exportable(module: Any) -> Any:
    """What gets exported of a LightningModule: ``export_module()`` if it defines one, else its
    ``net`` attribute (the templates' plain torch network), else the module itself."""
    import torch

    if callable(getattr(module, "export_module", None)):
        module = module.export_module()
    elif isinstance(getattr(module, "net", None), torch.nn.Module):
        module = module.net
    return module.cpu().eval()


def _save_state_dict(net: Any, path: str) -> None:
    """The fallback when the ONNX export fails: the weights as a state dict."""
    import torch

    torch.save(net.state_dict(), path)


def export(module: Any) -> Path:
    """ONNX beside model_filepath() (checked with onnxruntime), else the state dict."""
    from trainkit_runtime.export import export_model

    return export_model(exportable(module), model_filepath(), "pytorch", _save_state_dict)


def _print_score(score_name: str, score: float) -> None:
    # custom.json's score_regexp reads this line (the platform takes the last float it finds).
    print(f"{score_name}: {score:.4f}", flush=True)


def _score(run: Run) -> float:
    if run.trainer is None:
        raise RuntimeError("build the Trainer with lightning.Trainer(**run.trainer_kwargs())")
    metrics = run.trainer.callback_metrics
    if run.monitor not in metrics:
        raise KeyError(f"score metric {run.monitor!r} not logged (logged: {', '.join(metrics)})")
    return float(metrics[run.monitor])


def _report_finished(info: Mapping[str, Any], model_class: Any, score_name: str) -> None:
    """A finished run started again: no training; re-export only a missing model (from
    best.ckpt, else last.ckpt), print the stored score line again (rank 0)."""
    if not is_rank_zero():
        return
    target = model_filepath()
    if not (target.exists() or target.with_suffix(".onnx").exists()):
        best = checkpoint_dir() / f"{BEST_CHECKPOINT_NAME}.ckpt"
        ckpt = best if best.is_file() else last_checkpoint_path()
        module = model_class.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
        log.info("finished run: re-exported %s from %s", export(module), ckpt)
    log.info("run already finished (%s), not training again", info.get("finished", "?"))
    _print_score(score_name, float(info["score"]))


def train_task(
    *,
    score_name: str,
    monitor: str,
    model_class: Any,
    setup: Callable[[], Any] | None = None,
    mode: str = "max",
    parse_args: Callable[[], Any] | None = None,
) -> Callable[[Callable[[Run], Any]], Callable[[], None]]:
    """Decorate train.py's train function ``fn(run: Run)``, which builds the Trainer with
    ``**run.trainer_kwargs()``, fits with ``ckpt_path=run.resume`` and validates last.

    The decorated function takes no arguments. In order: ``setup`` once per node (stage
    "setup"), the argv (stage "args"), a finished run's skip, the config-hash guard, ``fn``
    (stages "train"/"validate" as the Trainer runs them), then on rank 0 the export (stage
    "export") and the score line ``<score_name>: <monitor's value>``, and the finished marker.
    ``parse_args`` replaces schema_args.parse_train_args (the argv typed by config.jsonschema)."""

    def decorate(fn: Callable[[Run], Any]) -> Callable[[], None]:
        @functools.wraps(fn)
        def main() -> None:
            if setup is not None:
                with run_stage("setup"):
                    setup_once(setup)  # done by the entrypoint already, unless under torchrun
            with run_stage("args"):
                from trainkit_runtime.schema_args import parse_train_args

                args = (parse_args or parse_train_args)()
            if info := finished_info(vars(args)):
                with run_stage("export"):
                    return _report_finished(info, model_class, score_name)
            run = Run(args, monitor, mode)
            with run_stage(lambda: run.stage):
                run.resume = resume_from(vars(args))
                fn(run)
                score = _score(run)
            if is_rank_zero():
                with run_stage("export"):
                    export(run.trainer.lightning_module)
                _print_score(score_name, score)
            mark_finished(vars(args), score=score)
            return None

        return main

    return decorate
