"""Integrity of exported ONNX files: a digest of the weights recorded in the metadata, and
checks that a loaded graph is the model its metadata describes.

The digest is SHA-256 over the graph's initializers exactly as serialized (name, dims, type
and data of every weight, in graph order). Reading it needs no `onnx` package: a few lines of
protobuf wire-format walking find the fields, so the base install (ONNX Runtime only) verifies
files too. Every tool that rewrites initializers (FP16, INT8) must call
`stamp_weights_digest` on its output before saving; files from before digests existed carry
no digest field and load with one warning. Weights stored as ONNX external data are covered
only by reference (name and location), not by content.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lgcnet_deploy.core.errors import BadInputError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, OUTPUT_LOGITS, ModelMeta

DIGEST_KEY = "lgcnet.weights_sha256"  # a metadata_props key; JSON string like other lgcnet.*

# Field numbers of onnx.proto3: ModelProto.graph, ModelProto.metadata_props,
# GraphProto.initializer / sparse_initializer, StringStringEntryProto.key / value.
_MODEL_GRAPH, _MODEL_PROPS = 7, 14
_GRAPH_WEIGHTS = (5, 15)
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


class IntegrityError(BadInputError):
    """An ONNX file is not what its metadata says (changed weights, foreign model): the
    file's content is wrong, so the CLI reports it as a bad input."""


class UnverifiedModelWarning(UserWarning):
    """An ONNX file carries no weights digest (exported before digests were recorded)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise IntegrityError("truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int = 0, end: int | None = None
            ) -> Iterator[tuple[int, int, int, int]]:
    """(field number, tag start, value start, value end) of each field of one message;
    value start/end delimit a length-delimited payload (sub-message, bytes, string)."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        tag_start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, value_end = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value_end = pos + length
        elif wire in (1, 5):
            value_end = pos + (8 if wire == 1 else 4)
        else:
            raise IntegrityError(f"unsupported protobuf wire type {wire}")
        if value_end > end:
            raise IntegrityError("truncated protobuf field")
        yield number, tag_start, pos, value_end
        pos = value_end


def weights_digest(model_bytes: bytes) -> str:
    """SHA-256 (hex) of the initializers of a serialized ONNX ModelProto."""
    h = hashlib.sha256()
    for number, _, start, end in _fields(model_bytes):
        if number == _MODEL_GRAPH:
            for field, tag_start, _, value_end in _fields(model_bytes, start, end):
                if field in _GRAPH_WEIGHTS:
                    h.update(model_bytes[tag_start:value_end])
    return h.hexdigest()


def recorded_digest(model_bytes: bytes) -> str | None:
    """The digest stored in the metadata_props of a serialized ONNX model, if any."""
    for number, _, start, end in _fields(model_bytes):
        if number != _MODEL_PROPS:
            continue
        entry = {f: model_bytes[s:e].decode("utf-8", "replace")
                 for f, _, s, e in _fields(model_bytes, start, end)}
        if entry.get(_ENTRY_KEY) == DIGEST_KEY:
            try:
                value = json.loads(entry.get(_ENTRY_VALUE, ""))
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, str):
                raise IntegrityError(f"metadata field {DIGEST_KEY} is not a digest string")
            return value
    return None


def stamp_weights_digest(proto: Any) -> Any:
    """Record the digest of `proto`'s initializers (an onnx.ModelProto) in its
    metadata_props, replacing any earlier one; call it after every rewrite of the weights."""
    digest = weights_digest(proto.SerializeToString())
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != DIGEST_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (DIGEST_KEY, json.dumps(digest))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def digest_status(path: str | Path) -> dict[str, Any]:
    """{"recorded": str | None, "actual": str, "ok": bool | None} for an ONNX file."""
    path = Path(path)
    data = path.read_bytes()
    try:
        recorded, actual = recorded_digest(data), weights_digest(data)
    except IntegrityError as e:
        raise IntegrityError(f"{path}: not a readable ONNX file ({e})") from e
    return {"recorded": recorded, "actual": actual,
            "ok": None if recorded is None else recorded == actual}


def verify_weights_digest(path: str | Path) -> None:
    """Raise IntegrityError if the weights of the ONNX at `path` differ from the digest in
    its metadata; warn (once per file) when it records none."""
    status = digest_status(path)
    if status["ok"] is None:
        warnings.warn(f"{path}: no weights digest in its metadata (exported before lgcnet-deploy "
                      f"recorded one); it loads unverified: re-export it to add one",
                      UnverifiedModelWarning, stacklevel=3)
    elif not status["ok"]:
        raise IntegrityError(
            f"{path}: weights differ from the digest recorded at export (sha256 "
            f"{status['recorded'][:12]}..., file has {status['actual'][:12]}...): the file was "
            f"changed or damaged after export; re-export it, or load with verify=False "
            f"(CLI: --no-verify) if you edited the graph on purpose")


def check_io(path: str | Path, meta: ModelMeta, input_shape: Sequence[Any],
             output_shape: Sequence[Any]) -> None:
    """Refuse a graph whose input/output shapes contradict its metadata (`ModelMeta`): e.g. a
    foreign model carrying copied metadata with another class count or input size.
    Symbolic dimensions (strings, None) match anything."""
    h, w = meta.input_size
    nhwc = meta.input_format == INPUT_UINT8_NHWC_BGR
    want_in = (None, h, w, 3) if nhwc else (None, 3, h, w)
    logits = meta.output_kind == OUTPUT_LOGITS
    want_out = (None, meta.num_classes, h, w) if logits else (None, h, w)
    for what, have, want in (("input", input_shape, want_in), ("output", output_shape, want_out)):
        fixed = [None if not isinstance(d, int) else d for d in have]
        if len(fixed) != len(want) or any(
                a is not None and b is not None and a != b for a, b in zip(fixed, want)):
            raise IntegrityError(
                f"{path}: graph {what} shape {list(have)} does not match its metadata "
                f"({meta.num_classes} classes, {meta.input_format} input {h}x{w}, "
                f"{meta.output_kind} output: expected {['N' if d is None else d for d in want]})"
                f"; the metadata belongs to another model: re-export with `lgcnet export`")
