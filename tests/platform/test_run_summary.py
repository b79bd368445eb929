"""What `trainkit run` prints at the end: the score the platform stores (its own code over the
last 50 lines of the container's log), the model it serves, and why there is no score."""

from __future__ import annotations

import argparse

from trainkit import run as run_mod
from trainkit.platform.local import TrainContainerRow

REGEXP = r"Accuracy:\s*([0-9]+(?:\.[0-9]+)?)"


def summary(tmp_path, capsys, log: str, *, exit_code: int = 0, runtime: str = "trainkit") -> str:
    plan = run_mod.RunPlan(
        arch_dir=tmp_path / "arch",
        run_dir=tmp_path / "run",
        minio_root=tmp_path / "minio",
        dataset_id="1",
        runtime=run_mod.Runtime(runtime, tmp_path if runtime == "platform" else None),
        row=TrainContainerRow(
            "Acme", "Classification", "TinyNet", 1, "/workspace/output/model.pt", "Accuracy", REGEXP
        ),
        workdir=tmp_path / "run" / "workspace",
    )
    plan.output_dir.mkdir(parents=True)
    (plan.output_dir / "model.pt").write_bytes(b"weights")
    plan.container_log.write_text(log)
    run_mod.summarize(plan, argparse.Namespace(engine="none"), exit_code)
    return capsys.readouterr().out


def test_the_score_the_platform_stores_and_the_model_it_serves(tmp_path, capsys):
    out = summary(tmp_path, capsys, "Accuracy: 0.1\nAccuracy: 0.87654\n")
    assert "  score:  Accuracy = 0.877 (" in out
    assert f"  model:  /workspace/output/model.pt (pytorch) = {tmp_path}/run/output/model.pt" in out
    assert (tmp_path / "run" / "output" / "score.txt").read_text() == "0.877\n"


def test_a_score_line_outside_the_last_50_lines(tmp_path, capsys):
    out = summary(tmp_path, capsys, "Accuracy: 0.9\n" + "teardown\n" * 60)
    assert (
        "none stored: the platform reads the last 50 lines: No score for Train Container #1" in out
    )
    assert "the last score line is 61 lines from the end of the log" in out
    assert not (tmp_path / "run" / "output" / "score.txt").exists()


def test_a_score_line_the_stock_entrypoint_would_push_out(tmp_path, capsys):
    log = "Accuracy: 0.9\n" + "x\n" * 46
    assert "  note:   the score line is 47 lines from the end" in summary(tmp_path, capsys, log)
    # on the platform runtime the stock trailer is already in the log: nothing to predict
    assert "note:" not in summary(tmp_path / "p", capsys, log, runtime="platform")


def test_a_failed_run_with_a_score_line_still_gets_a_score(tmp_path, capsys):
    out = summary(tmp_path, capsys, "Accuracy: 0.5\nTraceback ...\n", exit_code=1)
    assert "Accuracy = 0.5" in out and "the run failed, but the platform stores this score" in out
