import pytest
import torch

from lgcnet_deploy.classes import CAMVID, PAPER_INPUT_SIZE
from lgcnet_deploy.fuse import fold_batchnorm
from lgcnet_deploy.network import LGCNet, count_parameters
from search.dataset import normalize


@pytest.mark.parametrize("hw", [(360, 480), PAPER_INPUT_SIZE, (97, 131)])
def test_derived_network_output_at_input_size(genotype, hw):
    net = LGCNet(genotype, CAMVID.num_classes).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, *hw))
    assert y.shape == (1, CAMVID.num_classes, *hw)
    assert torch.isfinite(y).all()


def test_parameter_count_near_paper(genotype):
    # The paper's searched net has 2.09 M parameters; widths are chosen to land near it.
    assert 1.0e6 < count_parameters(LGCNet(genotype, CAMVID.num_classes)) < 3.0e6


def test_backward_reaches_every_weight(genotype):
    net = LGCNet(genotype, CAMVID.num_classes)
    net(torch.randn(2, 3, 64, 96)).mean().backward()
    silent = [n for n, p in net.named_parameters() if p.grad is None]
    assert not silent


def test_bn_folding_parity_on_real_frames(trained_like_net, real_frames):
    folded = fold_batchnorm(trained_like_net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.stack([normalize(f) for f in real_frames])
    with torch.no_grad():
        ref, out = trained_like_net(x), folded(x)
    assert (ref - out).abs().max().item() <= 1e-5
    # the original model is left untouched
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained_like_net.modules())
