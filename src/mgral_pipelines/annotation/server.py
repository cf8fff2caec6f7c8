"""A Label Studio server, reached through label-studio-sdk, and the Kedro dataset that opens it.

The catalog entry `label_studio` takes the server's URL and API key from Kedro credentials
(`label_studio: {url, api_key}` in conf/<env>/credentials.yml, conf/local/ for a plain `kedro run`,
or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, which conf/base/credentials.yml reads), so no
committed file holds them.
Its `load()` returns a `LabelStudioServer` that connects on first use: a run with another
annotator never touches the network.
"""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
from kedro.io import AbstractDataset, DatasetError

from mgral_pipelines.annotation.label_studio import label_config, task_key

logger = logging.getLogger(__name__)


_DEFAULT_CREDENTIALS = "conf/local/credentials.yml (conf/<env>/credentials.yml with --env <env>)"


class LabelStudioError(RuntimeError):
    """The server could not be reached or refused a request; the message says which and why."""


class LabelStudioServer:
    """The few calls the annotation step needs: a project, its tasks, a local-files storage."""

    def __init__(self, url: str | None, api_key: str | None,
                 credentials_file: str = _DEFAULT_CREDENTIALS) -> None:
        self.url, self._api_key, self._credentials_file = url, api_key, credentials_file

    @cached_property
    def _client(self) -> Any:
        # label-studio-sdk takes seconds to import: only runs that talk to a server pay for it.
        from label_studio_sdk.client import LabelStudio

        if not self.url or not self._api_key:
            missing = [name for name, value in (("URL", self.url), ("API key", self._api_key))
                       if not value]
            raise LabelStudioError(
                f"Label Studio needs a URL and an API key (missing: {' and '.join(missing)}): "
                f"set `label_studio: {{url: ..., api_key: "
                f"...}}` in {self._credentials_file} (the credentials of this run's environment), "
                "or the environment variables LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
            )
        return LabelStudio(base_url=self.url, api_key=self._api_key)

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return function(*args, **kwargs)
        except httpx.HTTPError as error:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} to {what}: {error}") from error
        except ApiError as error:
            hint = " (check the API key)" if error.status_code in (401, 403) else ""
            raise LabelStudioError(
                f"Label Studio at {self.url} refused to {what}: HTTP {error.status_code} {error.body}{hint}"
            ) from error

    def project(self, title: str, classes: list[str]) -> int:
        """The id of the project titled `title`, created with a box interface for `classes`."""
        found = [p for p in self._call("list projects", self._client.projects.list, title=title)
                 if p.title == title]
        if found:
            project = self._call("read the project", self._client.projects.get, found[0].id)
            missing = [name for name in classes if f'value="{name}"' not in (project.label_config or "")]
            if missing:
                raise LabelStudioError(
                    f"Label Studio project '{title}' ({self.url}) has no labels for classes {missing}"
                )
            return found[0].id
        created = self._call("create a project", self._client.projects.create, title=title,
                             label_config=label_config(classes), enable_empty_annotation=True,
                             show_skip_button=True)
        logger.info("Created Label Studio project '%s' (id %d) at %s", title, created.id, self.url)
        return created.id

    def tasks(self, project_id: int, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """Every task of the project in Label Studio's JSON export format, annotations included;
        an export larger than `max_bytes` is refused as it arrives (`al.max_returned_mb`)."""
        chunks = self._call("export the project's tasks", self._client.projects.exports.download_sync,
                            project_id, export_type="JSON", download_all_tasks=True)

        def download() -> bytes:
            raw = bytearray()
            for chunk in chunks:
                raw += chunk
                if max_bytes is not None and len(raw) > max_bytes:
                    raise LabelStudioError(
                        f"Label Studio at {self.url}: the export of project {project_id} exceeds "
                        f"al.max_returned_mb={max_bytes / 2**20:g}; raise it, or move finished "
                        "cycles' tasks to another project")
            return bytes(raw)

        raw = self._call("download the export", download)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise LabelStudioError(f"Label Studio at {self.url} sent an unreadable export "
                                   f"({type(error).__name__})") from error

    def add_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> tuple[int, int]:
        """Import the tasks whose image has no task yet; returns (added, already there)."""
        present = {task_key(task) for task in self.tasks(project_id)}
        new = [task for task in tasks if task_key(task) not in present]
        if new:
            self._call("import tasks", self._client.projects.import_tasks, project_id, request=new,
                       commit_to_project=True)
        return len(new), len(tasks) - len(new)

    def serve_local_folder(self, project_id: int, folder: Path) -> None:
        """Let the project's tasks show images under `folder` (a local-files import storage)."""
        storages = self._call("list storages", self._client.import_storage.local.list,
                              project=project_id)
        folder = folder.resolve()
        if any(folder.is_relative_to(Path(s.path)) for s in storages if s.path):
            return
        self._call(f"serve local files from {folder} (start the server with "
                   "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and a "
                   "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT that contains it)",
                   self._client.import_storage.local.create, project=project_id, path=str(folder),
                   use_blob_urls=True, title=f"MGRAL images {folder}")


class LabelStudioDataset(AbstractDataset[Any, LabelStudioServer]):
    """Kedro's door to a Label Studio server: `load()` gives a lazy `LabelStudioServer`.

    A custom dataset because the annotation step talks to the server in both directions within
    one node (send missing tasks, read annotations); no kedro-datasets type does that. It holds
    no data of its own, so `save()` is refused.
    """

    def __init__(self, credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        credentials = credentials or {}
        self._url = credentials.get("url") or os.environ.get("LABEL_STUDIO_URL")
        self._api_key = credentials.get("api_key") or os.environ.get("LABEL_STUDIO_API_KEY")
        self.metadata = metadata
        self.credentials_file = _DEFAULT_CREDENTIALS
        """Named when a credential is missing; the project's hooks set the run environment's."""

    def load(self) -> LabelStudioServer:
        return LabelStudioServer(self._url, self._api_key, self.credentials_file)

    def save(self, data: Any) -> None:
        raise DatasetError("the Label Studio dataset is read-only: it opens the server")

    def _describe(self) -> dict[str, Any]:
        return {"url": self._url}  # never the API key
