"""`trainkit run`: train an architecture the way the platform would, on a mocked MinIO folder.

The image's build context is made by the platform's own build code (trainkit/platform/) from
the packaged architecture, with the values the platform's two forms start from: the train
form's (the backend's JSONSchemaDefault of config.jsonschema) and the ONNX export form's.
`--config FILE` / `--export-config FILE` load a complete set of form values (as saved by
`trainkit form`, `{}` = export off), `--set` / `--export-set` change single fields. The run
prints the score as the platform stores it (its own code, over the last 50 log lines) and the
model file it would serve (`<stem>.onnx` beside custom.json's model_filepath first).

`--runtime` chooses what runs the image: `trainkit` (default: trainkit's runtime in the place of
the platform's stock common/ files, trainkit's entrypoint; what a ZIP made by `trainkit
package` runs on the platform too, because its docker/ carries that runtime), or `platform`
(the platform's stock model-training/ files, shipped with trainkit, or `platform=DIR` for a
site's own, and the stock entrypoint's commands: `source .env`, `tree`, `python setup.py`,
`eval "time python train.py $(python config_to_args.py)"`, emulated without eval; see
trainkit/platform/stock_entrypoint.py).

The run directory (`--output`, default `out/<provider>/<category>/<architecture>`) holds

    workspace/      trainkit runtime: the build context = WORKDIR (rebuilt on every new run)
    context/        platform runtime: the build context the backend assembled
    image/          platform runtime without an engine: the files the Dockerfile COPYs
    datasets/       DATASETS_ROOT: the train/val split setup.py writes (kept, re-used)
    output/         OUTPUT_DIR (/workspace/output): model.onnx, checkpoints/, logs/, score.txt
    container.json  the platform's record of the container (dataset id, model path, score)
    container.log   the container's log (all its starts), where the score is read
    run.log         everything every run printed

`--engine` picks who runs the image: `none` (here, as subprocesses with the WORKDIR as cwd and
MINIO_ROOT, DATASETS_ROOT, OUTPUT_DIR, DATASET_ID set) or a container engine. `--restart`
starts the same container again, like the platform; with changed values (`--config`, `--set`,
`--export-config`, `--export-set`, another `--dataset-id`) it first edits the container like
the platform's config dialog: the raw train_config.json and export_config.json copied to the
Dockerfile's COPY target of train_config.json, DATASET_ID rewritten in its .env.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit import engine, platform, run_guard, workspace
from trainkit.errors import TrainkitError, UsageError
from trainkit.platform import MODEL_TRAINING_DIR, forms, image, recipe, stock_entrypoint
from trainkit.platform import score as platform_score
from trainkit.platform.container import EngineContainer, HostContainer
from trainkit.platform.local import TrainContainerRow, served_model
from trainkit_runtime import bounded_json, lifecycle

DEFAULT_RUN_ROOT = Path("out")
LOG_FILENAME = "run.log"
CONTAINER_LOG = "container.log"
STATE_FILENAME = "container.json"
SCORE_FILENAME = "score.txt"
RUNTIMES = ("trainkit", "platform")
# Where the image's output directory is (the platform's model_filepath lives there).
CONTAINER_OUTPUT = engine.CONTAINER_OUTPUT
# --runtime platform with an engine: the stock entrypoint's emulation, mounted into the image.
PLATFORM_ENTRYPOINT_IN_IMAGE = "/opt/trainkit/stock_entrypoint.py"
PLATFORM_SUFFIX = "-platform"  # of its image tag and container name


class RefusedError(TrainkitError):
    """What the platform's `source`/`eval` would expand or execute (stock_entrypoint.py)."""

    exit_code = stock_entrypoint.REFUSED


@dataclass
class Runtime:
    """Who provides the stock files and the entrypoint: trainkit's runtime or the platform's
    model-training/ directory (`model_training`)."""

    name: str
    model_training: Path | None = None

    @classmethod
    def parse(cls, value: str) -> Runtime:
        name, sep, directory = value.partition("=")
        if name not in RUNTIMES or (sep and name != "platform"):
            raise argparse.ArgumentTypeError(f"{value!r}: use trainkit, platform or platform=DIR")
        if name == "trainkit":
            return cls(name)
        stock = Path(directory).resolve() if sep else MODEL_TRAINING_DIR
        for sub in ("common", "datasets", "export"):
            if not (stock / sub).is_dir():
                raise argparse.ArgumentTypeError(
                    f"{value}: {stock} is not a model-training/ directory (no {sub}/)"
                )
        return cls(name, stock)

    @property
    def platform(self) -> bool:
        return self.name == "platform"


@dataclass
class RunPlan:
    """Everything an engine needs to run one training of an architecture."""

    arch_dir: Path
    run_dir: Path
    minio_root: Path | None  # None: --s3, the container mounts the bucket
    dataset_id: str
    runtime: Runtime = field(default_factory=lambda: Runtime("trainkit"))
    train: forms.FormInput = field(default_factory=forms.FormInput)
    export: forms.FormInput = field(default_factory=forms.FormInput)
    env: dict[str, str] = field(default_factory=dict)
    row: TrainContainerRow | None = None
    workdir: Path | None = None  # the WORKDIR on this machine (engine none)
    workdir_shown: str = "/workspace"  # the WORKDIR in the image

    @property
    def workspace(self) -> Path:
        """The build context (the WORKDIR too, for trainkit's runtime without an engine)."""
        return self.run_dir / ("context" if self.runtime.platform else "workspace")

    @property
    def image_root(self) -> Path:
        return self.run_dir / "image"

    @property
    def datasets_root(self) -> Path:
        return self.run_dir / "datasets"

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "output"

    @property
    def log_file(self) -> Path:
        return self.run_dir / LOG_FILENAME

    @property
    def container_log(self) -> Path:
        return self.run_dir / CONTAINER_LOG

    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILENAME


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="train an architecture locally, the way the platform would",
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
        "--runtime",
        type=Runtime.parse,
        default=Runtime("trainkit"),
        metavar="trainkit|platform[=DIR]",
        help="trainkit (default): trainkit's runtime and entrypoint, as a ZIP of `trainkit "
        "package` runs on the platform; platform: the platform's stock model-training/ files "
        "(DIR: a site's own) and its stock entrypoint's commands",
    )
    form = parser.add_argument_group(
        "form values (the platform's forms start from their initial values)"
    )
    form.add_argument(
        "--config",
        type=Path,
        help="train form: a JSON object of its values (e.g. saved by `trainkit form`), applied "
        "over the platform's initial values",
    )
    form.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="train form: one field (VALUE parsed as JSON when it can be, e.g. max-steps=5); "
        "repeatable",
    )
    form.add_argument(
        "--export-config",
        type=Path,
        help="ONNX export form: a JSON object of all its values (e.g. saved by `trainkit "
        "form`; {} = export switched off), instead of the export form's initial values",
    )
    form.add_argument(
        "--export-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="export form: one field (e.g. opset_version=17); repeatable",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start the run's container again, as the platform does (`docker start`): no new "
        "build, the dataset set-up re-used, training resumed; changed form values or another "
        "--dataset-id are first applied like the platform's config edit",
    )
    parser.add_argument(
        "--engine",
        choices=("none", *engine.ENGINE_CHOICES),
        default="none",
        help="who runs the image: none = local subprocesses (default); auto, docker, podman = "
        "build the real image and run it (auto: docker when its daemon answers)",
    )
    engine.add_engine_arguments(parser)
    parser.set_defaults(func=run)


def parse_assignments(assignments: list[str], option: str = "--set") -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        try:
            values[key] = bounded_json.loads(raw, f"--set {key}", strict=False)
        except bounded_json.JsonSyntaxError:
            values[key] = raw
        except bounded_json.JsonLimitError as exc:
            raise UsageError(str(exc)) from None
    return values


def _form_input(
    file: Path | None, sets: list[str], file_option: str, set_option: str, *, replace: bool
) -> forms.FormInput:
    return forms.FormInput(
        file=forms.read_values_file(file, file_option) if file else None,
        file_name=f"{file_option} {file}" if file else None,
        sets=parse_assignments(sets, set_option),
        sets_name=set_option,
        replace=replace,
    )


def plan_run(args: argparse.Namespace) -> RunPlan:
    arch_dir = Path(args.arch_dir)
    provider, category, architecture = workspace.architecture_parts(arch_dir)
    args.dataset_id = run_guard.check_dataset_id(str(args.dataset_id))
    run_guard.check_template_env(arch_dir)
    runtime: Runtime = getattr(args, "runtime", None) or Runtime("trainkit")
    s3 = getattr(args, "s3", False)
    if s3 and args.engine == "none":
        raise UsageError("--s3: the bucket is mounted inside the container; add --engine")
    if s3 and runtime.platform:
        raise UsageError(
            "--s3 with --runtime platform: the stock mount-s3.sh takes the OIDC token on its "
            "command line (-t); trainkit does not run it with a real token"
        )
    if args.minio is None and not s3:
        raise UsageError("--minio DIR is required (or --engine ... --s3)")
    minio_root = Path(args.minio).resolve() if args.minio is not None else None
    dataset_dir = minio_root / "datasets" / str(args.dataset_id) if minio_root else None
    if dataset_dir is not None and not s3 and not dataset_dir.is_dir():
        raise TrainkitError(
            f"{dataset_dir}: no such dataset (make one with `trainkit dataset --out "
            f"{args.minio} --id {args.dataset_id}`)"
        )
    run_dir = args.output or DEFAULT_RUN_ROOT / provider / category / architecture
    plan = RunPlan(
        arch_dir=arch_dir.resolve(),
        run_dir=Path(run_dir).resolve(),
        minio_root=minio_root,
        dataset_id=str(args.dataset_id),
        runtime=runtime,
        train=_form_input(args.config, args.set, "--config", "--set", replace=False),
        export=_form_input(
            getattr(args, "export_config", None),
            getattr(args, "export_set", []),
            "--export-config",
            "--export-set",
            replace=True,
        ),
    )
    if not getattr(args, "restart", False):
        check_form_values(plan)
    return plan


def check_form_values(plan: RunPlan) -> None:
    """Before anything is written: the forms' values from config/config.jsonschema and the
    user's changes are valid and give a train.py argv that fits (the build computes them again
    through the platform's own look-up of the schema)."""
    schema = workspace.load_schema(plan.arch_dir)  # also refuses $refs out of the file
    start = forms.initial_values(schema, f"{plan.arch_dir}/config/{workspace.SCHEMA_FILENAME}")
    train = forms.fill(schema, start, plan.train, recipe.TRAIN_START)
    run_guard.check_argv(train, schema)
    export_schema = platform.export_schema()
    start_export = platform.export_form_values()
    forms.fill(export_schema, start_export, plan.export, recipe.EXPORT_START, allow_empty=True)


# ------------------------------------------------------------------------------ the container


def dataset_key(dataset_id: str) -> int | str:
    """The platform's dataset ids are database integers."""
    return int(dataset_id) if dataset_id.isdigit() else dataset_id


def _model_training(plan: RunPlan, tmp: Path) -> Path:
    """The model-training/ directory the build uses (trainkit's is generated into tmp)."""
    if plan.runtime.platform:
        return plan.runtime.model_training
    return recipe.trainkit_model_training(tmp)


def base_env(plan: RunPlan) -> dict[str, str]:
    """The environment of a run without an engine: this machine's, the image's paths mapped."""
    return {
        **os.environ,
        "MINIO_ROOT": str(plan.minio_root or engine.CONTAINER_MINIO),
        "DATASETS_ROOT": str(plan.datasets_root),
        "OUTPUT_DIR": str(plan.output_dir),
        "PYTHON": sys.executable,  # trainkit's entrypoint's interpreter: this environment's
        "PYTHONUNBUFFERED": "1",
    }


def prepare(plan: RunPlan, args: argparse.Namespace | None = None) -> None:
    """A new container: build the context (and, without an engine, the image's WORKDIR), the
    run's directories and the platform's record of the container."""
    engine_name = getattr(args, "engine", "none") if args is not None else "none"
    run_guard.claim_run_dir(plan.run_dir)
    with tempfile.TemporaryDirectory(prefix="trainkit-model-training-") as tmp:
        assembled = recipe.assemble(
            plan.arch_dir,
            plan.workspace,
            _model_training(plan, Path(tmp)),
            train=plan.train,
            export=plan.export,
            dataset_id=dataset_key(plan.dataset_id),
            torch_cuda_index=getattr(args, "torch_index", None),
            check=run_guard.check_argv,  # train.py's argv fits, before the build
        )
    plan.row = assembled.build.row
    plan.row.container_id = container_label(plan, args)
    if engine_name == "auto":
        engine_name = engine.detect_engine("auto").name  # what --restart must find again
    plan.row.extra = {
        "runtime": plan.runtime.name,
        "model_training": str(plan.runtime.model_training or ""),
        "engine": engine_name,
        "env": {"DATASET_ID": plan.dataset_id},
    }
    plan.datasets_root.mkdir(parents=True, exist_ok=True)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    # A new image: its train_config.json is not finalized yet, so setup.py must run again (it
    # re-uses what is in datasets/; checkpoints still resume).
    (plan.datasets_root / lifecycle.SETUP_DONE_FILENAME).unlink(missing_ok=True)
    if engine_name == "none":
        _prepare_workdir(plan, assembled.context)
        plan.env = local_env(plan)
    plan.container_log.write_text("", encoding="utf-8")
    plan.row.save(plan.state_file)


def _prepare_workdir(plan: RunPlan, context: Path) -> None:
    if plan.runtime.platform:
        replayed = image.replay(context / "Dockerfile", context, plan.image_root)
        plan.workdir_shown = replayed.workdir
        plan.workdir = replayed.host(replayed.workdir)
        output_link = plan.workdir / "output"
        if replayed.workdir.rstrip("/") + "/output" == CONTAINER_OUTPUT and not (
            output_link.exists() or output_link.is_symlink()
        ):
            output_link.symlink_to(plan.output_dir)  # the output volume's place in the image
        plan.row.extra["image_env"] = replayed.env
    else:
        plan.workdir = context
        plan.workdir_shown = image.last_workdir(context / "Dockerfile")
    plan.row.extra["workdir"] = [str(plan.workdir), plan.workdir_shown]


def container_label(plan: RunPlan, args: argparse.Namespace | None) -> str:
    """The container's name (an engine's), or `local` without an engine."""
    if args is None or getattr(args, "engine", "none") == "none":
        return "local"
    return getattr(args, "name", None) or container_name(plan)


def container_name(plan: RunPlan) -> str:
    return engine.container_name(plan.arch_dir, PLATFORM_SUFFIX if plan.runtime.platform else "")


def host_container(plan: RunPlan) -> HostContainer:
    mounts = {
        CONTAINER_OUTPUT: plan.output_dir,
        engine.CONTAINER_MINIO: plan.minio_root or plan.run_dir / "no-minio",
        "/datasets": plan.datasets_root,
    }
    if plan.runtime.platform:
        return HostContainer(mounts, plan.container_log, root=plan.image_root)
    return HostContainer({**mounts, plan.workdir_shown: plan.workdir}, plan.container_log)


def container_io(plan: RunPlan, args: argparse.Namespace):
    if args.engine == "none":
        return host_container(plan)
    return EngineContainer(engine.detect_engine(args.engine), plan.row.container_id)


def load_state(plan: RunPlan, args: argparse.Namespace) -> None:
    """--restart: the platform's record of the container an earlier run made."""
    try:
        plan.row = TrainContainerRow.load(plan.state_file)
    except FileNotFoundError:
        raise TrainkitError(
            f"--restart: {plan.state_file} does not exist: no container from an earlier run "
            "in this run directory (run without --restart first)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise TrainkitError(f"--restart: {plan.state_file}: unreadable ({exc})") from None
    extra = plan.row.extra
    if args.engine == "auto" and extra.get("engine") not in (None, "none"):
        args.engine = extra["engine"]  # auto: whichever engine made it
    made = (extra.get("runtime"), extra.get("engine"))
    wanted = (plan.runtime.name, args.engine)
    if made != wanted:
        raise UsageError(
            f"--restart: the container was made with --runtime {made[0]} --engine {made[1]}; "
            f"restart it with those (not --runtime {wanted[0]} --engine {wanted[1]})"
        )
    if plan.runtime.platform and extra.get("model_training"):
        plan.runtime = Runtime("platform", Path(extra["model_training"]))
    if args.engine != "none" and not args.name:
        args.name = plan.row.container_id
    if "workdir" in extra:
        plan.workdir, plan.workdir_shown = Path(extra["workdir"][0]), extra["workdir"][1]


def edit(plan: RunPlan, args: argparse.Namespace) -> bool:
    """The platform's config edit of the existing container (PUT /train/config), when the
    user changed anything: False when there was nothing to edit."""
    dataset_changed = plan.row.dataset_id != dataset_key(plan.dataset_id)
    if plan.train.empty and plan.export.empty and not dataset_changed:
        return False
    io = container_io(plan, args)
    with (
        tempfile.TemporaryDirectory(prefix="trainkit-model-training-") as tmp,
        recipe.installed(
            plan.arch_dir, _model_training(plan, Path(tmp)), container=io, row=plan.row
        ) as lp,
    ):
        current = lp.current_config()
        forms.require_closed(current["train"]["schema"], "the form schema")
        train = forms.fill(
            current["train"]["schema"],
            current["train"]["values"],
            plan.train,
            "the container's train config",
        )
        export_start = {} if current["export"]["empty"] else current["export"]["values"]
        export = forms.fill(
            current["export"]["schema"],
            export_start,
            plan.export,
            "the container's export config",
            allow_empty=True,
        )
        run_guard.check_argv(train, current["train"]["schema"])
        lp.edit(train, export, dataset_key(plan.dataset_id))
    plan.row.save(plan.state_file)
    changed = "train_config.json, export_config.json" + (
        ", DATASET_ID in .env" if dataset_changed else ""
    )
    print(f"trainkit run: edited the container like the platform's config dialog ({changed})")
    return True


# ------------------------------------------------------------------------------------ running


def stream(
    command: list[str], cwd: Path, env: dict[str, str], log_files: list[Path]
) -> tuple[int, str]:
    """Run command, echoing its output and appending it to the log files; (exit code, last
    lines)."""
    last = collections.deque(maxlen=platform_score.tail_lines())
    logs = [path.open("a", encoding="utf-8") for path in log_files]
    try:
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
                for log in logs:
                    log.write(line)
                last.append(line.rstrip("\n"))
        except KeyboardInterrupt:
            proc.wait()
            raise
        return proc.wait(), "\n".join(last)
    finally:
        for log in logs:
            log.close()


def _container_env(plan: RunPlan) -> dict[str, str]:
    """What `docker run -e` gave the container when it was made (a restart keeps it)."""
    return dict(plan.row.extra.get("env") or {"DATASET_ID": plan.dataset_id})


def local_env(plan: RunPlan) -> dict[str, str]:
    """The environment of the container without an engine: this machine's with the image's
    paths mapped, the image's ENV (platform runtime) and what `docker run -e` gave it."""
    return {**base_env(plan), **plan.row.extra.get("image_env", {}), **_container_env(plan)}


def run_local(plan: RunPlan, args: argparse.Namespace | None = None) -> tuple[int, str]:
    """Engine `none`: the entrypoint as a subprocess with the WORKDIR as cwd."""
    logs = [plan.log_file, plan.container_log]
    env = local_env(plan)
    if not plan.runtime.platform:
        return stream(["bash", "docker-entrypoint.sh"], plan.workdir, env, logs)
    spec = plan.run_dir / "container-spec.json"
    spec.write_text(
        json.dumps(
            {
                "workdir": str(plan.workdir),
                "workdir_shown": plan.workdir_shown,
                "env": env,
                "python": sys.executable,
                "minio": str(plan.minio_root),
            }
        ),
        encoding="utf-8",
    )
    command = [sys.executable, stock_entrypoint.__file__, "--host", str(spec)]
    return stream(command, plan.workdir, env, logs)


def run_container(plan: RunPlan, args: argparse.Namespace) -> tuple[int, str]:
    """Engines auto/docker/podman (trainkit/engine.py): build the image from the context and
    run it with the platform's flags; its output is streamed into the logs like a local run's."""
    start = None
    if plan.runtime.platform:
        start = engine.ContainerStart(
            entrypoint="python",
            command=[PLATFORM_ENTRYPOINT_IN_IMAGE],
            volumes=[(Path(stock_entrypoint.__file__), PLATFORM_ENTRYPOINT_IN_IMAGE, "ro")],
            as_caller=False,  # the platform runs the container as the image's user (root)
            network="none",
        )
    if not args.name:
        args.name = plan.row.container_id if plan.row else container_name(plan)
    if not getattr(args, "image", None) and plan.runtime.platform:
        args.image = engine.image_tag(plan.arch_dir, PLATFORM_SUFFIX)
    return engine.run_plan(
        plan,
        args,
        lambda argv, env: stream(argv, plan.run_dir, env, [plan.log_file, plan.container_log]),
        start=start,
    )


# Engine name -> function(plan, args) -> (exit code, the output's last lines).
ENGINES: dict[str, Callable[[RunPlan, argparse.Namespace], tuple[int, str]]] = {
    "none": run_local,
    **dict.fromkeys(engine.ENGINE_CHOICES, run_container),
}


# ------------------------------------------------------------------------------------ summary


def summarize(plan: RunPlan, args: argparse.Namespace, exit_code: int) -> None:
    """Print what the platform would store and serve; write output/score.txt."""
    row = plan.row
    io = container_io(plan, args)
    log_text = io.logs(0)
    try:
        result = platform_score.extract(log_text, row.score_regexp)
    except platform_score.ScoreRegexpError as exc:  # refused, or it would hang the platform
        print(f"trainkit run: warning: {exc}", file=sys.stderr)
        result = platform_score.ScoreResult(None, str(exc), platform_score.TAIL_LINES, None)
    row.score = result.value  # what PATCH .../score stores
    score_file = plan.output_dir / SCORE_FILENAME
    lines = [f"trainkit run: exit {exit_code} ({plan.runtime.name} runtime, engine {args.engine})"]
    served = _served(plan, io)
    lines.append(f"  model:  {served}")
    lines.append(f"  logs:   {plan.log_file} and {plan.output_dir / 'logs'}")
    if result.value is not None:
        score_file.write_text(f"{result.value}\n", encoding="utf-8")
        lines.append(f"  score:  {row.score_name} = {result.value} ({score_file})")
        if exit_code != 0:
            lines.append("          (the run failed, but the platform stores this score)")
        back = result.lines_from_end or 0
        if not plan.runtime.platform and back + stock_entrypoint.STOCK_TRAILER_LINES > result.tail:
            lines.append(
                f"  note:   the score line is {back} lines from the end of the log; under the "
                f"platform's stock entrypoint ({stock_entrypoint.STOCK_TRAILER_LINES} more lines "
                f"after train.py) it would not be in the last {result.tail} the platform reads"
            )
    else:
        score_file.unlink(missing_ok=True)
        back = result.lines_from_end
        where = (
            f"; the last score line is {back} lines from the end of the log"
            if back is not None
            else ""
        )
        lines.append(
            f"  score:  none stored: the platform reads the last {result.tail} lines: "
            f"{result.detail} ({row.score_regexp!r}){where}"
        )
    failure = plan.output_dir / lifecycle.FAILURE_FILENAME
    if exit_code != 0 and failure.is_file():
        lines.append(f"  failure: {failure}")
    print("\n".join(lines), flush=True)


def _served(plan: RunPlan, io) -> str:
    served = served_model(plan.row, io)
    if served is None:
        onnx = str(Path(plan.row.model_filepath).with_suffix(".onnx"))
        return f"none: the platform finds neither {onnx} nor {plan.row.model_filepath}"
    path, kind = served
    rel = os.path.relpath(path, CONTAINER_OUTPUT)
    shown = f" = {plan.output_dir / rel}" if not rel.startswith("..") else ""
    return f"{path} ({kind or 'unknown format'}){shown}"


def run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    if args.restart:
        load_state(plan, args)
        edit(plan, args)
    else:
        args.restart = False
        prepare(plan, args)
    print(
        f"trainkit run: {plan.arch_dir} in {plan.run_dir} ({plan.runtime.name} runtime, "
        f"engine {args.engine}{', restart' if args.restart else ''})",
        flush=True,
    )
    try:
        exit_code, last_lines = ENGINES[args.engine](plan, args)
    finally:
        plan.row.save(plan.state_file)
    if exit_code == stock_entrypoint.REFUSED:
        refused = [
            line for line in last_lines.splitlines() if stock_entrypoint.REFUSAL_PREFIX in line
        ]
        if refused:
            raise RefusedError(refused[-1].split(stock_entrypoint.REFUSAL_PREFIX, 1)[1])
    summarize(plan, args, exit_code)
    plan.row.save(plan.state_file)
    return exit_code
