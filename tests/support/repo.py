"""trainkit's own checkout, as the tests see it: the committed example architectures and the
repository scripts. The installed package never reads these (trainkit/paths.py)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The committed examples: the template baked with default answers, one per task.
EXAMPLES_DIR = REPO_ROOT / "templates"
PACKAGE_SH = REPO_ROOT / "package.sh"
PYPROJECT = REPO_ROOT / "pyproject.toml"
