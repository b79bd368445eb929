"""`trainkit run`: train an architecture on a mocked MinIO folder, no Docker needed.

The run directory (`--output`, default `out/<provider>/<category>/<architecture>`) holds

    workspace/   the image's build context = WORKDIR (rebuilt on every run)
    datasets/    DATASETS_ROOT: the train/val split setup.py writes (kept, re-used)
    output/      OUTPUT_DIR: model.onnx (or model.pt), checkpoints/, logs/, score.txt, failure
    run.log      everything the run printed

and the run executes `bash docker-entrypoint.sh` in workspace/ with MINIO_ROOT, DATASETS_ROOT,
OUTPUT_DIR and DATASET_ID set, i.e. the same steps as the container. Running it again re-uses
the dataset set-up and resumes from output/checkpoints when the config is unchanged.
`--engine` picks who runs the entrypoint: `none` (here, as a subprocess) or a container engine.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit import engine, layout, run_guard, score, workspace
from trainkit.errors import TrainkitError, UsageError
from trainkit_runtime import bounded_json, lifecycle

DEFAULT_RUN_ROOT = Path("out")
LOG_FILENAME = "run.log"
SCORE_FILENAME = "score.txt"


@dataclass
class RunPlan:
    """Everything an engine needs to run one training of an architecture."""

    arch_dir: Path
    run_dir: Path
    minio_root: Path | None  # None: --s3, the container mounts the bucket
    dataset_id: str
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    # export_config.json for the workspace (None: the architecture's config/export_config.json)
    export_config: dict[str, Any] | None = None

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    @property
    def datasets_root(self) -> Path:
        return self.run_dir / "datasets"

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "output"

    @property
    def log_file(self) -> Path:
        return self.run_dir / LOG_FILENAME


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="train an architecture locally on a mocked MinIO folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("arch_dir", type=Path, help="templates/<provider>/<category>/<arch>")
    parser.add_argument(
        "--minio",
        type=Path,
        help="mocked bucket: holds datasets/<id>/ (see `trainkit dataset`); required unless "
        "--s3 (container engines only)",
    )
    parser.add_argument("--dataset-id", required=True, help="dataset folder under datasets/")
    parser.add_argument(
        "--output",
        type=Path,
        help="run directory (default: out/<provider>/<category>/<architecture>)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON object of form values; merged over the schema's defaults",
    )
    parser.add_argument(
        "--export-config",
        type=Path,
        help="JSON object of ONNX export form values (e.g. saved by `trainkit form`); replaces "
        "config/export_config.json in the workspace, as the platform does with its export form",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one form value (VALUE parsed as JSON when it can be, e.g. max-steps=5); repeatable",
    )
    parser.add_argument(
        "--engine",
        choices=("none", *engine.ENGINE_CHOICES),
        default="none",
        help="who runs the entrypoint: none = a local subprocess (default); auto, docker, "
        "podman = build the real image and run it (auto: docker when its daemon answers)",
    )
    engine.add_engine_arguments(parser)
    parser.set_defaults(func=run)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        try:
            values[key] = bounded_json.loads(raw, f"--set {key}", strict=False)
        except bounded_json.JsonSyntaxError:
            values[key] = raw
        except bounded_json.JsonLimitError as exc:
            raise UsageError(str(exc)) from None
    return values


def read_config_file(path: Path, option: str = "--config") -> dict[str, Any]:
    try:
        data = bounded_json.load_file(path, f"{option} {path}", strict=False)
    except FileNotFoundError:
        raise TrainkitError(f"{option} {path}: no such file") from None
    except OSError as exc:
        raise TrainkitError(f"{option} {path}: cannot read: {exc.strerror or exc}") from None
    except bounded_json.JsonLimitError as exc:
        raise TrainkitError(str(exc)) from None
    if not isinstance(data, dict):
        raise TrainkitError(f"{option} {path}: must hold a JSON object of form values")
    return data


def plan_run(args: argparse.Namespace) -> RunPlan:
    arch_dir = Path(args.arch_dir)
    provider, category, architecture = workspace.architecture_parts(arch_dir)
    args.dataset_id = run_guard.check_dataset_id(str(args.dataset_id))
    run_guard.check_template_env(arch_dir)
    s3 = getattr(args, "s3", False)
    if s3 and args.engine == "none":
        raise UsageError("--s3: the bucket is mounted inside the container; add --engine")
    if args.minio is None and not s3:
        raise UsageError("--minio DIR is required (or --engine ... --s3)")
    minio_root = Path(args.minio).resolve() if args.minio is not None else None
    dataset_dir = minio_root / "datasets" / str(args.dataset_id) if minio_root else None
    if dataset_dir is not None and not s3 and not dataset_dir.is_dir():
        raise TrainkitError(
            f"{dataset_dir}: no such dataset (make one with `trainkit dataset --out "
            f"{args.minio} --id {args.dataset_id}`)"
        )
    overrides: dict[str, Any] = {}
    source = "schema defaults"
    if args.config:
        overrides.update(read_config_file(args.config))
        source = f"--config {args.config}"
    if args.set:
        overrides.update(parse_assignments(args.set))
        source = f"{source} + --set"
    config = workspace.train_config(arch_dir, overrides, source)
    run_guard.check_argv(config, workspace.load_schema(arch_dir))
    run_dir = args.output or DEFAULT_RUN_ROOT / provider / category / architecture
    return RunPlan(
        arch_dir=arch_dir.resolve(),
        run_dir=Path(run_dir).resolve(),
        minio_root=minio_root,
        dataset_id=str(args.dataset_id),
        config=config,
        export_config=(
            read_config_file(args.export_config, "--export-config")
            if getattr(args, "export_config", None)
            else None
        ),
    )


def prepare(plan: RunPlan) -> None:
    """Build the workspace and the run's directories and environment."""
    run_guard.claim_run_dir(plan.run_dir)
    workspace.assemble_build_context(plan.arch_dir, plan.workspace, plan.config)
    if plan.export_config is not None:
        export_file = plan.workspace / "export_config.json"
        export_file.write_text(json.dumps(plan.export_config, indent=2) + "\n", "utf-8")
    workspace.set_env_file_value(plan.workspace / ".env", "DATASET_ID", plan.dataset_id)
    plan.datasets_root.mkdir(parents=True, exist_ok=True)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    # The workspace is rebuilt like a new image, so its train_config.json is not finalized yet:
    # setup.py must run again (it re-uses what is in datasets/; checkpoints still resume).
    marker = lifecycle.SETUP_DONE_FILENAME
    (plan.datasets_root / marker).unlink(missing_ok=True)
    plan.env = {
        **os.environ,
        "MINIO_ROOT": str(plan.minio_root or "/minio"),
        "DATASETS_ROOT": str(plan.datasets_root),
        "OUTPUT_DIR": str(plan.output_dir),
        "DATASET_ID": plan.dataset_id,
        "PYTHON": sys.executable,  # the entrypoint's interpreter: this environment's
        "PYTHONUNBUFFERED": "1",
    }


def stream(command: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> tuple[int, str]:
    """Run command, echoing its output and appending it to log_file; (exit code, last lines)."""
    last = collections.deque(maxlen=score.TAIL_LINES)
    with log_file.open("a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
                last.append(line.rstrip("\n"))
        except KeyboardInterrupt:
            proc.wait()
            raise
        return proc.wait(), "\n".join(last)


def run_local(plan: RunPlan, args: argparse.Namespace | None = None) -> tuple[int, str]:
    """Engine `none`: the entrypoint as a subprocess with the workspace as WORKDIR."""
    return stream(["bash", "docker-entrypoint.sh"], plan.workspace, plan.env, plan.log_file)


def run_container(plan: RunPlan, args: argparse.Namespace) -> tuple[int, str]:
    """Engines auto/docker/podman (trainkit/engine.py): build the image from the workspace and
    run it with the platform's flags; its output is streamed into run.log like a local run's."""
    return engine.run_plan(
        plan, args, lambda argv, env: stream(argv, plan.run_dir, env, plan.log_file)
    )


# Engine name -> function(plan, args) -> (exit code, the output's last lines).
ENGINES: dict[str, Callable[[RunPlan, argparse.Namespace], tuple[int, str]]] = {
    "none": run_local,
    **dict.fromkeys(engine.ENGINE_CHOICES, run_container),
}


def read_custom(plan: RunPlan) -> dict[str, Any]:
    path = plan.arch_dir / layout.CONFIG_DIR / "custom.json"
    try:
        custom = bounded_json.load_file(path, strict=False)
        return custom if isinstance(custom, dict) else {}
    except (OSError, ValueError):
        return {}


def model_files(plan: RunPlan, custom: dict[str, Any]) -> list[Path]:
    name = Path(custom.get("model_filepath") or "model.pt").name
    candidates = [plan.output_dir / Path(name).with_suffix(".onnx").name, plan.output_dir / name]
    return [path for path in dict.fromkeys(candidates) if path.is_file()]


def summarize(plan: RunPlan, exit_code: int, last_lines: str) -> None:
    """Print where the model, logs and score are; write output/score.txt like the platform."""
    custom = read_custom(plan)
    regexp = custom.get("score_regexp")
    regexp = regexp if isinstance(regexp, str) else None
    try:
        value = score.platform_score(last_lines, regexp) if regexp else None
    except score.ScoreRegexpError as exc:
        print(f"trainkit run: warning: {exc}", file=sys.stderr)
        value = None
    score_file = plan.output_dir / SCORE_FILENAME
    if value is not None:
        score_file.write_text(f"{value}\n", encoding="utf-8")
    lines = [f"trainkit run: exit {exit_code}"]
    models = model_files(plan, custom)
    lines.append(f"  model:  {', '.join(map(str, models)) if models else '(none written)'}")
    lines.append(f"  logs:   {plan.log_file} and {plan.output_dir / 'logs'}")
    if value is not None:
        lines.append(f"  score:  {custom.get('score_name', 'score')} = {value} ({score_file})")
    else:
        lines.append(f"  score:  not found in the last {score.TAIL_LINES} lines ({regexp!r})")
    failure = plan.output_dir / "failure"
    if exit_code != 0 and failure.is_file():
        lines.append(f"  failure: {failure}")
    print("\n".join(lines), flush=True)


def run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    prepare(plan)
    print(f"trainkit run: {plan.arch_dir} in {plan.run_dir} (engine {args.engine})", flush=True)
    exit_code, last_lines = ENGINES[args.engine](plan, args)
    summarize(plan, exit_code, last_lines)
    return exit_code
