"""Shapes: a few large flat-coloured discs on a flat background -- the embedded source a small GAN learns on 2 cores.

Dead leaves (:mod:`.deadleaves`) cover the window with hundreds of small occluding discs: a small ResNet GAN
does not learn them within CPU budgets (docs/research/cpu-scale.md). ``shapes`` keeps what makes dead leaves
a good test of blur, noise and JPEG -- flat regions where noise shows, sharp edges that blur softens and that
JPEG rings and blocks -- but with a structure a width-16 G_x learns in a few thousand iterations:

- a flat background colour, then ``n ~ U{n_min..n_max}`` discs (default 1..3), each drawn *over* the earlier
  ones (painter's order), radius ``r ~ U[r_lo, r_hi] * resolution`` (default 0.12..0.30), centre uniform on
  the window shrunk by half a radius (every disc is at least partly visible);
- colours from the dead-leaves palette (a base hue per image, muted natural colours), the background drawn
  like a leaf; a disc whose colour is too close to the background's is pushed away in value so that every
  edge is visible (contrast >= 0.25 in HSV value or a different hue);
- anti-aliased by a ``supersample`` x ``supersample`` box filter (4 x 4), exactly as dead leaves.

Determinism: image i of split s is a pure function of (seed, s, i, resolution) and the parameters
(``numpy.random.default_rng([seed, s, i, 7])``), with the same IEEE-exact rasteriser as dead leaves.
"""
from __future__ import annotations

import numpy as np

from . import SPLITS
from ..errors import UserError
from .deadleaves import _BIG, SyntheticDataset, _leaf_colours, _raster_discs


def render_shapes(seed: int, index: int, resolution: int = 32, *, split: str = "train", n_min: int = 1,
                  n_max: int = 3, r_lo: float = 0.12, r_hi: float = 0.30, supersample: int = 4) -> np.ndarray:
    """Render shapes image `index` (H x W x 3 uint8, H = W = resolution); see the module doc."""
    res, ss = int(resolution), int(supersample)
    if not (1 <= n_min <= n_max) or not (0 < r_lo <= r_hi) or ss < 1 or res < 1:
        raise UserError(f"shapes needs 1 <= n_min <= n_max and 0 < r_lo <= r_hi (got n={n_min}..{n_max}, "
                        f"r={r_lo}..{r_hi}, supersample={supersample}, resolution={resolution})")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), int(index), 7])
    palette = rng.random(3)
    n = int(rng.integers(n_min, n_max + 1))
    u = rng.random((n + 1, 6))              # row 0: the background; rows 1..n: the discs (r, cx, cy, h, s, v)
    # keep every disc's value at least 0.3 (of the 0..1 uniform) away from the background's: visible edges
    far = np.abs(u[1:, 5] - u[0, 5]) < 0.3
    u[1:, 5] = np.where(far, np.remainder(u[0, 5] + 0.3 + 0.4 * u[1:, 5], 1.0), u[1:, 5])
    r = (r_lo + (r_hi - r_lo) * u[1:, 0]) * res
    cx = r / 2 + u[1:, 1] * (res - r)
    cy = r / 2 + u[1:, 2] * (res - r)
    size = res * ss
    zbuf = np.full(size * size, _BIG, dtype=np.int32)
    # painter's order: the last disc drawn is on top, i.e. has the smallest z-order
    order = np.arange(n, 0, -1, dtype=np.int32)
    _raster_discs(cx, cy, r, order, size, ss, zbuf)
    zbuf[zbuf == _BIG] = 0                   # uncovered: the background (order 0 is never a disc)
    col = _leaf_colours(u[:, 3:], palette).astype(np.uint32)   # (n + 1, 3); index = order
    sums = col[zbuf].reshape(res, ss, res, ss, 3).sum(axis=(1, 3), dtype=np.uint32)
    n2 = np.uint32(ss * ss)
    return ((sums + n2 // 2) // n2).astype(np.uint8)


class ShapesDataset(SyntheticDataset):
    """`count` shapes images at `resolution`; image i = render_shapes(seed, i, resolution, split)."""

    name = "shapes"

    def _get(self, i: int) -> np.ndarray:
        return render_shapes(self.seed, i, self.resolution, split=self.split)
