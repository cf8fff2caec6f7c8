"""Pools of the user's own unlabelled images, combined with the labelled data they already have.

A folder is searched recursively for the usual image types. Its images join the manifest without
annotations and are listed in `unlabelled_ids`: the oracle has nothing for them, so only people
(`al.annotator=label_studio` or `files`) can label them. Every image is opened and checked before
anything is written, like the importers do.
"""

from __future__ import annotations

import filecmp
import logging
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from mgral_pipelines.data.importers import IMAGE_SUFFIXES, image_record
from mgral_pipelines.data.manifest import InvalidDatasetError, Manifest, validate_manifest

logger = logging.getLogger(__name__)


def add_unlabelled_folder(labelled: Manifest, folder: str | Path) -> Manifest:
    """`labelled` plus every image under `folder` that is not already one of its images.

    An image id is the path below `folder` without suffix, `/` written as `__`. A file that is
    one of the labelled images (the same path, or the same bytes: a copy anywhere in the folder)
    is that labelled image, not a second one: the same picture in T and in the pool would let
    the learner train on a test image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidDatasetError(f"{folder}: dataset.unlabelled is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    labelled_files = {Path(record["file"]).resolve() for record in labelled["images"]}
    labelled_ids = {record["image_id"]: record for record in labelled["images"]}
    by_size = defaultdict(list)  # only files of the same size can be copies: few comparisons
    for record in labelled["images"]:
        by_size[Path(record["file"]).stat().st_size].append(record["file"])
    records, already_labelled = [], 0
    for path in tqdm(paths, desc="checking unlabelled images", unit="image", disable=len(paths) < 500):
        if path.resolve() in labelled_files or any(
                filecmp.cmp(path, file, shallow=False) for file in by_size[path.stat().st_size]):
            already_labelled += 1
            continue
        image_id = "__".join(path.relative_to(folder).with_suffix("").parts)
        twin = labelled_ids.get(image_id)
        if twin is not None:
            raise InvalidDatasetError(
                f"{path}: its image id '{image_id}' is also the id of the labelled image "
                f"{twin['file']}, a different file; rename one of them"
            )
        records.append(image_record(image_id, path))
    if not records:
        raise InvalidDatasetError(
            f"{folder}: no unlabelled images found ({len(paths)} image files, "
            f"{already_labelled} of them already labelled)"
        )
    logger.info("Unlabelled pool %s: %d images (%d files skipped: already labelled)", folder,
                len(records), already_labelled)
    manifest = {
        **labelled,
        "images": sorted(labelled["images"] + records, key=lambda record: record["image_id"]),
        "unlabelled_ids": sorted(record["image_id"] for record in records),
    }
    return validate_manifest(manifest, check_files=False)
