"""Networks: ResNet G_x / D_y, degradation generators G_k, G_n, G_q and P-AmbientGAN parameters."""
from .degradation_generators import (KernelGenerator, KernelParameter, NoiseParameter, NoiseParamGenerator,
                                     QualityGenerator, QualityParameter)
from .resnet import ResNetDiscriminator, ResNetGenerator

__all__ = ["ResNetGenerator", "ResNetDiscriminator", "KernelGenerator", "KernelParameter", "QualityGenerator",
           "QualityParameter", "NoiseParamGenerator", "NoiseParameter"]
