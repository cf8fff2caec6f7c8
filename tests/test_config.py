"""Validated parameters: a wrong combination fails with a message that says what to set."""

import pytest
from pydantic import ValidationError

from mgral_pipelines.config import DatasetParams


def test_dataset_path_of_the_embedded_source_is_its_generated_folder():
    assert DatasetParams(source="embedded", path="data/01_raw/x", raw_dir="data/01_raw/x/")
    assert DatasetParams(source="embedded", path=None).raw_dir == "data/01_raw/embedded"
    with pytest.raises(ValidationError, match=r"raw_dir=data/01_raw/x, but dataset.path=/data/voc"):
        DatasetParams(source="embedded", path="/data/voc", raw_dir="data/01_raw/x")


def test_user_data_needs_a_path():
    with pytest.raises(ValidationError, match="dataset.source=coco needs dataset.path=<PATH>"):
        DatasetParams(source="coco")
