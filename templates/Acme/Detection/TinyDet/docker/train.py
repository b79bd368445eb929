"""Train the model: fit, then validate the best checkpoint.

docker-entrypoint.sh runs it after setup.py as `python train.py <args from train_config.json>`.
Everything around the training is trainkit's runtime (`lifecycle.train_task`): the dataset
set-up once per node, the argv typed by config.jsonschema, resume from
$OUTPUT_DIR/checkpoints, a finished run not trained again, the failure file, and on rank 0 the
ONNX export and the score line `mAP@0.5: 0.9375` that custom.json's
score_regexp reads. The same script runs as one process, under Lightning's own launcher
(devices > 1), under torchrun and as a Kubeflow PyTorchJob.
"""

import lightning as L
import setup
from datamodule import DataModule
from model import SCORE_METRIC, Model

from trainkit_runtime.lifecycle import Run, train_task

# custom.json's score_regexp reads the line "<SCORE_NAME>: <SCORE_METRIC's value>".
SCORE_NAME = "mAP@0.5"


@train_task(score_name=SCORE_NAME, monitor=SCORE_METRIC, model_class=Model, setup=setup.main)
def main(run: Run) -> None:
    args = run.args
    L.seed_everything(args.seed, workers=True)
    datamodule = DataModule.from_args(args, run.datasets_root)
    model = Model.from_args(args)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        log_every_n_steps=getattr(args, "log_every_n_steps", 50),
        **run.trainer_kwargs(),
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=run.resume)
    trainer.validate(model, datamodule=datamodule, ckpt_path=run.best)


if __name__ == "__main__":
    main()
