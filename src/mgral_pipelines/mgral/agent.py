"""The MGRAL selection agent: an LSTM policy trained with REINFORCE on LUT rewards.

Method (docs/method.md, steps 4-5):
  * An episode shows the policy a sequence of `sequence_length` pool images (their embeddings, in a
    random order). A bidirectional LSTM reads the sequence and outputs one score (logit) per image.
  * The action is an ordered batch A of `batch_size` images drawn without replacement from the
    Plackett-Luce distribution of the scores: item a_i is picked with probability
    softmax(scores over the items not yet picked)[a_i]. Gumbel-top-k samples it in one shot, and
    log π(A) is exact, so REINFORCE needs no approximation.
  * The reward is the caller's estimate of ΔmAP for the batch (the LUT look-up, see `lookup.py`).
  * Loss = -advantage · log π(A) - entropy_coef · H(softmax(scores)), the advantage being
    (reward - baseline) / scale: the baseline a moving average of rewards (the seeds' loss is
    -(mAP_i - mAP_ref) · log π(A)), the scale a moving standard deviation of rewards, so a step's
    size does not depend on how small ΔmAP is.
  * Query inference: an image's score is its log-probability of being picked first among the
    images of a context like those of training (`sequence_length` images), averaged over several
    random contexts of the pool. Scores of different contexts are then comparable, and the top B
    do not depend on the order in which the pool is given (the caller fixes a canonical order).

The reward function is a plain callable, so this module does not depend on how rewards are made.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class AgentConfig:
    """Policy architecture and REINFORCE hyper-parameters."""

    hidden_size: int = 64
    """Width of the input projection and of each LSTM direction."""
    num_layers: int = 1
    """Stacked LSTM layers."""
    bidirectional: bool = True
    """Read the sequence both ways, so each image's score sees the images before and after it."""
    sequence_length: int = 256
    """Images per episode, drawn from the pool without replacement (capped at the pool size); the
    batch of B is picked among them, and query scoring uses contexts of this size. Default 256."""
    batch_size: int = 8
    """Images selected per episode: the query budget B. The agent pipeline always sets it to
    al.budget (so rewards compare like with like); 8 serves direct use."""
    episodes: int = 2000
    """Total training episodes (one sampled batch and one reward each). A reward is a LUT look-up
    costing milliseconds, so episodes are cheap. Default 2000."""
    episodes_per_update: int = 8
    """Episodes averaged into one policy-gradient step."""
    learning_rate: float = 3e-3
    """Adam learning rate."""
    baseline_momentum: float = 0.9
    """Momentum of the moving averages of the reward (the baseline) and of its squared deviation
    (the scale); advantage = (reward - baseline) / scale."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus on the per-episode score softmax (0 = none)."""
    detector_features: bool = True
    """Inputs are the embedding plus D_t's view of the image (`mgral.features`: uncertainty,
    detection count, predicted-class histogram); False reads the embedding alone."""
    scoring_contexts: int = 8
    """Random contexts each pool image is scored in at query time (their log-probabilities are
    averaged)."""
    seed: int = 0
    """Seeds torch (weights, Gumbel noise) and numpy (episode sequences)."""


class SelectionPolicy(nn.Module):
    """Standardise -> project -> LSTM over the sequence -> one selection logit per image."""

    def __init__(self, embedding_dim: int, hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = True):
        super().__init__()
        # Per-feature standardisation fitted on the pool and saved with the weights (buffers), so
        # the scale of the detector's features does not matter.
        self.register_buffer("feature_mean", torch.zeros(embedding_dim))
        self.register_buffer("feature_std", torch.ones(embedding_dim))
        self.project = nn.Sequential(nn.Linear(embedding_dim, hidden_size), nn.Tanh())
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    @torch.no_grad()
    def fit_standardisation(self, embeddings: Tensor) -> None:
        self.feature_mean.copy_(embeddings.mean(0))
        std = embeddings.std(0) if len(embeddings) > 1 else torch.ones_like(self.feature_std)
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, sequences: Tensor) -> Tensor:
        """(..., seq, d) embeddings -> (..., seq) scores."""
        x = (sequences - self.feature_mean) / self.feature_std
        lead = x.shape[:-2]
        out, _ = self.lstm(self.project(x.reshape(-1, *x.shape[-2:])))
        return self.head(out).squeeze(-1).reshape(*lead, x.shape[-2])


def plackett_luce_log_prob(scores: Tensor, ordered_selection: Tensor) -> Tensor:
    """Exact log π(A) = Σ_i [s_{a_i} - logsumexp(s over items not chosen before a_i)].

    scores (..., n), ordered_selection (..., k) of distinct indices -> (...,).
    """
    n = scores.shape[-1]
    one_hot = nn.functional.one_hot(ordered_selection, n)  # (..., k, n)
    chosen_before = (one_hot.cumsum(-2) - one_hot) > 0
    remaining = scores.unsqueeze(-2).masked_fill(chosen_before, -math.inf)
    chosen = scores.gather(-1, ordered_selection)
    return (chosen - torch.logsumexp(remaining, dim=-1)).sum(-1)


def sample_selection(scores: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Ordered sample of k distinct items per row, distributed as sequential Plackett-Luce.

    Gumbel-top-k: the k largest of scores + Gumbel noise, in decreasing order.
    """
    if not 0 < k <= scores.shape[-1]:
        raise ValueError(f"cannot select {k} items out of {scores.shape[-1]}")
    exponential = torch.empty_like(scores, dtype=torch.float64).exponential_(generator=generator)
    gumbel = -exponential.log()
    return torch.topk(scores.detach().double() + gumbel, k, dim=-1).indices


def score_entropy(scores: Tensor) -> Tensor:
    """Entropy of softmax(scores) along the last axis."""
    log_p = torch.log_softmax(scores, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def reinforce_loss(scores: Tensor, selections: Tensor, advantages: Tensor,
                   entropy_coef: float = 0.0) -> tuple[Tensor, Tensor]:
    """Policy-gradient loss -(advantage · log π(A)) - entropy_coef · H, averaged over episodes."""
    log_probs = plackett_luce_log_prob(scores, selections)
    entropy = score_entropy(scores).mean()
    return -(advantages * log_probs).mean() - entropy_coef * entropy, entropy


def train_policy(
    pool_embeddings: np.ndarray,
    reward_fn: Callable[[np.ndarray], float],
    config: AgentConfig,
    progress: bool = True,
    reward_inputs: np.ndarray | None = None,
) -> tuple[SelectionPolicy, dict[str, list[float]]]:
    """REINFORCE on `reward_fn(reward_inputs of the selected batch)`. History is per update.

    `pool_embeddings` are what the policy reads (one row per pool image); `reward_inputs` (default:
    the same rows) what the reward reads, e.g. the LUT's embeddings beside richer policy inputs.
    """
    pool_np = np.asarray(pool_embeddings)
    reward_rows = pool_np if reward_inputs is None else np.asarray(reward_inputs)
    if len(reward_rows) != len(pool_np):
        raise ValueError(f"reward_inputs has {len(reward_rows)} rows for {len(pool_np)} pool images")
    if pool_np.ndim != 2 or len(pool_np) == 0:
        raise ValueError(f"pool_embeddings must be a non-empty (N, d) array, got {pool_np.shape}")
    sequence_length = min(config.sequence_length, len(pool_np))
    if config.batch_size > sequence_length:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the episode length {sequence_length} "
            f"(sequence_length {config.sequence_length}, pool of {len(pool_np)} images)"
        )
    pool = torch.as_tensor(pool_np, dtype=torch.float32)

    # Seeding: torch for the weights and the Gumbel noise, numpy for the episodes' image sequences.
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    policy = SelectionPolicy(pool.shape[1], config.hidden_size, config.num_layers,
                             config.bidirectional)
    policy.fit_standardisation(pool)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    baseline: float | None = None
    variance = 0.0
    history: dict[str, list[float]] = {
        "agent/reward": [], "agent/baseline": [], "agent/loss": [], "agent/entropy": []}

    num_updates = math.ceil(config.episodes / config.episodes_per_update)
    bar = tqdm(range(num_updates), desc="agent", disable=not progress)
    for update in bar:
        n_episodes = min(config.episodes_per_update,
                         config.episodes - update * config.episodes_per_update)
        # 1. Each episode: a random sequence of pool images, scored by the LSTM.
        image_ids = np.stack([rng.choice(len(pool_np), sequence_length, replace=False)
                              for _ in range(n_episodes)])
        scores = policy(pool[torch.as_tensor(image_ids)])  # (episodes, sequence_length)
        # 2. Act: sample an ordered batch A per episode from the Plackett-Luce policy.
        selections = sample_selection(scores, config.batch_size, generator)
        # 3. Reward: the estimated ΔmAP of each batch (a LUT look-up, no detector training).
        batches = np.take_along_axis(image_ids, selections.numpy(), axis=1)
        rewards = torch.tensor([float(reward_fn(reward_rows[batch])) for batch in batches])
        # 4. REINFORCE with a moving-average baseline and a moving scale (standardised advantages).
        if baseline is None:
            baseline = rewards.mean().item()
            variance = rewards.var(unbiased=False).item()
        scale = math.sqrt(variance) if variance > 1e-12 else 1.0
        advantages = (rewards - baseline) / scale
        loss, entropy = reinforce_loss(scores, selections, advantages, config.entropy_coef)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        momentum = config.baseline_momentum
        variance = momentum * variance + (1 - momentum) * ((rewards - baseline) ** 2).mean().item()
        baseline = momentum * baseline + (1 - momentum) * rewards.mean().item()

        history["agent/reward"].append(rewards.mean().item())
        history["agent/baseline"].append(baseline)
        history["agent/loss"].append(loss.item())
        history["agent/entropy"].append(entropy.item())
        bar.set_postfix(reward=f"{rewards.mean().item():.4f}", baseline=f"{baseline:.4f}")
    return policy, history


@torch.no_grad()
def score_pool(policy: SelectionPolicy, pool_embeddings: np.ndarray, context_size: int,
               contexts: int = 8, seed: int = 0, sequences_per_pass: int = 256) -> np.ndarray:
    """One score per pool image (rows in the given order): the mean, over `contexts` random
    contexts, of the image's log-probability of being picked first among its context's images.

    A context is `context_size` images, as in training: each round shuffles the pool (seeded) and
    cuts it into contexts, the last one filled up with images from the round's start (they are
    scored in their own context only). A raw logit means something only relative to its context's
    other logits; the log-softmax makes contexts comparable, and averaging over random contexts
    removes most of the dependence on which images an image happened to be scored with. For a
    given pool order and seed the result is deterministic.
    """
    if context_size < 1 or contexts < 1:
        raise ValueError(f"context_size and contexts must be >= 1, got {context_size}, {contexts}")
    pool = torch.as_tensor(np.asarray(pool_embeddings), dtype=torch.float32)
    n = len(pool)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    size = min(context_size, n)
    rng = np.random.default_rng(seed)
    rows, owners = [], []
    for _ in range(contexts):
        order = rng.permutation(n)
        chunks = -(-n // size)
        padded = np.concatenate([order, order[: chunks * size - n]]).reshape(chunks, size)
        rows.append(padded)
        owned = np.ones_like(padded, dtype=bool)
        owned.reshape(-1)[n:] = False  # the fill-up images are scored in their own context
        owners.append(owned)
    rows, owners = np.concatenate(rows), np.concatenate(owners)
    totals = np.zeros(n)
    was_training = policy.training
    policy.eval()
    try:
        for start in range(0, len(rows), sequences_per_pass):
            index = rows[start:start + sequences_per_pass]
            log_p = torch.log_softmax(policy(pool[torch.as_tensor(index)]), dim=-1).double()
            owned = owners[start:start + sequences_per_pass]
            np.add.at(totals, index[owned], log_p.numpy()[owned])
    finally:
        policy.train(was_training)
    return (totals / contexts).astype(np.float32)


def select_top(scores: np.ndarray, ids: list[str], budget: int) -> list[tuple[str, float]]:
    """The `budget` highest-scoring ids with their scores, best first (ties keep pool order)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(ids):
        raise ValueError(f"got {len(scores)} scores for {len(ids)} ids")
    if len(set(ids)) != len(ids):
        duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)[:5]
        raise ValueError(f"ids must be unique, duplicated: {duplicates}")
    if not 0 <= budget <= len(ids):
        raise ValueError(f"budget {budget} must be between 0 and the pool size {len(ids)}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = np.argsort(-scores, kind="stable")[:budget]
    return [(ids[i], float(scores[i])) for i in order]


def policy_to_bytes(policy: SelectionPolicy, config: AgentConfig) -> bytes:
    """The policy's weights with what is needed to rebuild it (a plain torch.save payload)."""
    buffer = io.BytesIO()
    torch.save({"state_dict": policy.state_dict(), "embedding_dim": policy.feature_mean.numel(),
                "config": asdict(config)}, buffer)
    return buffer.getvalue()


def policy_from_bytes(payload: bytes) -> tuple[SelectionPolicy, AgentConfig]:
    saved = torch.load(io.BytesIO(payload), weights_only=True)
    known = {f.name for f in fields(AgentConfig)}
    config = AgentConfig(**{k: v for k, v in saved["config"].items() if k in known})
    policy = SelectionPolicy(saved["embedding_dim"], config.hidden_size, config.num_layers,
                             config.bidirectional)
    policy.load_state_dict(saved["state_dict"])
    return policy.eval(), config
