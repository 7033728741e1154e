"""INT8 post-training quantisation: fp32 ONNX -> QDQ ONNX for ONNX Runtime and TensorRT alike.

ONNX Runtime's static quantiser is used (not NVIDIA ModelOpt) because it runs on this CPU-only
machine and in CI, and its QDQ output is what TensorRT's explicit quantisation consumes. One
calibration (its ranges are cached per model and shared), two targets:

- "tensorrt": Q/DQ as NVIDIA ModelOpt places them for TensorRT (TENSORRT_QDQ_OPTIONS): on
  the inputs of weighted layers (Conv, ConvTranspose) only, no quantized outputs after
  Relu/Concat/Add (TensorRT fuses those into the conv and runs them in int8 where its Q/DQ
  propagation allows), symmetric int8 activations, symmetric int8 weights (Conv per output
  channel; ConvTranspose per tensor: TensorRT's deconvolution kernels do not take
  per-output-channel scales, NVIDIA/TensorRT #2380, #1694), zero points 0 and float biases
  (TensorRT's dequantize layer takes INT8/FP8/INT4 input only, so an INT32 bias
  DequantizeLinear is rejected). No calibrator on any TensorRT: 10.0-10.11 build it weakly
  typed with BuilderFlag.INT8 + FP16, 10.12+ (where those flags are deprecated) and 11.x
  strongly typed, where each DequantizeLinear outputs its scale's type: the export chain's
  precision step (`lgcnet build`) gives the body and the scales fp16 first (`fp32_body`), so
  the layers outside Q/DQ pairs run in fp16 on every TensorRT. The file written here keeps
  fp32 for ONNX Runtime.
- "cpu": ONNX Runtime's default placement (Q/DQ around every quantizable op, int32 biases:
  what its QLinear kernel fusions want) with uint8 activations and zero points (its fast
  x86 U8S8 kernels; the S8S8 path is slower than fp32 on this machine). TensorRT rejects
  it (`lgcnet check-trt` says why).

The in-graph uint8 normalisation and the classifier with all after it (logit upsampling,
ArgMax) stay unquantised: that would cost accuracy and gain nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lgcnet_deploy.artifact.integrity import stamp_weights_digest
from lgcnet_deploy.core.data import cache_root, read_image, require_camvid
from lgcnet_deploy.core.errors import BadInputError, MissingFileError
from lgcnet_deploy.core.metadata import INPUT_UINT8_NHWC_BGR, ModelMeta, file_sha256

if TYPE_CHECKING:  # onnx comes with the export extra; `lgcnet quantize -h` must not need it
    import onnx

DEFAULT_LIST = Path(__file__).resolve().parent / "calibration" / "camvid_train.txt"


def calibration_frames(list_file: str | Path = DEFAULT_LIST, root: str | Path | None = None,
                       limit: int | None = None) -> list[Path]:
    """Image paths named (relative to the CamVid root) one per line in `list_file`."""
    list_file, root = Path(list_file), require_camvid(root, "train")
    if not list_file.is_file():
        raise MissingFileError(f"calibration list not found: {list_file}")
    names = [ln.strip() for ln in list_file.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    paths = [root / n for n in names[:limit]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingFileError(f"{len(missing)} calibration frame(s) missing, e.g. "
                               f"{missing[0]}; set LGCNET_CAMVID or pass --data")
    return paths


def frames_digest(frames: Sequence[Path]) -> str:
    """A digest of the frames' contents, in order: calibration caches key on it."""
    return hashlib.sha256("".join(map(file_sha256, frames)).encode()).hexdigest()[:12]


def _node_names_outside_network(model: onnx.ModelProto) -> list[str]:
    """Nodes before the first Conv (input normalisation) and from the classifier (the last
    Conv) on: logits, their upsampling and ArgMax decide labels on small margins."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    return [n.name for n in nodes[:convs[0]] + nodes[convs[-1]:]]


class _FrameReader:
    """ONNX Runtime CalibrationDataReader over frames, resized to the model's input."""

    def __init__(self, paths: Sequence[Path], meta: ModelMeta, input_name: str) -> None:
        import cv2

        h, w = meta.input_size
        frames = [cv2.resize(read_image(p), (w, h)) for p in paths]
        if meta.input_format == INPUT_UINT8_NHWC_BGR:
            batches = [f[None] for f in frames]
        else:
            mean, std = np.asarray(meta.mean_rgb, np.float32), np.asarray(meta.std_rgb, np.float32)
            batches = [(((f[..., ::-1] / 255.0) - mean) / std).astype(np.float32)
                       .transpose(2, 0, 1)[None] for f in frames]
        self._it: Iterator = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)


QDQ_FOR_TENSORRT, QDQ_FOR_ORT_CPU = "tensorrt", "cpu"  # the --target values
TARGETS = (QDQ_FOR_TENSORRT, QDQ_FOR_ORT_CPU)
# ModelOpt's TensorRT settings for ONNX Runtime's quantiser (NVIDIA/TensorRT-Model-Optimizer
# modelopt/onnx/quantization/ort_utils.py, configure_ort: trt_guided_options), less
# AddQDQPairToWeight (we store int8 weights, which TensorRT dequantizes the same way).
WEIGHTED_OPS = ("Conv", "ConvTranspose")
TENSORRT_QDQ_OPTIONS = {
    "ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0},  # Cout; ConvTranspose: per tensor
    "DedicatedQDQPair": False, "ForceQuantizeNoInputCheck": True,
}


def _tensorrt_placement(model: onnx.ModelProto) -> dict:
    """quantize_static's arguments for the tensorrt target: TENSORRT_QDQ_OPTIONS, no output
    Q/DQ, and ConvTranspose weights per tensor (a per-tensor override per weight)."""
    from onnxruntime.quantization import QuantType

    per_tensor = {n.input[1]: [{"quant_type": QuantType.QInt8, "symmetric": True}]
                  for n in model.graph.node if n.op_type == "ConvTranspose"}
    return dict(op_types_to_quantize=list(WEIGHTED_OPS), extra_options={
        **TENSORRT_QDQ_OPTIONS, "TensorQuantOverrides": per_tensor,
        "OpTypesToExcludeOutputQuantization": sorted({n.op_type for n in model.graph.node})})


def quantize_int8(fp32_onnx: str | Path, out: str | Path, frames: Sequence[Path],
                  target: str = QDQ_FOR_TENSORRT, method: str = "minmax",
                  cache_dir: Path | None = None) -> Path:
    """Write a QDQ int8 copy of `fp32_onnx` calibrated on `frames`; keeps its metadata."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise BadInputError(f"unknown calibration method {method!r}; use {', '.join(methods)}")
    if target not in TARGETS:
        raise BadInputError(f"unknown target {target!r}; use {' or '.join(TARGETS)}")
    if not frames:
        raise BadInputError("no calibration frames")
    fp32_onnx, out = Path(fp32_onnx), Path(out)
    model = onnx.load(str(fp32_onnx))  # quantize_static gets the path: it mutates protos
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    if meta.precision != "fp32":
        raise BadInputError(f"{fp32_onnx} is {meta.precision}; quantise the fp32 export")
    cache_dir = cache_dir or cache_root() / "calibration"
    cache_dir.mkdir(parents=True, exist_ok=True)
    # ranges are collected for the tensors the placement quantizes, so per target; a folder
    # of other frames (or the same names with new contents) is another calibration
    key = f"{file_sha256(fp32_onnx)[:12]}-{method}-{len(frames)}-{frames_digest(frames)}-{target}"
    for_tensorrt = target == QDQ_FOR_TENSORRT
    placement = _tensorrt_placement(model) if for_tensorrt else dict(
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    tmp = out.with_name(out.name + ".partial")
    quantize_static(
        str(fp32_onnx), str(tmp), _FrameReader(frames, meta, model.graph.input[0].name),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8,
        weight_type=QuantType.QInt8, calibrate_method=methods[method],
        nodes_to_exclude=_node_names_outside_network(model),
        calibration_cache_path=str(cache_dir / f"{key}.json"), **placement)
    q = onnx.load(str(tmp))
    calib = {"frames": len(frames), "method": method, "target": target,
             "cache": str(cache_dir / f"{key}.json"), "fp32_sha256": file_sha256(fp32_onnx)}
    props = meta.replace(precision="int8", extra={**meta.extra, "calibration": calib}).to_props()
    del q.metadata_props[:]
    onnx.helper.set_model_props(q, props)
    onnx.save(stamp_weights_digest(q), str(tmp))
    tmp.replace(out)
    (cache_dir / f"{key}.meta.json").write_text(json.dumps(
        {**calib, "frame_list": [str(p.name) for p in frames]}, indent=2))
    return out
