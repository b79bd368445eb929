"""The one list of files a train container needs (DESIGN.md §3).

package.sh / `trainkit package`, the Dockerfile check, the validator and
`validation/{common,template}.json` all derive from these tuples; a test keeps the JSON in sync.
"""

# Required at the template root (the platform's validation/common.json).
ROOT_FILES = ("config.py", "config_to_args.py", "docker-entrypoint.sh", "mount-s3.sh")

# Runtime files copied flat into every image's WORKDIR (our common/); a superset of ROOT_FILES.
RUNTIME_FILES = (
    *ROOT_FILES,
    "dataset.py",
    "cvat_dataset.py",
    "export.py",
)

# Files every generated train.py imports, which the platform's stock runtime lacks: the
# cookiecutter post-gen hook copies them from common/ into the architecture's docker/.
TEMPLATE_SUPPORT_FILES = ("schema_args.py", "run_control.py")

# Required below provider/category/architecture/ (the platform's validation/template.json).
CONFIG_DIR = "config"
DOCKER_DIR = "docker"
CONFIG_FILES = ("config.jsonschema", "custom.json", "presets.json")
DOCKER_FILES = ("Dockerfile", "setup.py", "train.py")

# Optional config files the platform copies into the build context when present.
OPTIONAL_CONFIG_FILES = ("export_config.json",)

# Files the platform writes into the build context and the Dockerfile must COPY.
GENERATED_BUILD_FILES = ("train_config.json",)
DOCKERFILE_MUST_COPY = ("train_config.json", ".env")

# Model formats the platform can fetch from custom.json's model_filepath.
MODEL_FORMATS = (".pt", ".pth", ".torchscript", ".onnx", ".plan", ".graphdef")

ZIP_NAME = "train-container-publish.zip"
