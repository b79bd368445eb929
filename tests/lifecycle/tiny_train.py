"""A self-contained train.py that uses run_control like a generated template does: a tiny
LightningModule on random tensors. The lifecycle tests run it as a subprocess (also under
torchrun). Prints `start global_step=N` when fitting starts and `rank R ran` per process."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainkit_runtime import lifecycle as rc


class TinyNet(L.LightningModule):
    def __init__(
        self,
        lr: float = 0.05,
        fail_at_step: int = -1,
        fail_rank: int = -1,
        sleep: float = 0.0,
        constant_val: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_start(self) -> None:
        if self.trainer.is_global_zero:
            print(f"start global_step={self.trainer.global_step}", flush=True)

    def training_step(self, batch, batch_idx):
        fail_here = self.hparams.fail_rank in (-1, self.global_rank)
        if self.global_step == self.hparams.fail_at_step and fail_here:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.hparams.sleep:
            time.sleep(self.hparams.sleep)
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

    def test_step(self, batch, batch_idx):
        x, y = batch
        acc = (self(x).argmax(1) == y).float().mean()
        self.log("test_acc", acc, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=4)


def prepare_dataset() -> None:
    root = rc.datasets_root()
    with (root / "setup_calls").open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.5)  # long enough that other ranks must wait for the lock


def export(model: TinyNet, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    model = model.cpu().eval()
    torch.onnx.export(
        model,
        (torch.ones(1, 4),),
        str(tmp),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
    )
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--max_epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--fail_at_step", type=int, default=-1)
    p.add_argument("--fail_rank", type=int, default=-1)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--fail_stage", default="")
    p.add_argument("--constant_val", action="store_true")
    p.add_argument("--devices", default="auto")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--num_nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--precision", default="32")
    args = p.parse_args()
    config = vars(args)
    out = rc.output_dir()
    model_path = out / "model.onnx"

    with rc.run_stage("setup"):
        if args.fail_stage == "setup":
            raise FileNotFoundError("/datasets/labels/train: missing label dir")
        rc.setup_once(prepare_dataset)
    print(f"rank {rc.global_rank()} ran", flush=True)

    if rc.run_finished(config):
        info = rc.finished_info(config)
        if rc.is_rank_zero():
            if not model_path.exists():
                with rc.run_stage("export"):
                    best = rc.checkpoint_dir() / "best.ckpt"
                    export(TinyNet.load_from_checkpoint(best), model_path)
                    print("re-exported", flush=True)
            print("run already finished, not training again", flush=True)
            print(f"Accuracy: {info['score']:.3f}", flush=True)
        return

    ckpt = rc.resume_checkpoint(config)
    model = TinyNet(
        lr=args.lr,
        fail_at_step=args.fail_at_step,
        fail_rank=args.fail_rank,
        sleep=args.sleep,
        constant_val=args.constant_val,
    )
    trainer = L.Trainer(
        max_epochs=args.max_epochs,
        log_every_n_steps=1,
        enable_model_summary=False,
        **rc.trainer_kwargs(args, monitor="val_acc"),
    )
    with rc.run_stage("train"):
        trainer.fit(model, loader(args.samples, 0), loader(16, 1), ckpt_path=ckpt)
    with rc.run_stage("test"):
        result = trainer.test(model, loader(16, 2), ckpt_path="best", verbose=False)
    score = float(result[0]["test_acc"])
    if rc.is_rank_zero():
        with rc.run_stage("export"):
            if args.fail_stage == "export":
                raise ValueError("export_config.json: input_shapes missing")
            export(model, model_path)
        print(f"Accuracy: {score:.3f}", flush=True)
    rc.mark_finished(config, score=score)


if __name__ == "__main__":
    sys.exit(main())
