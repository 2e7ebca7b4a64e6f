"""Restore a degraded training set image by image (the data of the Deblur+GAN / Deblock+GAN models).

Each image is restored with its own ground truth, drawn again from (setting, data seed, index) exactly as
the degraded dataset drew it (:func:`bncr.degradations.settings.sample_params`):

- ``"deblur"``: :func:`bncr.baselines.deblur` with the image's true kernel (the paper's Deblur+GAN\u2020);
  images the setting did not blur (E-G, O-Q) are kept as they are.
- ``"deblock"``: :func:`bncr.baselines.deblock` at the image's true JPEG quality; with ``jpegqs`` it is fed
  the image's original JPEG file, regenerated from the same ground truth (checked to decode to the training
  image); images the setting did not compress (K-M, O-Q) are kept as they are.

:func:`restore_options` lists everything besides the data that decides the result (method after "auto",
options, versions of the code and programs involved); the training loop keys its cache on it.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..degradations.jpeg import jpeg_decode, jpeg_encode
from ..degradations.settings import DegradationParams, Setting, apply_degradation, sample_params
from ..errors import UserError
from .deblocking import DEFAULT_JPEGQS_LEVEL, DEFAULT_K, deblock, resolve_method
from .deconv import DEFAULT_ALPHA, DEFAULT_LAMBDA, deblur

RESTORERS = ("deblur", "deblock")
# Bump when this module or the restorers change what they compute for the same options (it is in the cache key).
CODE_VERSION = 1
_DEGRADED_BY = {"deblur": "blurred", "deblock": "compressed"}


def check_restorer(name: str) -> str:
    if name not in RESTORERS:
        raise UserError(f"unknown restoration {name!r}: choose one of {', '.join(RESTORERS)}")
    return name


@functools.lru_cache(maxsize=None)
def jpegqs_version() -> str:
    """First line of ``jpegqs --version`` (program and release), or "" if it cannot be run."""
    exe = shutil.which("jpegqs")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10) if exe else None
    except (OSError, subprocess.SubprocessError):
        return ""
    text = ((out.stdout or out.stderr) if out else "").strip()
    if not text:
        return ""
    line = text.splitlines()[0]   # "JPEG Quant Smooth : Copyright (C) ... : 1.20210408"
    release = line.rsplit(":", 1)[-1].strip()
    return f"jpegqs {release}" if line.count(":") >= 1 and release and " " not in release else line


def restore_options(name: str) -> dict[str, Any]:
    """Everything besides the data that decides the restored images (JSON-able, resolved: no "auto")."""
    import PIL
    import scipy

    from .. import __version__
    check_restorer(name)
    opts: dict[str, Any] = {"restore": name, "code": CODE_VERSION, "bncr": __version__, "numpy": np.__version__}
    if name == "deblur":
        # FFT solves: scipy / numpy releases may move the last bits, and so a rounded pixel
        opts.update(method="krishnan-fergus", kernel="true", lam=DEFAULT_LAMBDA, alpha=DEFAULT_ALPHA,
                    scipy=scipy.__version__)
        return opts
    method = resolve_method("auto")   # jpegqs where installed, else dct: the cache must know which
    opts.update(method=method, quality="true", pillow=PIL.__version__)
    if method == "jpegqs":
        opts.update(jpegqs_level=DEFAULT_JPEGQS_LEVEL, jpeg="original file", jpegqs=jpegqs_version())
    else:
        opts.update(k=DEFAULT_K, step=1, project=True, sigma_scale=1.0, scipy=scipy.__version__)
    return opts


def describe(opts: dict[str, Any]) -> str:
    """One line for logs: what restored the images."""
    if opts["restore"] == "deblur":
        return (f"deblurred with each image's true kernel (Krishnan-Fergus, lambda {opts['lam']:g}, "
                f"alpha {opts['alpha']:.3g})")
    extra = f", {opts['jpegqs']}" if opts.get("jpegqs") else ""
    return f"deblocked at each image's true JPEG quality (method {opts['method']}{extra})"


def original_jpeg(x: np.ndarray, y: np.ndarray, p: DegradationParams, noise_rng: np.random.Generator) -> bytes | None:
    """The JPEG file that decoded to training image `y`, regenerated from clean `x` and its ground truth.

    None if it does not decode to `y` (then the deblocker re-encodes `y` at the same quality instead).
    """
    pre = apply_degradation(x, replace(p, compressed=False, quality=None), noise_rng)
    data = jpeg_encode(pre, int(p.quality))
    return data if np.array_equal(jpeg_decode(data), y) else None


def restore_images(y: np.ndarray, x: np.ndarray, setting: Setting, data_seed: int, opts: dict[str, Any],
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(restored images, mask of the images that were restored) of degraded `y` (N, H, W, 3) uint8.

    `x`: the clean images y was made from (only "deblock" with jpegqs reads them, to regenerate the JPEG
    files). `opts`: :func:`restore_options`. Deterministic: a pure function of its inputs.
    """
    name = check_restorer(opts["restore"])
    out = y.copy()
    done = np.zeros(len(y), dtype=bool)
    regenerated_failed = 0
    for i in tqdm(range(len(y)), desc=f"{name}: restoring {len(y)} images of setting {setting.name}", unit="img",
                  disable=not progress, mininterval=1.0):
        p, rn = sample_params(setting, data_seed, i)
        if name == "deblur":
            if p.blurred:
                out[i] = deblur(y[i], p.kernel, lam=opts["lam"], alpha=opts["alpha"])
                done[i] = True
        elif p.compressed:
            jpeg = None
            if opts["method"] == "jpegqs":
                jpeg = original_jpeg(x[i], y[i], p, rn)
                regenerated_failed += jpeg is None
                out[i] = deblock(y[i], p.quality, "jpegqs", jpeg=jpeg, jpegqs_level=opts["jpegqs_level"])
            else:
                out[i] = deblock(y[i], p.quality, opts["method"], k=opts["k"], step=opts["step"],
                                 project=opts["project"], sigma_scale=opts["sigma_scale"])
            done[i] = True
    if regenerated_failed:
        warnings.warn(f"deblock: the original JPEG file of {regenerated_failed} of {int(done.sum())} images could not "
                      f"be regenerated (it did not decode to the training image); jpegqs got them re-encoded")
    return out, done


def degraded_by(name: str) -> str:
    """What the images that `name` restores are: "blurred" or "compressed"."""
    return _DEGRADED_BY[check_restorer(name)]
