from lgcnet_deploy.model.checkpoint import load_net
from lgcnet_research.pareto import count, markdown, measure


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
