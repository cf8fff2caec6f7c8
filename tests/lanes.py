"""The two test lanes: every test is classified by what its code uses (rule: tests/conftest.py).

At collection, the code of each test and of every fixture it requests is read (following the
helper functions defined under tests/ that it calls) for the objects below; a test that reaches
one gets that object's marker. A test with none of the markers is a unit test (`unit`), which is
all `make test-fast` runs. Reading code cannot see what the project's own functions do inside,
so a unit test is also guarded while it runs: opening a Kedro session, starting a process or
training a detector fails it with the marker it needs.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# The markers that keep a test out of the unit lane, and what each means.
HEAVY_MARKERS = {
    "kedro": "opens a Kedro session (the `project` fixture, run_pipeline)",
    "subprocess": "starts another process (Label Studio, a Ray cluster, the kedro or dvc CLI)",
    "ray": "starts a real Ray cluster on 127.0.0.1 (in a private network namespace) or instance",
    "slow": "trains a real detector (seconds to minutes on CPU)",
    "smoke": "runs a measuring script of benchmarks/ at its smallest size",
}
UNIT = "unit"


def _heavy_objects() -> dict[int, str]:
    """id(object) -> marker, for the objects whose use puts a test in the full lane."""
    import ray
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mgral_pipelines import detector
    from mgral_pipelines.execution import ray_tasks
    from mgral_pipelines.mgral import variants

    marked: dict[str, list[Any]] = {
        "kedro": [KedroSession, bootstrap_project],
        "subprocess": [subprocess, *(getattr(subprocess, name) for name in (
            "run", "Popen", "call", "check_call", "check_output"))],
        "ray": [ray, ray_tasks],
        "slow": [detector.train_detector, detector.train_semi_supervised,
                 detector.ProjectDetectionTrainer, detector.SemiSupervisedDetectionTrainer,
                 variants.train_variant, variants.train_variants],
    }
    return {id(obj): marker for marker, objects in marked.items() for obj in objects}


def pytest_configure(config: pytest.Config) -> None:
    for marker, meaning in HEAVY_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {meaning}")
    config.addinivalue_line("markers",
                            f"{UNIT}: none of {', '.join(HEAVY_MARKERS)} (make test-fast)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    heavy = _heavy_objects()
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        found = {marker for function in _code_of(item) for marker in _uses(function, heavy)}
        for marker in sorted(found - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)
        if not any(item.get_closest_marker(marker) for marker in HEAVY_MARKERS):
            item.add_marker(UNIT)


def _code_of(item: pytest.Function) -> Iterator[Callable[..., Any]]:
    """The test function and the fixtures under tests/ it requests (transitively), but the guard."""
    yield item.function
    # pytest keeps the resolved fixture definitions here; no public accessor gives their functions.
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        for definition in definitions:
            function = inspect.unwrap(definition.func)
            if _is_test_code(function, item.module.__name__) and function.__module__ != __name__:
                yield function


def _uses(function: Callable[..., Any], heavy: dict[int, str],
          seen: set[types.CodeType] | None = None) -> set[str]:
    """Markers of the heavy objects `function`'s code names, following helpers under tests/."""
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None:
        return set()
    seen = set() if seen is None else seen
    found: set[str] = set()
    namespace = function.__globals__
    for block in _code_blocks(code):
        if block in seen:
            continue
        seen.add(block)
        for name in block.co_names:
            value = namespace.get(name)
            if value is None:
                continue
            if id(value) in heavy:
                found.add(heavy[id(value)])
            elif _is_test_code(value, function.__module__):
                found |= _uses(value, heavy, seen)
    return found


def _code_blocks(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and those nested in it (lambdas, comprehensions, inner functions)."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_blocks(constant)


def _is_test_code(value: Any, module: str) -> bool:
    """A function of the test module at hand or of the tests package (not of a library)."""
    return inspect.isfunction(value) and (value.__module__ == module
                                          or value.__module__.split(".")[0] == "tests")


# --- the guard: what reading code missed fails the unit test that does it ----------------------

# Programs a unit test may start: MLflow's run context asks git for the commit (GitPython).
QUICK_TOOLS = {"git"}


def _program(args: Any) -> str:
    first = args.split()[0] if isinstance(args, str) else next(iter(args), "")
    return os.path.basename(os.fspath(first))



@pytest.fixture(autouse=True)
def _unit_tests_stay_light(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker(UNIT) is None:
        return
    from kedro.framework.session import KedroSession

    from mgral_pipelines.detector import ProjectDetectionTrainer

    def refuse(marker: str) -> Callable[..., Any]:
        def guard(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(f"{request.node.nodeid} {HEAVY_MARKERS[marker]}, which a unit test may "
                        f"not: mark it @pytest.mark.{marker} (see tests/conftest.py)",
                        pytrace=False)
        return guard

    start_process = subprocess.Popen.__init__

    def start_only_quick_tools(process: subprocess.Popen, args: Any, *rest: Any, **kw: Any) -> None:
        if _program(args) not in QUICK_TOOLS:
            refuse("subprocess")()
        start_process(process, args, *rest, **kw)

    monkeypatch.setattr(KedroSession, "create", refuse("kedro"))
    monkeypatch.setattr(subprocess.Popen, "__init__", start_only_quick_tools)
    monkeypatch.setattr(ProjectDetectionTrainer, "train", refuse("slow"))
