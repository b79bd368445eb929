"""The one list of files a train container needs (DESIGN.md §3).

package.sh / `trainkit package`, the Dockerfile check, the validator and
`validation/{common,template}.json` all derive from these tuples; a test keeps the JSON in sync.
"""

# Required at the template root (the platform's validation/common.json).
ROOT_FILES = ("config.py", "config_to_args.py", "docker-entrypoint.sh", "mount-s3.sh")

# The runtime package (trainkit_runtime/): vendored into the ZIP's docker/ by `trainkit package`
# and added to every build context trainkit assembles (trainkit/vendor.py).
RUNTIME_PACKAGE = "trainkit_runtime"
# The runtime's shell entry files, placed at the root of docker/ (and so of the build context,
# where they win over the platform's stock common/ copies of the same names).
ENTRY_SCRIPTS = ("docker-entrypoint.sh", "mount-s3.sh")
# The platform's legacy flat module names -> the runtime module that serves each in trainkit's
# images (generated alias shims, trainkit/vendor.py), so stock setup.py files run on our runtime.
LEGACY_MODULES = {
    "config": "configuration",
    "config_to_args": "config_to_args",
    "dataset": "dataset",
    "cvat_dataset": "cvat_dataset",
    "export": "export",
}
# Legacy modules that are run as scripts (`python config_to_args.py`), not imported.
LEGACY_SCRIPTS = ("config_to_args",)

# Required below provider/category/architecture/ (the platform's validation/template.json).
CONFIG_DIR = "config"
DOCKER_DIR = "docker"
CONFIG_FILES = ("config.jsonschema", "custom.json", "presets.json")
DOCKER_FILES = ("Dockerfile", "setup.py", "train.py")

# Files the platform writes into the build context and the Dockerfile must COPY (the platform's
# recipe itself, what the context holds and what overwrites docker/: trainkit/platform/recipe.py).
DOCKERFILE_MUST_COPY = ("train_config.json", ".env")

# Model formats the platform can fetch from custom.json's model_filepath.
MODEL_FORMATS = (".pt", ".pth", ".torchscript", ".onnx", ".plan", ".graphdef")

ZIP_NAME = "train-container-publish.zip"

# Names the platform's stock runtime modules provide and trainkit's common/ keeps (DESIGN.md §3).
# A template's setup.py may import only these from these modules, so it runs on either runtime.
RUNTIME_API = {
    "config": ("load_config", "finalize_config", "TRAIN_CONFIG_FILEPATH", "PRESETS_FILEPATH"),
    "dataset": (
        "get_dataset_path",
        "load_dataset_filepaths",
        "MOUNTED_DATASETS_ROOT_PATH",
        "DATASETS_ROOT_PATH",
        "DATA_DIRS",
    ),
    "cvat_dataset": (
        "get_cvat_dataset",
        "create_directory_structure",
        "create_train_images",
        "create_test_images",
        "create_train_labels",
        "create_test_labels",
        "as_coco",
        "as_yolo",
    ),
    "export": ("export_model",),
}

# Never packaged (package.sh / `trainkit package`); the validator warns when a ZIP holds them.
EXCLUDED_DIR_NAMES = (
    "__pycache__",
    ".git",
    ".ipynb_checkpoints",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    "output",
    "outputs",
    "lightning_logs",
    "datasets",
    "minio",
)
EXCLUDED_FILE_PATTERNS = ("*.pyc", "*.pyo", "*.ckpt", ".DS_Store")
