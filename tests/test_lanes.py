"""The lanes' rule (tests/conftest.py): a test's markers follow from what its code uses, and a
unit test that reaches something heavy through code the rule cannot read fails, naming the
marker."""

from __future__ import annotations

import pytest

SAMPLE = '''
import importlib
import subprocess

import pytest
from kedro.framework.session import KedroSession
from mgral_pipelines.detector import train_detector


def _open_session():
    return KedroSession.create()


@pytest.fixture
def trained():
    return train_detector()


def test_starts_a_process():
    subprocess.run(["true"])


def test_through_a_helper():
    _open_session()


def test_with_a_training_fixture(trained):
    pass


@pytest.mark.slow
def test_marked_by_hand():
    pass


def test_plain():
    assert sum([1, 2]) == 3


def test_hidden_process():
    importlib.import_module("sub" + "process").run(["sleep", "0"])


def test_hidden_session():
    getattr(importlib.import_module("kedro.framework.session"), "Kedro" + "Session").create()


def test_hidden_training():
    importlib.import_module("mgral_pipelines.detector").ProjectDetectionTrainer.train(None)


def test_git_is_allowed():
    importlib.import_module("sub" + "process").run(["git", "--version"], capture_output=True)
'''


@pytest.fixture
def sample(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["tests.lanes"]')
    pytester.makepyfile(test_sample=SAMPLE)
    return pytester


def test_markers_follow_what_the_test_and_its_fixtures_use(sample: pytest.Pytester):
    items, _ = sample.inline_genitems()
    markers = {item.name: {m.name for m in item.iter_markers()} for item in items}
    assert markers["test_starts_a_process"] == {"subprocess"}
    assert markers["test_through_a_helper"] == {"kedro"}
    assert markers["test_with_a_training_fixture"] == {"slow"}
    assert markers["test_marked_by_hand"] == {"slow"}
    hidden = ["test_plain", "test_hidden_process", "test_hidden_session", "test_hidden_training",
              "test_git_is_allowed"]
    assert all(markers[name] == {"unit"} for name in hidden)


def test_a_unit_test_that_does_something_heavy_fails_with_the_marker_it_needs(
        sample: pytest.Pytester):
    result = sample.runpytest_inprocess("-m", "unit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3, deselected=4)
    result.stdout.fnmatch_lines([
        "*test_hidden_process starts another process*mark it @pytest.mark.subprocess*",
        "*test_hidden_session opens a Kedro session*mark it @pytest.mark.kedro*",
        "*test_hidden_training trains a real detector*mark it @pytest.mark.slow*",
    ])
