"""One platform, locally: the backend's own endpoint code over a local stand-in for its
database and Docker daemon.

`LocalPlatform` installs a packaged template under `<root>/model-training/templates`, then does
what the platform's endpoints do, by running their code (backend_code.py):

    POST /train/config                 build()        process_train_config → build_train_image
    GET  /train/config/{p}/{a}         train_form()   get_train_config_for_architecture
    GET  /train/config/export          export_form()  get_export_config
    GET  /train/containers/{id}/config current_config() get_train_container_config
    PUT  /train/config                 edit()         update_train_config (docker cp, .env)
    PATCH /train/containers/{id}/score score()        update_train_container_score
    GET  /train/containers/{id}/model  served_model() get_onnx_model_filepath, <stem>.onnx first

The backend matches paths by substring (`architecture in str(path)`), so the templates are
looked up exactly as it spells them, relative to the platform's own directory:
`model-training/templates/<provider>/...` (the absolute prefix of the real installation is not
known; see lookup.py). `model_training` is the stock model-training/ directory (the shipped
backend copy, or a site's own), whose common/, datasets/ and export/ go into every image.

What stands in for the deployment: `ContainerIO` (reading and writing files of the built
container, its logs; a directory on this machine or a container engine), and the database: one
train-container row, kept in a JSON file by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from trainkit import platform
from trainkit.platform import backend_code
from trainkit.platform.backend_code import HTTPException

TEMPLATES_REL = "model-training/templates"  # as the backend joins it: TEMPLATES_PATH
UTIL_NAMES = (
    "DEFAULT_CONTAINER_WORKSPACE",
    "ENV_FILENAME",
    "TRAIN_CONFIG_FILENAME",
    "EXPORT_CONFIG_FILENAME",
    "jsonschema2defaults",
    "jsonfile2dict",
    "get_filepaths",
    "get_directory_paths",
    "get_config_filepaths",
    "get_dockerfile_filepath",
    "get_config_filepath",
    "is_float",
    "get_onnx_model_filepath",
    "infer_model_format",
    "install_template",
    "parse_dockerfile",
    "get_container_filepath",
    "get_config_container_filepath",
    "get_env_container_filepath",
    "default_container_filepath",
    "get_config_with_schema",
    "get_export_schema_filepath",
    "update_train_container_config",
    "update_train_container_dataset",
    "read_train_container_config",
)
ROUTER_NAMES = (
    "build_train_image",
    "process_train_config",
    "update_train_container_score",
    "get_train_container_config",
    "update_train_config",
    "get_train_config_for_architecture",
    "get_export_config",
)


class PlatformError(Exception):
    """What the platform answers or logs when one of its steps fails (one line)."""


class ContainerIO(Protocol):
    """The built train container, as the backend reaches it (docker cp, logs)."""

    def read(self, container_path: str) -> bytes | None: ...

    def write(self, container_dir: str, source: Path) -> None: ...

    def logs(self, tail: int) -> str: ...


@dataclass
class TrainContainerRow:
    """The backend's train-container database row (the fields its code reads and writes)."""

    provider: str
    category: str
    architecture: str
    dataset_id: Any
    model_filepath: str
    score_name: str
    score_regexp: str
    image_id: str = ""
    container_id: str | None = "local"
    id: int = 1
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainContainerRow:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


@dataclass
class Build:
    """What build_train_image did: the context it built the image from, and the row."""

    context: Path
    build_args: dict[str, str]
    row: TrainContainerRow
    image_name: str


class _NoContainer:
    """Before run_train_container: there is nothing to copy into or read from."""

    def read(self, container_path: str) -> bytes | None:
        raise PlatformError("no container has been created yet")

    def write(self, container_dir: str, source: Path) -> None:
        raise PlatformError("no container has been created yet")

    def logs(self, tail: int) -> str:
        raise PlatformError("no container has been created yet")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _detail(exc: BaseException) -> str:
    return str(exc.detail) if isinstance(exc, HTTPException) else str(exc)


class LocalPlatform:
    """The backend's train endpoints over a local database row and container (see module)."""

    def __init__(
        self,
        model_training: Path,
        root: Path,
        container: ContainerIO | None = None,
        row: TrainContainerRow | None = None,
        torch_cuda_index: str | None = None,
    ) -> None:
        self.model_training = Path(model_training).resolve()
        self.root = Path(root).resolve()
        self.container: ContainerIO = container or _NoContainer()
        self.row = row
        self.torch_cuda_index = torch_cuda_index
        self._built: Build | None = None
        self._build_dest: Path | None = None
        (self.root / TEMPLATES_REL).mkdir(parents=True, exist_ok=True)

    # -- the backend's code, wired to this instance -------------------------------------------

    def _util(self) -> SimpleNamespace:
        return backend_code.functions(
            backend_code.UTIL_TRAIN,
            UTIL_NAMES,
            {
                "JSONSchemaDefault": platform.json_schema_default_class(),
                "read_from_container": lambda _id, container_filepath: self.container.read(
                    str(container_filepath)
                ),
                "write_to_container": lambda container_id, container_path, src: (
                    self.container.write(str(container_path), Path(src))
                ),
                "sql_api": SimpleNamespace(update_train_container=lambda db, row: None),
                "rm": lambda path: shutil.rmtree(path),
                "mv": lambda source, target: shutil.move(source, target),
                "mkdir": lambda path: Path(path).mkdir(parents=True, exist_ok=True),
            },
        )

    def _routers(self) -> SimpleNamespace:
        util = self._util()
        stock = self.model_training
        return backend_code.functions(
            backend_code.ROUTERS_TRAIN,
            ROUTER_NAMES,
            {
                **{name: getattr(util, name) for name in UTIL_NAMES},
                "MODEL_TRAINING_PATH": str(stock),
                "TEMPLATES_PATH": TEMPLATES_REL,
                "EXPORT_PATH": str(stock / "export"),
                "COMMON_PATH": str(stock / "common"),
                "DATASETS_PATH": str(stock / "datasets"),
                "check_exists": _check_exists,
                "sql_api": SimpleNamespace(
                    get_train_container=lambda db, _id: self.row,
                    update_train_container=lambda db, row: None,
                    create_train_container=self._create_row,
                ),
                "dataset_sql_api": SimpleNamespace(
                    get_dataset=lambda db, dataset_id: SimpleNamespace(
                        id=dataset_id, bucket_name="", annotation_task_id=None
                    )
                ),
                "image_builder": SimpleNamespace(
                    create_repository_url=lambda owner: f"localhost/{owner}",
                    _build_and_push_image=self._capture_context,
                ),
                "get_torch_cuda_index": lambda: self.torch_cuda_index,
                "get_container": lambda _id: SimpleNamespace(
                    logs=lambda tail=None: self.container.logs(tail or 0).encode("utf-8")
                ),
                "get_container_status": lambda _id: "exited",
            },
        )

    def _capture_context(self, context_directory: str, **kwargs: Any) -> None:
        """image_builder._build_and_push_image: keep the context the backend assembled (its
        TemporaryDirectory is deleted right after), instead of building and pushing."""
        if self._build_dest is None:
            raise PlatformError("the backend built an image outside build()")
        if self._build_dest.exists():
            shutil.rmtree(self._build_dest)
        shutil.copytree(context_directory, self._build_dest, symlinks=True)
        self._build_args = dict(kwargs.get("build_args") or {})
        self._image = f"{kwargs['repository_url']}:{kwargs['image_tag']}"

    def _create_row(self, db: Any, **values: Any) -> None:
        keep = {k: values[k] for k in ("provider", "category", "architecture", "dataset_id")}
        self.row = TrainContainerRow(
            **keep,
            model_filepath=values["model_filepath"],
            score_name=values["score_name"],
            score_regexp=values["score_regexp"],
            image_id=values["image_id"],
            container_id=None,  # run_train_container sets it when the container is created
        )

    # -- endpoints ----------------------------------------------------------------------------

    def install(self, template_root: Path, provider: str, category: str, architecture: str):
        """install_template: move provider/category/architecture of an extracted upload into
        the templates (replacing an older upload of it)."""
        with _cwd(self.root):
            self._util().install_template(
                TEMPLATES_REL, str(template_root), provider, category, architecture
            )

    def train_form(self, provider: str, architecture: str) -> dict[str, Any]:
        """GET /train/config/{provider}/{architecture}: {"schema", "values"} of the form."""
        # JSONSchemaDefault prints before it raises; the platform's log, not our output
        with _cwd(self.root), _platform_errors(), contextlib.redirect_stdout(io.StringIO()):
            return self._routers().get_train_config_for_architecture(provider, architecture)

    def export_form(self) -> dict[str, Any]:
        """GET /train/config/export: {"schema", "values"} of the ONNX export form."""
        with _cwd(self.root), _platform_errors():
            return self._routers().get_export_config()

    def build(
        self,
        provider: str,
        category: str,
        architecture: str,
        dataset_id: Any,
        train_config: dict[str, Any],
        export_config: dict[str, Any] | None,
        dest: Path,
    ) -> Build:
        """POST /train/config: the backend's build_train_image, its context kept at `dest`."""
        self._build_dest = Path(dest).resolve()
        errors: list[str] = []
        data = {
            "provider": provider,
            "category": category,
            "architecture": architecture,
            "dataset_id": dataset_id,
            "train_config": train_config,
            "export_config": export_config,
        }

        def run_task(task, task_title, **kwargs):
            task(errors.append, lambda *_a, **_k: None, **kwargs)
            return None, "/tasks/local", None

        with _cwd(self.root), _platform_errors():
            asyncio.run(
                self._routers().process_train_config(
                    request=_Request(data),
                    db=None,
                    task_creator=SimpleNamespace(create_background_task=run_task),
                )
            )
        if errors:
            raise PlatformError(f"the platform's build failed: {errors[0]}")
        return Build(self._build_dest, self._build_args, self.row, self._image)

    def current_config(self) -> dict[str, Any]:
        """GET /train/containers/{id}/config: the container's train/export values (restricted
        to the forms' keys), what the platform's edit dialog starts from."""
        with _cwd(self.root), _platform_errors(), contextlib.redirect_stdout(io.StringIO()):
            return self._routers().get_train_container_config(1, db=None)["config"]

    def edit(
        self, train_config: dict[str, Any], export_config: dict[str, Any] | None, dataset_id: Any
    ) -> None:
        """PUT /train/config: docker cp of both raw files to the Dockerfile's train_config.json
        COPY target, and DATASET_ID rewritten in the container's .env when it changed."""
        data = {
            "train_config": train_config,
            "export_config": export_config,
            "dataset_id": dataset_id,
            "container_id": 1,
        }
        with _cwd(self.root), _platform_errors():
            asyncio.run(self._routers().update_train_config(request=_Request(data), db=None))

    def score(self) -> float:
        """PATCH /train/containers/{id}/score of an exited container (raises PlatformError
        with the platform's detail when it finds no score)."""
        self.row.score = None  # run_train_container resets it on every start
        with _platform_errors():
            self._routers().update_train_container_score(1, db=None)
        return self.row.score


def served_model(row: TrainContainerRow, container: ContainerIO) -> tuple[str, str | None] | None:
    """GET /train/containers/{id}/model: (container path, format) of the file the platform
    would serve — `<stem>.onnx` beside model_filepath when it exists, else model_filepath (the
    backend's get_onnx_model_filepath, infer_model_format) — or None (its 404)."""
    util = backend_code.functions(
        backend_code.UTIL_TRAIN, ["get_onnx_model_filepath", "infer_model_format"]
    )
    generic = row.model_filepath
    onnx = util.get_onnx_model_filepath(generic)
    for candidate in (onnx, generic):
        if container.read(candidate) is not None:
            return candidate, util.infer_model_format(Path(candidate).name)
    return None


class _Request:
    """A FastAPI Request as the endpoints use it: `await request.json()`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.user = SimpleNamespace(username="trainkit", access_token="", minio_token="")

    async def json(self) -> dict[str, Any]:
        return self._data


def _check_exists(value: Any, detail: str = "Not found.") -> Any:
    if value is None:
        raise HTTPException(status_code=404, detail=detail)
    return value


@contextlib.contextmanager
def _platform_errors() -> Iterator[None]:
    try:
        yield
    except PlatformError:
        raise
    except HTTPException as exc:
        raise PlatformError(f"the platform answers {exc.status_code}: {exc.detail}") from None
    except Exception as exc:  # the backend's own failure, as it would log it
        raise PlatformError(f"the platform fails: {type(exc).__name__}: {exc}") from None


def temporary_platform(model_training: Path) -> contextlib.AbstractContextManager[LocalPlatform]:
    """A LocalPlatform in a temporary directory (for look-ups that need no container)."""

    @contextlib.contextmanager
    def make() -> Iterator[LocalPlatform]:
        with tempfile.TemporaryDirectory(prefix="trainkit-platform-") as tmp:
            yield LocalPlatform(model_training, Path(tmp))

    return make()
