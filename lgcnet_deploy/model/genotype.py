"""The genotype: an immutable, validated, JSON-serialisable description of a derived LGCNet."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.errors import MissingFileError
from lgcnet_deploy.core.metadata import read_json
from lgcnet_deploy.model.genotype_check import MAX_WIDTH, GenotypeError, check_genotype_json
from lgcnet_deploy.model.shipped import SHIPPED_MODELS, did_you_mean
from lgcnet_deploy.model.space import (
    CELL_EDGES,
    CELL_OPS,
    DEFAULT_FUSION_INPUTS,
    DEFAULT_REDUCTIONS,
    DEFAULT_STEM,
    FUSION_CHANNELS,
    FUSION_EDGES,
    MAX_TRUNK_CELLS,
    NUM_CELLS,
    STEMS,
    TRUNK_CELL_STRIDES,
    TRUNK_CELL_STRIDES_TEXT,
    TRUNKS,
    cell_strides,
    edge_choices,
)

SCHEMA = "lgcnet-genotype/1"
GENOTYPE_DIR = Path(__file__).parent / "genotypes"
DEFAULT_GENOTYPE = "default"


@dataclass(frozen=True)
class Widths:
    """Channel widths: the stem's three layers, cell width C per stride (4, 8, 16), fusion."""

    stem: tuple[int, int, int] = (8, 16, 16)
    cells: tuple[int, int, int] = (16, 64, 192)
    fusion: int = FUSION_CHANNELS

    def cell(self, stride: int) -> int:
        return self.cells[{4: 0, 8: 1, 16: 2}[stride]]

    def to_dict(self) -> dict[str, Any]:
        return {"stem": list(self.stem), "cells": list(self.cells), "fusion": self.fusion}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Widths:
        """From {"stem": [3 ints], "cells": [3 ints], "fusion": int}; KeyError/TypeError if not."""
        return cls(stem=tuple(d["stem"]), cells=tuple(d["cells"]), fusion=int(d["fusion"]))


@dataclass(frozen=True)
class Genotype:
    """The paper's frame: 14 independent cells (5 edge ops each), the reduction cells and the
    fusion cell's choices. With a trunk stem (`space.TRUNKS`): the cells after the trunk, each
    at its `trunk_strides` entry (4, 8 or 16), no reduction cells, and the fusion cell reading
    each stride's last cell (its `fusion_inputs` are then implied and left empty)."""

    cells: tuple[tuple[str, ...], ...]
    fusion_ops: tuple[str, ...]
    reductions: tuple[int, ...] = DEFAULT_REDUCTIONS
    fusion_inputs: tuple[int, ...] = DEFAULT_FUSION_INPUTS
    widths: Widths = Widths()
    stem: str = DEFAULT_STEM
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    trunk_strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # "stem" is written only when it is not the paper's, so older genotypes keep their hash
        return {
            "schema": SCHEMA,
            "name": self.name,
            **({"stem": self.stem} if self.stem != DEFAULT_STEM else {}),
            "cells": [{"ops": list(ops), **({"stride": self.trunk_strides[k]} if self.has_trunk
                                             else {"reduction": k in self.reductions})}
                      for k, ops in enumerate(self.cells)],
            "fusion": {"inputs": list(self.fusion_inputs), "ops": list(self.fusion_ops)},
            "widths": self.widths.to_dict(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Genotype:
        if not isinstance(d, dict):
            raise GenotypeError(f"genotype must be a JSON object, got {type(d).__name__}")
        if d.get("schema") != SCHEMA:
            raise GenotypeError(f"field 'schema': expected {SCHEMA!r}, got "
                                f"{str(d.get('schema'))[:40]!r}")
        check_genotype_json(d)  # types, bounds and keys, before anything is built
        cells = _get(d, "cells", list)
        for k, c in enumerate(cells):
            if not isinstance(c, dict) or not isinstance(c.get("ops"), list):
                raise GenotypeError(f"field 'cells[{k}].ops': expected a list of op names")
        fusion = _get(d, "fusion", dict)
        widths = _get(d, "widths", dict)
        try:
            w = Widths.from_dict(widths)
        except (KeyError, TypeError, ValueError) as e:
            raise GenotypeError(
                f"field 'widths': needs stem[3], cells[3], fusion ints ({e})") from e
        trunk = d.get("stem") in TRUNKS
        return cls(
            cells=tuple(tuple(c["ops"]) for c in cells),
            fusion_ops=tuple(_get(fusion, "ops", list, "fusion.ops")),
            reductions=tuple(k for k, c in enumerate(cells) if c.get("reduction") is True),
            fusion_inputs=tuple(_get(fusion, "inputs", list, "fusion.inputs")),
            widths=w,
            stem=d.get("stem", DEFAULT_STEM),
            name=str(d.get("name", "unnamed")),
            provenance=dict(d.get("provenance") or {}),
            trunk_strides=tuple(c.get("stride") for c in cells) if trunk else (),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @property
    def hash(self) -> str:
        """Short content hash of the architecture (provenance and name excluded)."""
        d = self.to_dict()
        arch = {k: d[k] for k in ("stem", "cells", "fusion", "widths") if k in d}
        return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def has_trunk(self) -> bool:
        """Whether the stem is a pretrained trunk to stride 16 (`space.TRUNKS`)."""
        return self.stem in TRUNKS

    @property
    def strides(self) -> list[int]:
        """The stride each cell works at."""
        if self.has_trunk:
            return list(self.trunk_strides)
        return cell_strides(self.reductions, len(self.cells))


def _get(d: dict, key: str, typ: type, label: str | None = None) -> Any:
    if key not in d:
        raise GenotypeError(f"field '{label or key}' is missing")
    if not isinstance(d[key], typ):
        raise GenotypeError(f"field '{label or key}': expected {typ.__name__}, "
                            f"got {type(d[key]).__name__}")
    return d[key]


def _validate(g: Genotype) -> None:
    if g.stem not in STEMS:
        raise GenotypeError(f"field 'stem': unknown stem {g.stem!r}; choose one of "
                            f"{', '.join(STEMS)}")
    if g.has_trunk:
        _validate_trunk_frame(g)
    else:
        _validate_paper_frame(g)
    _validate_ops(g)
    w = g.widths
    if len(w.stem) != 3 or len(w.cells) != 3 or not all(
            type(c) is int and 0 < c <= MAX_WIDTH for c in (*w.stem, *w.cells, w.fusion)):
        raise GenotypeError(f"field 'widths': expected ints 1..{MAX_WIDTH} stem[3], cells[3], "
                            f"fusion; got {w}")


def _validate_paper_frame(g: Genotype) -> None:
    """14 cells, two reduction cells (strides 4 | 8 | 16), a fusion input at each stride."""
    if len(g.cells) != NUM_CELLS:
        raise GenotypeError(f"field 'cells': expected {NUM_CELLS} cells, got {len(g.cells)}")
    if g.trunk_strides:
        raise GenotypeError(f"field 'cells[*].stride': only a trunk stem's cells have a "
                            f"stride ({', '.join(TRUNKS)}); stem {g.stem!r} has reduction cells")
    red = list(g.reductions)
    if sorted(set(red)) != red or len(red) != 2 or 0 in red:
        raise GenotypeError(f"field 'cells[*].reduction': expected exactly two reduction cells "
                            f"after cell 0 (stride 4 -> 8 -> 16), got {list(g.reductions)}")
    strides = cell_strides(g.reductions, NUM_CELLS)
    picked = [strides[k] if 0 <= k < NUM_CELLS else None for k in g.fusion_inputs]
    if picked != [4, 8, 16]:
        raise GenotypeError(f"field 'fusion.inputs': expected one cell at each stride 4, 8, 16 "
                            f"(e.g. {list(DEFAULT_FUSION_INPUTS)}), got {list(g.fusion_inputs)} "
                            f"at strides {picked}")


def _validate_trunk_frame(g: Genotype) -> None:
    """Up to MAX_TRUNK_CELLS cells, each at one of TRUNK_CELL_STRIDES; no reduction cell; the
    fusion inputs implied; the stem widths are the trunk's."""
    if len(g.cells) > MAX_TRUNK_CELLS:
        raise GenotypeError(f"field 'cells': a trunk feeds at most {MAX_TRUNK_CELLS} cells, "
                            f"got {len(g.cells)}")
    for k, stride in enumerate(g.trunk_strides):
        if isinstance(stride, bool) or stride not in TRUNK_CELL_STRIDES:
            raise GenotypeError(f"field 'cells[{k}].stride': expected one of "
                                f"{TRUNK_CELL_STRIDES_TEXT} after a trunk, "
                                f"got {stride!r}")
    if len(g.trunk_strides) != len(g.cells) or g.reductions:
        raise GenotypeError(f"field 'cells': after a trunk every cell has a \"stride\" "
                            f"({TRUNK_CELL_STRIDES_TEXT}) and none is a "
                            f"reduction cell")
    if g.fusion_inputs:
        raise GenotypeError(f"field 'fusion.inputs': after a trunk the fusion cell reads each "
                            f"stride's last cell; give [] (got {list(g.fusion_inputs)})")
    channels = TRUNKS[g.stem].channels
    if tuple(g.widths.stem) != channels:
        raise GenotypeError(f"field 'widths.stem': trunk {g.stem!r} hands on "
                            f"{list(channels)} channels at strides 4, 8, 16; give those")


def _validate_ops(g: Genotype) -> None:
    for k, ops in enumerate(g.cells):
        if len(ops) != len(CELL_EDGES):
            raise GenotypeError(f"field 'cells[{k}].ops': expected {len(CELL_EDGES)} edges, "
                                f"got {len(ops)}")
        for e, op in enumerate(ops):
            if op not in CELL_OPS:
                raise GenotypeError(f"field 'cells[{k}].ops[{e}]': unknown op {op!r}; "
                                    f"choose one of {', '.join(CELL_OPS)}")
    if len(g.fusion_ops) != len(FUSION_EDGES):
        raise GenotypeError(f"field 'fusion.ops': expected {len(FUSION_EDGES)} edges, "
                            f"got {len(g.fusion_ops)}")
    for e, (edge, op) in enumerate(zip(FUSION_EDGES, g.fusion_ops)):
        if op not in edge_choices(edge.kind):
            where = f"{'+'.join(edge.sources)}->{edge.target}, {edge.kind} edge"
            raise GenotypeError(f"field 'fusion.ops[{e}]' ({where}): unknown op {op!r}; "
                                f"choose one of "
                                f"{', '.join(edge_choices(edge.kind))}")


def load_genotype(source: str | Path | dict | Genotype = DEFAULT_GENOTYPE) -> Genotype:
    """Load a genotype from a Genotype, a dict, a JSON path, or a name shipped in genotypes/."""
    if isinstance(source, Genotype):
        return source
    if isinstance(source, dict):
        return Genotype.from_dict(source)
    path = Path(source)
    if not path.suffix and not path.exists():
        path = GENOTYPE_DIR / f"{source}.json"
    if not path.is_file():
        names = sorted(p.stem for p in GENOTYPE_DIR.glob("*.json"))
        shipped = ", ".join(names)
        hint = did_you_mean(str(source), [*names, *SHIPPED_MODELS])
        raise MissingFileError(f"genotype {str(source)!r} not found: give a JSON path, a "
                               f"shipped model ({', '.join(SHIPPED_MODELS)}) or a shipped "
                               f"genotype ({shipped}){hint}")
    data = read_json(path, GenotypeError)
    try:
        return Genotype.from_dict(data)
    except GenotypeError as e:
        raise GenotypeError(f"{path}: {e}") from e
