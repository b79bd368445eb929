"""One naming rule for provider/category/architecture (trainkit/names.py)."""

import re

import pytest

from trainkit import paths
from trainkit.names import NAME_PATTERN, is_valid_name, name_error


@pytest.mark.parametrize("name", ["Acme", "TinyNet", "a", "resnet_18", "Yolo-v8", "X1"])
def test_valid_names(name):
    assert is_valid_name(name)
    assert name_error("architecture", name) is None


@pytest.mark.parametrize(
    "name", ["", "my net", "1net", "-net", "_net", "net/..", "../x", "net.v2", "näme", "a\n"]
)
def test_invalid_names(name):
    assert not is_valid_name(name)
    message = name_error("provider", name)
    assert message == f"provider {name!r} must match {NAME_PATTERN}" + (
        " (spaces are not allowed)" if any(c.isspace() for c in name) else ""
    )


def test_space_message_is_explicit():
    assert name_error("architecture", "my net") == (
        "architecture 'my net' must match ^[A-Za-z][A-Za-z0-9_-]{0,63}$ (spaces are not allowed)"
    )


def test_cookiecutter_hook_uses_the_same_pattern():
    hook = paths.TEMPLATE_DIR / "hooks" / "pre_gen_project.py"
    text = hook.read_text(encoding="utf-8")  # package data: a missing hook is a failure
    copies = re.findall(r"^NAME_PATTERN\s*=\s*r?[\"']([^\"']+)[\"']", text, flags=re.MULTILINE)
    assert copies == [NAME_PATTERN], "the hook should define NAME_PATTERN = r'...' once"
