"""The MLflow model registry: each cycle's detector and policy as a new version of a named model.

Nodes package a model (`package_detector`, `package_policy` in the detector and agent pipelines)
as `{"cycle_<t>": RegisteredModel}`; the catalog's `RegisteredModelDataset` logs it to the run as
an MLflow pyfunc model and registers it as a new version of `mgral-detector` / `mgral-policy`,
tagged with the strategy, the cycle and the dataset fingerprint. Users load the latest version by
name:

    detector = mlflow.pyfunc.load_model("models:/mgral-detector/latest")
    detector.predict(["image1.jpg", "image2.jpg"])      # detections per image
    weights = detector.unwrap_python_model().checkpoint # path of the ultralytics .pt file

The pyfunc classes are logged as "models from code" (`registry_code/`), MLflow's recommended way:
loading runs that file, not a pickle. Loading needs this project installed.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from kedro_mlflow.io.models import MlflowModelTrackingDataset
from mlflow.pyfunc import PythonModel, PythonModelContext

import mgral_pipelines

logger = logging.getLogger(__name__)

TAG_PREFIX = "mgral."
CODE = Path(__file__).parent / "registry_code"


@dataclass
class RegisteredModel:
    """One model version to register: the pyfunc that serves it, its settings, files and tags."""

    code: Path
    """The models-from-code file naming its pyfunc class (`registry_code/detector.py`, ...)."""
    files: dict[str, bytes]
    """File name -> content; the pyfunc finds `detector.pt` at `context.artifacts["detector"]`."""
    config: dict[str, Any] = field(default_factory=dict)
    """The pyfunc's settings (MLflow's `model_config`, stored in the model as YAML)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Set on the model version (prefixed `mgral.`) and stored as the model's metadata."""


def detector_model(checkpoint: bytes, classes: list[str], config: dict[str, Any],
                   tags: dict[str, str], conf: float = 0.25) -> RegisteredModel:
    """A detector checkpoint as `mgral-detector`: its classes and `DetectorConfig` fields go
    with it, so `predict` letterboxes and thresholds as the pipelines do."""
    return RegisteredModel(CODE / "detector.py", {"detector.pt": checkpoint},
                           {"classes": list(classes), "detector": dict(config), "conf": conf}, tags)


def policy_model(policy: bytes, tags: dict[str, str]) -> RegisteredModel:
    """A policy payload (`mgral.agent.policy_to_bytes`) as `mgral-policy`."""
    return RegisteredModel(CODE / "policy.py", {"policy.pt": policy}, {}, tags)


class DetectorModel(PythonModel):
    """A cycle's detector: `predict(image paths)` -> detections per image, as `detector.predict`,
    each with its `class_name`. Another confidence threshold: `mlflow.pyfunc.load_model(uri,
    model_config={"conf": 0.1})`.

    Its ultralytics checkpoint is the `detector.pt` artifact; after loading, `checkpoint` is its
    local path (e.g. for `ultralytics.YOLO(checkpoint)`).
    """

    def load_context(self, context: PythonModelContext) -> None:
        from mgral_pipelines import detector as adapter  # ultralytics only behind the adapter

        self.checkpoint = Path(context.artifacts["detector"])
        self.classes = list(context.model_config["classes"])
        self.config = adapter.DetectorConfig.from_dict(context.model_config["detector"])
        self.conf = float(context.model_config["conf"])

    # No return annotation: MLflow would warn at import that it cannot validate `Any` values.
    def predict(self, context: PythonModelContext, model_input: list[str],
                params: dict[str, Any] | None = None):
        from PIL import Image

        from mgral_pipelines import detector as adapter

        records = []
        for path in model_input:
            with Image.open(path) as image:
                records.append({"image_id": str(path), "file": str(path),
                                "width": image.width, "height": image.height})
        detections = adapter.predict(self.checkpoint, records, [r["image_id"] for r in records],
                                     self.config, conf=self.conf, batch_size=self.config.batch,
                                     progress=False)
        return [[{**d, "class_name": self.classes[d["class_id"]]} for d in detections[r["image_id"]]]
                for r in records]


class PolicyModel(PythonModel):
    """A cycle's MGRAL policy: `predict(rows)` -> one selection score per row (image).

    A row is what the policy was trained on: `mgral.features.policy_inputs` of the image, i.e.
    its embedding from that cycle's `data/04_feature/embeddings/cycle_<t>.npz` (PCA fitted on that
    cycle), followed by features of D_t's detections when the policy reads them. Rows are scored
    in random contexts of the training length, averaged, as the `mgral` strategy scores the pool.
    """

    def load_context(self, context: PythonModelContext) -> None:
        from mgral_pipelines.mgral.agent import policy_from_bytes

        self.policy, self.agent_config = policy_from_bytes(
            Path(context.artifacts["policy"]).read_bytes())

    def predict(self, context: PythonModelContext, model_input: list[list[float]],
                params: dict[str, Any] | None = None) -> list[float]:
        from mgral_pipelines.mgral.agent import score_pool

        config = self.agent_config
        rows = np.asarray(model_input, dtype=np.float32)
        return score_pool(self.policy, rows, config.sequence_length, config.scoring_contexts,
                          seed=config.seed).tolist()


class RegisteredModelDataset(MlflowModelTrackingDataset):
    """Logs each `{"cycle_<t>": RegisteredModel}` to the active run as a pyfunc model and registers
    it as a new version of `registered_model_name`, with the model's tags on the version.

    kedro-mlflow's `MlflowModelTrackingDataset` does the logging and registering (through
    `registered_model_name` in `log_model`); it cannot tag a version with values known only at
    run time, pass a model's files as artifacts, or save nothing for a cycle without a model (a
    strategy other than mgral trains no policy), which is what this subclass adds.
    """

    def __init__(self, registered_model_name: str, name: str,
                 save_args: dict[str, Any] | None = None, load_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        requirements = [f"mgral_pipelines=={mgral_pipelines.__version__}"]
        super().__init__(
            flavor="mlflow.pyfunc", pyfunc_workflow="python_model", load_args=load_args,
            save_args={"name": name, "registered_model_name": registered_model_name,
                       "pip_requirements": requirements, **(save_args or {})},
            metadata=metadata,
        )
        self.registered_model_name = registered_model_name

    def _save(self, models: dict[str, RegisteredModel]) -> None:
        if not models:
            logger.info("No %s model this cycle: nothing registered", self.registered_model_name)
            return
        for key, model in models.items():
            self._register(key, model)

    def _register(self, key: str, model: RegisteredModel) -> None:
        tags = {f"{TAG_PREFIX}{name}": str(value) for name, value in model.tags.items()}
        defaults = dict(self._save_args)
        with tempfile.TemporaryDirectory() as folder:
            artifacts = {}
            for name, content in model.files.items():
                path = Path(folder) / name
                path.write_bytes(content)
                artifacts[Path(name).stem] = str(path)
            self._save_args.update(artifacts=artifacts, metadata=tags, model_config=model.config)
            try:
                super()._save(str(model.code))
            finally:
                self._save_args = defaults
        version = self.model_info.registered_model_version if self.model_info else None
        if version is None:  # tracking switched off for this pipeline
            return
        client = mlflow.MlflowClient()
        for name, value in tags.items():
            client.set_model_version_tag(self.registered_model_name, str(version), name, value)
        logger.info("Registered %s version %s (%s)", self.registered_model_name, version, key)


def cycle_tags(state: dict[str, Any], strategy: str) -> dict[str, str]:
    """Version tags: the strategy, the cycle and the fingerprint of the prepared dataset."""
    return {"strategy": strategy, "cycle": str(state["cycle"]), "dataset": state["dataset"]}


def labelled_by(state: dict[str, Any]) -> str:
    """The strategies that chose the labelled set of `state` ("initial" at cycle 0)."""
    return ",".join(sorted({entry["strategy"] for entry in state["history"]})) or "initial"
