import pytest
import torch

from lgcnet_deploy.model.ops import OPS, build_op
from lgcnet_deploy.model.space import CELL_OPS, FUSION_OPS, UP_OPS


def _ceil_half(n: int) -> int:
    return -(-n // 2)


@pytest.mark.parametrize("name", CELL_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [(24, 32), (25, 49)])
def test_cell_ops_keep_shape(name, stride, hw):
    op = build_op(name, 8, 8, stride).eval()
    y = op(torch.randn(2, 8, *hw))
    expect = hw if stride == 1 else tuple(_ceil_half(n) for n in hw)
    assert y.shape == (2, 8, *expect)


@pytest.mark.parametrize("name", FUSION_OPS)
@pytest.mark.parametrize("c_in", [48, 144])
def test_fusion_ops_map_channels_keep_size(name, c_in):
    y = build_op(name, c_in, 48).eval()(torch.randn(1, c_in, 23, 30))
    assert y.shape == (1, 48, 23, 30)


@pytest.mark.parametrize("name", UP_OPS)
@pytest.mark.parametrize("size", [(46, 60), (45, 59)])
def test_up_ops_reach_the_finer_size(name, size):
    y = build_op(name, 48, 48).eval()(torch.randn(1, 48, 23, 30), size)
    assert y.shape == (1, 48, *size)


def test_table_covers_the_space_and_errors_name_choices():
    assert set(OPS) == set(CELL_OPS) | set(FUSION_OPS) | set(UP_OPS)
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        build_op("conv_7x7", 8, 8)


def test_zero_op_outputs_zeros():
    assert build_op("none", 4, 4, 2)(torch.randn(1, 4, 9, 9)).abs().sum() == 0
