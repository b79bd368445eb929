"""trainkit's runtime: everything a train container runs, as one package.

The image's WORKDIR holds this package next to the architecture's own files (``setup.py``,
``train.py``, ``model.py``, ...): ``trainkit package`` puts it into the ZIP's ``docker/`` (the
platform copies ``docker/`` recursively into the build context), and ``trainkit run`` and the
container engines add it to their build context. Its modules:

- ``configuration``: ``train_config.json`` + ``presets.json`` (the platform's ``config`` API)
- ``schema_args``, ``config_to_args``: form values <-> ``train.py``'s argv, typed by the schema
- ``dataset``, ``cvat_dataset``: the mounted CVAT export -> train/val split and labels
  (the platform's ``dataset`` / ``cvat_dataset`` API)
- ``s3_credentials``: the STS token exchange ``mount-s3.sh`` uses
- ``export``: ONNX export checked with onnxruntime (the platform's ``export_model`` API)
- ``lifecycle``: ``train_task``, the one API of train.py: setup once per node, resume,
  finished-run skip, failure file, export, score line, on Lightning's own machinery

The package name cannot collide with the platform's stock files (``config.py``,
``dataset.py``, ``cvat_dataset.py``, ``export.py``, ...), which sit flat in the same WORKDIR; no
file in it has the stem ``config`` (the platform finds an architecture's form schema as the
first file with that stem). ``__version__`` is the trainkit release this copy belongs to.
"""

__version__ = "0.2.0"
