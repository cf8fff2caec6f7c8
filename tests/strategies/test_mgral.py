import numpy as np
import pytest

from mgral_pipelines.mgral.agent import AgentConfig, policy_to_bytes, train_policy
from mgral_pipelines.strategies import PoolView, get_strategy


def _clustered_pool(rng):
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    labels = np.repeat([0, 1, 2], 30)
    return centres[labels] + rng.normal(scale=0.3, size=(90, 2)), labels


def test_mgral_queries_the_region_its_policy_was_rewarded_for():
    """The reward is the share of cluster-0 images in the batch: MGRAL must query cluster 0."""
    rng = np.random.default_rng(0)
    embeddings, labels = _clustered_pool(rng)
    config = AgentConfig(hidden_size=16, sequence_length=30, batch_size=5, episodes=240, seed=0)
    policy, _ = train_policy(embeddings, lambda batch: float(np.mean(batch[:, 0] > 2)), config,
                             progress=False)
    ids = [f"img{i:02d}" for i in range(90)]
    view = PoolView(pool_ids=ids, labelled_ids=[], num_classes=1,
                    embeddings=dict(zip(ids, embeddings)), policy=policy_to_bytes(policy, config))
    selection = get_strategy("mgral").select(view, 10, np.random.default_rng(0))
    chosen = [labels[ids.index(i)] for i in selection.image_ids]
    assert chosen.count(0) >= 9
    assert selection.scores == sorted(selection.scores, reverse=True)


def test_mgral_without_a_trained_policy_says_so():
    view = PoolView(pool_ids=["a", "b"], labelled_ids=[], num_classes=1,
                    embeddings={"a": np.zeros(2), "b": np.ones(2)})
    with pytest.raises(ValueError, match="needs PoolView.policy"):
        get_strategy("mgral").select(view, 1, np.random.default_rng(0))
