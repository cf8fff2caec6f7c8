"""Project hooks."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

logger = logging.getLogger(__name__)


class PrepareOnFirstRun:
    """Runs `prepare` before any pipeline that reads its outputs when no AL state exists yet.

    This is what lets `kedro run --pipeline=al_cycle` work on a fresh clone. Once a state exists it
    does nothing, so a dataset prepared earlier (any `dataset.source`) is kept and continued.
    """

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        from mgral_pipelines.pipelines.prepare import create_pipeline as prepare_pipeline

        prepared = prepare_pipeline().all_outputs() | {"al_states"}
        if not pipeline.inputs() & prepared or catalog.exists("al_states"):
            return

        logger.info("No AL state found: running the `prepare` pipeline first.")
        SequentialRunner().run(prepare_pipeline(), catalog)
