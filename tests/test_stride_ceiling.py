"""The stride ceiling: what logits at stride s, upsampled, can at best say of a label map."""

from __future__ import annotations

import numpy as np

from experiments.stride_ceiling import ceiling_prediction, main
from lgcnet_deploy.core.errors import EXIT_USER_INPUT


def _pole_scene() -> np.ndarray:
    """Class 3 (road) everywhere, a 2-px pole (class 2) and a 16-px car (class 8), void
    (11) along the top rows."""
    label = np.full((64, 96), 3, np.uint8)
    label[:, 40:42] = 2
    label[16:48, 64:80] = 8
    label[:4] = 11
    return label


def test_a_thin_pole_survives_fine_strides_and_is_lost_at_coarse_ones():
    label = _pole_scene()
    assert (ceiling_prediction(label, 1, 11) == np.where(label == 11, 0, label)).all()
    pole_at = {s: (ceiling_prediction(label, s, 11)[label == 2] == 2).mean() for s in (2, 8)}
    assert pole_at[2] == 1.0 and pole_at[8] == 0.0  # 2 of 8 columns: road outvotes it
    car = ceiling_prediction(label, 8, 11)[label == 8] == 8
    assert car.mean() > 0.9  # a 16-px object keeps most of itself at stride 8


def test_void_pixels_vote_for_no_class():
    label = np.full((16, 16), 11, np.uint8)
    label[:, :2] = 5  # one class's sliver beside void: it wins the whole cell
    assert (ceiling_prediction(label, 8, 11)[:, :2] == 5).all()


def test_a_stride_below_one_is_one_line_and_its_exit_code(capsys):
    assert main(["--strides", "0", "4"]) == EXIT_USER_INPUT
    assert "strides must be >= 1" in capsys.readouterr().err
