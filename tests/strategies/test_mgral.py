import numpy as np
import pytest

from mgral_pipelines.mgral.agent import AgentConfig, policy_to_bytes, train_policy
from mgral_pipelines.mgral.features import policy_inputs
from mgral_pipelines.strategies import PoolView, get_strategy


def _clustered_pool(rng):
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    labels = np.repeat([0, 1, 2], 30)
    return centres[labels] + rng.normal(scale=0.3, size=(90, 2)), labels


def test_mgral_queries_the_region_its_policy_was_rewarded_for():
    """The reward is the share of cluster-0 images in the batch: MGRAL must query cluster 0."""
    rng = np.random.default_rng(0)
    embeddings, labels = _clustered_pool(rng)
    config = AgentConfig(hidden_size=16, sequence_length=30, batch_size=5, episodes=240, seed=0,
                         detector_features=False)
    policy, _ = train_policy(embeddings, lambda batch: float(np.mean(batch[:, 0] > 2)), config,
                             progress=False)
    ids = [f"img{i:02d}" for i in range(90)]
    view = PoolView(pool_ids=ids, labelled_ids=[], num_classes=1,
                    embeddings=dict(zip(ids, embeddings)), detections={i: [] for i in ids},
                    policy=policy_to_bytes(policy, config))
    selection = get_strategy("mgral").select(view, 10, np.random.default_rng(0))
    chosen = [labels[ids.index(i)] for i in selection.image_ids]
    assert chosen.count(0) >= 9
    assert selection.scores == sorted(selection.scores, reverse=True)

    # The pool's order does not matter: a shuffled pool gives the same query.
    shuffled = list(np.random.default_rng(1).permutation(ids))
    again = get_strategy("mgral").select(
        PoolView(pool_ids=shuffled, labelled_ids=[], num_classes=1, embeddings=view.embeddings,
                 detections=view.detections, policy=view.policy), 10, np.random.default_rng(0))
    assert again.image_ids == selection.image_ids


def test_mgral_reads_the_detectors_view_of_each_image():
    """A policy trained on embedding + detection features scores with them; the reward here is the
    share of images with a confident detection, which the embedding alone cannot tell."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:02d}" for i in range(60)]
    embeddings = rng.normal(size=(60, 3))
    detected = rng.random(60) < 0.3
    box = {"class_id": 0, "bbox": [0, 0, 4, 4], "score": 0.9, "class_scores": [0.9, 0.05]}
    detections = {i: [box] if hit else [] for i, hit in zip(ids, detected)}
    inputs = np.stack([policy_inputs(e, detections[i], 2) for i, e in zip(ids, embeddings)])
    config = AgentConfig(hidden_size=16, sequence_length=30, batch_size=5, episodes=320, seed=0)
    flags = detected.astype(float)[:, None]
    policy, _ = train_policy(inputs, lambda batch: float(batch[:, 0].mean()), config,
                             progress=False, reward_inputs=flags)
    view = PoolView(pool_ids=ids, labelled_ids=[], num_classes=2,
                    embeddings=dict(zip(ids, embeddings)), detections=detections,
                    policy=policy_to_bytes(policy, config))
    selection = get_strategy("mgral").select(view, 10, np.random.default_rng(0))
    assert sum(detected[ids.index(i)] for i in selection.image_ids) >= 9


def test_mgral_without_a_trained_policy_says_so():
    view = PoolView(pool_ids=["a", "b"], labelled_ids=[], num_classes=1,
                    embeddings={"a": np.zeros(2), "b": np.ones(2)}, detections={"a": [], "b": []})
    with pytest.raises(ValueError, match="needs PoolView.policy"):
        get_strategy("mgral").select(view, 1, np.random.default_rng(0))
