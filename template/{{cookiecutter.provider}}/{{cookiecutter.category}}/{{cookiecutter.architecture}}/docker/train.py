"""Train the model: fit, validate, export it, print the score line.

docker-entrypoint.sh runs it after setup.py as `python train.py <args from train_config.json>`
(trainkit's argv or the platform's stock config_to_args.py line; schema_args parses both).
"""

import json
from pathlib import Path

import lightning as L
import torch
from datamodule import DataModule
from dataset import DATASETS_ROOT_PATH
from export import export_model
from model import SCORE_METRIC, Model
from run_control import is_rank_zero, output_dir, trainer_kwargs
from schema_args import parse_train_args

# custom.json's score_regexp matches the last line this script prints.
SCORE_NAME = "{{ cookiecutter.score_name }}"


def model_filepath() -> Path:
    """custom.json's model_filepath, placed in OUTPUT_DIR (/workspace/output in the image)."""
    custom = Path("custom.json")
    name = json.loads(custom.read_text())["model_filepath"] if custom.exists() else "model.pt"
    return output_dir() / Path(name).name


def save_model(net: torch.nn.Module, filepath: str) -> None:
    """Fallback when the ONNX export fails: the weights as a state dict."""
    torch.save(net.state_dict(), filepath)


def main() -> None:
    args = parse_train_args()
    L.seed_everything(args.seed, workers=True)
    datamodule = DataModule.from_args(args, DATASETS_ROOT_PATH)
    model = Model.from_args(args)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        log_every_n_steps=getattr(args, "log_every_n_steps", 50),
        **trainer_kwargs(args, monitor=SCORE_METRIC, mode="max"),
    )
    trainer.fit(model, datamodule=datamodule)
    score = trainer.validate(model, datamodule=datamodule)[0][SCORE_METRIC]
    if is_rank_zero():
        export_model(model.net.eval(), str(model_filepath()), "pytorch", save_model)
        print(f"{SCORE_NAME}: {score:.4f}")


if __name__ == "__main__":
    main()
