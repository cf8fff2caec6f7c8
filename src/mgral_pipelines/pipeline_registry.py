"""Project pipelines: the names users type after `kedro run --pipeline=`."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    # Kedro 1.x may load only the requested pipelines; `kedro run` alone means one AL cycle.
    if "al_cycle" in pipelines:
        pipelines["__default__"] = pipelines["al_cycle"]
    return pipelines
