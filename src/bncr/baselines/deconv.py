"""Non-blind deconvolution with a hyper-Laplacian gradient prior (Krishnan & Fergus, NIPS 2009).

Given y = k * x (+ small noise) and the kernel k, it minimises per channel

    lambda/2 ||k * x - y||^2 + sum_i |(d_h x)_i|^alpha + |(d_v x)_i|^alpha

by half-quadratic splitting: auxiliary gradients w = (w_h, w_v) and a coupling weight beta,

    lambda/2 ||k * x - y||^2 + beta/2 ||d x - w||^2 + sum |w|^alpha,

alternating the x-step (quadratic, solved exactly in the Fourier domain with first-difference
filters d_h = [-1, 1], d_v = [-1, 1]^T) and the w-step (independent per pixel: the minimiser of
|w|^alpha + beta/2 (w - v)^2, see :func:`hyper_laplacian_shrink`), while beta grows from 1 by
2*sqrt(2) while below 256 (the paper's continuation: 1, 2.8, 8, ..., 181). Images are in [0, 1].

Boundaries: the FFT solve is circular, so the image is padded by reflection (``pad`` pixels per
side, default 2 x the kernel size; the reflection matches how the project blurs,
``scipy.ndimage.convolve(mode="mirror")``) and the padded margin is edge-tapered: blended, with a
raised-cosine weight falling from 1 at the image to 0 at the circular seam, into its own circular
blur. The data at the seam then agree with the circular model, so the solve does not ring there
(without the taper a 2 x K reflection margin alone left ringing across the whole 32 x 32 image for
disk kernels, whose spectra have zeros). The reflected margin is exact data only for kernels
symmetric in each axis (disks); for the others (motion) a second solve takes the margin from the
first estimate (see :func:`deblur`'s ``passes``). The margin is cropped after the solve.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ._checks import check_kernel, float_to_like, image_to_float, positive

# lambda (data weight, images in [0, 1]) chosen by measurement: the best mean PSNR over photo crops
# (tuning split) and shapes, blurred by the kernels of settings B / C and their FFHQ variants, with
# no noise but uint8 rounding, as in settings B-G (docs/research/baselines.md). Noisy data want less.
DEFAULT_LAMBDA = 32000.0
DEFAULT_ALPHA = 2.0 / 3.0


def hyper_laplacian_shrink(v: np.ndarray, beta: float, alpha: float = DEFAULT_ALPHA,
                           tol: float = 1e-10, max_iter: int = 60) -> np.ndarray:
    """The w-step: argmin_w |w|^alpha + beta/2 (w - v)^2 for every entry of `v` (0 < alpha <= 1).

    alpha = 1 is soft thresholding. For 0 < alpha < 1 the minimiser is 0 or the largest root of the
    stationarity condition g(w) = alpha w^(alpha-1) + beta (w - |v|) = 0 on w > 0 (sign of v put back);
    for alpha = 2/3 that root is the relevant root of Krishnan & Fergus' quartic
    w^4 - 3|v| w^3 + 3 v^2 w^2 - |v|^3 w + 8 / (27 beta^3) = 0. g is convex on w > 0, so Newton's
    method started at w = |v| (right of the root) decreases monotonically onto it; it is run to
    `tol`, i.e. the exact minimiser, vectorised. A root exists only where g's minimum, at
    w_m = (alpha (1 - alpha) / beta)^(1 / (2 - alpha)), is <= 0 and |v| > w_m; the root then wins
    over w = 0 where its cost is lower.
    """
    if alpha == 1.0:
        return np.sign(v) * np.maximum(np.abs(v) - 1.0 / beta, 0.0)
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be in (0, 1], got {alpha}")
    a = np.abs(v)
    w_m = (alpha * (1.0 - alpha) / beta) ** (1.0 / (2.0 - alpha))
    g_min = alpha * w_m ** (alpha - 1.0) + beta * (w_m - a)
    cand = (a > w_m) & (g_min <= 0.0)
    out = np.zeros_like(a)
    if cand.any():
        av = a[cand]
        w = av.copy()
        for _ in range(max_iter):
            g = alpha * w ** (alpha - 1.0) + beta * (w - av)
            dg = alpha * (alpha - 1.0) * w ** (alpha - 2.0) + beta
            step = g / dg
            w = np.maximum(w - step, w_m)    # monotone from the right; the clamp only guards rounding
            if np.max(np.abs(step)) <= tol * max(1.0, float(av.max())):
                break
        keep = w ** alpha + 0.5 * beta * (w - av) ** 2 < 0.5 * beta * av ** 2
        out[cand] = np.where(keep, w, 0.0)
    return np.sign(v) * out


def psf2otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fourier transform of `kernel` zero-padded to `shape`, its centre (K1//2, K2//2) moved to (0, 0).

    Multiplying by it is circular convolution, equal to scipy.ndimage.convolve away from the border.
    """
    k1, k2 = kernel.shape
    big = np.zeros(shape, dtype=np.float64)
    big[:k1, :k2] = kernel
    big = np.roll(big, (-(k1 // 2), -(k2 // 2)), axis=(0, 1))
    return np.fft.fft2(big)


def _ramp(n: int, p: int) -> np.ndarray:
    """Length-n weights: raised cosine from ~0 at both ends up to 1 over p samples, 1 in between."""
    a = np.ones(n)
    if p > 0:
        r = np.sin(0.5 * np.pi * (np.arange(p) + 0.5) / p) ** 2
        a[:p], a[n - p:] = r, r[::-1]
    return a


def pad_and_taper(f: np.ndarray, kernel: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad HxWxC `f` by `pad` per side and edge-taper the margin; returns (padded, OTF of kernel).

    Taper: padded * t + (1 - t) * circular_blur(padded), t = outer product of raised-cosine ramps
    over the margin (1 on the image itself), so the seam of the periodic extension is blurred the
    way the FFT solve assumes.
    """
    fp = np.pad(f, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else f.copy()
    K = psf2otf(kernel, fp.shape[:2])[..., None]
    if pad:
        blurred = np.real(np.fft.ifft2(K * np.fft.fft2(fp, axes=(0, 1)), axes=(0, 1)))
        t = np.outer(_ramp(fp.shape[0], pad), _ramp(fp.shape[1], pad))[..., None]
        fp = t * fp + (1.0 - t) * blurred
    return fp, K


def beta_schedule(beta0: float = 1.0, beta_max: float = 256.0, rate: float = 2.0 * math.sqrt(2.0)) -> list[float]:
    """The continuation of beta: beta0, beta0 * rate, ... while < beta_max (1 .. 181 by default: 6 values)."""
    out, b = [], float(beta0)
    while b < beta_max:
        out.append(b)
        b *= rate
    return out


def _circular_blur(x: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(K * np.fft.fft2(x, axes=(0, 1)), axes=(0, 1)))


def _hqs(yp: np.ndarray, K: np.ndarray, lam: float, alpha: float, betas: list[float], inner_iters: int) -> np.ndarray:
    """Half-quadratic splitting on the (padded, periodic) data `yp`, OTF `K`: the estimate x."""
    shape = yp.shape[:2]
    dh = np.zeros(shape)
    dh[0, 0], dh[0, -1] = -1.0, 1.0          # (d_h x)[i, j] = x[i, j+1] - x[i, j], circular
    dv = np.zeros(shape)
    dv[0, 0], dv[-1, 0] = -1.0, 1.0
    Dh, Dv = np.fft.fft2(dh)[..., None], np.fft.fft2(dv)[..., None]
    num_data = lam * np.conj(K) * np.fft.fft2(yp, axes=(0, 1))
    den_data = lam * np.abs(K) ** 2
    den_grad = np.abs(Dh) ** 2 + np.abs(Dv) ** 2
    x = yp.copy()
    for beta in betas:
        for _ in range(inner_iters):
            # w-step on the current gradients (circular differences, consistent with the x-step)
            wh = hyper_laplacian_shrink(np.roll(x, -1, axis=1) - x, beta, alpha)
            wv = hyper_laplacian_shrink(np.roll(x, -1, axis=0) - x, beta, alpha)
            # x-step: (lam K^H K + beta D^H D) x = lam K^H y + beta D^H w, diagonal in Fourier
            num = num_data + beta * (np.conj(Dh) * np.fft.fft2(wh, axes=(0, 1))
                                     + np.conj(Dv) * np.fft.fft2(wv, axes=(0, 1)))
            x = np.real(np.fft.ifft2(num / (den_data + beta * den_grad), axes=(0, 1)))
    return x


def mirror_symmetric(kernel: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether `kernel` is symmetric in each axis (disks are; motion kernels are not)."""
    return bool(np.allclose(kernel, kernel[::-1, :], atol=tol) and np.allclose(kernel, kernel[:, ::-1], atol=tol))


def deblur(y: np.ndarray, kernel: np.ndarray, lam: float = DEFAULT_LAMBDA, alpha: float = DEFAULT_ALPHA, *,
           beta0: float = 1.0, beta_max: float = 256.0, beta_rate: float = 2.0 * math.sqrt(2.0),
           inner_iters: int = 1, pad: int | None = None, passes: int | None = None) -> np.ndarray:
    """Deblur HxWx3 `y` knowing its blur `kernel` (2-D, non-negative, sum 1), per RGB channel.

    y: uint8 (0..255) or float (0..1). Returns the same kind: uint8 in -> uint8 out (rounded),
    float in -> float of the same dtype, clipped to [0, 1]. lam: data weight (larger = trusts the
    data more, less smoothing; the default was chosen by measurement, docs/research/baselines.md).
    alpha: prior exponent in (0, 1]. beta0, beta_max, beta_rate: the beta continuation; inner_iters:
    (w, x) steps per beta value. pad: reflection padding per side (default 2 x the kernel's larger
    side). passes: solves (default 1 for kernels symmetric in each axis, 2 otherwise). The reflected
    margin is exact data only for such kernels: under the project's mirror-boundary blur a reflected
    blurred image is the reflected image blurred by the *flipped* kernel. So for other kernels (motion)
    each further pass replaces the margin by the blur of the previous estimate's reflection (measured:
    +0.5 to +2 dB for the settings' motion kernels, borders no longer worse than the input).
    Deterministic.
    """
    f, was_u8 = image_to_float(y, "y")
    k = check_kernel(kernel, "kernel")
    lam = positive(lam, "lam")
    alpha = positive(alpha, "alpha", upper=1.0)
    beta0 = positive(beta0, "beta0")
    beta_max = positive(beta_max, "beta_max")
    if beta0 >= beta_max:
        raise UserError(f"beta0 must be below beta_max (got {beta0:g} >= {beta_max:g}): no iteration would run")
    if not beta_rate > 1:
        raise UserError(f"beta_rate must be > 1, got {beta_rate!r}")
    if int(inner_iters) != inner_iters or inner_iters < 1:
        raise UserError(f"inner_iters must be an integer >= 1, got {inner_iters!r}")
    p = 2 * max(k.shape) if pad is None else int(pad)
    if p < 0:
        raise UserError(f"pad must be >= 0, got {pad!r}")
    if passes is None:
        passes = 1 if mirror_symmetric(k) else 2
    if int(passes) != passes or passes < 1:
        raise UserError(f"passes must be an integer >= 1, got {passes!r}")

    h, w_ = f.shape[:2]
    if k.shape[0] > h + 2 * p or k.shape[1] > w_ + 2 * p:
        raise UserError(f"kernel ({k.shape[0]}x{k.shape[1]}) is larger than the padded image "
                        f"({h + 2 * p}x{w_ + 2 * p}): use a larger pad")
    betas = beta_schedule(beta0, beta_max, beta_rate)
    yp, K = pad_and_taper(f, k, p)
    x = _hqs(yp, K, lam, alpha, betas, int(inner_iters))
    if p:
        inside = np.zeros(yp.shape[:2] + (1,), dtype=bool)
        inside[p:p + h, p:p + w_] = True
        t = np.outer(_ramp(yp.shape[0], p), _ramp(yp.shape[1], p))[..., None]
        for _ in range(int(passes) - 1):
            # margin := the model's prediction, blur of the estimate's reflection (tapered at the seam)
            xe = np.pad(np.clip(x[p:p + h, p:p + w_], 0.0, 1.0), ((p, p), (p, p), (0, 0)), mode="reflect")
            kx = _circular_blur(xe, K)
            u = np.where(inside, yp, t * kx + (1.0 - t) * _circular_blur(kx, K))
            x = _hqs(u, K, lam, alpha, betas, int(inner_iters))
    out = x[p:p + h, p:p + w_] if p else x
    return float_to_like(out, was_u8, y.dtype)
