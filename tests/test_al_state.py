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


def _awaiting():
    return al_state.await_labels(_state(), ["c", "b"], "random", "label_studio", "2026-01-01")


def test_a_batch_awaiting_people_changes_nothing_until_its_labels_come_back():
    state = _awaiting()
    assert state["awaiting"] == {"cycle": 0, "image_ids": ["c", "b"], "strategy": "random",
                                 "annotator": "label_studio", "sent_at": "2026-01-01"}
    assert {k: v for k, v in state.items() if k != "awaiting"} == _state()
    with pytest.raises(ValueError, match="not in the pool: \\['a'\\]"):
        al_state.await_labels(_state(), ["a"], "random", "files", "now")


def test_completing_a_batch_moves_the_finished_images_and_keeps_the_rest_in_the_pool():
    box = [{"class_id": 0, "bbox": [0, 0, 1, 1]}]
    following = al_state.complete_batch(_awaiting(), {"b": box})
    assert following["cycle"] == 1 and "awaiting" not in following
    assert following["labelled_ids"] == ["a", "b"] and following["pool_ids"] == ["c", "d"]
    assert following["history"][-1] == {"cycle": 0, "strategy": "random", "query_ids": ["b"],
                                        "n_labelled": 2, "annotator": "label_studio",
                                        "returned_to_pool": ["c"]}
    # Labels that came back another way than the batch went (e.g. files instead of Label Studio).
    returned = al_state.complete_batch(_awaiting(), {"b": box}, "files")
    assert returned["history"][-1]["annotator"] == "files"
    with pytest.raises(ValueError, match="no image of the awaiting batch of cycle 0 is labelled"):
        al_state.complete_batch(_awaiting(), {})
    with pytest.raises(ValueError, match="not in the awaiting batch: \\['d'\\]"):
        al_state.complete_batch(_awaiting(), {"b": [], "d": []})


def _prepared(pool, initial=("a",), evaluation="e1"):
    return al_state.initial_state({"initial": list(initial), "pool": list(pool)},
                                  {i: [] for i in initial}, "fp", evaluation)


def test_progress_carries_over_a_new_preparation_while_it_is_still_valid():
    latest = al_state.advance(_prepared(["b", "c", "d"]), ["c"], {"c": [{"class_id": 0}]}, "random")
    # New unlabelled images arrived: the progress stays, the pool grows.
    kept, _ = al_state.carry_over(latest, _prepared(["b", "c", "d", "e"]))
    assert kept["cycle"] == 1 and kept["labels"]["c"] == [{"class_id": 0}]
    assert kept["pool_ids"] == ["b", "d", "e"]
    same, _ = al_state.carry_over(latest, _prepared(["b", "c", "d"]))
    assert same == latest  # the same data: nothing changes
    assert al_state.carry_over(latest, _prepared(["b", "c", "d"], evaluation="e2")) == (
        None, "the classes, V or T (or their labels) changed")
    assert al_state.carry_over(latest, _prepared(["c", "d"], initial=("b",)))[1] == (
        "the initial labelled set changed")
    assert "1 labelled or awaiting images are no longer" in al_state.carry_over(
        latest, _prepared(["b", "d"]))[1]
