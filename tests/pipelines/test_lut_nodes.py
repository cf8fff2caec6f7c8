"""The LUT's schedule: every variant and the reference take the same optimiser steps."""

from mgral_pipelines.detector.training import epoch_list
from mgral_pipelines.pipelines.lut.nodes import step_matched_images_per_epoch


def test_variants_and_reference_take_the_same_number_of_images_per_epoch():
    labelled = [f"l{i}" for i in range(100)]
    batch = [f"b{i}" for i in range(100)]
    # L_t + B = 200 outgrow the default 128: without the raise a variant epoch would hold 200
    # images and the reference's 128.
    per_epoch = step_matched_images_per_epoch(128, len(labelled), len(batch))
    assert per_epoch == 200
    assert len(epoch_list(labelled + batch, per_epoch, seed=0)) == len(
        epoch_list(labelled, per_epoch, seed=0)) == 200
    # A LUT that fits keeps its setting; no setting (every set once) stays unmatched on purpose.
    assert step_matched_images_per_epoch(128, 20, 30) == 128
    assert step_matched_images_per_epoch(None, 100, 100) is None
