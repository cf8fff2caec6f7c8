"""One simulated AL cycle in memory, through the `al_cycle` pipeline's own nodes and wiring.

`kedro run --pipeline=al_cycle` runs those nodes on the catalog's files; `Cycle` runs the same
`Node` objects on values, so the benchmark never wires a cycle by hand: what feeds what is written
once, in the pipelines' `pipeline.py`. Each output is made on first request (a strategy that needs
no embedding never embeds), kept, and its node's time is added to its step's. Per-cycle outputs
(`PARTITIONED`) are kept as the node returned them, `{"cycle_<t>": value}`, and given to the next
node as the catalog would give them, `{"cycle_<t>": loader}`.

Only the simulated loop runs here: the oracle labels the query at once. The people's ends
(`receive_labels`, `current_state`, `send_batch`), the registries and MLflow are the Kedro run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

from kedro.pipeline import Node

from mgral_pipelines.pipelines.al_cycle.pipeline import create_pipeline
from mgral_pipelines.pipelines.common import cycle_key

# The al_cycle nodes of a simulated cycle, and the step each one's time is recorded under.
STEP_OF_NODE = {
    "train_detector": "train_detector", "evaluate_detector": "evaluate_detector",
    "embed_images": "embedding", "reduce_embeddings": "embedding", "predict_pool": "predict_pool",
    "build_lut": "lut", "train_agent": "agent", "select_query": "select_query",
    "annotate": "annotate", "update_state": "annotate",
}
# The outputs the catalog keeps per cycle (CyclePartitionsDataset): nodes read them as loaders.
PARTITIONED = frozenset({"detector_checkpoints", "detector_reports", "raw_embeddings",
                         "embeddings", "pool_detections", "lookup_tables", "agent_policies",
                         "queries"})
# What D_t gives every strategy alike: a seed's cycle-0 detector is trained once and shared.
DETECTOR_OUTPUTS = frozenset({"detector_checkpoints", "detector_training_info",
                              "detector_reports", "raw_embeddings", "embedding_throughput_metrics",
                              "embeddings", "embedding_metrics", "pool_detections"})


@cache
def cycle_nodes() -> dict[str, Node]:
    """output name -> the al_cycle node of a simulated cycle that makes it."""
    nodes = [node for node in create_pipeline().nodes if node.name in STEP_OF_NODE]
    return {output: node for node in nodes for output in node.outputs}


def as_loaders(partitions: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """`{"cycle_<t>": value}` as a node reads it from a partitioned dataset."""
    return {key: (lambda value=value: value) for key, value in partitions.items()}


class Cycle:
    """The values of one cycle: given inputs, and node outputs made on first `get`.

    `inputs` names pipeline datasets (`state`, `image_index`, `eval_labels`, `oracle_annotations`,
    `ignored_parameters`) and may fix outputs a strategy does not use (e.g. `embeddings: {}`);
    `params` gives `params:<key>`. With `shared`, D_t's outputs (`DETECTOR_OUTPUTS`) come from that
    cycle instead, made once for every strategy that asks.
    """

    def __init__(self, inputs: dict[str, Any], params: dict[str, dict[str, Any]],
                 shared: Cycle | None = None) -> None:
        self.inputs, self.params, self.shared = inputs, params, shared
        self._values = {**inputs, **{f"params:{key}": value for key, value in params.items()}}
        self._timings: dict[str, float] = {}  # per step, of the nodes this cycle ran itself
        self._steps_behind: dict[str, frozenset[str]] = {}  # output -> the steps that made it
        self._borrowed: set[str] = set()

    def replaced(self, inputs: dict[str, Any], params: dict[str, dict[str, Any]]) -> Cycle:
        """The same cycle with some inputs and params changed, nothing made yet."""
        return Cycle({**self.inputs, **inputs}, {**self.params, **params}, self.shared)

    def get(self, name: str) -> Any:
        """The value of `name`, running the nodes it needs that have not run yet."""
        if name not in self._values:
            if self.shared is not None and name in DETECTOR_OUTPUTS:
                self._values[name] = self.shared.get(name)
                self._borrowed.add(name)
            else:
                self._run(cycle_nodes()[name])
        return self._values[name]

    def current(self, name: str) -> Any:
        """This cycle's partition of a per-cycle output."""
        return self.get(name)[cycle_key(self.get("state"))]

    def step_seconds(self) -> dict[str, float]:
        """Seconds per step of the nodes behind this cycle's outputs, in the order of the cycle.
        Steps of a shared D_t count in full for every cycle that used them."""
        seconds = dict(self._timings)
        if self.shared is not None:
            for name in self._borrowed:
                for step in self.shared._steps_behind[name]:
                    seconds[step] = self.shared._timings[step]
        order = dict.fromkeys(STEP_OF_NODE.values())
        return {step: seconds[step] for step in order if step in seconds}

    def _run(self, node: Node) -> None:
        inputs = {name: as_loaders(self.get(name)) if name in PARTITIONED else self.get(name)
                  for name in node.inputs}
        started = time.perf_counter()
        outputs = node.run(inputs)
        step = STEP_OF_NODE[node.name]
        self._timings[step] = self._timings.get(step, 0.0) + time.perf_counter() - started
        behind = frozenset({step}).union(*(self._steps_behind.get(name, frozenset())
                                           for name in node.inputs))
        self._values.update(outputs)
        self._steps_behind.update(dict.fromkeys(outputs, behind))
