"""Statistics that see each degradation directly in a set of images (N x H x W x 3 uint8).

FID / KID say *how far* a generator's clean fakes are from the clean data; these say *in which direction*:
whether the fakes are blurred (sharpness), noisy (noise), blocky (8x8 JPEG blocks), or carry textures the
data do not have (patch distance). Computed on the clean data and on the degraded data too, they place each
model between the two (docs/research/cpu-scale.md).

- ``sharpness``  edge sharpness: the gradient-magnitude-weighted mean gradient magnitude sum |g|^2 / sum |g| of
                 the grey image, in grey levels per pixel. A step of height h blurred over w pixels gives about
                 h / w, so blur lowers it, while the plain mean |g| does not change (blur keeps an edge's total
                 variation); strong edges dominate it, so weak noise moves it little;
- ``noise``      noise std in grey levels in flat regions: Immerkaer's (1996) estimate sqrt(pi/2) mean|r| / 6,
                 r the response of the mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (std 6 sigma for white noise), over
                 the half of each image's pixels farthest from edges (lowest Sobel magnitude of the 3x3-smoothed
                 image, widened by 3x3); within 0.1 grey levels of sigma = 1..10 on shapes images, about 0.07
                 on noise-free ones;
- ``blocks``     8x8 blocking: the mean |neighbour difference| across each interior block boundary over the mean of
                 the two differences beside it (1: no blocks; JPEG q 60-100 on shapes: about 1.1). Local, so it does
                 not move with where in the frame a set's edges lie, nor with a frame;
- ``frame``      the mean |neighbour difference| between the outermost two pixels of each row and column over the
                 next pair in (1: none; a G_x may draw a line along the image's border, cpu-scale.md section 24);
- ``blockiness`` (the column of tables written before 2026-12-06, not of `bncr compare` now) mean |difference|
                 across the block boundaries over that at every other position. It moves with where a set's edges
                 lie (centred content: 1.06 on clean shapes) and with a frame (folded into the "inside"
                 positions), so it cannot rank sets; ``blocks`` replaces it;
- ``grid_phases`` (not a column of `bncr compare`) mean |neighbour difference| at each phase j mod 8 of the
                 8-pixel grid over its mean; ``border_excess`` its phases 0 and 6 over 1. With the outermost
                 differences in (inner=False), a frame shows as phases 0 and 6: the "period-8 pattern" of
                 cpu-scale.md sections 21-23 was that (section 24);
- ``hf``         fraction of the spectral energy (DC excluded) above half the Nyquist frequency;
- ``patch_swd``  sliced Wasserstein distance of 7x7 RGB patches to a reference set (x1e3), a cheap
                 distribution distance that sees shapes, edges and textures (0 for identical sets).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

STAT_KEYS = ("sharpness", "noise", "blocks", "frame", "hf")


def _grey(u8: np.ndarray) -> np.ndarray:
    u8 = np.asarray(u8)
    if u8.ndim != 4 or u8.shape[-1] != 3 or u8.dtype != np.uint8:
        raise ValueError(f"expected N x H x W x 3 uint8 images, got {u8.dtype} {u8.shape}")
    return u8.astype(np.float64).mean(axis=-1)


def sharpness(u8: np.ndarray) -> float:
    """Edge sharpness: sum |grad|^2 / sum |grad| of the grey image (grey levels per pixel; see the module doc)."""
    g = _grey(u8)
    dx, dy = np.diff(g, axis=2)[:, :-1, :], np.diff(g, axis=1)[:, :, :-1]
    m = np.hypot(dx, dy)
    return float((m * m).sum() / max(m.sum(), 1e-12))


def noise_std(u8: np.ndarray, flat_fraction: float = 0.5) -> float:
    """Noise std (grey levels) in the flattest `flat_fraction` of each image's pixels (see the module doc)."""
    from scipy import ndimage
    g = _grey(u8)
    r = np.abs(g[:, :-2, :-2] - 2 * g[:, :-2, 1:-1] + g[:, :-2, 2:]
               - 2 * g[:, 1:-1, :-2] + 4 * g[:, 1:-1, 1:-1] - 2 * g[:, 1:-1, 2:]
               + g[:, 2:, :-2] - 2 * g[:, 2:, 1:-1] + g[:, 2:, 2:])
    # edge strength on a 3x3-smoothed image (noise down 3x), widened by a 3x3 max so both sides of an edge go
    s = ndimage.uniform_filter(g, size=(1, 3, 3), mode="nearest")
    e = ndimage.maximum_filter(np.hypot(ndimage.sobel(s, axis=1), ndimage.sobel(s, axis=2)), size=(1, 3, 3))
    e = e[:, 1:-1, 1:-1]
    flat = e <= np.quantile(e, flat_fraction, axis=(1, 2), keepdims=True)
    return float(np.sqrt(np.pi / 2) * r[flat].mean() / 6.0)


def edge_profile(u8: np.ndarray) -> np.ndarray:
    """(W - 1,) mean |neighbour difference| at each position j (between pixels j and j + 1), rows and columns
    together (square images; for others the shorter side's positions)."""
    g = _grey(u8)
    cols, rows = np.abs(np.diff(g, axis=2)).mean(axis=(0, 1)), np.abs(np.diff(g, axis=1)).mean(axis=(0, 2))
    n = min(len(cols), len(rows))
    return (cols[:n] + rows[:n]) / 2


def blocks(u8: np.ndarray, block: int = 8) -> float:
    """8x8 blocking: |difference| across each interior block boundary over the mean of its two neighbours (1: none)."""
    m = edge_profile(u8)
    j = np.arange(block - 1, len(m) - 1, block)          # boundaries with a difference on each side
    if len(j) == 0:
        return float("nan")
    return float(m[j].sum() / max(((m[j - 1] + m[j + 1]) / 2).sum(), 1e-12))


def frame(u8: np.ndarray) -> float:
    """A line along the image's border: |difference| of the outermost pixel pairs over the next pairs in (1: none)."""
    m = edge_profile(u8)
    if len(m) < 4:
        return float("nan")
    return float((m[0] + m[-1]) / max(m[1] + m[-2], 1e-12))


def blockiness(u8: np.ndarray, block: int = 8) -> float:
    """The global form (tables before 2026-12-06): across the block boundaries over every other position. Moves
    with where a set's edges lie and with a frame; use :func:`blocks`."""
    g = _grey(u8)
    w = g.shape[2]
    if w <= block or g.shape[1] <= block:
        return float("nan")
    dx, dy = np.abs(np.diff(g, axis=2)), np.abs(np.diff(g, axis=1))   # difference j is between pixels j, j+1
    at = (np.arange(w - 1) % block) == block - 1                         # across a block boundary
    ath = (np.arange(g.shape[1] - 1) % block) == block - 1
    across = dx[:, :, at].sum() + dy[:, ath, :].sum()
    n_across = dx[:, :, at].size + dy[:, ath, :].size
    inside = dx[:, :, ~at].sum() + dy[:, ~ath, :].sum()
    n_inside = dx[:, :, ~at].size + dy[:, ~ath, :].size
    return float((across / n_across) / max(inside / n_inside, 1e-12))


def grid_phases(u8: np.ndarray, block: int = 8, inner: bool = False) -> np.ndarray:
    """(block,) mean |neighbour difference| at each phase of the block grid (difference j lies between pixels j
    and j + 1, rows and columns; phase j mod block) over the mean of the phases. Phase block-1: JPEG's block edges.
    inner=True leaves out the outermost difference at each side (a frame would otherwise read as phases 0 and 6)."""
    m = edge_profile(u8)
    j = np.arange(len(m))
    keep = (j > 0) & (j < len(m) - 1) if inner else np.ones(len(m), bool)
    ph = np.array([m[keep & (j % block == p)].mean() for p in range(block)])
    return ph / ph.mean()


def border_excess(u8: np.ndarray, inner: bool = False) -> float:
    """Edge excess at phases 0 and 6 of :func:`grid_phases` (just inside each 8x8 block's border): 0 for content
    unrelated to the grid. With inner=False it also reads a frame (cpu-scale.md section 24)."""
    return phases_border_excess(grid_phases(u8, inner=inner))


def phases_border_excess(phases: np.ndarray) -> float:
    """:func:`border_excess` from :func:`grid_phases` already computed (linear in them, so also of their mean)."""
    return float((phases[0] + phases[6]) / 2 - 1)


def hf_energy(u8: np.ndarray) -> float:
    g = _grey(u8)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    p = (np.abs(np.fft.fft2(g)) ** 2).mean(axis=0)
    fy, fx = np.meshgrid(np.fft.fftfreq(g.shape[1]), np.fft.fftfreq(g.shape[2]), indexing="ij")
    fr = np.maximum(np.abs(fy), np.abs(fx))
    return float(p[fr > 0.25].sum() / max(p[fr > 0].sum(), 1e-12))


def patch_swd(a: np.ndarray, b: np.ndarray, size: int = 7, patches: int = 16384, proj: int = 128,
              seed: int = 0) -> float:
    """Sliced Wasserstein distance between random size x size RGB patches of two image sets (x1e3)."""
    rng = np.random.default_rng(seed)

    def take(u8: np.ndarray) -> np.ndarray:
        n, h, w, _ = u8.shape
        i = rng.integers(0, n, patches)
        r = rng.integers(0, h - size + 1, patches)
        c = rng.integers(0, w - size + 1, patches)
        off = np.arange(size)
        p = u8[i[:, None, None], r[:, None, None] + off[None, :, None], c[:, None, None] + off[None, None, :]]
        return p.reshape(patches, -1).astype(np.float64) / 127.5 - 1.0

    pa, pb = take(np.asarray(a)), take(np.asarray(b))
    d = rng.standard_normal((pa.shape[1], proj))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    return float(np.abs(np.sort(pa @ d, axis=0) - np.sort(pb @ d, axis=0)).mean() * 1e3)


def image_stats(u8: np.ndarray, reference: Optional[np.ndarray] = None) -> dict[str, float]:
    """The statistics of STAT_KEYS for a set of images, plus ``patch_swd`` against `reference` if given."""
    out = {"sharpness": sharpness(u8), "noise": noise_std(u8), "blocks": blocks(u8), "frame": frame(u8),
           "hf": hf_energy(u8)}
    if reference is not None:
        out["patch_swd"] = patch_swd(u8, reference)
    return out
