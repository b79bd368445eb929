"""package.sh / `trainkit package` on a valid source tree and on bad input."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest

from tests.support.packaging import package_sh, snapshot
from tests.support.template_tree import (
    ARCH,
    ARCHITECTURE,
    CATEGORY,
    PROVIDER,
    TOP,
    architecture_files,
    write_source_tree,
)
from trainkit import layout, vendor
from trainkit.validation import validate_path


def runtime_entries() -> list[str]:
    """The runtime copy `trainkit package` adds to docker/, file by file."""
    return [f"{TOP}/{ARCH}/docker/{rel}" for rel, _ in vendor.runtime_files()]


def expected_entries() -> list[str]:
    files = [f"{TOP}/{name}" for name in layout.ROOT_FILES]
    files += [f"{TOP}/{ARCH}/{rel}" for rel in architecture_files()]
    files += runtime_entries()
    dirs = {f"{TOP}/", f"{TOP}/{PROVIDER}/", f"{TOP}/{PROVIDER}/{CATEGORY}/", f"{TOP}/{ARCH}/"}
    dirs |= {f"{TOP}/{ARCH}/config/", f"{TOP}/{ARCH}/docker/"}
    dirs |= {f"{name.rsplit('/', 1)[0]}/" for name in runtime_entries()}
    return sorted(files + list(dirs))


@pytest.fixture
def source(tmp_path):
    return write_source_tree(tmp_path / "src")


@pytest.fixture
def workdir(tmp_path):
    """An unrelated current directory: package.sh must work from anywhere."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


def tree_args(source) -> list[str]:
    return ["--templates", str(source.templates)]


def test_package_sh_builds_a_valid_zip_with_exact_entries(source, workdir):
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    zip_path = workdir / layout.ZIP_NAME
    assert f"wrote {layout.ZIP_NAME}" in proc.stdout
    assert sorted(os.listdir(workdir)) == [layout.ZIP_NAME]  # nothing else written
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == expected_entries()  # sorted, exactly these
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        for script in layout.ENTRY_SCRIPTS:
            for name in (f"{TOP}/{script}", f"{TOP}/{ARCH}/docker/{script}"):
                assert zf.getinfo(name).external_attr >> 16 & 0o777 == 0o755, name
        # the runtime copy is the installed runtime, byte for byte
        for rel, source_file in vendor.runtime_files():
            assert zf.read(f"{TOP}/{ARCH}/docker/{rel}") == source_file.read_bytes(), rel
    report = validate_path(zip_path)
    assert report.ok, report.lines()


def test_two_runs_give_identical_bytes(source, workdir):
    digests = []
    for name in ("a.zip", "b.zip"):
        proc = package_sh(
            PROVIDER, CATEGORY, ARCHITECTURE, "--out", name, *tree_args(source), cwd=workdir
        )
        assert proc.returncode == 0, proc.stderr
        digests.append(hashlib.sha256((workdir / name).read_bytes()).hexdigest())
        with zipfile.ZipFile(workdir / name) as zf:
            assert zf.namelist() == expected_entries()
    assert digests[0] == digests[1]


def test_excludes_caches_outputs_checkpoints_and_data(source, workdir):
    junk = [
        "docker/__pycache__/train.cpython-311.pyc",
        "docker/helper.pyc",
        "docker/.git/HEAD",
        "docker/output/model.pt",
        "docker/outputs/run1/log.txt",
        "docker/lightning_logs/version_0/metrics.csv",
        "docker/.ipynb_checkpoints/nb.ipynb",
        "docker/last.ckpt",
        "docker/datasets/1/img.jpg",
        "config/__pycache__/x.pyc",
    ]
    for rel in junk:
        path = source.arch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
    (source.arch / "docker" / "model_utils.py").write_text("X = 1\n")
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(workdir / layout.ZIP_NAME) as zf:
        names = zf.namelist()
    assert f"{TOP}/{ARCH}/docker/model_utils.py" in names
    assert names == sorted([*expected_entries(), f"{TOP}/{ARCH}/docker/model_utils.py"])
    for rel in junk:
        assert f"{TOP}/{ARCH}/{rel}" not in names


def test_only_config_and_docker_are_packaged(source, workdir):
    (source.arch / "README.md").write_text("notes\n")
    (source.arch / "dev").mkdir()
    (source.arch / "dev" / "scratch.py").write_text("x = 1\n")
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(workdir / layout.ZIP_NAME) as zf:
        assert zf.namelist() == expected_entries()


def test_large_file_warns(source, workdir):
    (source.arch / "docker" / "weights.bin").write_bytes(os.urandom(11 * 2**20))
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "weights.bin is 11.0 MiB" in proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["my net", CATEGORY, ARCHITECTURE],
            "provider 'my net' must match ^[A-Za-z][A-Za-z0-9_-]{0,63}$ (spaces are not allowed)",
        ),
        ([PROVIDER, "9lives", ARCHITECTURE], "category '9lives' must match"),
        ([PROVIDER, CATEGORY, "../etc"], "architecture '../etc' must match"),
    ],
)
def test_bad_name_is_a_usage_error_and_writes_nothing(source, workdir, args, fragment):
    before = snapshot(source.base.parent)
    proc = package_sh(*args, *tree_args(source), cwd=workdir)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "usage: package.sh PROVIDER CATEGORY ARCHITECTURE" in proc.stderr
    assert snapshot(source.base.parent) == before


@pytest.mark.parametrize("args", [[], [PROVIDER], [PROVIDER, CATEGORY], ["", CATEGORY, "X"]])
def test_missing_arguments_print_usage(source, workdir, args):
    proc = package_sh(*args, cwd=workdir)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: package.sh")
    assert os.listdir(workdir) == []


def test_help_exits_zero(workdir):
    proc = package_sh("--help", cwd=workdir)
    assert proc.returncode == 0
    assert "usage: package.sh" in proc.stderr


def test_missing_architecture_dir_is_an_error_and_writes_nothing(source, workdir):
    before = snapshot(source.base.parent)
    proc = package_sh(PROVIDER, CATEGORY, "NoSuchNet", *tree_args(source), cwd=workdir)
    assert proc.returncode == 1
    assert "NoSuchNet: no such architecture directory" in proc.stderr
    assert snapshot(source.base.parent) == before


def test_symlink_is_refused(source, workdir):
    (source.arch / "docker" / "link.py").symlink_to(source.arch / "docker" / "train.py")
    before = snapshot(workdir)
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 1
    assert "link.py: is a symlink; package refuses symlinks" in proc.stderr
    assert snapshot(workdir) == before


def test_failing_package_does_not_replace_a_good_zip(source, workdir):
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    good = snapshot(workdir)
    (source.arch / "config" / "custom.json").write_text('{"model_filepath": "/m.pt"')
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 1
    assert f"ERROR {TOP}/{ARCH}/config/custom.json: Invalid JSON file" in proc.stderr
    assert "fails validation" in proc.stderr
    assert snapshot(workdir) == good  # same ZIP bytes, no temp file left


@pytest.mark.parametrize("own", ["mount-s3.sh", "trainkit_runtime/lifecycle.py"])
def test_architecture_file_where_the_runtime_goes_is_refused(source, workdir, own):
    path = source.arch / "docker" / own
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# the researcher's own copy\n")
    proc = package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir)
    assert proc.returncode == 1
    assert f"{own}: trainkit's runtime provides this file" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert os.listdir(workdir) == []
    assert path.read_text() == "# the researcher's own copy\n"


def test_out_into_missing_directory_is_a_usage_error(source, workdir):
    proc = package_sh(
        PROVIDER, CATEGORY, ARCHITECTURE, "--out", "nope/x.zip", *tree_args(source), cwd=workdir
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_trainkit_package_in_process(source, tmp_path, capsys):
    from trainkit.cli import main

    out = tmp_path / "pkg.zip"
    code = main(
        ["package", PROVIDER, CATEGORY, ARCHITECTURE, "--out", str(out), *tree_args(source)]
    )
    assert code == 0
    count = len(layout.ROOT_FILES) + len(architecture_files()) + len(runtime_entries())
    assert f"({count} files)" in capsys.readouterr().out
    assert validate_path(out).ok


def _rewritten(zip_path, out, changes: dict[str, bytes | None]):
    """A copy of zip_path with some entries replaced (None: left out)."""
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in changes:
                if changes[info.filename] is not None:
                    dst.writestr(info, changes[info.filename])
            else:
                dst.writestr(info, src.read(info))
    return out


def _runtime_findings(report) -> list[str]:
    return [line for line in report.lines() if f"docker/{layout.RUNTIME_PACKAGE}" in line]


def test_validate_names_the_unmodified_runtime_and_reports_a_modified_one(source, workdir):
    assert (
        package_sh(PROVIDER, CATEGORY, ARCHITECTURE, *tree_args(source), cwd=workdir).returncode
        == 0
    )
    zip_path = workdir / layout.ZIP_NAME
    (line,) = _runtime_findings(validate_path(zip_path))
    assert f"trainkit runtime {vendor.RUNTIME_VERSION}, unmodified" in line

    lifecycle = f"{TOP}/{ARCH}/docker/{layout.RUNTIME_PACKAGE}/lifecycle.py"
    with zipfile.ZipFile(zip_path) as zf:
        edited = zf.read(lifecycle) + b"\nEDITED_BY_HAND = True\n"
    modified = _rewritten(zip_path, workdir / "modified.zip", {lifecycle: edited})
    (line,) = _runtime_findings(validate_path(modified))
    assert line.startswith("WARNING ")
    assert "was modified (trainkit_runtime/lifecycle.py differ from the release)" in line

    entry = f"{TOP}/{ARCH}/docker/docker-entrypoint.sh"  # the entry scripts count too
    with zipfile.ZipFile(zip_path) as zf:
        script = zf.read(entry).replace(b"exec ", b"")
    modified = _rewritten(zip_path, workdir / "entry.zip", {entry: script})
    (line,) = _runtime_findings(validate_path(modified))
    assert "was modified (docker-entrypoint.sh differ from the release)" in line
