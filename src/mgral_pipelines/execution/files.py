"""What a task sees of the driver's files: node-local copies of shipped files, a scratch folder.

On the driver (and in local processes) paths are used as they are. Inside a Ray task the executor
installs a `TaskContext`: shipped files are written once per node into a content-addressed cache
(`<tmp>/mgral-files/<sha256><suffix>`, reused by later tasks on that node), and what the driver
would write under some folder goes to a task-private temporary folder, removed after the task.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FETCH_CHUNK = 256
"""Files fetched from the object store per request (bounds the task's memory)."""


@dataclass(frozen=True)
class ShippedFile:
    """One file in the object store: its content digest, suffix and object reference."""

    digest: str
    suffix: str
    ref: Any


@dataclass(frozen=True)
class TaskContext:
    files: Mapping[str, str] | None
    """Driver path -> node-local copy; None when the nodes share the driver's file system."""
    scratch: Path


_TASK: TaskContext | None = None  # a Ray worker runs one task at a time


def in_ray_task() -> bool:
    """True inside a task started by the Ray executor."""
    return _TASK is not None


def local_file(path: str) -> str:
    """Where this process reads the driver's file `path` (itself outside Ray tasks)."""
    if _TASK is None or _TASK.files is None:
        return path
    try:
        return _TASK.files[path]
    except KeyError:
        raise FileNotFoundError(
            f"{path} was not shipped with this Ray task: add it to the `files` the caller passes "
            "to run_tasks / stream_tasks (or set ray.ship_files: false on a shared file system)"
        ) from None


def scratch_dir(path: str | Path) -> Path:
    """Where this process writes what the driver writes under `path`: a task-private folder in a
    Ray task (the driver's folder may not exist on the node, and concurrent tasks must not share
    one), `path` itself elsewhere."""
    if _TASK is None:
        return Path(path)
    relative = Path(path)
    if relative.is_absolute():
        relative = relative.relative_to(relative.anchor)
    return _TASK.scratch / relative


def file_digest(path: str) -> tuple[str, bytes]:
    """sha256 and content of a file the driver ships; a missing file is named."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileNotFoundError(f"cannot ship {path} to the Ray workers: {error}") from error
    return hashlib.sha256(data).hexdigest(), data


def file_cache() -> Path:
    return Path(tempfile.gettempdir()) / "mgral-files"


def materialise(shipped: Mapping[str, ShippedFile],
                fetch: Callable[[Sequence[Any]], Sequence[bytes]]) -> dict[str, str]:
    """Write the shipped files missing from this node's cache; driver path -> cached copy."""
    cache = file_cache()
    cache.mkdir(parents=True, exist_ok=True)
    target = {path: cache / f"{file.digest}{file.suffix}" for path, file in shipped.items()}
    missing = {}
    for path, file in shipped.items():
        if not target[path].exists():
            missing.setdefault(target[path], file.ref)
    pending = list(missing.items())
    for start in range(0, len(pending), FETCH_CHUNK):
        chunk = pending[start:start + FETCH_CHUNK]
        for (destination, _), data in zip(chunk, fetch([ref for _, ref in chunk])):
            _write_once(destination, data)
    return {path: str(destination) for path, destination in target.items()}


def _write_once(destination: Path, data: bytes) -> None:
    # Write then rename: a task on the same node reading the cache never sees half a file.
    handle, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(tmp, destination)


@contextmanager
def task_context(files: Mapping[str, str] | None) -> Iterator[TaskContext]:
    """Install the context of one Ray task; its scratch folder is removed afterwards."""
    global _TASK
    scratch = Path(tempfile.mkdtemp(prefix="mgral-task-"))
    _TASK = TaskContext(files, scratch)
    try:
        yield _TASK
    finally:
        _TASK = None
        shutil.rmtree(scratch, ignore_errors=True)
