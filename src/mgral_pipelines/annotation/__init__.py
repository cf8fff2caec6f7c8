"""Annotation by people: query batches out to Label Studio or an annotation package, labels back.

One module per tool or format (`label_studio`, `cvat`, `coco_yolo`, `package`), the checks every
returned label passes (`batch`), the Label Studio server and its Kedro dataset (`server`), and the
send/receive steps the al_cycle nodes call (`exchange`).
"""

from mgral_pipelines.annotation.batch import AwaitingLabels, BatchImages, InvalidLabelsError
from mgral_pipelines.annotation.exchange import receive, send_to_label_studio

__all__ = ["AwaitingLabels", "BatchImages", "InvalidLabelsError", "receive", "send_to_label_studio"]
