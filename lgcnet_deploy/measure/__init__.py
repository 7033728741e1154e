"""Stage 4, measuring deployed models: mIoU evaluation through the Segmenter and latency
benchmarks (the paper's setting, the LR-ASPP peer, plots)."""
