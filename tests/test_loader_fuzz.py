"""Every loader of a file the user hands over (ONNX, checkpoint, genotype JSON, engine sidecar,
image, video), fed damaged and hostile input: each case ends in success or in an LgcnetError
with exit code 3 and a one-line message naming the file, never another exception, a hang or
an allocation beyond a bound. Property-based (Hypothesis): a few cases per loader in `make
test`, `make fuzz` for a long run. Also: a malicious pickle is refused without running it,
and the genotype JSON cases that used to pass or crash are refused, naming the field."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgcnet_deploy.cli import EXIT_USER_INPUT, exit_code, one_line
from lgcnet_deploy.core.errors import LgcnetError
from lgcnet_deploy.model.genotype import Genotype, GenotypeError, load_genotype
from lgcnet_deploy.model.shipped import shipped_file

hypothesis = pytest.importorskip("hypothesis", reason="Hypothesis is not installed: pip "
                                 "install '.[dev]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# `make test`: a handful of cases per loader; `make fuzz` (LGCNET_FUZZ=long): many
LONG = os.environ.get("LGCNET_FUZZ") == "long"
settings.register_profile("lgcnet-bounded", max_examples=8, deadline=None, derandomize=True,
                          database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("lgcnet-long", max_examples=400, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile("lgcnet-long" if LONG else "lgcnet-bounded")
CHEAP = settings(PROFILE, max_examples=PROFILE.max_examples * 6)  # loaders that parse no model


def outcome(load, path: Path) -> str:
    """'ok', or 'refused' for an LgcnetError of exit code 3 with one line naming the file."""
    try:
        load(path)
    except LgcnetError as e:
        assert exit_code(e) == EXIT_USER_INPUT, f"{type(e).__name__}: {e}"
        assert path.name in one_line(e) and "Traceback" not in str(e)
        return "refused"
    return "ok"


def mutated(data: bytes, draw) -> bytes:
    """`data` truncated, or with a few bytes overwritten, or random bytes."""
    kind = draw(st.sampled_from(("truncate", "flip", "random")))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=4096))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    return bytes(buf)


def _fuzz_file(data: bytes, suffix: str, load, draw) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzzed{suffix}"
        path.write_bytes(mutated(data, draw))
        return outcome(load, path)


@settings(PROFILE)
@given(st.data())
def test_onnx_loader(data):
    from lgcnet_deploy.runtime.backends import load_backend

    model = shipped_file("lgcnet-camvid", ".onnx").read_bytes()
    _fuzz_file(model, ".onnx", lambda p: load_backend(p).close(), data.draw)


@settings(PROFILE)
@given(st.data())
def test_checkpoint_loader(data):
    pytest.importorskip("torch")
    from lgcnet_deploy.model.checkpoint import load_checkpoint

    ckpt = shipped_file("lgcnet-camvid", ".pt").read_bytes()
    _fuzz_file(ckpt, ".pt", load_checkpoint, data.draw)


@CHEAP
@given(st.data())
def test_image_loader(data):
    from lgcnet_deploy.core.data import read_image

    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    suffix = data.draw(st.sampled_from((".png", ".jpg")))
    encoded = cv2.imencode(suffix, frame)[1].tobytes()
    _fuzz_file(encoded, suffix, read_image, data.draw)


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path.read_bytes()


@CHEAP
@given(data=st.data())
def test_video_loader(video_bytes, data):
    from lgcnet_deploy.runtime.sources import FrameSource

    _fuzz_file(video_bytes, ".mp4", lambda p: list(FrameSource(p)), data.draw)


# -- JSON: genotypes and sidecars --------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every (path, value) of a JSON tree."""
    yield prefix, value
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _replace(tree, path, value):
    if not path:
        return value
    tree = json.loads(json.dumps(tree))
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


@CHEAP
@given(st.data())
def test_genotype_json_loader(data):
    """A field of the default genotype replaced by any JSON value, or the file damaged."""
    base = load_genotype().to_dict()
    path = data.draw(st.sampled_from([p for p, _ in _paths(base)]))
    tree = _replace(base, path, data.draw(JSON_VALUES))
    text = json.dumps(tree).encode()
    if data.draw(st.booleans()):
        _fuzz_file(text, ".json", load_genotype, data.draw)
    else:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "g.json").write_bytes(text)
            outcome(load_genotype, Path(d) / "g.json")


@CHEAP
@given(st.data())
def test_sidecar_loader(data):
    from lgcnet_deploy.artifact.engine.sidecar import find_sidecar

    base = {"format": "lgcnet-engine/1", "tensorrt": "10.3.0",
            "gpu": {"name": "x", "compute_capability": "8.7"}, "precision": "fp16",
            "io": [], "meta": {}, "engine_sha256": "0" * 64, "build": {}}
    path = data.draw(st.sampled_from([p for p, _ in _paths(base)]))
    text = json.dumps(_replace(base, path, data.draw(JSON_VALUES))).encode()
    with tempfile.TemporaryDirectory() as d:
        engine = Path(d) / "m.engine"
        sidecar = Path(d) / "m.engine.json"
        sidecar.write_bytes(mutated(text, data.draw) if data.draw(st.booleans()) else text)
        try:
            find_sidecar(engine)
        except LgcnetError as e:
            assert exit_code(e) == EXIT_USER_INPUT and sidecar.name in one_line(e), e


# -- cases that used to pass silently or crash -------------------------------------------------

def _genotype(**change) -> dict:
    d = load_genotype().to_dict()
    for dotted, value in change.items():
        node = d
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return d


@pytest.mark.parametrize("change, field", [
    ({"widths__fusion": 32.5}, "widths.fusion"),
    ({"widths__fusion": "32"}, "widths.fusion"),
    ({"widths__fusion": True}, "widths.fusion"),
    ({"widths__cells": [16, 32, 100_000]}, "widths.cells[2]"),
    ({"widths__stem": [8, 16, 0]}, "widths.stem[2]"),
    ({"provenance": "text"}, "provenance"),
    ({"provenance": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}}, "provenance"),
    ({"provenance": {"blob": "x" * 100_000}}, "provenance"),
    ({"name": "n" * 1_000_000}, "name"),
    ({"name": 7}, "name"),
    ({"extra": 1}, "unknown key(s) extra"),
    ({"cells": [{"ops": ["conv_3x3"] * 5, "reduction": 1}] * 14}, "cells[0].reduction"),
    ({"fusion__inputs": [0, 3.0, 7]}, "fusion.inputs[1]"),
    ({"stem": "pyramid"}, "stem"),
])
def test_hostile_genotypes_are_refused_naming_the_field(change, field):
    needle = field if "unknown" in field else f"field '{field}'"
    with pytest.raises(GenotypeError, match=re.escape(needle)):
        Genotype.from_dict(_genotype(**change))


def test_deeply_nested_json_is_refused_without_recursion(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GenotypeError, match=r"deep\.json"):
        load_genotype(path)
    path.write_text('{"schema": "lgcnet-genotype/1", "provenance": ' + "[" * 50 + "]" * 50
                    + "}")
    with pytest.raises(GenotypeError, match="nested deeper"):
        load_genotype(path)


def test_every_stem_kind_of_the_space_is_accepted():
    from lgcnet_deploy.model.space import STEMS, TRUNKS

    for stem in STEMS:  # a trunk's frame has a schema of its own: its shipped genotype
        d = load_genotype("lite0_s16_lean").to_dict() if stem in TRUNKS else _genotype()
        assert Genotype.from_dict({**d, "stem": stem}).stem == stem


class _RunsCode:
    """Unpickling this calls `Path.touch(marker)`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    torch = pytest.importorskip("torch")
    from lgcnet_deploy.model.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lgcnet-checkpoint/1", "x": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(evil)
    assert not marker.exists() and exit_code(info.value) == EXIT_USER_INPUT
    assert "GLOBAL" in str(info.value)
    plain = tmp_path / "plain.pt"  # the same with pickle itself: it would have run
    plain.write_bytes(pickle.dumps(_RunsCode(marker)))
    pickle.loads(plain.read_bytes())
    assert marker.exists()
