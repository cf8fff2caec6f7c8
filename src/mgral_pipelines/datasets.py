"""Kedro datasets the project needs beyond kedro-datasets: atomic files and the AL state store.

Every file here is written to a temporary sibling and renamed into place, so a crash or a kill
mid-write never leaves a truncated checkpoint or a half-written state: the old file stays intact.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.partitions import PartitionedDataset

_CYCLE_FILE = re.compile(r"^cycle_(\d+)\.json$")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
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


class AtomicFileDataset(AbstractDataset[Any, Any]):
    """One file, written atomically; subclasses only say how data becomes bytes and back."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _encode(self, data: Any) -> bytes:
        return data

    def _decode(self, raw: bytes) -> Any:
        return raw

    def load(self) -> Any:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath}: file does not exist")
        return self._decode(self._filepath.read_bytes())

    def save(self, data: Any) -> None:
        write_atomically(self._filepath, self._encode(data))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class BinaryFileDataset(AtomicFileDataset):
    """Raw bytes in one file, e.g. a detector checkpoint."""


class AtomicJSONDataset(AtomicFileDataset):
    """A JSON file written atomically (kedro-datasets' JSONDataset writes in place)."""

    def _encode(self, data: Any) -> bytes:
        return json.dumps(data, indent=1).encode()

    def _decode(self, raw: bytes) -> Any:
        return json.loads(raw)


class ALStateDataset(AbstractDataset[dict[str, Any], dict[int, dict[str, Any]]]):
    """The active-learning state of every cycle: `<path>/cycle_<t>.json`, one file per cycle.

    `load()` returns `{t: state}` for all cycles found (empty when nothing is prepared yet), so a
    node can continue from the latest cycle or from a chosen one. `save(state)` writes
    `cycle_<state["cycle"]>.json` atomically. Saving cycle `t` supersedes any cycle after `t`
    and a different cycle `t` (a re-run of an earlier cycle, or a new `prepare`): those files go to
    `<path>/archive/<UTC time>/`, never deleted, so no label a user paid for is lost. Saving a
    state identical to the saved one changes nothing, and adding an `awaiting` batch to a saved
    state replaces it in place (the batch is new information, nothing is superseded).
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _cycle_files(self) -> dict[int, Path]:
        if not self._path.is_dir():
            return {}
        found = {}
        for child in self._path.iterdir():
            match = _CYCLE_FILE.match(child.name)
            if match:
                found[int(match.group(1))] = child
        return dict(sorted(found.items()))

    def load(self) -> dict[int, dict[str, Any]]:
        states = {}
        for cycle, path in self._cycle_files().items():
            try:
                states[cycle] = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}: AL state file is not valid JSON ({error})") from error
        return states

    def save(self, data: dict[str, Any]) -> None:
        cycle = int(data["cycle"])
        files = self._cycle_files()
        current = json.loads(files[cycle].read_text()) if cycle in files else None
        if current == data:
            return  # nothing changes, so the cycles after it stay valid
        superseded = [path for t, path in files.items() if t > cycle]
        # Recording a batch as awaiting labels adds to a state and supersedes nothing of it.
        if current is not None and current != {k: v for k, v in data.items() if k != "awaiting"}:
            superseded.append(files[cycle])
        if superseded:
            archive = self._path / "archive" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            archive.mkdir(parents=True)
            for path in superseded:
                shutil.move(path, archive / path.name)
        write_atomically(self._path / f"cycle_{cycle}.json", json.dumps(data, indent=1).encode())

    def _exists(self) -> bool:
        return bool(self._cycle_files())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class EmbeddingsDataset(AtomicFileDataset):
    """Image embeddings keyed by image id: `{"image_ids": [...], "vectors": (n, d) array}` in .npz."""

    def _encode(self, data: dict[str, Any]) -> bytes:
        vectors = np.asarray(data["vectors"])
        if len(data["image_ids"]) != len(vectors):
            raise DatasetError(
                f"{self._filepath}: {len(data['image_ids'])} ids for {len(vectors)} vectors"
            )
        buffer = io.BytesIO()
        np.savez(buffer, image_ids=np.asarray(data["image_ids"], dtype=str), vectors=vectors)
        return buffer.getvalue()

    def _decode(self, raw: bytes) -> dict[str, Any]:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {"image_ids": archive["image_ids"].tolist(), "vectors": archive["vectors"]}


class CyclePartitionsDataset(PartitionedDataset):
    """One file per cycle (`cycle_<t><suffix>`); loads `{}` when no cycle has been written yet.

    Kedro's PartitionedDataset refuses to load an empty folder. Here an empty folder is a normal
    state (e.g. no policy was trained because the strategy is not `mgral`), and the node that needs
    a missing cycle says which pipeline to run (see `pipelines.common.for_cycle`).
    """

    def save(self, data: dict[str, Any]) -> None:
        # The folder always exists after a save, so kedro-mlflow can log it even when a skipped
        # step saved nothing.
        Path(self._path).mkdir(parents=True, exist_ok=True)
        super().save(data)

    def load(self) -> dict[str, Callable[[], Any]]:
        if not Path(self._path).is_dir():
            return {}
        try:
            return super().load()
        except DatasetError as error:
            if "No partitions found" in str(error):
                return {}
            raise
