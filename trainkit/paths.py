"""Where the kit's own trees live. trainkit runs from a checkout (`pip install -e .`)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMON_DIR = REPO_ROOT / "common"
TEMPLATE_DIR = REPO_ROOT / "template"
TEMPLATES_DIR = REPO_ROOT / "templates"
VALIDATION_DIR = REPO_ROOT / "validation"
