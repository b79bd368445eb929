"""common/config.py: platform-compatible merge, atomic write, one-line errors."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from trainkit_runtime import configuration as config
from trainkit_runtime.configuration import ConfigError, finalize_config, load_config


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def test_paths_are_relative_to_the_workdir_like_the_platform() -> None:
    assert config.TRAIN_CONFIG_FILEPATH == "./train_config.json"
    assert config.PRESETS_FILEPATH == "./presets.json"


def test_load_config_reads_the_form_values(workdir: Path) -> None:
    write(workdir / "train_config.json", {"epochs": 3, "name": "ä b"})
    assert load_config() == {"epochs": 3, "name": "ä b"}


def test_load_config_missing_file_names_it(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"train_config\.json: file not found"):
        load_config()


def test_load_config_invalid_json_is_one_line_with_position(workdir: Path) -> None:
    (workdir / "train_config.json").write_text('{\n  "epochs": 3,\n  "lr": ,\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    assert "\n" not in message
    assert "train_config.json" in message
    assert "line 3 column 9" in message


def test_load_config_rejects_non_objects(workdir: Path) -> None:
    write(workdir / "train_config.json", [1, 2])
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        load_config()


def test_finalize_presets_beat_config_and_custom_beats_both(workdir: Path) -> None:
    write(workdir / "presets.json", {"epochs": 10, "images-dir": "/datasets/images", "x": 1})
    merged = finalize_config(
        {"epochs": 3, "lr": 0.1, "x": 0}, custom={"x": 2, "model_filepath": "/o/m.pt"}
    )
    expected = {
        "epochs": 10,
        "lr": 0.1,
        "x": 2,
        "images-dir": "/datasets/images",
        "model_filepath": "/o/m.pt",
    }
    assert merged == expected
    assert json.loads((workdir / "train_config.json").read_text()) == expected
    # Key order as {**config, **presets, **custom}: what config_to_args.py iterates.
    assert list(json.loads((workdir / "train_config.json").read_text())) == list(expected)


def test_finalize_default_custom_is_call_compatible(workdir: Path) -> None:
    write(workdir / "presets.json", {})
    finalize_config({"a": 1})
    finalize_config({"a": 2}, {})
    assert load_config() == {"a": 2}


def test_finalize_missing_presets_counts_as_empty_and_says_so(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="config"):
        assert finalize_config({"a": 1}) == {"a": 1}
    assert "presets.json not found" in caplog.text
    assert load_config() == {"a": 1}


def test_finalize_invalid_presets_leaves_train_config_untouched(workdir: Path) -> None:
    original = b'{"epochs": 3}'
    (workdir / "train_config.json").write_bytes(original)
    (workdir / "presets.json").write_text('{"a": 1,,}')
    with pytest.raises(ConfigError, match=r"presets\.json: invalid JSON at line 1 column 9"):
        finalize_config({"epochs": 4})
    assert (workdir / "train_config.json").read_bytes() == original
    assert sorted(p.name for p in workdir.iterdir()) == ["presets.json", "train_config.json"]


def test_finalize_write_failure_keeps_the_old_file_and_no_temp(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = b'{"epochs": 3}'
    (workdir / "train_config.json").write_bytes(original)
    write(workdir / "presets.json", {})

    def crash(fd: int) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        finalize_config({"epochs": 4})
    assert (workdir / "train_config.json").read_bytes() == original
    assert sorted(p.name for p in workdir.iterdir()) == ["presets.json", "train_config.json"]


def test_finalize_unserialisable_value_touches_nothing(workdir: Path) -> None:
    original = b'{"epochs": 3}'
    (workdir / "train_config.json").write_bytes(original)
    write(workdir / "presets.json", {})
    with pytest.raises(TypeError):
        finalize_config({"epochs": object()})
    assert (workdir / "train_config.json").read_bytes() == original
    assert len(list(workdir.iterdir())) == 2


def test_finalize_keeps_file_mode_readable_by_others(workdir: Path) -> None:
    target = workdir / "train_config.json"
    target.write_text("{}")
    target.chmod(0o644)
    write(workdir / "presets.json", {})
    finalize_config({"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_finalize_new_file_follows_umask_not_mkstemp_0600(workdir: Path) -> None:
    write(workdir / "presets.json", {})
    old = os.umask(0o022)
    try:
        finalize_config({"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((workdir / "train_config.json").stat().st_mode) == 0o644
