"""CVAT for images 1.1 → train/val split, symlinks and labels (the platform's `cvat_dataset` API).

Part of the runtime package (the flat name `cvat_dataset` is an alias of it in trainkit's
images, for existing setup.py files); standard library + defusedxml (+ tqdm for a progress bar
when available, Pillow to read an image size the XML lacks, numpy for brush masks). The label
formats (`as_coco`, `as_yolo`: every CVAT shape kind) live in cvat_labels.py and the geometry
in cvat_shapes.py; both are re-exported here under the platform's names.

What a setup.py calls (names, signatures and return shapes as on the platform):

    config, label_names, train_data, val_data = get_cvat_dataset()
    create_directory_structure()
    create_train_labels(create_labels_fn, train_data, label_names)   # and create_test_labels
    create_train_images(train_data)                                  # and create_test_images
    as_coco(label_names, files_with_annotations, dataset_type) / as_yolo(label_names, ...)

`train_data`/`val_data` map each image file (a Path under the mounted dataset) to its CVAT
`<image>` element shaped exactly as `xmltodict.parse` gives it: attributes as `"@name"`,
`"@width"`, ...; each child tag (`"box"`, `"polygon"`, `"tag"`, ...) holds a dict when the
image has one such child and a list when it has several. `get_image_annotations(image, kind)`
always returns a list.

How it works: one streaming pass over `annotations.xml` with defusedxml's parser (DTDs, entity
declarations and external references are refused, so entity-expansion and XXE files fail with
a clear DatasetError); a parser target builds the xmltodict-shaped dicts directly and hands
out each top-level element as soon as it closes, so memory does not grow with the file; images
are matched to files by basename through a dict (O(files + annotations)). Label order is the
order of `<labels>` (task or project export; several tasks → union in order). The split is
seeded and reproducible: `train-split`/`test-split` from train_config.json (default 0.8/0.2
when both are absent), stratified by class for classification data when every class has at
least two images.

A CVAT for video 1.1 export (`<track>`s) becomes per-frame image dicts, matched to files named
by frame number (`frame_000010.png`); `<image>`s without width/height get them from the file's
header.

Problems that do not stop training are counted and reported in one summary line: labels not
in `<labels>` (those shapes are dropped), annotated images without a file, files without
annotations, several `<image>` entries with one basename (the first wins). An empty result
is an error.
"""

# os.* path calls on purpose: str paths, one syscall each, 100k files.
# ruff: noqa: PTH100, PTH108, PTH115, PTH117, PTH123

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit_runtime import dataset as _dataset
from trainkit_runtime.cvat_labels import (  # noqa: F401 - the platform's names live here too
    ANNOTATION_SET,
    ANNOTATION_TYPES,
    COCO_DATASET_TYPES,
    LabelsFn,
    ShapeReport,
    as_coco,
    as_list,
    as_yolo,
    coco_labels_writer,
    gc_paused,
    get_image_annotations,
    read_image_size,
    write_yolo_labels,
)
from trainkit_runtime.cvat_shapes import parse_points, polygon_area  # noqa: F401
from trainkit_runtime.dataset import (
    DATA_DIRS,
    DatasetError,
    get_dataset_path,
    load_dataset_filepaths,
)
from trainkit_runtime.values import ValueRefused, control_characters, printable
from trainkit_runtime.values import check_label_name as check_label_text

log = logging.getLogger("cvat_dataset")

ANNOTATIONS_SUBFILEPATH = "annotations/annotations.xml"
DEFAULT_TRAIN_SPLIT, DEFAULT_TEST_SPLIT = 0.8, 0.2
DEFAULT_SPLIT_SEED = 42
SPLIT_EPSILON = 1e-6
# Above this many bytes of XML / items, show progress (a tqdm bar on a TTY, else log lines).
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
PROGRESS_MIN_ITEMS = 20_000
PROGRESS_LOG_INTERVAL_S = 15.0


# --- xmltodict-shaped values ----------------------------------------------------------------


def _push(item: dict[str, Any], key: str, value: Any) -> None:
    """Add a child value the way xmltodict does: dict for one, list from the second on."""
    if key in item:
        existing = item[key]
        if isinstance(existing, list):
            existing.append(value)
        else:
            item[key] = [existing, value]
    else:
        item[key] = value


def element_to_dict(element) -> Any:
    """An ElementTree element as `xmltodict.parse` shapes it (attributes '@x', text '#text',
    repeated children as lists, whitespace-only text dropped, empty element → None)."""
    item: dict[str, Any] = {f"@{k}": v for k, v in element.attrib.items()}
    texts = [element.text] if element.text else []
    for child in element:
        _push(item, child.tag, element_to_dict(child))
        if child.tail:
            texts.append(child.tail)
    text = "".join(texts).strip() if texts else ""
    if not item:
        return text or None
    if text:
        item["#text"] = text
    return item


def image_has_annotations(image: dict) -> bool:
    return any(image[k] for k in image if k in ANNOTATION_SET)


def _basename(name: str) -> str:
    if "\\" in name:
        name = name.replace("\\", "/")
    return name.rpartition("/")[2]


# --- progress -------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar when stderr is a TTY and tqdm is installed; otherwise a log line every
    PROGRESS_LOG_INTERVAL_S seconds, so container logs stay readable."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True):
        self.total, self.desc, self.unit, self.count = total, desc, unit, 0
        self.bar = None
        self.enabled = enabled
        self.next_log = time.monotonic() + PROGRESS_LOG_INTERVAL_S
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                scale = unit == "B"
                self.bar = tqdm(
                    total=total,
                    desc=desc,
                    unit=unit,
                    unit_scale=scale,
                    leave=False,
                    file=sys.stderr,
                )
            except ImportError:
                pass

    def update(self, n: int) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() >= self.next_log:
            self.next_log = time.monotonic() + PROGRESS_LOG_INTERVAL_S
            share = f" ({100 * self.count / self.total:.0f}%)" if self.total else ""
            log.info("%s: %d %s%s", self.desc, self.count, self.unit, share)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- streaming parse ------------------------------------------------------------------------


@dataclass
class LabelInfo:
    """What <meta> declares: `names` are the classes in <labels> order; `known` every declared
    label. Skeleton parts (a <parent>) and skeleton labels themselves (<type>skeleton</type>)
    are known but not classes: no task here trains on skeletons, so a skeleton label would be
    a class no annotation can use. `frame_size` is a video task's <original_size>."""

    names: list[str] = field(default_factory=list)
    known: set = field(default_factory=set)
    skeletons: list[str] = field(default_factory=list)
    frame_size: tuple[str, str] | None = None
    _index: set = field(default_factory=set, repr=False)

    def add_class(self, name: str) -> None:
        if name not in self._index:  # a set, not the list: O(1) per label
            self._index.add(name)
            self.names.append(name)

    def merge(self, other: LabelInfo) -> None:
        self.known |= other.known
        for name in other.names:
            self.add_class(name)
        self.skeletons += [n for n in other.skeletons if n not in self.skeletons]
        self.frame_size = self.frame_size or other.frame_size


def check_label_name(name: str) -> str:
    """A declared label name, or DatasetError naming it. The rule is the shared one of
    trainkit_runtime/values.py (one line of at most MAX_LABEL_NAME_LENGTH characters, no
    control, bidi or line-separator characters): label names become lines of label files and
    text in printed summaries."""
    bad = control_characters(name)
    if bad:
        char = chr(int(bad[0][2:], 16))
        what = unicodedata.name(char, bad[0])
        raise DatasetError(
            f"label {printable(name)} in <labels> contains a control character ({what}): label "
            "names become lines of label files; rename the label in CVAT"
        )
    try:
        return check_label_text(name)
    except ValueRefused as exc:
        raise DatasetError(f"<labels>: {exc}; rename the label in CVAT") from None


def _frame_size(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and value.get("width") and value.get("height"):
        return str(value["width"]), str(value["height"])
    return None


def _labels_from_meta(meta: Any, info: LabelInfo | None = None) -> LabelInfo:
    """Every <labels><label> below <meta> (task, project, job; several tasks → union in
    document order), from the xmltodict-shaped <meta>."""
    info = info if info is not None else LabelInfo()
    if isinstance(meta, list):
        for item in meta:
            _labels_from_meta(item, info)
        return info
    if not isinstance(meta, dict):
        return info
    for key, value in meta.items():
        if key == "original_size":
            info.frame_size = info.frame_size or _frame_size(value)
            continue
        if key != "labels":
            _labels_from_meta(value, info)
            continue
        for labels in as_list(value):
            if not isinstance(labels, dict):
                continue
            for label in as_list(labels.get("label")):
                name = label.get("name") if isinstance(label, dict) else None
                if not isinstance(name, str) or not name.strip():
                    continue
                name = check_label_name(name.strip())
                info.known.add(name)
                if label.get("parent"):
                    continue  # a skeleton part: a known label, not a class
                if label.get("type") == "skeleton":
                    if name not in info.skeletons:
                        info.skeletons.append(name)
                    continue
                info.add_class(name)
    return info


class _AttributeKeys(dict):
    """'name' → '@name', one shared string per attribute name (less memory at 100k images)."""

    def __missing__(self, name: str) -> str:
        key = self[name] = f"@{name}"
        return key


class _XmltodictTarget:
    """ElementTree parser target that builds xmltodict-shaped values directly (no Element
    tree). Each closed child of the root is moved to `done` and dropped from the tree, so
    memory stays bounded however many <image> elements follow."""

    def __init__(self, xml_path: Path):
        self.xml_path = xml_path
        self.stack: list[tuple[dict, list]] = []
        self.done: list[tuple[str, Any]] = []
        self.root_seen = False
        self.keys = _AttributeKeys()

    def start(self, tag: str, attrib: dict) -> None:
        if not self.root_seen:
            self.root_seen = True
            if tag != "annotations":
                raise DatasetError(
                    f"{self.xml_path}: root element is <{tag}>, expected <annotations> "
                    "(CVAT for images 1.1)"
                )
        keys = self.keys
        self.stack.append(({keys[k]: v for k, v in attrib.items()} if attrib else {}, []))

    def data(self, text: str) -> None:
        self.stack[-1][1].append(text)

    def end(self, tag: str) -> None:
        item, texts = self.stack.pop()
        value: Any = item or None
        if texts:
            text = "".join(texts).strip()
            if text:
                if item:
                    item["#text"] = text
                else:
                    value = text
        depth = len(self.stack)
        if depth > 1:
            _push(self.stack[-1][0], tag, value)
        elif depth == 1:
            self.done.append((tag, value))

    def close(self) -> None:
        return None


def _safe_parse_errors():
    from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

    return (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden)


def iter_cvat_annotations(xml_path: Path) -> Iterator[tuple[str, Any]]:
    """Stream a CVAT for images (or video) 1.1 file in one pass: yields ("labels", LabelInfo)
    when <meta> closes, ("image", dict) for each <image> (xmltodict shape) and, in a CVAT for
    video export, ("track", dict) for each <track> and ("tag", dict) for a top-level <tag>.

    defusedxml's parser with DTDs, entity declarations and external references forbidden (so
    entity-expansion bombs and XXE are refused), fed 64 KiB at a time; a parser target builds
    the dicts and drops each top-level element once handed out (bounded memory)."""
    from xml.parsers.expat import ErrorString, ExpatError

    from defusedxml.ElementTree import DefusedXMLParser, ParseError

    forbidden = _safe_parse_errors()
    try:
        size = xml_path.stat().st_size
        fh = open(xml_path, "rb")  # noqa: SIM115 - closed in finally
    except FileNotFoundError:
        raise DatasetError(
            f"annotations file '{xml_path}' not found: export the CVAT task or project as "
            f"'CVAT for images 1.1' and put it at <dataset>/{ANNOTATIONS_SUBFILEPATH}"
        ) from None
    except OSError as exc:
        raise DatasetError(f"cannot read annotations file '{xml_path}': {exc}") from exc
    progress = _Progress(size, f"parsing {xml_path.name}", "B", size >= PROGRESS_MIN_BYTES)
    target = _XmltodictTarget(xml_path)
    parser = DefusedXMLParser(
        target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    feed, close = parser.feed, parser.close
    expat = getattr(parser, "parser", None)  # the defused expat parser ElementTree drives
    if expat is not None and hasattr(expat, "StartElementHandler"):
        # Same parser and same DTD/entity/external-reference guards; only the per-element
        # callbacks go straight to the target instead of through ElementTree's Python
        # wrappers (about 25% less parse time at 100k images).
        expat.ordered_attributes = False
        expat.StartElementHandler = target.start
        expat.EndElementHandler = target.end
        expat.CharacterDataHandler = target.data

        def feed(data: bytes) -> None:
            expat.Parse(data, False)

        def close() -> None:
            expat.Parse(b"", True)

    try:
        while True:
            chunk = fh.read(1 << 16)
            if chunk:
                feed(chunk)
                progress.update(len(chunk))
            else:
                close()
            done, target.done = target.done, []
            for tag, value in done:
                if tag == "image":
                    yield "image", value if isinstance(value, dict) else {}
                elif tag == "meta":
                    yield "labels", _labels_from_meta(value)
                elif tag in ("track", "tag") and isinstance(value, dict):
                    yield tag, value  # CVAT for video 1.1: per-frame shapes / frame tags
            if not chunk:
                break
    except forbidden as exc:
        raise DatasetError(
            f"{xml_path}: DOCTYPE/ENTITY declarations and external references are not allowed "
            f"in annotations (refused for safety: {type(exc).__name__})"
        ) from None
    except (ParseError, ExpatError) as exc:
        if isinstance(exc, ExpatError):
            line, column, reason = exc.lineno, exc.offset, ErrorString(exc.code)
        else:
            line, column = getattr(exc, "position", (0, 0))
            reason = str(exc).split(":")[0]
        raise DatasetError(
            f"{xml_path}: malformed XML at line {line}, column {column}: {reason}"
        ) from None
    finally:
        progress.close()
        fh.close()


# --- matching -------------------------------------------------------------------------------


@dataclass
class MatchReport:
    files: int = 0
    images: int = 0
    matched: int = 0
    files_without_annotations: int = 0
    images_without_file: int = 0
    images_without_shapes: int = 0
    duplicate_basenames: int = 0
    duplicate_files: int = 0
    unknown_labels: Counter = field(default_factory=Counter)
    sizes_from_headers: int = 0
    video_tracks: int = 0
    video_frames: int = 0
    outside_shapes: int = 0
    skeleton_labels: list = field(default_factory=list)

    def notes(self) -> list[str]:
        """What was done that is not a problem (said in the summary line too)."""
        out = []
        if self.video_tracks:
            out.append(
                f"CVAT for video: {self.video_tracks} tracks on {self.video_frames} frames "
                f"({self.outside_shapes} shapes outside the frame skipped)"
            )
        if self.sizes_from_headers:
            out.append(f"sizes of {self.sizes_from_headers} images read from their files")
        if self.skeleton_labels:
            names = ", ".join(repr(n) for n in self.skeleton_labels[:5])
            out.append(f"skeleton labels are not classes ({names})")
        return out

    def problems(self) -> list[str]:
        out = []
        if self.files_without_annotations:
            out.append(f"{self.files_without_annotations} files without annotations")
        if self.images_without_file:
            out.append(f"{self.images_without_file} annotated images without a file")
        if self.duplicate_basenames:
            out.append(
                f"{self.duplicate_basenames} <image> entries repeating a basename (first kept)"
            )
        if self.duplicate_files:
            out.append(f"{self.duplicate_files} files repeating a basename (first kept)")
        if self.unknown_labels:
            shown = ", ".join(
                f"{printable(k, 40)} x{v}" for k, v in self.unknown_labels.most_common(5)
            )
            more = ", ..." if len(self.unknown_labels) > 5 else ""
            total = sum(self.unknown_labels.values())
            out.append(f"{total} shapes with labels not in <labels> dropped ({shown}{more})")
        return out

    def summary(self, where: str) -> str:
        text = (
            f"{where}: {self.matched} images with file and annotations "
            f"({self.files} files, {self.images} <image> entries)"
        )
        notes, problems = self.notes(), self.problems()
        if notes:
            text = f"{text}; {'; '.join(notes)}"
        return f"{text}; skipped: {'; '.join(problems)}" if problems else text


def _index_files(filepaths: list[Path], report: MatchReport) -> dict[str, Path]:
    by_name: dict[str, Path] = {}
    for path in filepaths:
        if not isinstance(path, Path):
            path = Path(path)
        name = path.name
        if name in by_name:
            report.duplicate_files += 1
            continue
        by_name[name] = path
    report.files = len(filepaths)
    return by_name


def _drop_unknown_labels(image: dict, known: set, report: MatchReport) -> bool:
    """Remove shapes whose label is not declared (counting them); keep the xmltodict shape
    (one left → dict). Returns whether the image still has annotations."""
    kinds = [k for k in image if k in ANNOTATION_SET]
    has_annotations = False
    for kind in kinds:
        value = image[kind]
        if type(value) is dict:
            if value.get("@label") in known:
                has_annotations = True
                continue
            shapes = [value]
        elif type(value) is list:
            if all(type(s) is dict and s.get("@label") in known for s in value):
                has_annotations = True
                continue
            shapes = value
        else:  # an element without attributes: no label at all
            shapes = [value]
        kept = [s for s in shapes if type(s) is dict and s.get("@label") in known]
        for shape in shapes:
            if not (type(shape) is dict and shape.get("@label") in known):
                label = shape.get("@label") if type(shape) is dict else None
                report.unknown_labels[str(label)] += 1
        if not kept:
            del image[kind]
        else:
            image[kind] = kept[0] if len(kept) == 1 else kept
            has_annotations = True
    return has_annotations


# CVAT for video 1.1: a frame's image is named for its number, as CVAT's dataset export with
# images (and datumaro) name frames: frame_000010.png for frame 10.
VIDEO_FRAME_NAME = "frame_{:06d}"
MAX_FRAME_NUMBER = 100_000_000
_TRACK_ONLY_KEYS = frozenset(("@frame", "@outside", "@keyframe"))


class _VideoFrames:
    """Per-frame `<image>`-shaped dicts built from CVAT for video `<track>`s: each shape of a
    track that is not `outside="1"` goes to its frame with the track's label and id, so the
    rest of the set-up sees a CVAT for images dataset."""

    def __init__(self, xml_path: Path):
        self.xml_path = xml_path
        self.frames: dict[int, dict] = {}
        self.tracks = 0
        self.outside = 0

    def _frame(self, raw: Any, where: str) -> dict:
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise DatasetError(
                f"{self.xml_path}: {where}: frame={raw!r} is not a frame number"
            ) from None
        if not 0 <= number <= MAX_FRAME_NUMBER:
            raise DatasetError(f"{self.xml_path}: {where}: frame={raw!r} is out of range")
        image = self.frames.get(number)
        if image is None:
            image = self.frames[number] = {
                "@id": str(number),
                "@name": VIDEO_FRAME_NAME.format(number),
            }
        return image

    def add_track(self, track: dict) -> None:
        self.tracks += 1
        label, track_id = track.get("@label"), track.get("@id")
        for kind in ANNOTATION_TYPES:
            for shape in get_image_annotations(track, kind):
                if shape.get("@outside") == "1":
                    self.outside += 1
                    continue
                image = self._frame(shape.get("@frame"), f"<track id={track_id!r}> <{kind}>")
                item = {"@label": label}
                item.update((k, v) for k, v in shape.items() if k not in _TRACK_ONLY_KEYS)
                if track_id is not None:
                    item["@track_id"] = track_id
                _push(image, kind, item)

    def add_tag(self, tag: dict) -> None:
        image = self._frame(tag.get("@frame"), "<tag>")
        _push(image, "tag", {k: v for k, v in tag.items() if k != "@frame"})

    def match(
        self, filepaths: list[Path], labels: LabelInfo | None, matched: dict, report: MatchReport
    ) -> None:
        """Add the frames that have a file (matched by stem, any extension) to `matched`."""
        by_stem: dict[str, Path] = {}
        for path in filepaths:
            path = Path(path)
            by_stem.setdefault(path.stem, path)
        size = labels.frame_size if labels is not None else None
        found = 0
        for number in sorted(self.frames):
            image = self.frames[number]
            path = by_stem.get(image["@name"])
            if path is None:
                report.images_without_file += 1
                continue
            if path in matched:
                report.duplicate_basenames += 1
                continue
            image["@name"] = path.name
            if size is not None:
                image.setdefault("@width", size[0])
                image.setdefault("@height", size[1])
            matched[path] = image
            found += 1
        report.video_tracks, report.video_frames = self.tracks, len(self.frames)
        report.outside_shapes = self.outside
        if self.frames and not found:
            raise self.unmatched_error()

    def unmatched_error(self) -> DatasetError:
        first, last = min(self.frames), max(self.frames)
        folder = self.xml_path.parent.parent
        return DatasetError(
            f"{self.xml_path} is a CVAT for video 1.1 export ({self.tracks} tracks on "
            f"{len(self.frames)} frames, {first}..{last}): its shapes refer to frame numbers, "
            f"and no file in {folder} is named for one; put the video's frames there as "
            f"images named by frame number ('{VIDEO_FRAME_NAME.format(first)}.png', ..., "
            "as CVAT's dataset export with images writes them), or export the task as "
            "'CVAT for images 1.1'"
        )


def _fill_image_sizes(result: dict[Path, dict], report: MatchReport) -> None:
    """`<image>`s without width/height get them from the file's header (Pillow, no decode)."""
    for path, image in result.items():
        if image.get("@width") is None or image.get("@height") is None:
            width, height = read_image_size(path)
            image["@width"], image["@height"] = str(width), str(height)
            report.sizes_from_headers += 1


def match_files_to_annotations(
    filepaths: list[Path], xml_path: Path
) -> tuple[list[str], dict[Path, dict], MatchReport]:
    """One pass over the XML: (label names, {file: image dict} in XML order, report).

    CVAT for video exports (`<track>`s) become per-frame image dicts matched to files named
    by frame number (_VideoFrames); images without width/height get them from the file."""
    report = MatchReport()
    by_name = _index_files(filepaths, report)
    seen: set = set()
    matched: dict[Path, dict] = {}
    labels: LabelInfo | None = None
    video: _VideoFrames | None = None
    with gc_paused():
        for kind, value in iter_cvat_annotations(xml_path):
            if kind == "labels":
                if labels is None:
                    labels = value
                else:  # a second <meta> block: union in order
                    labels.merge(value)
                continue
            if kind in ("track", "tag"):
                video = video or _VideoFrames(xml_path)
                (video.add_track if kind == "track" else video.add_tag)(value)
                continue
            report.images += 1
            name = value.get("@name")
            if not name:
                raise DatasetError(
                    f"{xml_path}: <image id={value.get('@id')!r}> has no name attribute"
                )
            base = _basename(name)
            if base in seen:
                report.duplicate_basenames += 1
                continue
            seen.add(base)
            path = by_name.get(base)
            if path is None:
                if image_has_annotations(value):
                    report.images_without_file += 1
                continue
            matched[path] = value
    if labels is None or not labels.names:
        raise DatasetError(
            f"{xml_path}: no labels declared (expected <meta><task|project><labels><label>"
            "<name>...)"
        )
    report.skeleton_labels = list(labels.skeletons)
    if video is not None:
        video.match(list(by_name.values()), labels, matched, report)
    result: dict[Path, dict] = {}
    known = labels.known
    with gc_paused():
        for path, image in matched.items():
            if _drop_unknown_labels(image, known, report):
                result[path] = image
            else:
                report.images_without_shapes += 1
    _fill_image_sizes(result, report)
    report.matched = len(result)
    report.files_without_annotations = len(by_name) - len(result)
    return labels.names, result, report


def find_annotations_for_files(
    filepaths: list[Path], annotations: list[dict], strict: bool = False
) -> dict[Path, dict]:
    """Compatibility helper (platform name): match files to xmltodict `<image>` dicts by
    basename in O(files + annotations); images without annotations are skipped."""
    report = MatchReport()
    by_name = _index_files(filepaths, report)
    result: dict[Path, dict] = {}
    for image in annotations:
        path = by_name.get(_basename(image.get("@name", "")))
        if path is not None and path not in result and image_has_annotations(image):
            result[path] = image
    if strict and len(result) != len(filepaths):
        raise DatasetError(f"annotations missing for {len(filepaths) - len(result)} files")
    return result


# --- split ----------------------------------------------------------------------------------


def _number(config: dict, key: str) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DatasetError(f"train_config.json: '{key}' = {value!r} is not a number")
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"train_config.json: '{key}' = {value!r} is not a number") from None


def get_split_sizes(config: dict) -> tuple[float, float]:
    """(train, test) shares from `train-split`/`test-split`; each must be in (0, 1) and their
    sum at most 1. Both absent → 0.8/0.2 (said in a log line); one absent → 1 - the other."""
    has_train, has_test = "train-split" in config, "test-split" in config
    if not has_train and not has_test:
        log.info(
            "train_config.json has no 'train-split'/'test-split': using the defaults %s/%s",
            DEFAULT_TRAIN_SPLIT,
            DEFAULT_TEST_SPLIT,
        )
        return DEFAULT_TRAIN_SPLIT, DEFAULT_TEST_SPLIT
    train = _number(config, "train-split") if has_train else None
    test = _number(config, "test-split") if has_test else None
    for key, value in (("train-split", train), ("test-split", test)):
        if value is not None and not 0 < value < 1:
            raise DatasetError(
                f"train_config.json: '{key}' = {value} must be between 0 and 1 (exclusive)"
            )
    if train is None:
        train = round(1 - test, 10)
        log.info("train_config.json has no 'train-split': using 1 - test-split = %s", train)
    if test is None:
        test = round(1 - train, 10)
        log.info("train_config.json has no 'test-split': using 1 - train-split = %s", test)
    if train + test > 1 + SPLIT_EPSILON:
        raise DatasetError(
            f"train_config.json: 'train-split' = {train} + 'test-split' = {test} "
            f"= {train + test:g} exceeds 1"
        )
    return train, test


def _split_counts(n: int, train_size: float, test_size: float) -> tuple[int, int]:
    n_test = math.ceil(round(test_size * n, 9))
    n_train = min(math.floor(round(train_size * n, 9)), n - n_test)
    return n_train, n_test


def _classification_key(image: dict) -> str | None:
    """The image's class for stratification: its first tag (the rule as_coco's readers use)."""
    tags = get_image_annotations(image, "tag")
    return tags[0].get("@label") if tags else None


def _allocate(total: int, sizes: list[int], caps: list[int]) -> list[int]:
    """Split `total` over groups proportionally to `sizes` (largest remainder), each ≤ cap."""
    n = sum(sizes)
    exact = [total * s / n for s in sizes]
    counts = [min(math.floor(e), c) for e, c in zip(exact, caps, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    left = total - sum(counts)
    while left > 0:
        progressed = False
        for i in order:
            if left and counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return counts


@gc_paused()
def split_dataset(
    files_with_annotations: dict[Path, dict],
    train_size: float,
    test_size: float,
    seed: int = DEFAULT_SPLIT_SEED,
    stratify: bool | None = None,
) -> tuple[dict[Path, dict], dict[Path, dict]]:
    """Seeded split → (train, test), each in input order. Stratified by the image's class (its
    first `<tag>`, the class the classification readers use) when `stratify` is true, or
    (None) when every image has a tag and every class at least two images."""
    keys = list(files_with_annotations)
    n = len(keys)
    n_train, n_test = _split_counts(n, train_size, test_size)
    if n_train < 1 or n_test < 1:
        raise DatasetError(
            f"{n} usable images cannot be split {train_size}/{test_size}: "
            f"that gives {n_train} train and {n_test} validation images"
        )
    rng = random.Random(seed)
    classes = [_classification_key(files_with_annotations[k]) for k in keys]
    counts = Counter(classes)
    can_stratify = None not in counts and len(counts) > 1 and min(counts.values()) >= 2
    if stratify is None:
        stratify = can_stratify
    test_idx: list[int] = []
    train_idx: list[int] = []
    if stratify and can_stratify:
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(classes):
            groups.setdefault(label, []).append(i)
        names = list(groups)
        sizes = [len(groups[c]) for c in names]
        test_counts = _allocate(n_test, sizes, [s - 1 for s in sizes])
        train_counts = _allocate(
            n_train, sizes, [s - t for s, t in zip(sizes, test_counts, strict=True)]
        )
        for name, t, r in zip(names, test_counts, train_counts, strict=True):
            members = groups[name][:]
            rng.shuffle(members)
            test_idx += members[:t]
            train_idx += members[t : t + r]
        log.info(
            "split stratified by class: %d train, %d validation", len(train_idx), len(test_idx)
        )
    else:
        order = list(range(n))
        rng.shuffle(order)
        test_idx, train_idx = order[:n_test], order[n_test : n_test + n_train]
        log.info("split: %d train, %d validation", len(train_idx), len(test_idx))
    train = {keys[i]: files_with_annotations[keys[i]] for i in sorted(train_idx)}
    test = {keys[i]: files_with_annotations[keys[i]] for i in sorted(test_idx)}
    return train, test


# --- the API setup.py calls -----------------------------------------------------------------


def _get_annotations_filepath() -> Path:
    return get_dataset_path().joinpath(ANNOTATIONS_SUBFILEPATH)


def _ensure_log_output() -> None:
    # setup.py is the program: show our INFO lines when nobody configured logging.
    if not logging.getLogger().hasHandlers():
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)


def load_cvat_dataset() -> tuple[list[str], dict[Path, dict], MatchReport]:
    """List the dataset's files and match them to annotations.xml in one pass."""
    xml_path = _get_annotations_filepath()
    if not xml_path.is_file():  # fail before listing a large bucket
        raise DatasetError(
            f"annotations file '{xml_path}' not found: export the CVAT task or project as "
            f"'CVAT for images 1.1' and put it at <dataset>/{ANNOTATIONS_SUBFILEPATH}"
        )
    started = time.monotonic()
    filepaths = load_dataset_filepaths()
    label_names, files_with_annotations, report = match_files_to_annotations(filepaths, xml_path)
    where = f"dataset {xml_path.parent.parent.name}"
    if not files_with_annotations:
        raise DatasetError(
            f"{report.summary(where)} — nothing to train on: image names in {xml_path} must "
            f"match files in {xml_path.parent.parent}"
        )
    summary = report.summary(where)
    (log.warning if report.problems() else log.info)(
        "%s [%.1f s]", summary, time.monotonic() - started
    )
    return label_names, files_with_annotations, report


def get_cvat_dataset() -> tuple[dict, list[str], dict[Path, dict], dict[Path, dict]]:
    """→ (config, label_names, train_data, val_data). Labels in <labels> order; split seeded
    (`split-seed` in the config, default 42) and reproducible."""
    from trainkit_runtime.configuration import load_config

    _ensure_log_output()
    config: dict = load_config()
    train_split, test_split = get_split_sizes(config)
    seed = config.get("split-seed", DEFAULT_SPLIT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"train_config.json: 'split-seed' = {seed!r} is not an integer")
    label_names, files_with_annotations, _report = load_cvat_dataset()
    train_data, val_data = split_dataset(
        files_with_annotations, train_size=train_split, test_size=test_split, seed=seed
    )
    log.info("labels (%d): %s", len(label_names), ", ".join(label_names))
    return config, label_names, train_data, val_data


def _datasets_root() -> Path:
    return Path(_dataset.DATASETS_ROOT_PATH)


def _inside(path: Path, root: Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _check_inside_root(path: Path) -> None:
    root = _datasets_root()
    if not _inside(path, root):
        raise DatasetError(
            f"'{path}' resolves to '{os.path.realpath(path)}', outside DATASETS_ROOT "
            f"'{os.path.realpath(root)}': refusing to write there"
        )


def _remove_files(directory: Path) -> int:
    """Remove files and symlinks (never their targets, never sub-directories) in `directory`."""
    _check_inside_root(directory)
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed


def create_directory_structure() -> None:
    """Create DATASETS_ROOT/{images,labels}/{train,val}, fill DATA_DIRS, and empty the label
    dirs of an earlier run's files (so a re-run leaves exactly this run's labels)."""
    root = _datasets_root()
    for dir_name in ("images", "labels"):
        for subdir_name in ("train", "val"):
            path = root / dir_name / subdir_name
            path.mkdir(parents=True, exist_ok=True)
            _check_inside_root(path)
            if dir_name == "labels":
                _remove_files(path)
            DATA_DIRS[f"{dir_name}_{subdir_name}"] = path


def create_images(images_path: Path, files_with_annotations: dict[Path, dict]) -> None:
    """Make `images_path` hold exactly one symlink per file (named by basename). Idempotent:
    correct links stay, stale links/files are removed (never their targets, never anything
    outside DATASETS_ROOT); targets are not stat'ed (cheap on s3fs)."""
    images_path = Path(images_path)
    images_path.mkdir(parents=True, exist_ok=True)
    _check_inside_root(images_path)
    wanted: dict[str, str] = {}
    for filepath in files_with_annotations:
        target = os.fspath(filepath)
        if not os.path.isabs(target):
            target = os.path.abspath(target)
        wanted[target.rpartition(os.sep)[2]] = target
    existing: dict[str, str | None] = {}
    with os.scandir(images_path) as entries:
        for entry in entries:
            if entry.is_symlink():
                existing[entry.name] = os.readlink(entry.path)
            elif entry.is_file(follow_symlinks=False):
                existing[entry.name] = None  # a plain file: always replaced
            # sub-directories are left alone
    prefix = os.fspath(images_path) + os.sep
    for name, target in existing.items():
        if target is None or wanted.get(name) != target:
            os.unlink(prefix + name)
    todo = [(n, t) for n, t in wanted.items() if existing.get(n) != t]
    progress = _Progress(
        len(todo), f"linking {images_path.name}", "files", len(todo) >= PROGRESS_MIN_ITEMS
    )
    symlink = os.symlink
    try:
        for start in range(0, len(todo), 1000):
            for name, target in todo[start : start + 1000]:
                symlink(target, prefix + name)
            progress.update(min(1000, len(todo) - start))
    finally:
        progress.close()


def create_train_images(train_data: dict[Path, dict]) -> None:
    create_images(DATA_DIRS["images_train"], files_with_annotations=train_data)


def create_test_images(test_data: dict[Path, dict]) -> None:
    create_images(DATA_DIRS["images_val"], files_with_annotations=test_data)


def create_train_labels(
    create_labels_fn: LabelsFn, train_data: dict[Path, dict], label_names: list[str]
) -> None:
    create_labels_fn(DATA_DIRS["labels_train"], label_names, files_with_annotations=train_data)


def create_test_labels(
    create_labels_fn: LabelsFn, test_data: dict[Path, dict], label_names: list[str]
) -> None:
    create_labels_fn(DATA_DIRS["labels_val"], label_names, files_with_annotations=test_data)


# --- label formats: cvat_labels.py (re-exported here: the platform's names) ----------------
