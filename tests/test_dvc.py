"""`dvc exp run` of the project's dvc.yaml in a fresh git + DVC repo, on the tiny profile.

Two experiments (random, then mgral) must reproduce prepare and the cycles, reuse the strategy-free
stages from the cache, and be comparable with `dvc exp show` and `dvc plots diff`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PARAMS = "conf/base/parameters_al_cycle.yml"

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    # A guard against hangs only: on a busy 2-core machine one experiment took over 15 minutes.
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _soft_merge(base: dict, changes: dict) -> dict:
    """`changes` over `base`, nested mappings merged key by key (Kedro's soft merge)."""
    merged = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _soft_merge(merged[key], value) if both else value
    return merged


@pytest.fixture
def dvc_repo(tmp_path):
    """The project (code, dvc.yaml, conf with the tiny profile as its base) in a new repo."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("dvc.yaml", "pyproject.toml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf" / "base", root / "conf" / "base")
    # The tiny profile lists only its differences (parameters merge softly): merged into base the
    # same way, since DVC reads every parameter from conf/base.
    for tiny in (REPO / "conf" / "tiny").glob("*.yml"):
        base = root / "conf" / "base" / tiny.name
        merged = _soft_merge(yaml.safe_load(base.read_text()) if base.exists() else {},
                             yaml.safe_load(tiny.read_text()))
        base.write_text(yaml.safe_dump(merged, sort_keys=False))
    (root / "conf" / "local").mkdir()
    # The project's one query round (state 0 -> 1, both evaluated).
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    assert pipeline["vars"][1]["rounds"] == [{"cycle": 0, "next": 1}]
    assert pipeline["vars"][2]["states"] == [0, 1]
    (root / ".gitignore").write_text((REPO / ".gitignore").read_text())

    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    # The stages run the copy's code, the code DVC hashes (an editable install may point elsewhere).
    env.update(PYTHONPATH=str(root / "src"), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost", DVC_NO_ANALYTICS="1")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "project"]):
        _run(command, root, env)
    return root, env


def test_dvc_exp_run_reproduces_cycles_for_two_strategies_and_compares_them(dvc_repo):
    root, env = dvc_repo
    first = _run(["dvc", "exp", "run", "-n", "random-exp", "-S", f"{PARAMS}:al.strategy=random"],
                 root, env)
    assert "Running stage 'select@0'" in first
    # A strategy without a LUT leaves MGRAL's folder empty, and DVC accepts it.
    assert list((root / "data/06_models/mgral/cycle_0").iterdir()) == []
    assert (root / "data/05_model_input/al_state/cycle_1.json").is_file()

    second = _run(["dvc", "exp", "run", "-n", "mgral-exp", "-S", f"{PARAMS}:al.strategy=mgral"],
                  root, env)
    # The detector of cycle 0 does not depend on the strategy: reused, not retrained.
    assert "Running stage 'detector@0'" not in second
    assert "Running stage 'select@0'" in second
    assert "Running stage 'detector@1'" in second  # trained on mgral's labelled set this time
    assert sorted(p.name for p in (root / "data/06_models/mgral/cycle_0").iterdir()) == [
        "lut.json", "policy.pt"]
    state = json.loads((root / "data/05_model_input/al_state/cycle_1.json").read_text())
    assert state["history"][0]["strategy"] == "mgral"

    shown = json.loads(_run(["dvc", "exp", "show", "--json"], root, env))
    experiments = {}
    for revision in shown:
        for experiment in revision.get("experiments") or []:
            for run in experiment["revs"]:
                data = run["data"]
                strategy = data["params"][PARAMS]["data"]["al"]["strategy"]
                summary = data["metrics"]["data/08_reporting/al_summary.json"]["data"]
                experiments[run["name"]] = (strategy, summary)
    assert {name: strategy for name, (strategy, _) in experiments.items()} == {
        "random-exp": "random", "mgral-exp": "mgral"}
    for _, summary in experiments.values():
        assert summary["cycles"] == 2 and summary["n_labelled"] == 15  # 10 initial + 5 queried
        assert 0.0 <= summary["test_map50_95"] <= 1.0

    plots = json.loads(_run(["dvc", "plots", "diff", "random-exp", "mgral-exp", "--json"],
                            root, env))
    (curve,) = plots["data"]["data/08_reporting/al_curve.csv"]
    assert curve["revisions"] == ["random-exp", "mgral-exp"]
    points = curve["content"]["data"]["values"]  # the filled Vega-Lite spec; CSV values are text
    assert sorted({(p["rev"], int(p["n_labelled"])) for p in points}) == [
        ("mgral-exp", 10), ("mgral-exp", 15), ("random-exp", 10), ("random-exp", 15)]


def test_prepare_with_a_user_dataset_depends_on_its_path(dvc_repo, tmp_path):
    """`dataset.path` outside the repo is hashed as an external dependency; the embedded stage
    leaves its folder empty instead of failing."""
    from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset

    root, env = dvc_repo
    user = generate_embedded_dataset(tmp_path / "user_data",
                                     EmbeddedDatasetConfig(num_images=40, image_size=96, seed=7))
    coco = user.parent / "annotations_coco.json"
    prepare = "conf/base/parameters_prepare.yml:dataset"
    _run(["dvc", "exp", "run", "prepare", "-S", f"{prepare}.source=coco",
          "-S", f"{prepare}.path={coco}"], root, env)

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    (dependency,) = [d for d in lock["stages"]["prepare"]["deps"] if d["path"] == str(coco)]
    assert dependency["md5"]
    assert list((root / "data/01_raw/embedded_tiny").iterdir()) == []
    index = json.loads((root / "data/03_primary/image_index.json").read_text())
    assert index["source"] == "coco" and len(index["images"]) == 40

    # Deterministic: prepared again (in another process, with other string hashing), the
    # outputs keep their hashes in dvc.lock, and DVC reports the stage as reproduced.
    _run(["dvc", "repro", "--force", "--single-item", "prepare"], root,
         {**env, "PYTHONHASHSEED": "1"})
    again = yaml.safe_load((root / "dvc.lock").read_text())
    assert again["stages"]["prepare"]["outs"] == lock["stages"]["prepare"]["outs"]
    assert all(not out["md5"].endswith(".dir") for out in again["stages"]["prepare"]["outs"])
    assert "prepare" not in _run(["dvc", "status", "prepare"], root, env)
