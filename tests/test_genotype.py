import copy
import json
import re

import pytest

from lgcnet_deploy.model.genotype import GENOTYPE_DIR, Genotype, GenotypeError, load_genotype
from lgcnet_deploy.model.space import CELL_OPS, FUSION_EDGES, NUM_CELLS, TRUNK_CELL_STRIDES

SHIPPED = sorted(p.stem for p in GENOTYPE_DIR.glob("*.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_genotypes_load_and_round_trip(name):
    g = load_genotype(name)
    again = Genotype.from_dict(json.loads(g.to_json()))
    assert again == g
    assert again.hash == g.hash and len(g.hash) == 12
    if g.has_trunk:  # cells after a trunk keep their own strides (tests/test_trunk.py)
        assert set(g.strides) <= set(TRUNK_CELL_STRIDES) and not g.reductions
    else:
        assert g.strides == [4] + [8] * 7 + [16] * 6


def test_save_and_load_path(tmp_path, genotype):
    path = genotype.save(tmp_path / "g.json")
    assert load_genotype(path) == genotype
    assert load_genotype(str(path)).hash == genotype.hash


def test_hash_ignores_name_and_provenance(genotype):
    d = genotype.to_dict()
    d["name"], d["provenance"] = "other", {"x": 1}
    assert Genotype.from_dict(d).hash == genotype.hash
    d["cells"][3]["ops"][0] = "conv_3x3" if d["cells"][3]["ops"][0] != "conv_3x3" else "none"
    assert Genotype.from_dict(d).hash != genotype.hash


def _broken(mutate):
    d = load_genotype().to_dict()
    mutate(d)
    return d


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(schema="v0"), "schema"),
    (lambda d: d.pop("cells"), "cells"),
    (lambda d: d["cells"].pop(), "cells"),
    (lambda d: d["cells"][2]["ops"].pop(), "cells[2].ops"),
    (lambda d: d["cells"][5]["ops"].__setitem__(1, "conv_5x5"), "cells[5].ops[1]"),
    (lambda d: d["cells"][4].update(ops="conv_3x3"), "cells[4].ops"),
    (lambda d: d["cells"][1].update(reduction=False), "reduction"),
    (lambda d: d["fusion"]["ops"].pop(), "fusion.ops"),
    (lambda d: d["fusion"]["ops"].__setitem__(3, "conv_3x3"), "fusion.ops[3]"),
    (lambda d: d["fusion"]["ops"].__setitem__(0, "max_pool_3x3"), "fusion.ops[0]"),
    (lambda d: d["fusion"].update(inputs=[0, 7, 7]), "fusion.inputs"),
    (lambda d: d["fusion"].pop("inputs"), "fusion.inputs"),
    (lambda d: d["widths"].update(cells=[8, 16]), "widths"),
    (lambda d: d["widths"].pop("stem"), "widths"),
])
def test_malformed_genotype_names_the_field(mutate, field):
    with pytest.raises(GenotypeError, match=re.escape(field)):
        Genotype.from_dict(_broken(mutate))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped genotype"):
        load_genotype("no-such-genotype")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="damaged or truncated JSON"):
        load_genotype(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(GenotypeError, match="JSON object"):
        load_genotype(bad)


def test_constructor_validates(genotype):
    cells = list(copy.deepcopy(genotype.cells))
    with pytest.raises(GenotypeError, match=f"expected {NUM_CELLS} cells"):
        Genotype(cells=tuple(cells[:-1]), fusion_ops=genotype.fusion_ops)
    assert len(FUSION_EDGES) == 13 and len(CELL_OPS) == 8
