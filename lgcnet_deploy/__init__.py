"""lgcnet-deploy: LGCNet real-time semantic segmentation, from genotype to TensorRT engine."""

__version__ = "0.1.0"

from .genotype import Genotype, load_genotype
from .segmenter import Result, Segmenter

__all__ = ["Genotype", "Result", "Segmenter", "__version__", "load_genotype"]
