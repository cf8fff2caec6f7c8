"""The query batch people label, and the checks every returned label passes before it is used.

Each format reader turns a tool's file into `ReturnedImage`s (names and pixel boxes as the tool
wrote them); `check_returned` then matches them to the batch. A returned file is checked whole:
every fault (an unknown class, a box outside the image or degenerate, a coordinate that is text or
NaN, an image size that does not match, an image labelled twice with conflicting boxes, a path that
leads outside the package or the document root, more boxes than `al.max_boxes_per_image`) is
collected in `Faults` and refused at once, grouped by problem, naming the file, the image and the
problem, never quoting more of the file than a name. What is returned but is not this batch's
(an image labelled in an earlier cycle, a pool image the batch does not hold, a task added by hand
in Label Studio) is not imported and is listed in `NotImported`. An image returned with no boxes
was marked empty: labelled, no objects.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from mgral_pipelines.data.manifest import Boxes, InvalidDatasetError, check_box

# Label Studio prefixes uploaded files with 8 hex digits and a dash.
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
_SHOWN_PER_PROBLEM = 5


class InvalidLabelsError(ValueError):
    """Returned labels failed a check. The message names the file, the image and the problem."""


class AwaitingLabels(RuntimeError):
    """The cycle's batch is not labelled yet; the message says how much is done. Nothing changed."""


def shown(text: Any, limit: int = 60) -> str:
    """A name taken from a returned file, quoted for a message: escaped and cut short, so a
    message never carries more of a file than a name. Numbers (ids) go unquoted."""
    if is_number(text):
        return str(text)
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def decoding_error(error: ValueError) -> str:
    """Where a JSON or UTF-8 decoder stopped, without the text it stopped at."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return f"not UTF-8 at byte {getattr(error, 'start', '?')}"


def is_number(value: Any) -> bool:
    """A JSON number: `"10"` is text and `true` is a boolean, neither is a coordinate."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one import may hold (`al.max_boxes_per_image`, `al.max_returned_mb`)."""

    max_boxes_per_image: int = 1000
    max_returned_mb: float = 100

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_returned_mb * 2**20)

    def check_size(self, path: Path, size: int | None = None, what: str = "") -> None:
        """Refuse a returned file (or `size` bytes of `what`) over the bound, before reading it."""
        size = path.stat().st_size if size is None else size
        if size > self.max_file_bytes:
            raise InvalidLabelsError(
                f"{path}: {what}{size / 2**20:.2g} MB, more than al.max_returned_mb="
                f"{self.max_returned_mb:g}; nothing was read. Export only this batch's images, "
                "or raise al.max_returned_mb"
            )


class Faults:
    """Every fault found in one returned file, grouped by problem; raised together."""

    def __init__(self) -> None:
        self._by_problem: dict[str, list[str]] = {}

    def add(self, problem: str, message: str) -> None:
        self._by_problem.setdefault(problem, []).append(message)

    def problems(self) -> list[str]:
        return list(self._by_problem)

    def __len__(self) -> int:
        return sum(len(messages) for messages in self._by_problem.values())

    def raise_if_any(self, source: str) -> None:
        if not self:
            return
        if len(self) == 1:
            [[message]] = self._by_problem.values()
            raise InvalidLabelsError(f"{message}. Nothing was imported.")
        lines = [f"{source}: {len(self)} problems, nothing was imported (fix them all, then run "
                 "again):"]
        for problem, messages in self._by_problem.items():
            lines.append(f"  {problem} ({len(messages)}):")
            lines += [f"    {message}" for message in messages[:_SHOWN_PER_PROBLEM]]
            if len(messages) > _SHOWN_PER_PROBLEM:
                lines.append(f"    ... and {len(messages) - _SHOWN_PER_PROBLEM} more")
        raise InvalidLabelsError("\n".join(lines))


@dataclass(frozen=True)
class ReturnedImage:
    """One image as an annotation tool returned it."""

    key: str
    """The image as the tool names it: an image id, a file name, a path or a URL."""
    boxes: list[tuple[str, list[float]]]
    """(class name, [x1, y1, x2, y2] in pixels)."""
    where: str
    """File and position, for error messages (e.g. `export.json: task 17`)."""
    size: tuple[int, int] | None = None
    """Width and height the tool says it annotated, when it says so."""
    extra_boxes: int = 0
    """Boxes beyond `Limits.max_boxes_per_image` that the reader counted but did not keep."""


@dataclass(frozen=True)
class Roots:
    """Where returned files may name images: the package folder and the folders Label Studio
    serves. A path that resolves anywhere else names no image of the batch."""

    package: Path | None = None
    document_root: Path | None = None
    url_prefix: str | None = None
    url_root: Path | None = None


@dataclass(frozen=True)
class Found:
    """What a tool's name for an image refers to."""

    image_id: str | None
    outside: bool = False
    """The name matches an image of the dataset but its path leads elsewhere: refused."""


@dataclass(frozen=True)
class BatchImages:
    """The awaiting batch of one cycle with what is needed to name, draw and check its images."""

    cycle: int
    records: dict[str, dict[str, Any]]
    """image_id -> manifest record (file, width, height), in query order."""
    classes: list[str]
    roots: Roots = Roots()
    dataset: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    """Every image of the prepared dataset (the batch's too): names what is not the batch's."""
    labelled_in: dict[str, int | None] = field(default_factory=dict, repr=False)
    """Images labelled before: the cycle whose batch they were in (None: the initial set)."""
    labels: dict[str, Boxes] = field(default_factory=dict, repr=False)
    _by_name: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], image_index: Mapping[str, Any],
                   roots: Roots = Roots()) -> BatchImages:
        batch = state["awaiting"]
        records = {record["image_id"]: record for record in image_index["images"]}
        labelled_in: dict[str, int | None] = dict.fromkeys(state.get("labelled_ids", []))
        for entry in state.get("history", []):
            labelled_in.update(dict.fromkeys(
                (i for i in entry.get("query_ids", []) if i in labelled_in), entry["cycle"]))
        return cls.of(batch["cycle"], batch["image_ids"], records, image_index["classes"], roots,
                      labelled_in, state.get("labels", {}))

    @classmethod
    def of(cls, cycle: int, image_ids: Sequence[str], records: Mapping[str, Mapping[str, Any]],
           classes: Sequence[str], roots: Roots = Roots(),
           labelled_in: Mapping[str, int | None] | None = None,
           labels: Mapping[str, Boxes] | None = None) -> BatchImages:
        chosen = {image_id: dict(records[image_id]) for image_id in image_ids}
        dataset = {image_id: dict(record) for image_id, record in records.items()}
        by_name: dict[str, str] = {}
        basenames: dict[str, int] = {}
        for record in dataset.values():
            basenames[Path(record["file"]).name] = basenames.get(Path(record["file"]).name, 0) + 1
        # Batch images first, so a name shared with an image outside the batch means the batch's.
        for image_id in [*chosen, *(i for i in dataset if i not in chosen)]:
            record = dataset[image_id]
            by_name.setdefault(package_name(record), image_id)
            if basenames[Path(record["file"]).name] == 1:
                by_name.setdefault(Path(record["file"]).name, image_id)
        return cls(cycle, chosen, list(classes), roots, dataset, dict(labelled_in or {}),
                   dict(labels or {}), by_name)

    def name(self, image_id: str) -> str:
        return package_name(self.records[image_id])

    def find(self, key: str) -> str | None:
        """The batch image a tool's name for it refers to, or None."""
        found = self.locate(key).image_id
        return found if found in self.records else None

    def locate(self, key: str) -> Found:
        """The dataset image a tool's name refers to: by id, by file name, or by a path that
        resolves inside the package or the document root (or to the image file itself)."""
        if key in self.dataset:
            return Found(key)
        parsed = urlparse(key)
        if parsed.scheme in ("http", "https"):
            return self._by_url(key)
        local_files = parsed.path.startswith("/data/local-files")
        local = parse_qs(parsed.query).get("d") if local_files else None
        if local:
            return self._by_path(local[0], self.roots.document_root, relative_only=True)
        path = unquote(parsed.path or key) if parsed.scheme in ("", "file") else key
        if path.startswith("/data/upload/"):  # a file uploaded to Label Studio keeps only its name
            name = _UPLOAD_PREFIX.sub("", PurePosixPath(path).name)
            return Found(self._by_name.get(name))
        return self._by_path(path, self.roots.package, relative_only=False)

    def _by_url(self, key: str) -> Found:
        prefix, root = self.roots.url_prefix, self.roots.url_root
        if prefix and root and key.startswith(prefix):
            return self._by_path(unquote(key[len(prefix):]), root, relative_only=True)
        return self._by_path(urlparse(key).path, None, relative_only=True, anywhere=False)

    def _by_path(self, text: str, root: Path | None, relative_only: bool,
                 anywhere: bool = True) -> Found:
        """`text` names a dataset image when it is its id's package name or its unique file name,
        or a path that leads to it: inside the package (`images/<name>`), the tail of the image's
        own path, or a path that resolves to the image file from `root` (or from `/`). A path
        with the name of an image that leads anywhere else is `outside`: refused, not guessed."""
        path = PurePosixPath(text.replace("\\", "/"))
        image_id = self._by_name.get(path.name)
        if image_id is None or (len(path.parts) == 1 and path.name not in ("", "..")):
            return Found(image_id)
        record = self.dataset[image_id]
        relative = not path.is_absolute() and ".." not in path.parts
        if relative and (path.parts == ("images", package_name(record))
                         or PurePosixPath(record["file"]).as_posix().endswith(f"/{path}")):
            return Found(image_id)
        targets = {_real(record["file"])}
        if self.roots.package is not None:
            targets.add(_real(self.roots.package / "images" / package_name(record)))
        resolved = set()
        if root is not None:
            resolved.add(_real(root / str(path).lstrip("/")))
        if self.roots.package is not None and not path.is_absolute():
            resolved.add(_real(self.roots.package / path))
        if anywhere and path.is_absolute() and not relative_only:
            resolved.add(_real(path))
        return Found(image_id) if resolved & targets else Found(None, outside=True)

    def earlier(self, image_id: str) -> str:
        """Why an image of the dataset is not the batch's, for the list of what was not imported."""
        if image_id in self.labelled_in:
            cycle = self.labelled_in[image_id]
            return ("already labelled in the initial set" if cycle is None
                    else f"already labelled in cycle {cycle}")
        return f"not in the awaiting batch of cycle {self.cycle}"


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def package_name(record: Mapping[str, Any]) -> str:
    """The file name of an image in an annotation package: its id with its own suffix."""
    return f"{record['image_id']}{Path(record['file']).suffix.lower()}"


def prelabels(detections: Mapping[str, Sequence[Mapping[str, Any]]], image_id: str,
              min_score: float) -> list[dict[str, Any]]:
    """The detector's boxes on one image that are confident enough to show people."""
    return [
        {"class_id": int(d["class_id"]), "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])}
        for d in detections.get(image_id, []) if d["score"] >= min_score
    ]


@dataclass
class Checked:
    """The outcome of checking a returned file against the batch."""

    labels: dict[str, Boxes]
    """Labels per batch image id."""
    not_imported: list[dict[str, str]]
    """What was returned but is not this batch's: `{"image", "where", "reason"}` each."""


def check_returned(returned: Sequence[ReturnedImage], batch: BatchImages, source: str = "",
                   strangers_are_faults: bool = True, limits: Limits = Limits(),
                   faults: Faults | None = None) -> Checked:
    """Every returned image checked; raises InvalidLabelsError listing every fault at once.

    `strangers_are_faults`: an image the dataset does not hold is refused (a file made for this
    batch names only its images); from a Label Studio project that many cycles share, it is
    listed as not imported instead (a task added by hand)."""
    faults = faults if faults is not None else Faults()
    labels: dict[str, Boxes] = {}
    first_seen: dict[str, str] = {}
    not_imported: list[dict[str, str]] = []
    for image in returned:
        found = batch.locate(image.key)
        where = f"{image.where}: image {shown(image.key)}"
        if found.image_id is None:
            if found.outside:
                problem = "path outside the package or document root"
                reason = ("a path that leads outside the annotation package and the document "
                          "root; name a batch image by its id or by its path inside them")
            else:
                problem = "image not in the batch"
                reason = (f"not in the awaiting batch of cycle {batch.cycle} "
                          f"({len(batch.records)} images) nor anywhere in the dataset")
            if strangers_are_faults:
                faults.add(problem, f"{where} is {reason}")
            else:
                not_imported.append({"image": shown(image.key, 200), "where": image.where,
                                     "reason": reason})
            continue
        boxes = _checked_boxes(image, batch.dataset[found.image_id], batch.classes, limits, faults,
                               quiet=found.image_id not in batch.records)
        if found.image_id not in batch.records:
            imported = batch.labels.get(found.image_id, [])
            if boxes is None or found.image_id not in batch.labelled_in \
                    or _canonical(boxes) != _canonical(imported):
                reason = batch.earlier(found.image_id)
                if found.image_id in batch.labelled_in:
                    reason += "; the returned boxes differ from the imported ones"
                not_imported.append({"image": found.image_id, "where": image.where,
                                     "reason": reason})
            continue
        if boxes is None:
            continue
        if found.image_id in labels and _canonical(labels[found.image_id]) != _canonical(boxes):
            faults.add("conflicting annotations",
                       f"{where} is labelled twice with conflicting boxes "
                       f"(also at {first_seen[found.image_id]})")
            continue
        labels[found.image_id] = boxes
        first_seen.setdefault(found.image_id, image.where)
    faults.raise_if_any(source)
    return Checked(labels, not_imported)


def _checked_boxes(image: ReturnedImage, record: Mapping[str, Any], classes: list[str],
                   limits: Limits, faults: Faults, quiet: bool) -> Boxes | None:
    """The image's boxes in the project's terms, or None after adding its faults (to `faults`,
    unless `quiet`: an image outside the batch is only listed, never refused)."""
    report = Faults() if quiet else faults
    before = len(report)
    width, height = record["width"], record["height"]
    where = f"{image.where}: image {shown(image.key)}"
    count = len(image.boxes) + image.extra_boxes
    if count > limits.max_boxes_per_image:
        report.add("too many boxes", f"{where}: {count} boxes, more than al.max_boxes_per_image="
                   f"{limits.max_boxes_per_image}")
        return None
    if image.size is not None and tuple(image.size) != (width, height):
        report.add("wrong image size", f"{where}: annotated at {image.size[0]}x{image.size[1]} but "
                   f"the image is {width}x{height}")
    boxes = []
    for name, bbox in image.boxes:
        if name not in classes:
            report.add("unknown class",
                       f"{where}: unknown class {shown(name)} (classes: {classes})")
            continue
        if any(math.isnan(v) for v in bbox) or any(math.isinf(v) for v in bbox):
            problem = "NaN" if any(math.isnan(v) for v in bbox) else "infinite"
            report.add(f"{problem} coordinate", f"{where}: a box has a {problem} coordinate")
            continue
        try:
            check_box(bbox, width, height, where)
        except InvalidDatasetError as error:
            problem = "degenerate box" if "degenerate" in str(error) else "box outside the image"
            report.add(problem, str(error))
            continue
        # A micro-pixel grid: the float noise of percent and xywh conversions (57.60000000000001)
        # goes, so labels saved as COCO and imported again are the same labels, bit for bit.
        boxes.append({"class_id": classes.index(name), "bbox": [round(float(v), 6) for v in bbox]})
    return None if len(report) > before else boxes


def _canonical(boxes: Boxes) -> list[tuple[int, tuple[float, ...]]]:
    return sorted((box["class_id"], tuple(round(v, 2) for v in box["bbox"])) for box in boxes)
