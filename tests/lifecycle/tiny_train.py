"""A train.py built like a generated one (``lifecycle.train_task``) around a tiny LightningModule
on random tensors, so the lifecycle tests can train for real in a second or two, also under
torchrun. Prints `start global_step=N` when fitting starts and `rank R ran` per process.

Test-only knobs: --fail_at_step/--fail_rank raise in a training step, --fail_stage setup;
TINY_SIGTERM_AT_STEP (env, so a restart has the same config) sends SIGTERM at that exact step
from inside the step, to the process itself or, with TINY_SIGTERM_PARENT=1, to its torchrun
agent.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit_runtime import lifecycle

SIGTERM_AT_STEP = int(os.environ.get("TINY_SIGTERM_AT_STEP", "-1"))


class TinyNet(L.LightningModule):
    def __init__(self, lr: float = 0.05, constant_val: bool = False, **knobs) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.knobs = knobs
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_start(self) -> None:
        if self.trainer.is_global_zero:
            print(f"start global_step={self.trainer.global_step}", flush=True)

    def training_step(self, batch, batch_idx):
        fail_here = self.knobs.get("fail_rank", -1) in (-1, self.global_rank)
        if self.global_step == self.knobs.get("fail_at_step", -1) and fail_here:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.global_step == SIGTERM_AT_STEP and self.global_rank == 0:
            target = os.getppid() if os.environ.get("TINY_SIGTERM_PARENT") else os.getpid()
            os.kill(target, signal.SIGTERM)
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        acc = (self(x).argmax(1) == y).float().mean()
        if self.hparams.constant_val:  # the score never improves after epoch 0
            acc = torch.tensor(0.5)
        self.log("val_acc", acc, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)


def prepare_dataset() -> None:
    with (lifecycle.datasets_root() / "setup_calls").open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    if (
        sys.argv[sys.argv.index("--fail_stage") + 1 :][:1] == ["setup"]
        if "--fail_stage" in sys.argv
        else False
    ):
        raise FileNotFoundError("/datasets/labels/train: missing label dir")
    time.sleep(0.5)  # long enough that other ranks must wait for the lock


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--max_epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=32)
    for knob in ("fail_at_step", "fail_rank"):
        p.add_argument(f"--{knob}", type=int, default=-1)
    p.add_argument("--fail_stage", default="")
    p.add_argument("--constant_val", action="store_true")
    p.add_argument("--accelerator", default="cpu")
    return p.parse_args()


@lifecycle.train_task(
    score_name="Accuracy",
    monitor="val_acc",
    model_class=TinyNet,
    setup=prepare_dataset,
    parse_args=parse_args,  # the templates' default: schema_args.parse_train_args
)
def main(run: lifecycle.Run) -> None:
    args = run.args
    print(f"rank {lifecycle.global_rank()} ran", flush=True)
    knobs = {k: v for k, v in vars(args).items() if k.startswith("fail_")}
    model = TinyNet(lr=args.lr, constant_val=args.constant_val, **knobs)
    trainer = L.Trainer(
        max_epochs=args.max_epochs,
        log_every_n_steps=1,
        enable_model_summary=False,
        **run.trainer_kwargs(),
    )
    trainer.fit(model, loader(args.samples, 0), loader(16, 1), ckpt_path=run.resume)
    trainer.validate(model, loader(16, 2), ckpt_path=run.best, verbose=False)


if __name__ == "__main__":
    main()
