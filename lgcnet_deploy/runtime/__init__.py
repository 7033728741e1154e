"""Stage 3, artifact → class maps: one backend interface (ONNX Runtime, PyTorch, PyTorch CUDA,
TensorRT engine), the `Segmenter` with the one pre/post-processing path, and video sources and
writers."""
