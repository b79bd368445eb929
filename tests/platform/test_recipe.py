"""The build context trainkit assembles is build_train_image's (trainkit/platform/recipe.py runs
the backend's own function): stock common/ + datasets/, the packaged docker/ recursively (same
names win), config/custom.json + presets.json, the stock export.py last, then train_config.json
and export_config.json as json.dump writes them, `{}` for an export form switched off; the
template's config/export_config.json is not used. Fast: no training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.repo import EXAMPLES_DIR
from trainkit import package, platform, vendor, workspace
from trainkit.platform import MODEL_TRAINING_DIR, forms, recipe

EXAMPLES = ("Acme/Classification/TinyNet", "Acme/Detection/TinyDet", "Acme/Segmentation/TinySeg")


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != recipe.MARKER
    }


def expected_context(arch: Path, stock: Path, train: dict, export: dict) -> dict[str, bytes]:
    """The recipe spelled out from the backend's build_train_image (see module docstring)."""
    provider, category, name = arch.resolve().parts[-3:]
    expected: dict[str, bytes] = {}
    for sub in ("common", "datasets"):
        expected |= files(stock / sub)
    entries = package.collect_entries(provider, category, name, arch.resolve().parents[2])
    docker_arc = f"{package.ROOT_DIR_NAME}/{provider}/{category}/{name}/docker/"
    for entry in entries:
        if entry.arcname.startswith(docker_arc) and not entry.arcname.endswith("/"):
            data = entry.data if entry.data is not None else entry.source.read_bytes()
            expected[entry.arcname.removeprefix(docker_arc)] = data
    for config_file in ("custom.json", "presets.json"):
        expected[config_file] = (arch / "config" / config_file).read_bytes()
    expected["export.py"] = (stock / "export" / "export.py").read_bytes()
    expected["train_config.json"] = json.dumps(train).encode()
    expected["export_config.json"] = json.dumps(export).encode()
    return expected


@pytest.mark.parametrize("example", EXAMPLES)
def test_platform_context_is_build_train_images(example, tmp_path):
    arch = EXAMPLES_DIR / example
    built = recipe.assemble(arch, tmp_path / "ctx", MODEL_TRAINING_DIR)
    schema = workspace.load_schema(arch)
    assert built.train_config == platform.form_values(schema)
    assert built.export_config == platform.export_form_values()
    got = files(built.context)
    assert got == expected_context(
        arch, MODEL_TRAINING_DIR, built.train_config, built.export_config
    )
    # what that means: the packaged runtime's entry scripts win over the stock ones, the stock
    # Python files stay, the stock export.py is there
    scripts = dict(vendor.runtime_files())
    assert got["docker-entrypoint.sh"] == scripts["docker-entrypoint.sh"].read_bytes()
    assert got["config.py"] == (MODEL_TRAINING_DIR / "common" / "config.py").read_bytes()
    assert got["export.py"] == (MODEL_TRAINING_DIR / "export" / "export.py").read_bytes()
    assert built.build.row.model_filepath == "/workspace/output/model.pt"


def test_later_copies_win_and_config_export_config_is_not_used(tmp_path):
    arch = tmp_path / "templates" / "Acme" / "Classification" / "TinyNet"
    shutil.copytree(EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet", arch)
    for name in ("export.py", "presets.json", "custom.json", "train_config.json", "config.py"):
        (arch / "docker" / name).write_text(f"# docker/{name} of the template\n")
    (arch / "docker" / "extra" / "deep").mkdir(parents=True)
    (arch / "docker" / "extra" / "deep" / "data.txt").write_text("recursive")
    (arch / "config" / "export_config.json").write_text('{"input_shapes": [[1, 3, 8, 8]]}')
    built = recipe.assemble(arch, tmp_path / "ctx", MODEL_TRAINING_DIR)
    got = files(built.context)
    stock = MODEL_TRAINING_DIR
    assert got["export.py"] == (stock / "export" / "export.py").read_bytes()  # export.py last
    assert got["presets.json"] == (arch / "config" / "presets.json").read_bytes()
    assert got["custom.json"] == (arch / "config" / "custom.json").read_bytes()
    assert json.loads(got["train_config.json"]) == built.train_config
    assert got["config.py"] == b"# docker/config.py of the template\n"  # docker/ after common/
    assert got["extra/deep/data.txt"] == b"recursive"
    assert json.loads(got["export_config.json"]) == platform.export_form_values()


def test_export_form_switched_off_writes_an_empty_object(tmp_path):
    built = recipe.assemble(
        EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet",
        tmp_path / "ctx",
        MODEL_TRAINING_DIR,
        export=forms.FormInput(file={}, file_name="--export-config off.json"),
    )
    assert (built.context / "export_config.json").read_bytes() == b"{}"


def test_a_site_model_training_dir_is_used(tmp_path):
    site = shutil.copytree(MODEL_TRAINING_DIR, tmp_path / "site")
    (site / "common" / "site_hook.py").write_text("# the site's own\n")
    (site / "export" / "export.py").write_text("# the site's export.py\n")
    built = recipe.assemble(EXAMPLES_DIR / "Acme" / "Detection" / "TinyDet", tmp_path / "c", site)
    assert (built.context / "site_hook.py").read_text() == "# the site's own\n"
    assert (built.context / "export.py").read_text() == "# the site's export.py\n"


def test_trainkit_runtime_context_has_trainkit_files_in_the_stock_places(tmp_path):
    built = workspace.assemble(EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet", tmp_path / "w")
    shims = vendor.legacy_shims()
    for name in ("config.py", "config_to_args.py", "dataset.py", "cvat_dataset.py", "export.py"):
        assert (built.context / name).read_text() == shims[name], name


def test_form_values_given_by_the_user(tmp_path):
    arch = EXAMPLES_DIR / "Acme" / "Classification" / "TinyNet"
    start = platform.form_values(workspace.load_schema(arch))
    built = recipe.assemble(
        arch,
        tmp_path / "ctx",
        MODEL_TRAINING_DIR,
        train=forms.FormInput(sets={"epochs": 3}),
        export=forms.FormInput(sets={"opset_version": 17}),
    )
    assert built.train_config == {**start, "epochs": 3}
    # --config: values applied over the starting ones; --export-config: replaces them
    merged = forms.fill(
        workspace.load_schema(arch), start, forms.FormInput(file={"epochs": 4}, replace=False), "x"
    )
    assert merged == {**start, "epochs": 4}
    assert built.export_config == {**platform.export_form_values(), "opset_version": 17}
    with pytest.raises(forms.FormError, match=r"export form's initial values \+ --export-set: "):
        recipe.assemble(
            arch,
            tmp_path / "ctx",
            MODEL_TRAINING_DIR,
            export=forms.FormInput(sets={"opset_version": 99}, sets_name="--export-set"),
        )
