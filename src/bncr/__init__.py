"""bncr: blur, noise and compression robust GANs (Kaneko & Harada, CVPR 2021)."""
__version__ = "0.1.0"
