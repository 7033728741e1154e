import numpy as np
import pytest

from lgcnet_deploy.core.metrics import ConfusionMatrix


def test_miou_hand_computed():
    # 3 classes, void = 3. Ground truth / prediction over 8 pixels (2 void):
    gt = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    pr = np.array([[0, 1, 1, 1], [2, 0, 0, 2]])
    cm = ConfusionMatrix(3, ignore_index=3)
    cm.update(pr, gt)
    # class 0: TP 1, FP 1 (gt 2 -> 0), FN 1 (gt 0 -> 1): IoU 1/3
    # class 1: TP 2, FP 1, FN 0: IoU 2/3;  class 2: TP 1, FP 0, FN 1: IoU 1/2
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)


def test_accumulates_over_frames_not_mean_of_frames():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1]))
    cm.update(np.array([1]), np.array([1]))
    np.testing.assert_allclose(cm.iou(), [3 / 4, 1 / 2])


def test_absent_class_is_nan_and_skipped():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    assert np.isnan(cm.iou()[2]) and cm.miou() == 1.0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))
