"""The search (section III): GGM equations, Gumbel relaxation, LUT, LAT(α), search steps, DDP."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lgcnet_deploy.cli import main as cli_main
from lgcnet_deploy.model.genotype import Genotype, Widths, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.space import CELL_OPS, FUSION_EDGES, FUSION_OPS, UP_OPS
from lgcnet_research.latency.check import check, random_genotype, spearman
from lgcnet_research.latency.lut import LatencyTable, LutError, LutKey, measure_table
from lgcnet_research.search.config import SearchConfig
from lgcnet_research.search.edges import edge_specs, genotype_choices
from lgcnet_research.search.ggm import CellCommunication, FCModule, GCNGuidedModule
from lgcnet_research.search.relax import entropy, gumbel_softmax, temperature
from lgcnet_research.search.run import search
from lgcnet_research.search.supernet import MixedOp, SpaceConfig, Supernet

ROOT = Path(__file__).resolve().parent.parent
P, Q = 5, len(CELL_OPS)
SMALL = Widths((4, 8, 8), (8, 8, 16), 8)  # a tiny frame for fast supernet tests
LUT_HW = (48, 64)


@pytest.fixture(scope="module")
def small_lut(tmp_path_factory) -> Path:
    """A real (torch-cpu) latency table of the tiny frame, measured once for this module."""
    ref = Genotype.from_dict({**load_genotype().to_dict(), "widths": SMALL.to_dict()})
    work = tmp_path_factory.mktemp("lut")
    table = measure_table(SMALL, ref.reductions, LUT_HW, "torch-cpu", work, ref, warmup=1,
                          iters=3, progress=False)
    return table.save(work / "lut.json")


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
    lat = net.latency(z_cells, z_fusion)
    torch.log(lat).backward()
    for name in ("alpha_cells", "alpha_fusion_op", "alpha_fusion_up"):
        grad = getattr(net, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in net.communication.parameters())  # through α' of Eq. 5
    z_cells, z_fusion = net.argmax_weights()
    assert net.latency(z_cells, z_fusion).item() == pytest.approx(
        table.ops_us(net.derive()), rel=1e-5)


# -- latency table ------------------------------------------------------------------------------
def test_lut_round_trip_and_errors(small_lut, tmp_path):
    table = LatencyTable.load(small_lut)
    specs = edge_specs(SMALL, table.reductions, LUT_HW)
    assert set(table.entries) == {LutKey.of(s, op) for s in specs for op in s.choices}
    assert all(v >= 0 for v in table.entries.values())  # marginal costs, clamped at 0
    assert all(v == 0 for k, v in table.entries.items() if k.op == "none")  # dropped edges
    assert max(v for k, v in table.entries.items() if k.op == "conv_3x3") > 0
    copy = table.save(tmp_path / "copy.json")
    again = LatencyTable.load(copy)
    assert again.entries.keys() == table.entries.keys()
    assert again.frame_us == pytest.approx(table.frame_us, abs=0.01)
    key = next(iter(table.entries))
    assert LutKey.decode(key.encode()) == key

    d = json.loads(small_lut.read_text())
    d["versions"]["torch"] = "1.0.0"
    (tmp_path / "old.json").write_text(json.dumps(d))
    with pytest.raises(LutError, match=r"measured with torch 1\.0\.0.*re-measure"):
        LatencyTable.load(tmp_path / "old.json")
    assert LatencyTable.load(tmp_path / "old.json", check_versions=False).versions["torch"] \
        == "1.0.0"
    (tmp_path / "schema.json").write_text(json.dumps({**d, "schema": "lgcnet-lut/0"}))
    with pytest.raises(LutError, match="schema"):
        LatencyTable.load(tmp_path / "schema.json")
    with pytest.raises(LutError, match="no entry"):
        table[key._replace(c_in=999)]
    with pytest.raises(LutError, match="widths"):
        Supernet(SpaceConfig(), 11).set_latency_table(table)
    with pytest.raises(FileNotFoundError, match="lgcnet lut"):
        LatencyTable.load(tmp_path / "missing.json")


def test_lut_check_helpers(small_lut):
    import numpy as np

    table = LatencyTable.load(small_lut)
    rng = np.random.default_rng(0)
    genotypes = [random_genotype(rng, table, f"r{i}") for i in range(5)]
    assert len({g.hash for g in genotypes}) == 5
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    result = check(table, genotypes[:3], iters=2, rounds=2)  # torch-cpu: the table's backend
    assert [r["genotype"] for r in result["rows"]] == [g.hash for g in genotypes[:3]]
    for r in result["rows"]:
        assert r["measured_ms"] > 0
        assert r["predicted_ms"] == pytest.approx(table.frame_us / 1000 + r["ops_ms"])
    assert -1.0 <= result["spearman_rho"] <= 1.0


# -- the search loop -----------------------------------------------------------------------------
def _config(tmp_path: Path, lut: Path, **kw) -> SearchConfig:
    base = dict(out=str(tmp_path / "search"), lut=str(lut), steps=24, batch=4, crop=(64, 96),
                widths=SMALL.to_dict(),
                val_every=12, val_frames=2, log_every=4, checkpoint_every=12, limit=16,
                threads=2, device="cpu")
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
    assert prov["beta"] == 0.005 and prov["steps_done"] == 24 and prov["lut"]["sha256"]
    assert prov["config"]["communication"] == "gcn" and "predicted_ms" in prov
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert {"ce", "lat_ms", "tau", "entropy", "derived_ms"} <= set(log[0])
    assert len(log[0]["entropy"]) == 15 and any("val_miou" in r for r in log)
    assert log[-1]["tau"] == pytest.approx(0.03)
    assert (out / "search_curves.png").stat().st_size > 10_000

    longer = _config(tmp_path, small_lut, steps=32)
    with pytest.raises(ValueError, match=r"other settings.*steps"):
        search(longer, resume=True)
    # the same settings resume where the state left off: nothing is redone
    again = search(cfg, resume=True)
    assert [h["step"] for h in again["history"]] == [h["step"] for h in result["history"]]


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
                     "--lut", str(tmp_path / "nope.json")]) == 2  # actionable error, no crash


@pytest.mark.slow
def test_search_ddp_two_cpu_processes(small_lut, tmp_path, camvid_val):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**_config(tmp_path, small_lut).to_dict(), "steps": 4,
                               "val_every": 4, "checkpoint_every": 4, "threads": 1}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29518", "-m", "lgcnet_research.search", "--config", str(cfg)]
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
