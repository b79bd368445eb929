"""The backend finds an architecture's Dockerfile and form schema by substring over its
provider's files (trainkit/platform/lookup.py runs its own get_dockerfile_filepath and
get_config_filepaths): names contained in a sibling's, a stock template's or the path, and
stray files with stem `config`, by rglob's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit.platform import backend_code, lookup
from trainkit.platform.lookup import Arch

FILES = (
    "config/config.jsonschema",
    "config/custom.json",
    "config/presets.json",
    "docker/Dockerfile",
)


def arch(path: str, origin: str = "sibling", extra: tuple[str, ...] = ()) -> Arch:
    provider, category, name = path.split("/")
    return Arch(provider, category, name, FILES + extra, origin)


def levels(target: str, others: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    found = lookup.check(arch(target, "target", extra), [arch(o) for o in others])
    return [f.level for f in found]


@pytest.mark.parametrize(
    ("target", "others", "expected"),
    [
        ("Acme/Classification/TinyNet", ["Acme/Detection/TinyDet"], []),
        ("Acme/Classification/Net", ["Acme/Classification/TinyNet"], ["ERROR"]),  # in a sibling's
        ("Acme/Classification/TinyNet2", ["Acme/Classification/TinyNet"], ["ERROR"]),  # breaks it
        ("Acme/Classification/Class", ["Acme/Detection/TinyDet"], ["WARNING"]),  # latent
        ("Acme/Classification/Class", ["Acme/Classification/TinyNet"], ["ERROR"]),
        ("Acme/Detection/Det", [], ["WARNING"]),  # in its own category: latent
        ("Acme/Classification/Acm", [], ["WARNING"]),  # in its provider
        ("Acme/Classification/model", [], ["WARNING"]),  # in model-training/templates
        ("Other/Classification/Net", ["Acme/Classification/TinyNet"], []),  # other provider
    ],
)
def test_names_the_substring_lookups_confuse(target, others, expected):
    assert levels(target, others) == expected


def test_stock_templates_count_for_their_providers():
    stock = lookup.stock_architectures("Ultralytics")
    assert {a.name for a in stock} == {"YOLOv11", "YOLOv5"}
    found = lookup.check(arch("Ultralytics/Object Detection/YOLO", "target"), stock)
    assert [f.level for f in found] == ["ERROR"]
    assert "YOLOv5/docker/Dockerfile" in found[0].message
    breaks = lookup.check(arch("Ultralytics/Object Detection/YOLOv11x", "target"), stock)
    assert any("stock template Ultralytics/Object Detection/YOLOv11" in f.message for f in breaks)
    assert lookup.check(arch("Ultralytics/Object Detection/RTDETR", "target"), stock) == []
    mask = lookup.stock_architectures("Torchvision")
    assert [f.level for f in lookup.check(arch("Torchvision/Seg/Mask", "target"), mask)] == [
        "ERROR"
    ]


@pytest.mark.parametrize(
    ("stray", "level", "certainty"),
    [
        ("config.yaml", "ERROR", "takes"),  # arch/ is listed before arch/config/
        ("docker/config.py", "WARNING", "may take"),  # a sibling branch: file system order
        ("config/config.json", "WARNING", "may take"),  # same directory: file system order
        ("config/sub/config.json", None, None),  # below config/: never before it
        ("docker/.cache/config.json", None, None),  # hidden parts are skipped
    ],
)
def test_stray_config_files_by_rglob_order(stray, level, certainty):
    found = lookup.check(arch("Acme/Classification/TinyNet", "target", (stray,)), [])
    schema = [f for f in found if "form schema" in f.message]
    if level is None:
        assert schema == []
    else:
        assert [f.level for f in schema] == [level]
        assert schema[0].file == stray and f"the platform {certainty} " in schema[0].message
    listing = [f for f in found if "architectures shows it" in f.message]
    assert len(listing) == (0 if stray.startswith("docker/.") else 1)


def _real_tree(root: Path, stray: str) -> None:
    base = root / "model-training" / "templates" / "Acme" / "Classification" / "TinyNet"
    for rel in (*FILES, stray):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).touch()


@pytest.mark.parametrize(
    ("stray", "first"), [("config.yaml", True), ("config/a/config.json", False)]
)
def test_rglob_order_claims_hold_for_the_backends_code(stray, first, tmp_path, monkeypatch):
    """'takes' and 'never' are decided by the order Path.rglob lists entries: checked here
    against the backend's own get_config_filepaths on a real tree."""
    _real_tree(tmp_path, stray)
    monkeypatch.chdir(tmp_path)
    util = backend_code.functions(
        backend_code.UTIL_TRAIN, ["get_filepaths", "get_config_filepaths"]
    )
    found = [
        p.as_posix() for p in util.get_config_filepaths(lookup.TEMPLATES_REL, "Acme", "TinyNet")
    ]
    schema = f"{lookup.TEMPLATES_REL}/Acme/Classification/TinyNet/config/config.jsonschema"
    assert (found[0] != schema) is first
    assert len(found) == 2


def test_local_siblings_are_found_next_to_an_architecture(tmp_path):
    provider = tmp_path / "templates" / "Acme"
    for name in ("Classification/TinyNet", "Classification/Net", "Detection/TinyDet"):
        for sub in ("config", "docker"):
            (provider / name / sub).mkdir(parents=True)
        (provider / name / "docker" / "Dockerfile").touch()
        (provider / name / "config" / "config.jsonschema").touch()
    siblings = lookup.local_siblings(provider / "Classification" / "Net", add_runtime=True)
    assert sorted(s.path for s in siblings) == [
        "Acme/Classification/TinyNet",
        "Acme/Detection/TinyDet",
    ]
    assert any(f.startswith("docker/trainkit_runtime/") for f in siblings[0].files)
