"""The Kedro datasets the project needs beyond kedro-datasets, each for a job none of them does.

JSON files, CSV tables and figures use kedro-datasets (`json.JSONDataset`, `pandas.CSVDataset`,
`matplotlib.MatplotlibDataset`). What is left here:

- `BinaryFileDataset`: a detector checkpoint, stored byte for byte so the file stays a `.pt` that
  ultralytics loads (kedro-datasets has no raw-bytes dataset; `pickle.PickleDataset` would wrap it);
- `EmbeddingsDataset`: image ids with their vectors, as a NumPy `.npz` loaded without pickle;
- `ArchivingJSONDataset`: the prepared data, one plain JSON file each, written byte for byte the
  same from the same data (so DVC, which versions them, sees a reproduced stage) and moving the
  file it replaces to an archive (so a new `prepare` loses no label);
- `ALStateDataset`: the AL state of every cycle, which archives superseded cycles instead of
  overwriting them (no kedro-datasets dataset keeps labels a user paid for that way);
- `CyclePartitionsDataset`: kedro-datasets' `PartitionedDataset` that loads `{}` from an empty
  folder instead of raising;
- `LabelFilesDataset`: the same, for the labels people returned, archiving a cycle's file that is
  saved again instead of overwriting it.

Two more live beside the code they serve: `annotation.package.AnnotationPackageDataset` (a folder of
files and images for people to label) and `annotation.server.LabelStudioDataset` (a connection).

All file datasets take fsspec paths (`s3://bucket/...`, `memory://...`, local paths) with `credentials`
and `fs_args` as kedro-datasets do. On the local filesystem a file is written to a temporary
sibling and renamed into place, so a crash mid-write leaves the old file intact (the partitions of
`CyclePartitionsDataset` too, whatever their dataset type); object stores (S3, GCS, ...) replace an
object as a whole anyway. A file that must be superseded is copied to the archive before the new
one replaces it, so a crash between the two leaves the old file where it was.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from copy import deepcopy
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path
from kedro_datasets.partitions import PartitionedDataset

_CYCLE_FILE = re.compile(r"^cycle_(\d+)\.json$")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a local `path` so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed `write_atomically` (or partition save) left in `folder`:
    hidden `.<name>.<random>.tmp` / `.<name>.<random>.partial<suffix>` files that never became the
    file they were written for. Only for folders with one writer at a time (a run's outputs)."""
    stale = [path for path in folder.glob(".*") if path.is_file()
             and (path.name.endswith(".tmp") or ".partial" in path.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _archive_folder(fs: Any, folder: str) -> str:
    archive = f"{folder.rstrip('/')}/archive/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    fs.makedirs(archive, exist_ok=True)
    return archive


class Storage:
    """An fsspec filesystem and a path on it, as kedro-datasets build them (also used by the
    annotation package dataset)."""

    def __init__(self, location: str, credentials: dict[str, Any] | None,
                 fs_args: dict[str, Any] | None) -> None:
        self.protocol, path = get_protocol_and_path(location)
        self.path = PurePosixPath(path)
        self.fs = fsspec.filesystem(self.protocol, **deepcopy(credentials or {}),
                                    **deepcopy(fs_args or {}))

    def child(self, name: str) -> str:
        return str(self.path / name)

    def write(self, path: str, data: bytes) -> None:
        if self.protocol == "file":
            write_atomically(Path(path), data)
        else:
            self.fs.pipe_file(path, data)
            self.fs.invalidate_cache(path)


class AtomicFileDataset(AbstractDataset[Any, Any]):
    """One file on any fsspec filesystem; subclasses only say how data becomes bytes and back."""

    def __init__(self, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._location = filepath
        self._storage = Storage(filepath, credentials, fs_args)
        self._filepath = self._storage.path  # the path on its filesystem, as kedro-datasets keep it
        self.metadata = metadata

    def _encode(self, data: Any) -> bytes:
        return data

    def _decode(self, raw: bytes) -> Any:
        return raw

    def load(self) -> Any:
        path = str(self._storage.path)
        if not self._storage.fs.isfile(path):
            raise DatasetError(f"{self._location}: file does not exist")
        return self._decode(self._storage.fs.cat_file(path))

    def save(self, data: Any) -> None:
        self._storage.write(str(self._storage.path), self._encode(data))

    def _exists(self) -> bool:
        return self._storage.fs.isfile(str(self._storage.path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._location, "protocol": self._storage.protocol}


class BinaryFileDataset(AtomicFileDataset):
    """Raw bytes in one file, e.g. a detector checkpoint: kedro-datasets has no dataset that
    stores bytes unchanged, and the file must stay a `.pt` that ultralytics and users load."""


class EmbeddingsDataset(AtomicFileDataset):
    """Image embeddings keyed by image id: `{"image_ids": [...], "vectors": (n, d) array}` in .npz.

    kedro-datasets stores arrays only through pickle (`pickle.PickleDataset`); an `.npz` read
    with `allow_pickle=False` runs no code from the file and opens in NumPy alone.
    """

    def _encode(self, data: dict[str, Any]) -> bytes:
        vectors = np.asarray(data["vectors"])
        if len(data["image_ids"]) != len(vectors):
            raise DatasetError(
                f"{self._location}: {len(data['image_ids'])} ids for {len(vectors)} vectors"
            )
        buffer = io.BytesIO()
        np.savez(buffer, image_ids=np.asarray(data["image_ids"], dtype=str), vectors=vectors)
        return buffer.getvalue()

    def _decode(self, raw: bytes) -> dict[str, Any]:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {"image_ids": archive["image_ids"].tolist(), "vectors": archive["vectors"]}


class ArchivingJSONDataset(AtomicFileDataset):
    """One JSON file of the prepared data, a plain path that DVC versions.

    The same data always gives the same bytes (sorted keys, fixed indent, no timestamp), so a
    reproduced `prepare` has the hashes of the committed `dvc.lock`. Saving other data first copies
    the file it replaces to `<folder>/archive/<UTC time>/<name>`, then replaces it atomically:
    the labels of an earlier preparation (those the archived AL states were drawn from) are never
    lost; saving the same data writes nothing (or, to a file laid out otherwise, only rewrites it).

    A workspace prepared when these files were Kedro-versioned holds a folder of versions
    (`<name>/<timestamp>/<name>`) at the path: `migrate_kedro_versions` (run by the hook
    `hooks.PreparedDataAreFiles` before every run, and by `save`) moves that folder to the archive
    and keeps its latest version, the one Kedro loaded, as the file.
    """

    def _encode(self, data: Any) -> bytes:
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    def _decode(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatasetError(f"{self._location}: not valid JSON ({error})") from error

    def load(self) -> Any:
        if self._storage.fs.isdir(str(self._storage.path)):
            raise DatasetError(
                f"{self._location}: a folder of Kedro versions (<timestamp>/"
                f"{self._storage.path.name}) where the file is expected, from before the prepared "
                "data became plain files. Any `kedro run` of a pipeline that reads it moves the "
                "folder to archive/ and keeps its latest version as the file.")
        return super().load()

    def save(self, data: Any) -> None:
        self.migrate_kedro_versions()
        fs, path = self._storage.fs, str(self._storage.path)
        encoded = self._encode(data)
        if fs.isfile(path):
            old = fs.cat_file(path)
            if old == encoded:
                return
            if not self._same_data(old, encoded):  # only a new layout of the same data is not kept
                fs.copy(path, self._archive_path())
        self._storage.write(path, encoded)

    @staticmethod
    def _same_data(old: bytes, new: bytes) -> bool:
        try:
            return json.loads(old) == json.loads(new)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False

    def migrate_kedro_versions(self) -> str | None:
        """Turn a folder of Kedro versions at the path into the file; None when there is none."""
        fs, path = self._storage.fs, str(self._storage.path)
        if not fs.isdir(path):
            return None
        name = self._storage.path.name
        versions = sorted(fs.glob(f"{path}/*/{name}"))  # Kedro's timestamps sort by time
        if not versions:
            raise DatasetError(f"{self._location}: a folder where a JSON file is expected, and no "
                               f"Kedro version (<timestamp>/{name}) in it: move it away")
        latest, archive = fs.cat_file(versions[-1]), self._archive_path()
        fs.mv(path, archive, recursive=True)
        self._storage.write(path, latest)
        return (f"{self._location}: moved its Kedro versions to {archive}; the latest, "
                f"{PurePosixPath(versions[-1]).parent.name}, is now the file")

    def _archive_path(self) -> str:
        folder = self._storage.path.parent
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._storage.fs.makedirs(str(folder / "archive" / stamp), exist_ok=True)
        return str(folder / "archive" / stamp / self._storage.path.name)


class ALStateDataset(AbstractDataset[dict[str, Any], dict[int, dict[str, Any]]]):
    """The active-learning state of every cycle: `<path>/cycle_<t>.json`, one file per cycle.

    `load()` returns `{t: state}` for all cycles found (empty when nothing is prepared yet), so a
    node can continue from the latest cycle or from a chosen one. `save(state)` writes
    `cycle_<state["cycle"]>.json`. Saving cycle `t` supersedes any cycle after `t` and a different
    cycle `t` (a re-run of an earlier cycle, or a new `prepare`): those files move to
    `<path>/archive/<UTC time>/`, never deleted, so no label a user paid for is lost. Saving a
    state identical to the saved one changes nothing, and adding an `awaiting` batch to a saved
    state replaces it in place (the batch is new information, nothing is superseded). Kedro's
    `versioned: true` would keep old files too, but it cannot load every cycle at once nor tell
    which cycles a re-run superseded, and DVC versions the data.
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._path = path
        self._storage = Storage(path, credentials, fs_args)
        self.metadata = metadata

    def _cycle_files(self) -> dict[int, str]:
        fs, folder = self._storage.fs, str(self._storage.path)
        if not fs.isdir(folder):
            return {}
        found = {}
        for child in fs.ls(folder, detail=False):
            match = _CYCLE_FILE.match(PurePosixPath(child).name)
            if match:
                found[int(match.group(1))] = child
        return dict(sorted(found.items()))

    def _read(self, path: str) -> dict[str, Any]:
        try:
            state = json.loads(self._storage.fs.cat_file(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            where = getattr(error, "pos", getattr(error, "start", "?"))
            raise DatasetError(
                f"{path}: AL state file is not valid JSON (truncated or overwritten outside MGRAL, "
                f"{type(error).__name__} at byte {where}). MGRAL writes states atomically, so this "
                "file did not come from a run: restore it (`dvc checkout`, a backup, or the copy "
                f"in {self._path}/archive/), or move it away to continue from the cycle before it"
            ) from error
        if not isinstance(state, dict) or not isinstance(state.get("cycle"), int):
            raise DatasetError(
                f"{path}: not an AL state (no 'cycle'); a file that is not MGRAL's sits among the "
                f"states: move it out of {self._path}"
            )
        return state

    def load(self) -> dict[int, dict[str, Any]]:
        return {cycle: self._read(path) for cycle, path in self._cycle_files().items()}

    def save(self, data: dict[str, Any]) -> None:
        cycle = int(data["cycle"])
        files = self._cycle_files()
        current = self._read(files[cycle]) if cycle in files else None
        if current == data:
            return  # nothing changes, so the cycles after it stay valid
        superseded = [path for t, path in files.items() if t > cycle]
        # Recording a batch as awaiting labels adds to a state and supersedes nothing of it.
        if current is not None and current != {k: v for k, v in data.items() if k != "awaiting"}:
            superseded.append(files[cycle])
        if superseded:
            # Later cycles go first and cycle t is copied, then replaced in one step: a crash
            # in between leaves a consistent set (old t, nothing after it) and every file archived.
            archive = _archive_folder(self._storage.fs, str(self._storage.path))
            for path in superseded:
                target = f"{archive}/{PurePosixPath(path).name}"
                if path == files.get(cycle):
                    self._storage.fs.copy(path, target)
                else:
                    self._storage.fs.mv(path, target)
        self._storage.write(self._storage.child(f"cycle_{cycle}.json"),
                            json.dumps(data, indent=1).encode())

    def _exists(self) -> bool:
        return bool(self._cycle_files())

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "protocol": self._storage.protocol}


class CyclePartitionsDataset(PartitionedDataset):
    """One file per cycle (`cycle_<t><suffix>`); loads `{}` when no cycle has been written yet.

    Kedro's PartitionedDataset refuses to load an empty folder. Here an empty folder is a normal
    state (e.g. no policy was trained because the strategy is not `mgral`), and the node that needs
    a missing cycle says which pipeline to run (see `pipelines.common.for_cycle`).
    """

    def save(self, data: dict[str, Any]) -> None:
        # The folder always exists after a save, so kedro-mlflow can log it even when a skipped
        # step saved nothing.
        self._filesystem.makedirs(self._normalized_path, exist_ok=True)
        if self._protocol != "file" or self._overwrite:
            super().save(data)
            return
        for partition_id, partition_data in sorted(data.items()):
            self._save_partition_atomically(partition_id, partition_data)
        self._invalidate_caches()

    def _save_partition_atomically(self, partition_id: str, partition_data: Any) -> None:
        """The partition's dataset writes a hidden sibling (same suffix, so a type that reads
        the suffix, like a figure's format, behaves the same), renamed into place when whole."""
        final = Path(self._partition_to_path(partition_id))
        final.parent.mkdir(parents=True, exist_ok=True)
        # The suffix of the file itself (`cycle_0/lut.json` has the partition suffix `/lut.json`).
        for stale in final.parent.glob(f".{final.stem}.*.partial{final.suffix}"):
            stale.unlink(missing_ok=True)  # what a killed save of this partition left
        partial = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}")
        kwargs = deepcopy(self._dataset_config)
        kwargs[self._filepath_arg] = str(partial)
        if callable(partition_data) and self._save_lazily:
            partition_data = partition_data()
        try:
            self._dataset_type(**kwargs).save(partition_data)
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _list_partitions(self) -> list[str]:
        # Hidden files are a save in progress (or one a crash interrupted), never a partition.
        return [path for path in super()._list_partitions()
                if not PurePosixPath(path).name.startswith(".")]

    def load(self) -> dict[str, Callable[[], Any]]:
        if not self._filesystem.isdir(self._normalized_path):
            return {}
        try:
            return super().load()
        except DatasetError as error:
            if "No partitions found" in str(error):
                return {}
            raise


class LabelFilesDataset(CyclePartitionsDataset):
    """The labels people returned, one file per cycle: data nobody can recompute. A cycle's file
    that is saved again (its batch imported once more, with other labels, or a file a crash
    truncated) is first copied to `<path>/archive/<UTC time>/` and then replaced in one step, so no
    earlier version is lost and no reader ever sees half a file; the al_cycle node does not save
    labels equal to the saved ones. Temporary files an interrupted save left behind are removed
    before the next save, so `dvc add` of the folder never tracks them."""

    def save(self, data: dict[str, Any]) -> None:
        folder = self._normalized_path.rstrip("/")
        if self._protocol == "file" and Path(folder).is_dir():
            remove_stale_temporaries(Path(folder))
        replaced = [f"{folder}/{key}{self._filename_suffix}" for key in data]
        replaced = [path for path in replaced if self._filesystem.isfile(path)]
        if replaced:
            archive = _archive_folder(self._filesystem, folder)
            for path in replaced:
                if self._protocol == "file":  # copied: the new file replaces it atomically
                    shutil.copy2(path, f"{archive}/{PurePosixPath(path).name}")
                else:
                    self._filesystem.mv(path, f"{archive}/{PurePosixPath(path).name}")
        super().save(data)
