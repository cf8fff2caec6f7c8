import numpy as np
import pytest

from mgral_pipelines.mgral.features import class_rarity_weights, confident_detections


def _labels(*class_ids):
    return [{"class_id": c, "bbox": [0, 0, 1, 1]} for c in class_ids]


def test_rarity_weights_favour_the_classes_the_labels_lack():
    weights = class_rarity_weights({"a": _labels(0, 0, 0), "b": _labels(0, 1), "c": []}, 3)
    # counts 4, 1, 0 (mean 5/3): w_c = (1 + 5/3) / (1 + n_c)
    np.testing.assert_allclose(weights, [8 / 15, 4 / 3, 8 / 3])
    assert weights[2] > weights[1] > weights[0]
    # A class at the mean count weighs 1.
    np.testing.assert_allclose(class_rarity_weights({"a": _labels(0, 1)}, 2), [1.0, 1.0])


def test_rarity_weights_reject_a_label_outside_the_classes():
    with pytest.raises(ValueError, match="class_id 3, outside the 2 classes"):
        class_rarity_weights({"a": _labels(0, 3)}, 2)


def test_confident_detections_count_or_weigh_by_predicted_class():
    detections = [{"class_id": 0, "score": 0.9}, {"class_id": 2, "score": 0.3},
                  {"class_id": 2, "score": 0.1}]
    assert confident_detections(detections) == 2 and isinstance(confident_detections(detections),
                                                                int)
    assert confident_detections(detections, class_weights=[0.5, 1.0, 3.0]) == pytest.approx(3.5)
    assert confident_detections([], class_weights=[1.0]) == 0.0
