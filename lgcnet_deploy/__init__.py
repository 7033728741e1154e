"""lgcnet-deploy: LGCNet real-time semantic segmentation, from genotype to TensorRT engine."""

__version__ = "0.1.0"

from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.runtime.segmenter import Result, Segmenter

__all__ = ["Genotype", "Result", "Segmenter", "__version__", "load_genotype"]
