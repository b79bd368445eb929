"""Train the model: fit, validate, export it, print the score line.

docker-entrypoint.sh runs it after setup.py as `python train.py <args from train_config.json>`
(trainkit's argv or the platform's stock config_to_args.py line; schema_args parses both).
The same script runs as one process, under Lightning's own launcher (devices > 1), under
torchrun or a cluster launcher (run_control.trainer_kwargs); a restarted container resumes
from $OUTPUT_DIR/checkpoints, and a finished run is not trained again.
"""

import json
from pathlib import Path

import lightning as L
import run_control as rc
import setup
import torch
from datamodule import DataModule
from dataset import DATASETS_ROOT_PATH
from export import export_model
from model import SCORE_METRIC, Model
from schema_args import parse_train_args

# custom.json's score_regexp matches the last line this script prints.
SCORE_NAME = "{{ cookiecutter.score_name }}"


def model_filepath() -> Path:
    """custom.json's model_filepath, placed in OUTPUT_DIR (/workspace/output in the image)."""
    custom = Path("custom.json")
    name = json.loads(custom.read_text())["model_filepath"] if custom.exists() else "model.pt"
    return rc.output_dir() / Path(name).name


def save_model(net: torch.nn.Module, filepath: str) -> None:
    """Fallback when the ONNX export fails: the weights as a state dict."""
    torch.save(net.state_dict(), filepath)


def export(model: Model) -> None:
    with rc.run_stage("export"):
        export_model(model.net.eval(), str(model_filepath()), "pytorch", save_model)


def report_finished(info: dict) -> None:
    """A finished run started again: re-export only if the model is missing, re-print the score."""
    if rc.is_rank_zero():
        target = model_filepath()
        if not (target.exists() or target.with_suffix(".onnx").exists()):
            best = rc.checkpoint_dir() / "best.ckpt"
            checkpoint = best if best.exists() else rc.last_checkpoint_path()
            export(Model.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False))
        print(f"{SCORE_NAME}: {info['score']:.4f}")


def main() -> None:
    args = parse_train_args()
    config = vars(args)
    with rc.run_stage("setup"):
        rc.setup_once(setup.main)  # done by the entrypoint already, unless under torchrun
    if info := rc.finished_info(config):
        return report_finished(info)
    L.seed_everything(args.seed, workers=True)
    datamodule = DataModule.from_args(args, DATASETS_ROOT_PATH)
    model = Model.from_args(args)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        log_every_n_steps=getattr(args, "log_every_n_steps", 50),
        **rc.trainer_kwargs(args, monitor=SCORE_METRIC, mode="max"),
    )
    with rc.run_stage("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=rc.resume_checkpoint(config))
    with rc.run_stage("validate"):
        best = "best" if trainer.checkpoint_callback.best_model_path else None
        score = trainer.validate(model, datamodule=datamodule, ckpt_path=best)[0][SCORE_METRIC]
    if rc.is_rank_zero():
        export(model)
        print(f"{SCORE_NAME}: {score:.4f}")
    rc.mark_finished(config, score=score)


if __name__ == "__main__":
    main()
