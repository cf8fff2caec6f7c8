"""Development data and evaluation data, kept apart.

A regime (the `transfer` profile) declares two data sets in `benchmark.data_sets`: `development`
(images generated with one seed, split with some seeds) and `evaluation` (another generator seed,
other split seeds). A change is designed, tuned and studied on development data; the evaluation
table is re-run only for a version worth reporting. Two gates keep it so:
  * `check_prepared`: a benchmark run reads the data set it names, and only if the prepared images
    are that set's (their generator seed, from the embedded dataset's provenance.json);
  * `require_development`: every study, yardstick and tuning script refuses evaluation data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams, DataSet


def generator_seed(image_index: dict[str, Any]) -> int | None:
    """The seed the prepared embedded images were generated with; None for other sources."""
    if image_index.get("source") != "embedded":
        return None
    root = Path(image_index["root"])  # the generated folder's data.yaml
    provenance = (root if root.is_dir() else root.parent) / "provenance.json"
    if not provenance.is_file():
        raise ValueError(f"{provenance} is missing: the prepared embedded dataset does not say "
                         "how it was generated; run `prepare` again")
    return int(json.loads(provenance.read_text())["config"]["seed"])


def check_prepared(image_index: dict[str, Any], params: BenchmarkParams) -> None:
    """Refuse a run whose prepared images are not those of its declared `data_set`."""
    if params.data_set is None:
        return
    declared = params.data_sets[params.data_set].generator_seed
    found = generator_seed(image_index)
    if found != declared:
        raise ValueError(
            f"benchmark.data_set={params.data_set} reads images generated with seed {declared}, "
            f"but the prepared dataset ({image_index.get('root')}) was generated with seed "
            f"{found}. Prepare it first: kedro run --env <this profile> --pipeline=prepare "
            f"--params=dataset.embedded.seed={declared}")


def require_development(image_index: dict[str, Any], split_seeds: list[int],
                        benchmark: dict[str, Any], what: str) -> None:
    """For studies: refuse evaluation images or evaluation split seeds, naming them."""
    declared = {name: DataSet(**value) for name, value in
                (benchmark.get("data_sets") or {}).items()}
    evaluation = declared.get("evaluation")
    if evaluation is None:
        return
    found = generator_seed(image_index)
    problems = []
    if found == evaluation.generator_seed:
        problems.append(f"its images are the evaluation set's (generator seed {found})")
    used = sorted(set(split_seeds) & set(evaluation.split_seeds))
    if used:
        problems.append(f"split seeds {used} are evaluation split seeds")
    if problems:
        development = declared.get("development")
        where = (f" (generator seed {development.generator_seed}, split seeds "
                 f"{development.split_seeds})" if development else "")
        raise ValueError(
            f"{what} reads development data only, but {' and '.join(problems)}. Studies, "
            f"yardsticks and tuning runs are designed and measured on the development set{where}; "
            "only the headline benchmark reads the evaluation set.")
