"""JPEG deblocking of decoded images (the "Deblock" of the paper's Deblock+GAN baseline).

The paper used pointwise shape-adaptive DCT deblocking (Foi, Katkovnik & Egiazarian, IEEE TIP 2007),
available only as closed MATLAB code. Every method here is a substitute for it:

- ``"jpegqs"``: Debian's ``jpegqs`` program (JPEG Quant Smooth, LGPL; ``apt-get install jpegqs``), which
  smooths the DCT coefficients of the JPEG bitstream within their quantisation intervals. It is fed
  the original file when given as ``jpeg=``, else ``y`` re-encoded at ``quality`` (same tables, so
  nearly the same coefficients: measured within 0.1 dB of the original file). Best PSNR measured.
- ``"dct"`` (self-written, NumPy/SciPy only): shift-averaged 8x8 DCT hard thresholding in YCbCr with
  the noise level of the quantisation tables (Foi et al.'s rule, :func:`jpeg_sigma`), i.e. a relative
  of pointwise SA-DCT without the adaptive shapes, then projection of the luma's block-DCT
  coefficients onto the quantisation cells of the decoded indices (quantisation constraint).
- ``"bm3d"``: the PyPI ``bm3d`` package (same group as SA-DCT; non-commercial licence, hence optional:
  ``pip install bm3d``) on YCbCr with per-channel noise levels from the same rule, block matching on
  luma. About 1 s per channel and call whatever the image size, and no better than jpegqs.

``method="auto"`` is ``"jpegqs"`` where the program is installed, else ``"dct"`` (choice and numbers:
docs/research/baselines.md); :func:`resolve_method` says which one a call will use, so that a cache
of restored images can record it. Colour conversion is libjpeg's JFIF full-range YCbCr; the tables
are the IJG tables scaled by libjpeg's quality rule, i.e. what Pillow writes
(src/bncr/degradations/jpeg.py).
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile

import numpy as np
from PIL import Image
from scipy.fft import dctn, idctn

from ..errors import UserError
from ._checks import check_quality, positive

METHODS = ("auto", "jpegqs", "dct", "bm3d")
# defaults chosen by measurement on the tuning split (docs/research/baselines.md)
DEFAULT_K = 4.0            # "dct": hard threshold in units of the table's sigma
DEFAULT_JPEGQS_LEVEL = 6   # "jpegqs": its -q (1..6), the program's strongest setting

# JPEG standard (ITU T.81, Annex K) base tables, natural (row-major) order.
_LUMA_BASE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64).reshape(8, 8)
_CHROMA_BASE = np.full((8, 8), 99, dtype=np.int64)
_CHROMA_BASE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def quant_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) 8x8 quantisation tables of libjpeg at `quality` (baseline: entries 1..255)."""
    q = check_quality(quality)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(np.clip((b * scale + 50) // 100, 1, 255).astype(np.float64)  # type: ignore[return-value]
                 for b in (_LUMA_BASE, _CHROMA_BASE))


def jpeg_sigma(table: np.ndarray) -> float:
    """Equivalent noise std (grey levels) of a JPEG channel quantised with `table` (Foi et al. 2007).

    sigma^2 = 0.69 * qbar^1.3, qbar = mean of the table's 3x3 lowest-frequency entries: the empirical
    rule of the pointwise SA-DCT deblocking paper (Sec. on deblocking), as we recall it; the
    benchmark checks the scale around it (``sigma_scale``).
    """
    qbar = float(np.mean(table[:3, :3]))
    return float(np.sqrt(0.69 * qbar ** 1.3))


def rgb_to_ycbcr(x: np.ndarray) -> np.ndarray:
    """JFIF full-range YCbCr (0..255 floats) of an RGB float array in 0..255."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                     -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0,
                     0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0], axis=-1)


def ycbcr_to_rgb(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`."""
    y, cb, cr = x[..., 0], x[..., 1] - 128.0, x[..., 2] - 128.0
    return np.stack([y + 1.402 * cr, y - 0.344136286 * cb - 0.714136286 * cr, y + 1.772 * cb], axis=-1)


def _blocks(a: np.ndarray) -> np.ndarray:
    """(H, W) with H, W multiples of 8 -> (H/8, W/8, 8, 8) view of the 8x8 blocks."""
    h, w = a.shape
    return a.reshape(h // 8, 8, w // 8, 8).swapaxes(1, 2)


def _unblocks(b: np.ndarray) -> np.ndarray:
    n, m = b.shape[:2]
    return b.swapaxes(1, 2).reshape(n * 8, m * 8)


def dct_threshold(channel: np.ndarray, sigma: float, k: float = DEFAULT_K, step: int = 1) -> np.ndarray:
    """Shift-averaged 8x8 DCT hard thresholding of one channel (0..255 floats) at k * sigma.

    For each of the (8/step)^2 shifts of the block grid the blocks' orthonormal DCT coefficients
    below k * sigma are zeroed (the DC kept); the estimates are averaged with weights 1 / (1 + number
    of kept coefficients) of their block, so smooth blocks (few coefficients, little noise left)
    count more, as in BM3D / SA-DCT aggregation.
    """
    if sigma <= 0:
        return channel.copy()
    h, w = channel.shape
    ph, pw = 8 + (-h) % 8, 8 + (-w) % 8    # room for every shift, sizes multiple of 8
    big = np.pad(channel, ((8, ph), (8, pw)), mode="reflect")
    acc = np.zeros_like(big)
    wsum = np.zeros_like(big)
    thr = k * sigma
    H8, W8 = (big.shape[0] - 8) // 8 * 8, (big.shape[1] - 8) // 8 * 8
    for sy in range(0, 8, step):
        for sx in range(0, 8, step):
            win = big[sy:sy + H8, sx:sx + W8]
            c = dctn(_blocks(win), axes=(2, 3), norm="ortho")
            keep = np.abs(c) >= thr
            keep[..., 0, 0] = True
            c = np.where(keep, c, 0.0)
            rec = idctn(c, axes=(2, 3), norm="ortho")
            wt = 1.0 / (1.0 + keep.sum(axis=(2, 3)))
            acc[sy:sy + H8, sx:sx + W8] += _unblocks(rec * wt[..., None, None])
            wsum[sy:sy + H8, sx:sx + W8] += _unblocks(np.broadcast_to(wt[..., None, None], rec.shape))
    out = acc / np.maximum(wsum, 1e-12)
    return out[8:8 + h, 8:8 + w]


def quantisation_project(luma: np.ndarray, decoded_luma: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Project `luma`'s JPEG-grid block DCT onto the cells [(n-1/2) Q, (n+1/2) Q] of the decoded indices.

    The indices n = round(DCT(decoded - 128) / Q) are read back from the decoded image; blocks cut by
    the image border (sizes not multiples of 8) are left as they are.
    """
    h, w = luma.shape
    hb, wb = h // 8 * 8, w // 8 * 8
    out = luma.copy()
    if hb == 0 or wb == 0:
        return out
    c = dctn(_blocks(luma[:hb, :wb] - 128.0), axes=(2, 3), norm="ortho")
    n = np.round(dctn(_blocks(decoded_luma[:hb, :wb] - 128.0), axes=(2, 3), norm="ortho") / table)
    c = np.clip(c, (n - 0.5) * table, (n + 0.5) * table)
    out[:hb, :wb] = _unblocks(idctn(c, axes=(2, 3), norm="ortho")) + 128.0
    return out


def _deblock_dct(y: np.ndarray, q: int, sigma_scale: float, k: float, step: int, project: bool) -> np.ndarray:
    lt, ct = quant_tables(q)
    ycc = rgb_to_ycbcr(y.astype(np.float64))
    sig = (sigma_scale * jpeg_sigma(lt), sigma_scale * jpeg_sigma(ct), sigma_scale * jpeg_sigma(ct))
    out = np.stack([dct_threshold(ycc[..., c], sig[c], k, step) for c in range(3)], axis=-1)
    if project:
        out[..., 0] = quantisation_project(out[..., 0], ycc[..., 0], lt)
    return ycbcr_to_rgb(out)


def _deblock_bm3d(y: np.ndarray, q: int, sigma_scale: float) -> np.ndarray:
    try:
        import bm3d  # noqa: PLC0415 - optional, non-commercial licence
    except ImportError:
        raise UserError("deblock method 'bm3d' needs the optional package bm3d (non-commercial licence): "
                        "pip install bm3d") from None
    lt, ct = quant_tables(q)
    ycc = rgb_to_ycbcr(y.astype(np.float64)) / 255.0
    sig = [sigma_scale * jpeg_sigma(t) / 255.0 for t in (lt, ct, ct)]
    out = bm3d.bm3d(ycc, sig)          # multichannel: block matching on the first channel (luma)
    return ycbcr_to_rgb(np.asarray(out, dtype=np.float64) * 255.0)


def _deblock_jpegqs(y: np.ndarray, q: int, jpeg: bytes | None, level: int) -> np.ndarray:
    exe = shutil.which("jpegqs")
    if exe is None:
        raise UserError("deblock method 'jpegqs' needs the jpegqs program (Debian: apt-get install jpegqs)")
    if jpeg is None:  # re-encode: the same tables, so nearly the original bitstream
        buf = io.BytesIO()
        Image.fromarray(y, mode="RGB").save(buf, format="JPEG", quality=q)
        jpeg = buf.getvalue()
    with tempfile.TemporaryDirectory(prefix="bncr-jpegqs-") as d:
        src, dst = os.path.join(d, "in.jpg"), os.path.join(d, "out.jpg")
        with open(src, "wb") as fh:
            fh.write(jpeg)
        r = subprocess.run([exe, "-q", str(level), "-t", "1", "-i", "0", src, dst], capture_output=True)
        if r.returncode != 0 or not os.path.exists(dst):
            raise UserError(f"jpegqs failed (exit {r.returncode}): {r.stderr.decode(errors='replace').strip()[:200]}")
        with Image.open(dst) as im:
            out = np.asarray(im.convert("RGB"), dtype=np.float64)
    if out.shape != y.shape:
        raise UserError(f"jpeg= holds an image of shape {out.shape}, y has shape {y.shape}")
    return out


def resolve_method(method: str = "auto") -> str:
    """The method a :func:`deblock` call with `method` runs: "auto" -> "jpegqs" if installed, else "dct"."""
    if method not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return "jpegqs" if shutil.which("jpegqs") else "dct"
    return method


def deblock(y: np.ndarray, quality: int, method: str = "auto", *, sigma_scale: float = 1.0,
            k: float = DEFAULT_K, step: int = 1, project: bool = True, jpeg: bytes | None = None,
            jpegqs_level: int = DEFAULT_JPEGQS_LEVEL) -> np.ndarray:
    """Reduce the JPEG artefacts of `y` (HxWx3 uint8, decoded from a JPEG of `quality` 1..100).

    method: "auto" ("jpegqs" if installed, else "dct"), "jpegqs" (optional program), "dct" or
    "bm3d" (optional package); see the module doc. sigma_scale multiplies the noise level of the
    quantisation tables (dct, bm3d); k (threshold in units of sigma), step (grid shift step, 1..8)
    and project (quantisation constraint on luma) tune "dct"; jpeg (the original JPEG bytes) and
    jpegqs_level (1..6) tune "jpegqs". Returns uint8 HxWx3; deterministic (jpegqs runs one thread).
    """
    if not isinstance(y, np.ndarray) or y.dtype != np.uint8 or y.ndim != 3 or y.shape[2] != 3:
        desc = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise UserError(f"y must be an HxWx3 uint8 image decoded from a JPEG, got {desc}")
    q = check_quality(quality)
    m = resolve_method(method)
    sigma_scale = positive(sigma_scale, "sigma_scale")
    k = positive(k, "k")
    if int(step) != step or not 1 <= step <= 8:
        raise UserError(f"step must be an integer in 1..8, got {step!r}")
    if m == "dct":
        out = _deblock_dct(y, q, sigma_scale, k, int(step), bool(project))
    elif m == "bm3d":
        out = _deblock_bm3d(y, q, sigma_scale)
    else:
        if int(jpegqs_level) != jpegqs_level or not 1 <= jpegqs_level <= 6:
            raise UserError(f"jpegqs_level must be an integer in 1..6, got {jpegqs_level!r}")
        out = _deblock_jpegqs(y, q, jpeg, int(jpegqs_level))
    return np.round(np.clip(out, 0.0, 255.0)).astype(np.uint8)
