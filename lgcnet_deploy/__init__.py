"""lgcnet-deploy: LGCNet real-time semantic segmentation, from genotype to TensorRT engine."""

__version__ = "0.1.0"
