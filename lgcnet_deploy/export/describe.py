"""What deployable model files hold, for `lgcnet info` and the input-size checks, read
without preparing them for inference (the `describe` functions of the model-format table in
`core/formats.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lgcnet_deploy.core.errors import damaged
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.export.integrity import digest_status


def describe_onnx(path: Path) -> dict[str, Any]:
    """I/O signature and metadata of an ONNX model (ONNX Runtime, CPU: no GPU needed)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
    from lgcnet_deploy.export.engine.sidecar import read_sidecar

    return {"backend": "tensorrt", **read_sidecar(path)}
