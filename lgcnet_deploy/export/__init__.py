"""Stage 2, network → deployable artifact: BatchNorm folding, the in-graph I/O wrapper (uint8
BGR in, class map out), ONNX export, FP16 and INT8 graphs, TensorRT engines with their sidecar,
and `pipeline.make_artifact`, the one entry from a model source to a file."""
