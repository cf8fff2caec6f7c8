"""A real Label Studio server for the tests: started once per session on 127.0.0.1.

Label Studio lives in its own venv (`make labelstudio`, run by `make test`): its pins clash with
the project's. That target also migrates an empty database once (`test-data-template/`); each
session copies it into a throw-away data directory, so the server starts in seconds. The venv can
be elsewhere: set MGRAL_LABEL_STUDIO_VENV.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("MGRAL_LABEL_STUDIO_VENV", REPO / ".venv-labelstudio"))
# Offline and quiet: no version check against PyPI, no analytics, no error reports.
SERVER_ENV = {"LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "",
              "FRONTEND_SENTRY_DSN": "", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
              "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": "/"}


@dataclass(frozen=True)
class LabelStudioInstance:
    url: str
    api_key: str
    data_dir: Path

    def client(self):
        from label_studio_sdk.client import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.api_key)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioInstance]:
    executable = VENV / "bin" / "label-studio"
    if not executable.exists():
        pytest.fail(f"Label Studio is not installed at {VENV}: run `make labelstudio` "
                    "(`make test` does), or set MGRAL_LABEL_STUDIO_VENV")
    data_dir = tmp_path_factory.mktemp("label_studio_data")
    template = VENV / "test-data-template"
    if template.is_dir():
        shutil.copytree(template, data_dir, dirs_exist_ok=True)
    port, api_key = _free_port(), secrets.token_hex(20)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SERVER_ENV, LABEL_STUDIO_BASE_DATA_DIR=str(data_dir))
    log = (data_dir / "server.log").open("wb")
    server = subprocess.Popen(
        [str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port",
         str(port), "--data-dir", str(data_dir), "--username", "annotator@example.com",
         "--password", secrets.token_hex(8), "--user-token", api_key, "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Seconds on a quiet machine; minutes on a busy one, or when it must migrate a new database.
        _wait_until_up(url, server, data_dir / "server.log", 300 if template.is_dir() else 900)
        yield LabelStudioInstance(url, api_key, data_dir)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"Label Studio exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"Label Studio did not answer at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
