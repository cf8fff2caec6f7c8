"""V, T, L_0 and the pool of a prepared dataset.

V, T and L_0 need labels: they are drawn (by seed) or named (by files, folders or `.txt` lists) from
the labelled images only. The pool is everything else: labelled images left over, and every image
of an unlabelled folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mgral_pipelines import al_state
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.data.manifest import InvalidDatasetError, Manifest

logger = logging.getLogger(__name__)

LABELLED_SPLITS = ("val", "test", "initial")


def assign_splits(manifest: Manifest, params: DatasetParams) -> dict[str, list[str]]:
    """`{"val", "test", "initial", "pool"}` image ids; sizes or paths from `params`."""
    ids = [record["image_id"] for record in manifest["images"]]
    unlabelled = list(manifest.get("unlabelled_ids", []))
    named = params.assign.paths()
    sizes = params.splits
    if not unlabelled and not named:  # the simulation case: the same draw as always
        return al_state.split_ids(ids, sizes.val, sizes.test, sizes.initial, sizes.seed)
    fixed = {name: _named_images(name, paths, manifest, set(unlabelled))
             for name, paths in named.items()}
    _check_disjoint(fixed)
    taken = {image_id for part in fixed.values() for image_id in part}
    unlabelled_set = set(unlabelled)
    free = [image_id for image_id in ids if image_id not in unlabelled_set and image_id not in taken]
    order = np.random.default_rng(sizes.seed).permutation(len(free))
    shuffled = [free[i] for i in order]
    result, cursor = {}, 0
    for name in LABELLED_SPLITS:
        if name in fixed:
            result[name] = sorted(fixed[name])
            continue
        size = getattr(sizes, name)
        size = len(shuffled) - cursor if size is None else size
        if cursor + size > len(shuffled) or size == 0:
            raise InvalidDatasetError(
                f"{manifest['root']}: split '{name}' needs {size or 'at least 1'} labelled images "
                f"but only {len(shuffled) - cursor} are left (labelled images: {len(ids) - len(unlabelled)}"
                f", named in dataset.assign: {len(taken)}); lower dataset.splits.{name}"
            )
        result[name] = sorted(shuffled[cursor : cursor + size])
        cursor += size
    result["pool"] = sorted(shuffled[cursor:] + unlabelled)
    if not result["pool"]:
        raise InvalidDatasetError(f"{manifest['root']}: the pool is empty after V, T and L_0")
    logger.info("Splits from the labelled images: %s; pool: %d unlabelled + %d labelled images",
                {name: len(result[name]) for name in LABELLED_SPLITS}, len(unlabelled),
                len(result["pool"]) - len(unlabelled))
    return result


def _named_images(split: str, paths: list[str], manifest: Manifest, unlabelled: set[str]) -> list[str]:
    files = {Path(record["file"]).resolve(): record["image_id"] for record in manifest["images"]}
    found: list[str] = []
    for entry in paths:
        matches = _images_at(Path(entry), files, f"dataset.assign.{split}")
        without_labels = [image_id for image_id in matches if image_id in unlabelled]
        if without_labels:
            raise InvalidDatasetError(
                f"dataset.assign.{split}: {entry} holds {len(without_labels)} unlabelled image(s) "
                f"(e.g. '{without_labels[0]}'); V, T and L_0 need labelled images"
            )
        found += matches
    return sorted(set(found))


def _images_at(path: Path, files: dict[Path, str], where: str) -> list[str]:
    """Image ids under a folder, of one image file, or listed (one path a line) in a .txt file."""
    if path.is_dir():
        root = path.resolve()
        matches = [image_id for file, image_id in files.items() if file.is_relative_to(root)]
    elif path.is_file() and path.suffix.lower() == ".txt":
        matches = []
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip():
                listed = Path(line.strip())
                listed = listed if listed.is_absolute() else path.parent / listed
                if listed.resolve() not in files:
                    raise InvalidDatasetError(
                        f"{path}:{number}: {line.strip()} is not an image of the dataset ({where})"
                    )
                matches.append(files[listed.resolve()])
    elif path.is_file():
        matches = [files[path.resolve()]] if path.resolve() in files else []
    else:
        raise InvalidDatasetError(f"{where}: {path} does not exist")
    if not matches:
        raise InvalidDatasetError(f"{where}: {path} matches no image of the dataset")
    return matches


def _check_disjoint(fixed: dict[str, list[str]]) -> None:
    names = list(fixed)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = sorted(set(fixed[first]) & set(fixed[second]))
            if shared:
                raise InvalidDatasetError(
                    f"dataset.assign: {len(shared)} image(s) are named for both {first} and "
                    f"{second} (e.g. '{shared[0]}')"
                )
