"""What a model file is: its weights digest and I/O checks, what it describes of itself, an
engine's sidecar and I/O, and the TensorRT/CUDA glue that reads engines."""
