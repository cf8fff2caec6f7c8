"""The end-of-cycle summary's lines, from hand-made cycle outputs."""

from __future__ import annotations

import math

from mgral_pipelines.pipelines.al_cycle.summary import CycleOutputs, WhereToLook, summary_lines

CLASSES = [f"c{i}" for i in range(7)]
STATE = {"cycle": 2, "labelled_ids": ["a", "b"], "pool_ids": ["p", "q", "r", "s"]}
REPORTS = {1: {"test": {"map50_95": 0.25, "map50": 0.5}},
           2: {"test": {"map50_95": 0.3125, "map50": 0.625}}}
# Query p and q; r is not queried, so its detections do not count.
DETECTIONS = {
    "p": [{"class_id": 0, "score": 0.9}, {"class_id": 0, "score": 0.8},
          {"class_id": 1, "score": 0.2}],   # below the 0.25 threshold: not counted
    "q": [{"class_id": c, "score": 0.5} for c in range(1, 7)],
    "r": [{"class_id": 3, "score": 0.99}],
}
LUT = {"entries": [{"delta_map": -0.01}, {"delta_map": 0.02}, {"delta_map": 0.005}],
       "fidelity": {"loo_spearman": 0.5, "loo_skill": 0.25}}
CHECK = {"agent/query_reward": 0.015, "agent/query_reward_percentile": 0.875,
         "agent/random_batch_reward_mean": 0.004, "agent/random_batch_reward_std": 0.003}
WHERE = WhereToLook(query_csv="data/q/cycle_2.csv", tracking_uri="sqlite:///mlflow.db",
                    mlflow_run_id="abc", reward_plot="data/r.png", log_file="logs/kedro.log")


def _outputs(**changes) -> CycleOutputs:
    saved = {"cycle": 3, "labelled_ids": ["a", "b", "p", "q"], "pool_ids": ["r", "s"]}
    return CycleOutputs(**{"state": STATE, "saved": saved, "reports": REPORTS,
                           "query_ids": ["p", "q"], "detections": DETECTIONS, "classes": CLASSES,
                           "strategy": "mgral", "lut": LUT, "policy_check": CHECK, **changes})


def test_an_mgral_cycle_says_sizes_maps_skill_policy_query_and_where_to_look():
    lines = summary_lines(_outputs(), WHERE, seconds=451.4)
    assert lines == [
        "MGRAL cycle 2 finished in 7 min 31 s (strategy mgral, 2 images queried)",
        "Labelled 2 -> 4 images, pool 4 -> 2",
        "D_2 test mAP50-95 0.312 (mAP50 0.625); D_1: 0.250 (+0.062)",
        "LUT: 3 detector variants, ΔmAP -0.0100 to +0.0200; leave-one-out ρ 0.50, skill 0.25: "
        "it tells batches apart",
        "Policy: trained on that reward, its query's estimated ΔmAP +0.0150 beats 88% of random "
        "batches of 2 (+0.0040 ± 0.0030)",
        "Queried 2 images: D_2 detects 8 objects in them (score >= 0.25); predicted classes: "
        "c0 2, c1 1, c2 1, c3 1, c4 1 and 2 more classes",
        "Where to look next:",
        "  the query       data/q/cycle_2.csv",
        "  MLflow          mlflow ui --backend-store-uri sqlite:///mlflow.db (run abc)",
        "  policy rewards  data/r.png",
        "  full log        logs/kedro.log",
        "  next cycle      make demo (kedro run --pipelines=al_cycle)",
        "  AL curve        kedro run --pipelines=report, then dvc plots show",
    ]


def test_a_lut_without_skill_says_the_policys_ranking_has_no_backing():
    for skill in (-0.2, math.nan):
        lut = {**LUT, "fidelity": {"loo_spearman": -1.0, "loo_skill": skill}}
        lines = summary_lines(_outputs(lut=lut), WHERE, seconds=1)
        assert lines[3].endswith("it cannot tell batches apart (more variants, lut.num_batches, "
                                 "help)")
        assert lines[4] == ("Policy: trained on that reward although it has no skill, its query's "
                            "estimated ΔmAP +0.0150 beats 88% of random batches of 2 (+0.0040 ± "
                            "0.0030): a ranking the LUT cannot back")


def test_other_strategies_build_no_lut_and_the_first_cycle_has_nothing_to_compare():
    lines = summary_lines(_outputs(strategy="random", lut=None, policy_check=None,
                                   reports={2: REPORTS[2]}), WHERE, seconds=59.6)
    assert lines[0] == "MGRAL cycle 2 finished in 1 min 0 s (strategy random, 2 images queried)"
    assert lines[2] == "D_2 test mAP50-95 0.312 (mAP50 0.625); no earlier cycle to compare with"
    assert lines[3] == ("LUT and policy: not built; strategy random needs neither "
                        "(al.strategy=mgral builds them)")
    assert not any("policy rewards" in line for line in lines)


def test_a_policy_trained_without_a_lut_is_said_so():
    lines = summary_lines(_outputs(strategy="mgral_fixed_reward", lut=None), WHERE, seconds=1)
    assert lines[3] == ("Policy: trained on a fixed reward without a LUT, its query's reward "
                        "+0.0150 beats 88% of random batches of 2 (+0.0040 ± 0.0030)")
    assert "  policy rewards  data/r.png" in lines


def test_a_batch_sent_to_people_is_said_to_await_their_labels():
    saved = {**STATE, "awaiting": {"image_ids": ["p", "q"], "annotator": "label_studio"}}
    lines = summary_lines(_outputs(saved=saved, detections={}), WHERE, seconds=1)
    assert lines[1] == ("Labelled 2 images, pool 4: the 2 queried images await labels from "
                        "label_studio; the next run takes them back")
    assert lines[5] == "Queried 2 images: D_2 detects 0 objects in them (score >= 0.25)"
