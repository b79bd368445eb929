"""The validator on hostile and broken ZIPs: each case asserts the exact finding (level, path
in the ZIP, message fragment) and that nothing was written outside the validator's temp dir."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.template_tree import ARCH, TOP, valid_files, write_zip
from trainkit import layout
from trainkit.validation import validate_path
from trainkit.validation.report import Report

pytestmark = pytest.mark.hostile

A = f"{TOP}/{ARCH}"  # the architecture dir as it appears in the ZIP


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A dir for the ZIP and a private TMPDIR; afterwards both must hold nothing new."""
    zips = tmp_path / "zips"
    zips.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield zips
    assert list(tmp.iterdir()) == [], "validator left files in its temp dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp", "zips"], "wrote outside"


def run(zips: Path, build: Callable[[Path], Path]) -> Report:
    zip_path = build(zips / "t.zip")
    before = sorted(p.name for p in zips.iterdir())
    report = validate_path(zip_path)
    assert sorted(p.name for p in zips.iterdir()) == before
    return report


def has(report: Report, level: str, path: str, fragment: str) -> bool:
    return any(
        f.level == level and f.path == path and fragment in f.message for f in report.findings
    )


def assert_finding(report: Report, level: str, path: str, fragment: str) -> None:
    assert has(report, level, path, fragment), "\n".join(report.lines())


def mutated(changes: dict[str, bytes | None]) -> dict[str, bytes]:
    files = valid_files()
    for key, value in changes.items():
        if value is None:
            del files[key]
        else:
            files[key] = value
    return files


def raw_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return path


def valid_entries() -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return [(f"{TOP}/{rel}", data) for rel, data in sorted(valid_files().items())]


def js(obj) -> bytes:
    return json.dumps(obj).encode()


def test_valid_zip_passes(sandbox):
    report = run(sandbox, lambda p: write_zip(p, valid_files()))
    assert report.ok, report.lines()
    assert not [f for f in report.warnings if "schema_args" not in f.message], report.lines()


# --- ZIP safety (central directory, nothing extracted) -------------------------------------


@pytest.fixture
def extraction_roots(monkeypatch) -> list[Path]:
    """The temp dirs the validator makes (TemporaryDirectory calls tempfile.mkdtemp)."""
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording(*args, **kwargs):
        path = real_mkdtemp(*args, **kwargs)
        made.append(Path(path))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    return made


def test_dot_dot_inside_the_archive_is_refused_too(sandbox):
    """`TOP/../evil.py` normalises to a path inside the extraction dir; any `..` is refused."""
    name = f"{TOP}/../evil.py"
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, b"x")]))
    assert_finding(report, "ERROR", name, "zip slip")


# Entries that leave the extraction dir: into the validator's TMPDIR, and into the test's dir.
@pytest.mark.parametrize(
    "name", [f"{TOP}/../../evil.py", f"{TOP}/../../../evil.py", "../../evil.py"]
)
def test_zip_slip(sandbox, extraction_roots, name):
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, b"x")]))
    assert_finding(report, "ERROR", name, "zip slip")
    assert not report.ok
    # Where a naive extractor into the validator's temp dir would have put the entry.
    roots = [r for r in extraction_roots if r.name.startswith("trainkit-validate-")]
    assert roots, "the validator no longer extracts into a trainkit-validate-* temp dir"
    for root in roots:
        landing = Path(os.path.normpath(root / name))
        assert not landing.is_relative_to(root), landing  # the entry really escapes
        assert landing.parent.is_relative_to(sandbox.parent), landing  # inside this test's dir
        assert not landing.exists(), f"{name} was extracted to {landing}"


def test_absolute_path(sandbox):
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), ("/tmp/evil.py", b"x")]))
    assert_finding(report, "ERROR", "/tmp/evil.py", "absolute path")


def test_backslash_path(sandbox):
    name = f"{TOP}\\..\\evil.py"
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, b"x")]))
    assert_finding(report, "ERROR", name, "backslash")


def test_drive_letter(sandbox):
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), ("C:/evil.py", b"x")]))
    assert_finding(report, "ERROR", "C:/evil.py", "drive letter")


def test_symlink_entry(sandbox):
    info = zipfile.ZipInfo(f"{A}/docker/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (info, b"/etc/passwd")]))
    assert_finding(report, "ERROR", f"{A}/docker/link", "symlink entry")


def test_bomb_by_ratio(sandbox):
    name = f"{A}/docker/weights.bin"
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, bytes(20 * 2**20))]))
    assert_finding(report, "ERROR", name, "compression ratio")


def test_too_many_entries(sandbox):
    extra = [(f"{A}/docker/f{i}.txt", b"") for i in range(5_001)]
    report = run(sandbox, lambda p: raw_zip(p, valid_entries() + extra))
    assert_finding(report, "ERROR", ".", "more than the limit 5000")


def test_duplicate_entry(sandbox):
    name = f"{A}/docker/train.py"
    report = run(sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, b"print(1)\n")]))
    assert_finding(report, "ERROR", name, "duplicate entry name")


def set_encrypted_flag(path: Path, name: str) -> Path:
    """zipfile cannot write encrypted entries; set the flag bit in the headers by hand."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, flags_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 26, 30),
        (b"PK\x01\x02", 8, 28, 46),
    ):
        start = 0
        while (start := data.find(signature, start)) != -1:
            length = int.from_bytes(data[start + name_len_at : start + name_len_at + 2], "little")
            if bytes(data[start + name_at : start + name_at + length]) == encoded:
                data[start + flags_at] |= 0x1
            start += 4
    path.write_bytes(bytes(data))
    return path


def test_encrypted_entry(sandbox):
    name = f"{A}/docker/secret.txt"
    report = run(
        sandbox, lambda p: set_encrypted_flag(raw_zip(p, [*valid_entries(), (name, b"x")]), name)
    )
    assert_finding(report, "ERROR", name, "encrypted")


def test_nested_zip_warns(sandbox):
    name = f"{A}/docker/more.zip"
    report = run(
        sandbox, lambda p: raw_zip(p, [*valid_entries(), (name, b"PK\x05\x06" + bytes(18))])
    )
    assert_finding(report, "WARNING", name, "nested archive")
    assert report.ok


def test_not_a_zip(sandbox):
    report = run(sandbox, lambda p: (p.write_bytes(b"not a zip"), p)[1])
    assert_finding(report, "ERROR", ".", "not a readable ZIP archive")


# --- the platform's structure rules ----------------------------------------------------------


def test_two_top_level_dirs(sandbox):
    entries = [*valid_entries(), ("other/readme.txt", b"x")]
    report = run(sandbox, lambda p: raw_zip(p, entries))
    assert_finding(report, "ERROR", ".", "Archive did not extract as a single directory.")
    assert_finding(report, "ERROR", ".", f"other, {TOP}")


def test_files_at_top_level(sandbox):
    report = run(sandbox, lambda p: write_zip(p, valid_files(), top=None))
    assert_finding(report, "ERROR", ".", "Archive did not extract as a single directory.")


def test_no_config_dir(sandbox):
    files = {k.replace("/config/", "/cfg/"): v for k, v in valid_files().items()}
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", TOP, "None or multiple configuration directories")
    assert_finding(report, "ERROR", TOP, "found none")


def test_two_config_dirs(sandbox):
    files = mutated({f"{ARCH}/docker/config/extra.yaml": b"a: 1\n"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", TOP, "None or multiple configuration directories")
    assert_finding(report, "ERROR", TOP, f"'{A}/docker/config'")


def test_config_subdirectory(sandbox):
    files = mutated({f"{ARCH}/config/sub/extra.json": b"{}"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", TOP, f"'{A}/config', '{A}/config/sub'")


def test_wrong_depth(sandbox):
    files = {k.replace(ARCH, "Acme/TinyNet"): v for k, v in valid_files().items()}
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(
        report,
        "ERROR",
        f"{TOP}/Acme/TinyNet/config",
        "Either provider, category or architecture are missing",
    )


REQUIRED = [f"{name}" for name in layout.ROOT_FILES] + [
    f"{ARCH}/{sub}/{name}"
    for sub, names in (
        (layout.CONFIG_DIR, layout.CONFIG_FILES),
        (layout.DOCKER_DIR, layout.DOCKER_FILES),
    )
    for name in names
]


@pytest.mark.parametrize("missing", REQUIRED)
def test_missing_required_file(sandbox, missing):
    files = mutated({missing: None})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{missing}", f"Entry '{missing}' not found")
    assert not report.ok


def test_invalid_json(sandbox):
    files = mutated({f"{ARCH}/config/custom.json": b'{"model_filepath": '})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{A}/config/custom.json", "Invalid JSON file 'Acme/")


def test_invalid_json_anywhere(sandbox):
    files = mutated({f"{ARCH}/docker/labels.json": b"[1, 2"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{A}/docker/labels.json", "Invalid JSON file")


def test_excluded_junk_warns(sandbox):
    files = mutated({f"{ARCH}/docker/__pycache__/train.cpython-311.pyc": b"\0"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "WARNING", f"{A}/docker/__pycache__", "should not be packaged")


def test_second_dockerfile(sandbox):
    files = mutated({f"{ARCH}/docker/old/Dockerfile": b"FROM x\n"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(
        report, "ERROR", DOCKERFILE_IN_ZIP, "the platform cannot build this architecture"
    )
    assert_finding(report, "ERROR", DOCKERFILE_IN_ZIP, "docker/old/Dockerfile")


def test_file_with_config_stem_warns(sandbox):
    files = mutated({f"{ARCH}/docker/config.py": b"X = 1\n"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "WARNING", f"{A}/docker/config.py", "stem 'config'")


# --- config/ ---------------------------------------------------------------------------------

SCHEMA = f"{ARCH}/config/config.jsonschema"
CUSTOM = f"{ARCH}/config/custom.json"


def schema_with(**props) -> bytes:
    schema = json.loads(valid_files()[SCHEMA])
    schema["properties"].update(props)
    return js(schema)


def custom_with(**values) -> bytes:
    return js({**json.loads(valid_files()[CUSTOM]), **values})


def test_invalid_schema(sandbox):
    files = mutated({SCHEMA: js({"type": "objekt", "properties": {}})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{SCHEMA}", "not a valid draft-07 schema")


def test_schema_without_properties(sandbox):
    files = mutated({SCHEMA: js({"type": "array"})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{SCHEMA}", "object schema with 'properties'")


def test_default_not_valid_for_its_schema(sandbox):
    files = mutated({SCHEMA: schema_with(epochs={"type": "integer", "default": "two"})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{SCHEMA}", "default of 'epochs' ('two') is not valid")


def test_property_that_cannot_be_a_flag(sandbox):
    files = mutated({SCHEMA: schema_with(**{"batch size": {"type": "integer", "default": 1}})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{SCHEMA}", "'batch size' cannot be a command-line flag")


def test_presets_not_valid_for_schema(sandbox):
    files = mutated({f"{ARCH}/config/presets.json": js({"epochs": "many"})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{A}/config/presets.json", "not valid for the schema")


def test_regexp_without_group(sandbox):
    files = mutated({CUSTOM: custom_with(score_regexp=r"Accuracy: [0-9.]+")})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{CUSTOM}", "has no capturing group")


def test_regexp_not_matching_sample(sandbox):
    files = mutated({CUSTOM: custom_with(score_regexp=r"Acc\.: ([0-9.]+)")})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(
        report, "ERROR", f"{TOP}/{CUSTOM}", "does not extract 0.875 from the sample score line"
    )


def test_regexp_does_not_compile(sandbox):
    files = mutated({CUSTOM: custom_with(score_regexp="Accuracy: ([0-9")})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{CUSTOM}", "does not compile")


def test_unsupported_model_format(sandbox):
    files = mutated({CUSTOM: custom_with(model_filepath="/workspace/output/model.h5")})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{CUSTOM}", "has format '.h5'")


def test_custom_missing_key(sandbox):
    custom = json.loads(valid_files()[CUSTOM])
    del custom["score_name"]
    files = mutated({CUSTOM: js(custom)})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{CUSTOM}", "'score_name' is missing")


def test_config_export_config_is_reported_unused(sandbox):
    export = f"{ARCH}/config/export_config.json"
    files = mutated({export: js({"input_shapes": [[1, 3, 32, 32]], "input_types": ["float32"]})})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "WARNING", f"{TOP}/{export}", "not used by the platform")
    assert report.ok


# --- Dockerfile ------------------------------------------------------------------------------

DOCKERFILE = f"{ARCH}/docker/Dockerfile"
DOCKERFILE_IN_ZIP = f"{TOP}/{DOCKERFILE}"


def dockerfile_without(line_start: str) -> dict[str, bytes]:
    text = valid_files()[DOCKERFILE].decode()
    kept = [line for line in text.splitlines() if not line.startswith(line_start)]
    assert len(kept) < len(text.splitlines())
    return mutated({DOCKERFILE: ("\n".join(kept) + "\n").encode()})


@pytest.mark.parametrize(
    ("removed", "fragment"),
    [
        ("WORKDIR", "no WORKDIR"),
        ("COPY presets.json", "does not COPY train_config.json"),
        ("COPY .env", "does not COPY .env"),
        ("ARG TORCH_CUDA_INDEX", "no ARG TORCH_CUDA_INDEX"),
        ("ENTRYPOINT", "ENTRYPOINT must run docker-entrypoint.sh"),
    ],
)
def test_dockerfile_missing_instruction(sandbox, removed, fragment):
    files = dockerfile_without(removed)
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{DOCKERFILE}", fragment)


def test_dockerfile_copies_file_missing_from_build_context(sandbox):
    text = (
        valid_files()[DOCKERFILE]
        .decode()
        .replace("COPY setup.py", "COPY s3_credentials.py setup.py")
    )
    report = run(sandbox, lambda p: write_zip(p, mutated({DOCKERFILE: text.encode()})))
    assert_finding(
        report, "ERROR", f"{TOP}/{DOCKERFILE}", "source 's3_credentials.py' is not in the platform"
    )


def test_dockerfile_optional_glob_needs_a_matching_sibling(sandbox):
    text = valid_files()[DOCKERFILE].decode()
    optional = text.replace("COPY setup.py", "COPY s3_credentials.py* setup.py")
    report = run(sandbox, lambda p: write_zip(p, mutated({DOCKERFILE: optional.encode()})))
    assert not has(report, "ERROR", f"{TOP}/{DOCKERFILE}", "s3_credentials"), report.lines()
    alone = text + "COPY s3_credentials.py* /opt/\n"
    report = run(
        sandbox, lambda p: write_zip(p.with_name("b.zip"), mutated({DOCKERFILE: alone.encode()}))
    )
    assert_finding(report, "ERROR", f"{TOP}/{DOCKERFILE}", "source 's3_credentials.py*' is not in")


def test_dockerfile_copy_custom_json_is_fine(sandbox):
    """build_train_image copies config/custom.json and presets.json into the build context, so
    a plain `COPY custom.json` is right (an earlier trainkit claimed otherwise)."""
    text = valid_files()[DOCKERFILE].decode()
    assert "COPY presets.json custom.json export_config.json" in text
    report = run(sandbox, lambda p: write_zip(p, mutated({DOCKERFILE: text.encode()})))
    assert not [f for f in report.findings if "custom.json" in f.message], report.lines()
    assert report.ok


def test_docker_file_the_platform_overwrites_warns(sandbox):
    files = mutated({f"{ARCH}/docker/export.py": b"def export_model(*a, **k):\n    pass\n"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(
        report, "WARNING", f"{A}/docker/export.py", "the platform writes its own export.py"
    )
    assert report.ok


def test_dockerfile_env_missing_from_docker_dir(sandbox):
    files = mutated({f"{ARCH}/docker/.env": None})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{DOCKERFILE}", "source '.env' is not in the platform")


def test_dockerfile_copy_before_workdir_warns(sandbox):
    text = valid_files()[DOCKERFILE].decode()
    text = text.replace("WORKDIR /workspace\n", "") + "WORKDIR /workspace\n"
    report = run(sandbox, lambda p: write_zip(p, mutated({DOCKERFILE: text.encode()})))
    assert_finding(report, "WARNING", f"{TOP}/{DOCKERFILE}", "the platform will look for .env")


# --- Python sources --------------------------------------------------------------------------

SETUP = f"{ARCH}/docker/setup.py"


def test_setup_imports_non_api_name(sandbox):
    source = (
        valid_files()[SETUP]
        .decode()
        .replace("    as_coco,\n", "    as_coco,\n    split_dataset,\n")
    )
    report = run(sandbox, lambda p: write_zip(p, mutated({SETUP: source.encode()})))
    assert_finding(
        report, "ERROR", f"{TOP}/{SETUP}", "imports 'split_dataset' from cvat_dataset, which is not"
    )


def test_setup_uses_non_api_attribute(sandbox):
    source = valid_files()[SETUP].decode() + "\nimport dataset\n\nERR = dataset.DatasetError\n"
    report = run(sandbox, lambda p: write_zip(p, mutated({SETUP: source.encode()})))
    assert_finding(report, "ERROR", f"{TOP}/{SETUP}", "uses dataset.DatasetError")


def test_vendored_module_allows_its_names(sandbox):
    source = (
        valid_files()[SETUP]
        .decode()
        .replace("    as_coco,\n", "    as_coco,\n    split_dataset,\n")
    )
    files = mutated(
        {
            SETUP: source.encode(),
            f"{ARCH}/docker/cvat_dataset.py": b"def split_dataset():\n    pass\n",
        }
    )
    report = run(sandbox, lambda p: write_zip(p, files))
    assert not has(report, "ERROR", f"{TOP}/{SETUP}", "split_dataset"), report.lines()


def test_setup_syntax_error(sandbox):
    files = mutated({SETUP: b"def broken(:\n    pass\n"})
    report = run(sandbox, lambda p: write_zip(p, files))
    assert_finding(report, "ERROR", f"{TOP}/{SETUP}", "does not compile")


def test_train_imports_runtime_module_the_platform_lacks(sandbox, monkeypatch):
    monkeypatch.setattr(layout, "TEMPLATE_SUPPORT_FILES", ("run_control.py",), raising=False)
    train = f"{ARCH}/docker/train.py"
    source = b"import run_control\n" + valid_files()[train]
    report = run(sandbox, lambda p: write_zip(p, mutated({train: source})))
    assert_finding(report, "ERROR", f"{TOP}/{train}", "imports 'run_control'")
    shipped = mutated({train: source, f"{ARCH}/docker/run_control.py": b"X = 1\n"})
    report = run(sandbox, lambda p: write_zip(p.with_name("ok.zip"), shipped))
    assert not has(report, "ERROR", f"{TOP}/{train}", "run_control"), report.lines()
