"""The headline's numbers in the docs are what the committed script makes from the committed
records: re-made here, they must match the committed tables, and the READMEs must quote them."""

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.benchmark_tables import write_tables

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks/records/transfer/evaluation"
TABLES = REPO / "docs/results/transfer_evaluation_benchmark"
REMAKE = "python benchmarks/benchmark_tables.py benchmarks/records/transfer/evaluation --out docs/results/transfer_evaluation_benchmark"  # noqa: E501


@pytest.fixture(scope="module")
def remade(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tables")
    write_tables(RECORDS, out)
    return out


@pytest.mark.parametrize("name", ["tables.md", "headline.md", "mgral_queries.md"])
def test_the_committed_tables_are_what_the_records_give(remade, name):
    assert (remade / name).read_text() == (TABLES / name).read_text(), (
        f"{TABLES / name} is not what the committed records give: run {REMAKE}")


@pytest.mark.parametrize("name", ["summary.csv", "comparisons.csv", "al_curve.csv"])
def test_the_committed_csvs_are_what_the_records_give(remade, name):
    pd.testing.assert_frame_equal(pd.read_csv(remade / name), pd.read_csv(TABLES / name))


def test_the_readme_quotes_the_headline_table_verbatim():
    headline = (TABLES / "headline.md").read_text()
    assert headline in (REPO / "README.md").read_text(), (
        f"README.md does not quote {TABLES / 'headline.md'} as it is; copy it in")


def test_the_study_readme_quotes_its_generated_tables_verbatim():
    readme = (TABLES / "README.md").read_text()
    strategies = (TABLES / "tables.md").read_text().split("\n\n")[1]  # after the comparisons
    queries = (TABLES / "mgral_queries.md").read_text()
    for table in ((TABLES / "headline.md").read_text(), strategies, queries):
        assert table in readme, f"{TABLES / 'README.md'} does not quote, as it is:\n{table}"
