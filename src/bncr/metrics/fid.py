"""FID and KID from Inception features (numpy, float64).

FID  = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})     (Heusel et al. 2017)
KID  = unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3,    (Binkowski et al. 2018)
       averaged over random subsets (defaults of torch-fidelity / StyleGAN2-ADA: 100 x 1000).

Tr((S_1 S_2)^{1/2}) is computed by default from eigenvalues ("eigh"): S_1 S_2 is similar to the
symmetric PSD matrix A = S_1^{1/2} S_2 S_1^{1/2}, so its principal square root has trace
sum_i sqrt(lambda_i(A)); eigenvalues that round-off pushes below zero are clipped to 0. This is
real by construction and does not fail for rank-deficient covariances (fewer samples than 2048).
The pytorch-fid formula (scipy.linalg.sqrtm, eps offset on non-finite result, dropping a tiny
imaginary part) is available as method="sqrtm"; docs/metrics.md compares the two.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import UserError

FID_MIN_SAMPLES = 2048  # = feature dimension: below it the covariance estimate is singular
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class FewSamplesWarning(UserWarning):
    """FID computed from fewer samples than the feature dimension: strongly biased, prefer KID."""


def _as_features(f: np.ndarray, name: str) -> np.ndarray:
    f = np.asarray(f)
    if f.ndim != 2:
        raise UserError(f"{name}: expected a feature array (N, D), got shape {f.shape}")
    if f.shape[0] < 2:
        raise UserError(f"{name}: need at least 2 samples, got {f.shape[0]}")
    f = f.astype(np.float64, copy=False)
    if not np.isfinite(f).all():
        raise UserError(f"{name}: features contain NaN or inf")
    return f


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean mu (D,) and unbiased covariance sigma (D, D) of features, in float64."""
    f = _as_features(feats, "features")
    mu = f.mean(axis=0)
    c = f - mu
    sigma = (c.T @ c) / (f.shape[0] - 1)
    return mu, sigma


def _sym_sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (negative round-off eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, method: str = "eigh", eps: float = 1e-6) -> float:
    """Tr((S_1 S_2)^{1/2}) for covariance matrices, by "eigh" (default) or "sqrtm" (pytorch-fid style)."""
    if method == "eigh":
        r = _sym_sqrt_psd(s1)
        a = r @ s2 @ r
        lam = np.linalg.eigvalsh((a + a.T) / 2)
        return float(np.sqrt(np.clip(lam, 0, None)).sum())
    if method == "sqrtm":
        import scipy.linalg

        def sqrtm(m: np.ndarray) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy warns on singular input; the result is checked below
                out = scipy.linalg.sqrtm(m)
            return out[0] if isinstance(out, tuple) else out

        covmean = sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals", RuntimeWarning)
            off = np.eye(s1.shape[0]) * eps
            covmean = sqrtm((s1 + off) @ (s2 + off))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise ValueError(f"FID: matrix square root has an imaginary component {np.abs(covmean.imag).max():.3g}")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise UserError(f"unknown FID matrix square-root method {method!r}; choose 'eigh' or 'sqrtm'")


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                   method: str = "eigh") -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise UserError(f"FID statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2, method))


def check_fid_sample_count(n: int, strict: bool = False, min_samples: int = FID_MIN_SAMPLES) -> None:
    """Warn (or, if strict, refuse) when FID would be computed from fewer than `min_samples` samples."""
    if n >= min_samples:
        return
    msg = (f"FID from {n} samples (< {min_samples}, the feature dimension): the covariance is singular and FID "
           f"is strongly biased upwards; compare only numbers with the same sample count, or use KID")
    if strict:
        raise UserError(msg)
    warnings.warn(msg, FewSamplesWarning, stacklevel=3)


def fid_from_features(f1: np.ndarray, f2: np.ndarray, *, strict: bool = False, method: str = "eigh") -> float:
    """FID between two feature sets (N_i, D); warns below 2048 samples (strict=True raises instead)."""
    a, b = _as_features(f1, "features 1"), _as_features(f2, "features 2")
    check_fid_sample_count(min(len(a), len(b)), strict)
    return fid_from_stats(*feature_stats(a), *feature_stats(b), method=method)


def _poly_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 estimate (diagonals of K_xx, K_yy excluded) with a polynomial kernel."""
    m = x.shape[0]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = a @ b.T
        t *= gamma
        t += coef0
        if degree == 3:  # in-place cube: ~4x faster than ** on 1000x1000 blocks
            k = t * t
            k *= t
            return k
        return t ** degree

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    off_xx = kxx.sum() - np.trace(kxx)
    off_yy = kyy.sum() - np.trace(kyy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid_from_features(f1: np.ndarray, f2: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE, seed: int = 0, *, degree: int = 3,
                      gamma: Optional[float] = None, coef0: float = 1.0) -> tuple[float, float]:
    """KID: mean and standard deviation over `subsets` random subsets of the unbiased polynomial MMD^2.

    Each subset draws `subset_size` samples without replacement from each set; the size is clamped to
    the smaller sample count (with a warning) instead of failing. gamma defaults to 1/D.
    The std is the spread over subsets (as torch-fidelity reports it), not a standard error.
    """
    a, b = _as_features(f1, "features 1"), _as_features(f2, "features 2")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"KID: feature dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    if subsets < 1:
        raise UserError(f"KID: number of subsets must be >= 1, got {subsets}")
    m = min(int(subset_size), len(a), len(b))
    if m < int(subset_size):
        warnings.warn(f"KID: subset size {subset_size} clamped to {m} (the smaller sample count)", UserWarning,
                      stacklevel=2)
    if m < 2:
        raise UserError(f"KID: subset size must be >= 2, got {m}")
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        vals[i] = _poly_mmd2_unbiased(x, y, degree, g, coef0)
    return float(vals.mean()), float(vals.std())
