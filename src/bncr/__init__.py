"""bncr: blur, noise and compression robust GANs (Kaneko & Harada, CVPR 2021)."""
__version__ = "0.1.0"


def load_generator(path, device=None):
    """G_x (EMA) of a run directory or snapshot: ``G = bncr.load_generator("runs/demo")``."""
    from .api import load_generator as _load
    return _load(path, device)
