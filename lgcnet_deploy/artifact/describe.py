"""What a model file holds, for `lgcnet info` and the input-size checks, read without
preparing it for inference: `describe(path)` looks its format up in the table of
`core/formats.py` and reads it the way that format is read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lgcnet_deploy.artifact.integrity import digest_status
from lgcnet_deploy.core.errors import damaged
from lgcnet_deploy.core.formats import format_of
from lgcnet_deploy.core.logs import ort_severity
from lgcnet_deploy.core.metadata import ModelMeta

if TYPE_CHECKING:
    import onnx


def describe(path: str | Path) -> dict[str, Any]:
    """What the model file at `path` holds, read as its format is (see the module doc)."""
    path = Path(path)
    fmt = format_of(path)
    with fmt.needs_extra():
        if fmt.name == "pytorch":
            from lgcnet_deploy.model.checkpoint import describe_checkpoint

            return describe_checkpoint(path)
    return describe_engine(path) if fmt.name == "engine" else describe_onnx(path)


def describe_onnx(path: Path) -> dict[str, Any]:
    """I/O signature and metadata of an ONNX model (ONNX Runtime, CPU: no GPU needed)."""
    import onnxruntime as ort

    try:
        ort.set_default_logger_severity(ort_severity())
        opts = ort.SessionOptions()
        opts.log_severity_level = ort_severity()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        props = sess.get_modelmeta().custom_metadata_map  # UnicodeDecodeError if damaged
    except Exception as e:  # ORT raises its own pybind types (InvalidProtobuf, Fail, ...)
        raise damaged(path, "ONNX model", e) from e
    io = {"inputs": [(i.name, i.type, i.shape) for i in sess.get_inputs()],
          "outputs": [(o.name, o.type, o.shape) for o in sess.get_outputs()]}
    meta = ModelMeta.from_props(props, path)
    return {"backend": "onnxruntime", **io, **meta.to_dict(),
            "weights_sha256": digest_status(path)}


def describe_engine(path: Path) -> dict[str, Any]:
    """A TensorRT engine as its sidecar describes it (no GPU or TensorRT needed)."""
    from lgcnet_deploy.artifact.engine.sidecar import read_sidecar

    return {"backend": "tensorrt", **read_sidecar(path)}


def has_qdq(model: onnx.ModelProto) -> bool:
    """Whether `model` is explicitly quantized (holds QuantizeLinear/DequantizeLinear nodes):
    what `lgcnet build --precision int8` needs, and what makes ONNX Runtime's TensorRT provider
    need trt_int8_enable."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def fp32_body(model: onnx.ModelProto) -> bool:
    """Whether a Q/DQ model dequantizes to fp32 (its scales are fp32): strongly typed
    TensorRT (10.12+, 11) then runs every layer outside a Q/DQ pair in fp32/TF32. `lgcnet
    build` converts such a file to an fp16 body first (export/fp16.py); the file itself stays
    fp32 for ONNX Runtime, whose CPU graph optimisations mis-handle fp16 Q/DQ graphs."""
    from onnx import TensorProto

    scales = {i.name: i.data_type for i in model.graph.initializer}
    return any(scales.get(n.input[1]) == TensorProto.FLOAT for n in model.graph.node
               if n.op_type == "DequantizeLinear")
