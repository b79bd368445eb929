"""Where the kit's own trees live: inside the installed packages, never in a checkout.

trainkit works from any directory once installed (`pip install`, `pipx install`): the
cookiecutter template, the platform's stock files and the offline base-image recipe are package
data of `trainkit`; the runtime is the `trainkit_runtime` package (trainkit/vendor.py). Paths the
user works with (templates/, out/, the ZIP) are relative to the current directory.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "template"
PLATFORM_DIR = PACKAGE_DIR / "platform" / "backend"
BASE_IMAGE_DIR = PACKAGE_DIR / "base_image"
# The user's architectures: ./templates/<provider>/<category>/<architecture> by default.
DEFAULT_TEMPLATES_DIR = Path("templates")
