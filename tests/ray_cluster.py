"""A real two-node Ray cluster for the tests: a head and a worker node, started with `ray start`.

Both nodes and every Ray driver of the tests (a subprocess: `RayCluster.command`) live in a
private network namespace that has only the loopback interface. Ray on Linux advertises the
host's network address (it replaces 127.0.0.1 by it), so outside such a namespace a "local"
cluster would talk over the host's address; inside it, every Ray address is 127.0.0.1 and no
packet can leave the namespace.

Each node is a `ray start --block` process with its own temp dir; stopping the cluster sends
SIGTERM to those two processes (started here, stopped by their ids), which stop their own Ray
processes. `ray stop` is not used: it stops every Ray process of the user on this machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RayCluster:
    address: str
    namespace: str
    """/proc/<pid>/ns/net of the network namespace the cluster lives in."""
    temp_dirs: tuple[Path, ...]

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the cluster's network namespace (a Ray driver must be there)."""
        return ["nsenter", f"--net={self.namespace}", *argv]

    def env(self) -> dict[str, str]:
        """The environment for such a driver: this checkout's package first."""
        return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": _pythonpath()}

    def owns(self, pid: int) -> bool:
        """Whether process `pid` belongs to this cluster (its command line or its parent's names
        one of the cluster's temp dirs)."""
        for candidate in (pid, _parent(pid)):
            cmdline = _cmdline(candidate)
            if any(str(d) in cmdline for d in self.temp_dirs):
                return True
        return False


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """Head + worker node, 1 CPU each, on 127.0.0.1; stopped at the end of the session."""
    root = tmp_path_factory.mktemp("ray")
    processes: list[subprocess.Popen] = []
    holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"],
                              start_new_session=True)
    processes.append(holder)
    namespace = f"/proc/{holder.pid}/ns/net"
    try:
        _wait(lambda: os.readlink(namespace) != os.readlink("/proc/self/ns/net"), 10,
              "the network namespace")
        subprocess.run(["nsenter", f"--net={namespace}", "ip", "link", "set", "lo", "up"],
                       check=True)
        port = 6390
        head_dir, worker_dir = root / "head", root / "worker"
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TMPDIR": str(root),
               "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": _pythonpath(),
               # On a machine whose cores other jobs saturate, a node can miss Ray's health
               # checks (5 x 3 s) and be declared dead; a killed worker is noticed regardless.
               "RAY_health_check_failure_threshold": "100"}
        ray = str(Path(sys.executable).with_name("ray"))
        common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
        address = f"127.0.0.1:{port}"
        processes.append(_start_node(
            [ray, "start", "--head", f"--port={port}", f"--temp-dir={head_dir}",
             "--include-dashboard=false", *common], namespace, env, root / "head.log"))
        processes.append(_start_node(
            [ray, "start", f"--address={address}", f"--temp-dir={worker_dir}", *common],
            namespace, env, root / "worker.log"))
        yield RayCluster(address, namespace, (head_dir, worker_dir))
    finally:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _pythonpath() -> str:
    # The nodes import this checkout's package first, like the test process.
    return os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])


def _start_node(command: list[str], namespace: str, env: dict[str, str],
                log: Path) -> subprocess.Popen:
    """One node; started again once if Ray gave up starting it (its agents, Python processes,
    may miss Ray's 30 s start-up deadline on a busy machine)."""
    for attempt in (1, 2):
        process = _start(command, namespace, env, log)
        try:
            _wait(lambda: "Ray runtime started" in _text(log), 240, log.stem, log,
                  failed=lambda: "timed out during startup" in _text(log))
            return process
        except TimeoutError:
            _stop(process)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start(command: list[str], namespace: str, env: dict[str, str],
           log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(["nsenter", f"--net={namespace}", *command], env=env, cwd=REPO,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (a `ray start --block` then stops its node's processes), SIGKILL after 60 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the process group this fixture created
        process.wait(timeout=10)


def _wait(ready, seconds: float, what: str, log: Path | None = None,
          failed=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not failed():
        if ready():
            return
        time.sleep(0.5)
    tail = _text(log)[-3000:] if log else ""
    raise TimeoutError(f"{what} did not start (waited up to {seconds} s)\n{tail}")


def _text(path: Path | None) -> str:
    return path.read_text(errors="replace") if path and path.exists() else ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])
