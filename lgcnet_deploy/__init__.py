"""lgcnet-deploy: LGCNet real-time semantic segmentation, from genotype to TensorRT engine."""

from lgcnet_deploy.core.version import __version__
from lgcnet_deploy.model.genotype import Genotype, load_genotype
from lgcnet_deploy.runtime.result import Result
from lgcnet_deploy.runtime.segmenter import Segmenter

__all__ = ["Genotype", "Result", "Segmenter", "__version__", "load_genotype"]
