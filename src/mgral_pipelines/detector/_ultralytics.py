"""ultralytics, set up once for the whole project; the package imports this module first.

Ultralytics is kept inside the project: offline and with its settings in the project-local
YOLO_CONFIG_DIR (both set by the parent package `mgral_pipelines` before ultralytics is imported,
which reads them on import), its own integrations (MLflow, DVC, hub, ...) off because the project
logs through kedro-mlflow, its AMP check kept from downloading, and Pillow's own `Image.open`
restored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from ultralytics import settings as ultralytics_settings
from ultralytics.engine import trainer as _ultralytics_trainer
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils import USER_CONFIG_DIR
from ultralytics.utils import patches as _ultralytics_patches

# Importing ultralytics replaces PIL.Image.open process-wide with a version that tries to install
# pi-heif whenever Pillow cannot identify a file. Restore Pillow's own, so a corrupt image in a
# user's dataset is reported as corrupt (manifest.check_image_file) and nothing is installed.
Image.open = _ultralytics_patches._image_open

# Written to the project-local settings.json (YOLO_CONFIG_DIR): no third-party logging, no
# analytics, and what ultralytics would put under ./runs goes to the ignored tool folder instead.
_ULTRALYTICS_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
    "runs_dir": str(USER_CONFIG_DIR / "runs"),
}
# Modules whose callbacks report to outside services; ultralytics adds them to every trainer.
_INTEGRATION_MODULES = ("ultralytics.utils.events", "ultralytics.utils.callbacks.")
_CORE_CALLBACK_MODULE = "ultralytics.utils.callbacks.base"


def _configure_ultralytics() -> None:
    stale = {k: v for k, v in _ULTRALYTICS_SETTINGS.items() if ultralytics_settings.get(k) != v}
    if stale:  # write only on change: parallel processes share the settings file
        ultralytics_settings.update(stale)


_configure_ultralytics()


def _check_amp_offline(model: torch.nn.Module) -> bool:
    """ultralytics' `check_amp` without its download: no AMP on CPU or MPS, AMP elsewhere.

    The trainer calls `check_amp` whenever `amp` is on (except for bfloat16). Beyond refusing
    CPU and MPS and a list of GPUs with broken float16 (GTX 16xx, a few T-series, K40m), it
    compares FP32 and AMP detections of yolo26n.pt, which it downloads from GitHub; offline, it
    skips that comparison once the download fails and keeps AMP on. This gives the same answer
    without the attempt (the machines are offline, and no traffic may leave them); on a GPU of
    ultralytics' list, set `detector.amp: false`.
    """
    return next(model.parameters()).device.type not in {"cpu", "mps"}


# No ultralytics setting or hook skips the check: the one setting that does, amp="bf16", trains in
# bfloat16 instead of ultralytics' float16 AMP (and pre-Ampere GPUs lack it), and the check sits in
# the middle of the trainer's long `_setup_train`, with no callback in between, so a subclass could
# only avoid it by copying that method. The trainer module's reference to it is replaced instead,
# once for the whole process (every trainer of the project is one of ultralytics' trainers).
_ultralytics_trainer.check_amp = _check_amp_offline


def _is_integration(callback: Callable) -> bool:
    module = getattr(callback, "__module__", "") or ""
    return module.startswith(_INTEGRATION_MODULES) and module != _CORE_CALLBACK_MODULE


@contextmanager
def _ultralytics_verbosity(verbose: bool) -> Iterator[None]:
    """Let ultralytics log at INFO for one call when `verbose` (YOLO_VERBOSE=false mutes it)."""
    if not verbose:
        yield
        return
    # Its logger and its own stdout handler both sit at ERROR.
    targets = [ULTRALYTICS_LOGGER, *ULTRALYTICS_LOGGER.handlers]
    previous = [target.level for target in targets]
    for target in targets:
        target.setLevel(logging.INFO)
    try:
        yield
    finally:
        for target, level in zip(targets, previous):
            target.setLevel(level)
