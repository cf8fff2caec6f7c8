import itertools
import math

import numpy as np
import pytest
import torch

from mgral_pipelines.mgral.agent import (
    AgentConfig,
    SelectionPolicy,
    plackett_luce_log_prob,
    reinforce_loss,
    sample_selection,
    score_pool,
    select_top,
    train_policy,
)
from mgral_pipelines.mgral.lookup import LookupTable, wasserstein_distances

SCORES = torch.tensor([1.2, -0.3, 0.5, 2.0], dtype=torch.float64)


def sequential_probability(scores: torch.Tensor, selection: tuple[int, ...]) -> float:
    """Plackett-Luce probability, one softmax over the remaining items at a time."""
    remaining, probability = list(range(len(scores))), 1.0
    for item in selection:
        probability *= torch.softmax(scores[remaining], 0)[remaining.index(item)].item()
        remaining.remove(item)
    return probability


@pytest.mark.parametrize("k", [1, 2, 4])
def test_plackett_luce_log_prob_by_enumeration(k):
    selections = list(itertools.permutations(range(4), k))
    log_probs = plackett_luce_log_prob(SCORES.expand(len(selections), 4), torch.tensor(selections))
    assert log_probs.exp().sum().item() == pytest.approx(1.0)
    for selection, log_prob in zip(selections, log_probs, strict=True):
        assert log_prob.exp().item() == pytest.approx(sequential_probability(SCORES, selection))
    # A single (unbatched) selection gives the same value.
    single = plackett_luce_log_prob(SCORES, torch.tensor(selections[0]))
    assert single.item() == pytest.approx(log_probs[0].item())


def test_gumbel_top_k_matches_plackett_luce():
    samples = 40_000
    generator = torch.Generator().manual_seed(0)
    drawn = sample_selection(SCORES.expand(samples, 4), 2, generator)
    assert (drawn[:, 0] != drawn[:, 1]).all()
    counts = {pair: 0 for pair in itertools.permutations(range(4), 2)}
    for pair in map(tuple, drawn.tolist()):
        counts[pair] += 1
    for pair, count in counts.items():
        expected = plackett_luce_log_prob(SCORES, torch.tensor(pair)).exp().item()
        assert count / samples == pytest.approx(expected, abs=0.01), pair


def test_sample_selection_rejects_too_many():
    with pytest.raises(ValueError, match="5 items out of 4"):
        sample_selection(SCORES, 5)


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_reinforce_step_follows_the_advantage(advantage):
    torch.manual_seed(0)
    policy = SelectionPolicy(embedding_dim=6, hidden_size=16)
    sequence = torch.randn(1, 20, 6)
    selection = sample_selection(policy(sequence), 4, torch.Generator().manual_seed(1))
    before = plackett_luce_log_prob(policy(sequence), selection).item()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    loss, _ = reinforce_loss(policy(sequence), selection, torch.tensor([advantage]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = plackett_luce_log_prob(policy(sequence), selection).item()
    assert (after - before) * advantage > 0


def test_standardisation_makes_feature_scale_irrelevant():
    torch.manual_seed(0)
    policy = SelectionPolicy(embedding_dim=6, hidden_size=16)
    pool = torch.randn(50, 6)
    policy.fit_standardisation(pool)
    reference = policy(pool)
    scaled = pool * 1000.0 + 5.0
    policy.fit_standardisation(scaled)
    torch.testing.assert_close(policy(scaled), reference, rtol=1e-4, atol=1e-4)


def clustered_toy(seed: int = 0, per_cluster: int = 100, dim: int = 8, batch: int = 8):
    """Three clusters; the LUT says ΔmAP grows with the share of cluster 0 in the batch."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_cluster)
    pool = rng.normal(0, 5, size=(3, dim))[labels] + rng.normal(size=(len(labels), dim))
    entries, delta_map = [], []
    for n_best in range(batch + 1):
        for _ in range(2):
            best = rng.choice(np.flatnonzero(labels == 0), n_best, replace=False)
            rest = rng.choice(np.flatnonzero(labels != 0), batch - n_best, replace=False)
            entries.append(pool[np.concatenate([best, rest])])
            delta_map.append(0.05 * n_best / batch)
    return pool, labels, LookupTable(entries, np.array(delta_map))


def test_policy_learns_to_pick_the_rewarding_cluster():
    pool, labels, lut = clustered_toy()
    # The reward is any callable: here the nearest LUT entry's ΔmAP.
    def reward_fn(batch):
        return lut.delta_map[np.argmin(wasserstein_distances(batch, lut))]

    config = AgentConfig(hidden_size=32, sequence_length=64, episodes=240, seed=0)
    policy, history = train_policy(pool, reward_fn, config, progress=False)

    assert set(history) == {"agent/reward", "agent/baseline", "agent/loss", "agent/entropy"}
    assert all(len(values) == 30 for values in history.values())
    rewards = np.array(history["agent/reward"])
    rng = np.random.default_rng(1)
    random_policy = np.mean([reward_fn(pool[rng.choice(len(pool), 8, replace=False)])
                             for _ in range(100)])
    assert rewards[-5:].mean() > rewards[:5].mean() + 0.015
    assert rewards[-5:].mean() > random_policy + 0.015

    scores = score_pool(policy, pool, config.sequence_length, config.scoring_contexts)
    top = select_top(scores, [f"img{i}" for i in range(len(pool))], budget=20)
    assert np.mean([labels[int(image_id[3:])] == 0 for image_id, _ in top]) >= 0.8


def test_training_is_seeded_and_validates_sizes():
    pool = np.random.default_rng(0).normal(size=(30, 4))
    reward_fn = lambda batch: float(batch[:, 0].mean())  # noqa: E731
    config = AgentConfig(hidden_size=8, sequence_length=16, batch_size=4, episodes=12,
                         episodes_per_update=5)
    _, first = train_policy(pool, reward_fn, config, progress=False)
    _, second = train_policy(pool, reward_fn, config, progress=False)
    assert first == second
    assert len(first["agent/reward"]) == 3  # 5 + 5 + 2 episodes
    with pytest.raises(ValueError, match="batch_size 40 exceeds"):
        train_policy(pool, reward_fn, AgentConfig(batch_size=40), progress=False)


def test_score_pool_averages_log_probabilities_over_random_contexts():
    torch.manual_seed(0)
    policy = SelectionPolicy(embedding_dim=4, hidden_size=8)
    pool = np.random.default_rng(0).normal(size=(25, 4))
    scores = score_pool(policy, pool, context_size=10, contexts=3)
    assert scores.shape == (25,) and np.isfinite(scores).all()
    assert (scores < 0).all()  # log-probabilities of being picked first in a context of 10
    np.testing.assert_array_equal(scores, score_pool(policy, pool, 10, 3))
    assert policy.training
    # One context holding the whole pool: the log-softmax of one forward pass over the pool in the
    # round's seeded order.
    order = np.random.default_rng(0).permutation(25)
    with torch.no_grad():
        whole = torch.log_softmax(policy.eval()(torch.as_tensor(pool[order], dtype=torch.float32)),
                                  -1)
    policy.train()
    expected = np.empty(25)
    expected[order] = whole.numpy()
    np.testing.assert_allclose(score_pool(policy, pool, 25, 1), expected, atol=1e-6)
    # More contexts: each image's score depends less on the company it was scored in.
    few = [score_pool(policy, pool, 10, 1, seed=s) for s in range(4)]
    many = [score_pool(policy, pool, 10, 32, seed=s) for s in range(4)]
    assert np.std(many, axis=0).mean() < np.std(few, axis=0).mean()


def test_select_top_returns_unique_best_ids():
    ids = ["a", "b", "c", "d", "e"]
    top = select_top(np.array([0.1, 0.9, 0.5, 0.9, -1.0]), ids, budget=3)
    assert top == [("b", 0.9), ("d", 0.9), ("c", 0.5)]
    assert len({image_id for image_id, _ in select_top(np.zeros(5), ids, 5)}) == 5
    assert select_top(np.zeros(5), ids, 0) == []


def test_select_top_errors():
    with pytest.raises(ValueError, match=r"budget 6 .*pool size 5"):
        select_top(np.zeros(5), list("abcde"), budget=6)
    with pytest.raises(ValueError, match="duplicated"):
        select_top(np.zeros(3), ["a", "b", "a"], budget=1)
    with pytest.raises(ValueError, match="3 scores for 2 ids"):
        select_top(np.zeros(3), ["a", "b"], budget=1)
    with pytest.raises(ValueError, match="NaN"):
        select_top(np.array([1.0, math.nan]), ["a", "b"], budget=1)
