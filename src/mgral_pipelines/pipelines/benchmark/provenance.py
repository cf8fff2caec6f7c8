"""Which code a benchmark curve runs through: a digest of the modules that train, select and
evaluate it, recorded with every cycle so that records made by different code are never merged.

The digest is per strategy: the modules every curve runs through (the detector adapter, mAP, the AL
state, the runner, the in-memory cycle with the pipelines that wire its nodes, the detector,
embedding and query nodes and the three al_cycle functions of a simulated annotation), the
strategy's own module with the strategy and `mgral` modules it imports, and for a strategy with a
policy the whole `mgral` package and the LUT and agent nodes and pipelines. A change to
MGRAL's look-up therefore leaves random's records valid, while a change to the detector adapter
invalidates every record until a re-run shows the numbers unchanged (`records.accept_equivalent`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import subprocess
from functools import cache
from pathlib import Path

from mgral_pipelines.strategies import get_strategy, policy_reward

PACKAGE = "mgral_pipelines"
COMMON_MODULES = (
    "mgral_pipelines.detector", "mgral_pipelines.evaluation", "mgral_pipelines.voc_evaluation",
    "mgral_pipelines.al_state", "mgral_pipelines.data.manifest", "mgral_pipelines.strategies.base",
    "mgral_pipelines.pipelines.common", "mgral_pipelines.pipelines.al_cycle.cycle",
    "mgral_pipelines.pipelines.al_cycle.pipeline",
    "mgral_pipelines.pipelines.detector.nodes", "mgral_pipelines.pipelines.detector.pipeline",
    "mgral_pipelines.pipelines.embedding.nodes", "mgral_pipelines.pipelines.embedding.pipeline",
    "mgral_pipelines.pipelines.query.nodes", "mgral_pipelines.pipelines.query.pipeline",
    "mgral_pipelines.pipelines.benchmark.runner", "mgral_pipelines.pipelines.benchmark.curves",
    "mgral_pipelines.pipelines.benchmark.records",
)
# The al_cycle nodes module also holds the people's side of the loop; a simulated cycle runs
# only these three of its functions.
COMMON_FUNCTIONS = ("mgral_pipelines.pipelines.al_cycle.nodes:annotate",
                    "mgral_pipelines.pipelines.al_cycle.nodes:annotate_from_oracle",
                    "mgral_pipelines.pipelines.al_cycle.nodes:update_state")
POLICY_MODULES = ("mgral_pipelines.mgral", "mgral_pipelines.pipelines.lut.nodes",
                  "mgral_pipelines.pipelines.lut.pipeline", "mgral_pipelines.pipelines.agent.nodes",
                  "mgral_pipelines.pipelines.agent.pipeline")


def _files(module_name: str) -> list[Path]:
    """The source files of a module, or of every module of a package."""
    module = importlib.import_module(module_name)
    path = Path(inspect.getfile(module))
    if path.name == "__init__.py":
        return sorted(path.parent.rglob("*.py"))
    return [path]


def _imported_project_modules(module_name: str, within: tuple[str, ...]) -> set[str]:
    """`module_name` and the modules under `within` it imports, transitively (static imports)."""
    seen, todo = set(), [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(Path(inspect.getfile(importlib.import_module(name))).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                todo += [node.module] if node.module.startswith(within) else []
            elif isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names if alias.name.startswith(within)]
    return seen


@cache
def code_version(strategy: str) -> str:
    """16 hex digits identifying the code a curve of `strategy` runs through."""
    own = type(get_strategy(strategy)).__module__
    modules = set(COMMON_MODULES) | _imported_project_modules(
        own, ("mgral_pipelines.strategies", "mgral_pipelines.mgral"))
    if policy_reward(strategy) is not None:
        modules |= set(POLICY_MODULES)
    root = Path(inspect.getfile(importlib.import_module(PACKAGE))).parent
    digest = hashlib.sha256()
    for path in sorted({f for m in modules for f in _files(m)}):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for target in COMMON_FUNCTIONS:
        module_name, function = target.split(":")
        source = inspect.getsource(getattr(importlib.import_module(module_name), function))
        digest.update(target.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


def git_commit() -> str:
    """The checkout's commit, with `+changes` when tracked files differ from it; `unknown`
    outside a git checkout. Informational: `code_version` is what decides."""
    root = Path(inspect.getfile(importlib.import_module(PACKAGE))).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty.strip() else "")
