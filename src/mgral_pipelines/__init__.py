"""MGRAL: mAP-guided reinforced active learning for object detection."""

from mgral_pipelines.environment import configure_offline_environment

__version__ = "0.1.0"

configure_offline_environment()
