import pytest
import torch

from experiments.pareto import count, markdown, measure
from lgcnet_deploy.model.checkpoint import load_net


def test_pareto_rows_measure_every_model_at_every_size():
    rows = measure(["default", "handwritten"], peer=False, rounds=2, iters=2, data=None,
                   sizes=((64, 96), (96, 128)))
    assert [r.name for r in rows] == ["default", "handwritten"]
    for r in rows:
        assert r.val_miou is None  # genotypes: random weights are not scored
        assert set(r.latency_ms) == {"64x96", "96x128"} and min(r.latency_ms.values()) > 0
    assert rows[1].params_m > rows[0].params_m  # the hand-written one has paper widths
    table = markdown(rows).splitlines()
    assert len(table) == 4 and "ORT CPU ms 96x128" in table[0] and "| — |" in table[2]


def test_flops_grow_with_the_input():
    net, _, _ = load_net("default")
    params, small = count(net, (64, 96))
    _, large = count(net, (128, 192))
    assert 0.5 < params < 1.0 and 3.5 < large / small < 4.5


@pytest.mark.torchvision
def test_trained_peer_row_is_scored_through_the_onnx_export(tmp_path, camvid_val, real_frames):
    from experiments.pareto import PEER, main
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.measure.bench import lraspp_net, peer_lraspp
    from lgcnet_deploy.runtime.segmenter import Segmenter
    from lgcnet_research.train.data import normalize
    from lgcnet_research.train.peer import peer_meta, save_peer_checkpoint

    torch.manual_seed(0)
    net = lraspp_net(CAMVID.num_classes)
    with torch.no_grad():  # a peer that does not predict one class everywhere
        net.m.classifier.low_classifier.bias.copy_(torch.linspace(-1, 1, CAMVID.num_classes))
    path = save_peer_checkpoint(tmp_path / "peer.pt", net, peer_meta())
    onnx = peer_lraspp((360, 480), CAMVID.num_classes, tmp_path, net)
    with Segmenter(onnx) as seg, torch.no_grad():  # the ONNX path = the training's forward
        for frame in real_frames[:2]:
            torch_map = net(normalize(frame)[None]).argmax(1)[0].numpy()
            assert (seg.predict(frame).mask == torch_map).mean() > 0.999
    rows = measure(["default"], peer=False, rounds=1, iters=1, data=None, sizes=((64, 96),),
                   peer_weights=path, val_limit=4)
    assert [r.name for r in rows] == ["default", PEER]
    assert 0.0 < rows[1].val_miou < 1.0 and 3.1 < rows[1].params_m < 3.3
    assert rows[1].latency_ms["64x96"] > 0
    assert main(["--peer-weights", str(tmp_path / "missing.pt"), "--out",
                 str(tmp_path / "out")]) == 2
