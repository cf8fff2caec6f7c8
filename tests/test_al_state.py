import pytest

from mgral_pipelines import al_state

IDS = [f"{i:03d}" for i in range(20)]


def test_splits_are_disjoint_complete_and_fixed_by_seed():
    splits = al_state.split_ids(IDS, val=3, test=4, initial=5, seed=7)
    parts = [set(splits[name]) for name in ("val", "test", "initial", "pool")]
    assert [len(p) for p in parts] == [3, 4, 5, 8]
    assert set().union(*parts) == set(IDS)
    assert sum(len(p) for p in parts) == len(IDS)
    assert splits == al_state.split_ids(IDS, val=3, test=4, initial=5, seed=7)
    assert splits != al_state.split_ids(IDS, val=3, test=4, initial=5, seed=8)


def test_splits_larger_than_dataset_are_refused():
    with pytest.raises(ValueError, match="need 20 images .* only 20 images"):
        al_state.split_ids(IDS, val=10, test=5, initial=5, seed=0)


def _state():
    splits = {"initial": ["a"], "pool": ["b", "c", "d"]}
    return al_state.initial_state(splits, {"a": []}, dataset="fp")


def test_advance_moves_query_from_pool_to_labelled_with_labels_and_history():
    box = [{"class_id": 1, "bbox": [0, 0, 2, 2]}]
    nxt = al_state.advance(_state(), ["c"], {"c": box}, strategy="random")
    assert nxt["cycle"] == 1
    assert nxt["labelled_ids"] == ["a", "c"] and nxt["pool_ids"] == ["b", "d"]
    assert nxt["labels"]["c"] == box
    assert nxt["history"] == [{"cycle": 0, "strategy": "random", "query_ids": ["c"], "n_labelled": 2}]


@pytest.mark.parametrize(
    ("query", "labels", "message"),
    [(["zz"], {"zz": []}, "not in the pool"), (["b", "b"], {"b": []}, "duplicate"),
     (["b"], {}, "annotations are missing")],
)
def test_advance_rejects_bad_queries(query, labels, message):
    with pytest.raises(ValueError, match=message):
        al_state.advance(_state(), query, labels, strategy="random")


def test_choose_state_latest_or_requested():
    states = {0: {"cycle": 0}, 1: {"cycle": 1}}
    assert al_state.choose_state(states, None)["cycle"] == 1
    assert al_state.choose_state(states, 0)["cycle"] == 0
    with pytest.raises(ValueError, match="no AL state for cycle 5"):
        al_state.choose_state(states, 5)
    with pytest.raises(ValueError, match="run `kedro run --pipeline=prepare`"):
        al_state.choose_state({}, None)
