"""Classical restoration baselines of the paper: Deblur (+GAN) and Deblock (+GAN).

- :func:`deblur`: non-blind deconvolution with a hyper-Laplacian gradient prior (Krishnan & Fergus 2009),
  given each image's true kernel (the paper's "Deblur+GAN\u2020").
- :func:`deblock`: JPEG artefact reduction, a substitute for the pointwise SA-DCT deblocking the paper
  used: Debian's ``jpegqs`` where installed, else a self-written DCT-domain method
  (see :mod:`bncr.baselines.deblocking`).

Both take HxWx3 images and are deterministic; measured in docs/research/baselines.md.
"""
from .deblocking import deblock, jpeg_sigma, quant_tables, resolve_method
from .deconv import DEFAULT_ALPHA, DEFAULT_LAMBDA, deblur, hyper_laplacian_shrink

__all__ = ["deblur", "deblock", "resolve_method", "hyper_laplacian_shrink", "quant_tables", "jpeg_sigma",
           "DEFAULT_LAMBDA", "DEFAULT_ALPHA"]
