"""The GPU-touching calls of the smoke (gpu_smoke.py), made with the SDK's own build, engine
runtime, quantiser and ONNX Runtime backend, on the shipped CamVid model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lgcnet_deploy.artifact.engine import cuda
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_deploy.model.shipped import resolve_model

SHIPPED = "lgcnet-camvid"


class Toolbox:
    """Everything the smoke steps do to a GPU, in `workdir`; calibration frames from CamVid's
    train split at `data` (default: LGCNET_CAMVID)."""

    def __init__(self, workdir: Path, data: str | Path | None = None) -> None:
        self.workdir, self.data = Path(workdir), data
        self.workdir.mkdir(parents=True, exist_ok=True)

    def device_count(self) -> int:
        return cuda.device_count()

    def versions(self) -> dict[str, str | None]:
        return cuda.versions()

    def static_onnx(self) -> Path:
        return Path(resolve_model(SHIPPED, ".onnx"))

    def meta(self) -> ModelMeta:
        import onnx

        model = onnx.load(str(self.static_onnx()), load_external_data=False)
        return ModelMeta.from_props({p.key: p.value for p in model.metadata_props})

    def input_size(self) -> tuple[int, int]:
        return self.meta().input_size

    def dynamic_onnx(self) -> Path:
        """The shipped checkpoint exported with a dynamic batch (needs the export extra)."""
        from lgcnet_deploy.export.pipeline import export_onnx
        from lgcnet_deploy.model.checkpoint import load_checkpoint

        net, _, _ = load_checkpoint(resolve_model(SHIPPED, ".pt"))
        return export_onnx(net, self.meta(), self.workdir / "dynamic.onnx", dynamic_batch=True)

    def build(self, onnx_path: Path, engine: Path, **options: Any) -> Path:
        """`lgcnet build`: the export chain's precision step, then the engine."""
        from lgcnet_deploy.export.pipeline import make_engine

        return make_engine(onnx_path, engine, progress=False, **options)

    def engine_io(self, engine: Path) -> list[dict[str, Any]]:
        from lgcnet_deploy.artifact.engine import read_sidecar

        return read_sidecar(engine)["io"]

    def load(self, engine: Path, device: str = "cuda", cuda_graph: bool = True) -> Any:
        from lgcnet_deploy.runtime.backends.tensorrt_engine import TensorRTBackend

        return TensorRTBackend(engine, device, cuda_graph=cuda_graph)

    def calibration(self, n: int) -> list[Path]:
        from lgcnet_deploy.export.int8 import calibration_frames

        return calibration_frames(root=self.data, limit=n)

    def frames(self, n: int) -> np.ndarray:
        """n calibration frames at the model's input size, BGR uint8 NHWC."""
        import cv2

        from lgcnet_deploy.core.data import read_image

        h, w = self.input_size()
        return np.stack([cv2.resize(read_image(p), (w, h)) for p in self.calibration(n)])

    def reference(self, onnx_path: Path, frames: np.ndarray) -> np.ndarray:
        """Masks from ONNX Runtime on the CPU, one frame at a time."""
        from lgcnet_deploy.runtime.backends.onnx_runtime import OnnxRuntimeBackend

        with OnnxRuntimeBackend(onnx_path, "cpu") as backend:
            return np.concatenate([backend.infer(f[None]) for f in frames])

    def quantize(self, onnx_path: Path, out: Path, frames: list[Path]) -> Path:
        from lgcnet_deploy.export.int8 import quantize_int8

        return quantize_int8(onnx_path, out, frames, cache_dir=self.workdir / "calibration")

    def int8_layers(self, engine: Path) -> int:
        """Layers the engine inspector shows with INT8 tensors (a DETAILED build)."""
        from lgcnet_deploy.artifact.engine import import_tensorrt, trt_logger

        trt = import_tensorrt()
        runtime = trt.Runtime(trt_logger(trt))
        loaded = runtime.deserialize_cuda_engine(engine.read_bytes())
        info = json.loads(loaded.create_engine_inspector().get_engine_information(
            trt.LayerInformationFormat.JSON))
        return sum("Int8" in json.dumps(layer) for layer in info.get("Layers", []))

    def ort_session_providers(self, onnx_path: Path) -> list[str]:
        import onnxruntime as ort

        from lgcnet_deploy.measure.gpu_smoke import SmokeSkip
        from lgcnet_deploy.runtime.backends.onnx_runtime import ORT_TENSORRT, OnnxRuntimeBackend

        if ORT_TENSORRT not in ort.get_available_providers():
            raise SmokeSkip("this onnxruntime has no TensorRT provider (onnxruntime-gpu)")
        with OnnxRuntimeBackend(onnx_path, "tensorrt") as backend:
            return backend.providers()

    def failed_capture(self) -> None:
        """A capture whose enqueue raises: its error comes back, and the same stream then
        captures and replays a copy."""
        stream = cuda.Stream()
        buf = cuda.HostDeviceBuffer((256,), np.float32)
        try:
            def broken() -> None:
                buf.to_device(stream)
                raise RuntimeError("enqueue failed on purpose")

            try:
                cuda.Graph(stream, broken)
            except RuntimeError as e:
                if "on purpose" not in str(e):
                    raise
            graph = cuda.Graph(stream, lambda: (buf.to_device(stream), buf.to_host(stream)))
            buf.host[:] = 7
            graph.launch()
            stream.synchronize()
            graph.close()
            if not (buf.host == 7).all():
                raise RuntimeError("the replayed graph did not round-trip the buffer")
        finally:
            buf.close()
            stream.close()
