"""Statistics of degradations and parameter recovery: generated (G_k, G_n, G_q) vs true.

Every number of `bncr inspect` is a :class:`Row`, computed once here and rendered twice (the
markdown table on the terminal, the HTML report) by :meth:`Row.cells`, so both show equal text.

Rules that turn generated parameters into "is this image degraded?" (the truth has flags):

- blurred:    kernel entropy H(k) > BLUR_ENTROPY_NATS (0.1 nats; the identity kernel has H = 0).
              Also shown: mean mask m_k > 0.5 (Eq. 3) when G_k has a mask, and the kernel's centroid
              offset (a kernel away from the centre translates the image).
- compressed: m_q > 0.5 (Eq. 5 mask); also the m_q-weighted estimate mean(m_q).
- noised:     noise std at mid-grey, sqrt(var(0.5)), above NOISE_STD_MIN (1/255, one grey level).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
from scipy.stats import wasserstein_distance

from .samples import Degradations

BLUR_ENTROPY_NATS = 0.1
MASK_THRESHOLD = 0.5
# A mask value in this open interval blends JPEG and the uncompressed image (Eq. 5) about evenly or more: the
# threshold above then decides "compressed" by noise around it (the CPU-scale CR-GAN runs left most masks here).
MASK_SOFT = (0.1, 0.9)
NOISE_STD_MIN = 1.0 / 255.0
NOISE_X = np.linspace(0.0, 1.0, 101)          # intensities of the noise std curve, [0, 1] values
QUANTILES = (0.05, 0.5, 0.95)

Value = Union[None, float, Sequence[float]]


# ---------------------------------------------------------------------------------------------- kernels
def kernel_entropy(k: np.ndarray) -> np.ndarray:
    """H(k) in nats of each kernel (n, K, K) seen as a distribution over its taps (0: identity)."""
    p = k / k.sum(axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return t.sum(axis=(1, 2))


def radius_of_gyration(k: np.ndarray) -> np.ndarray:
    """R_g = sqrt(sum_ij k_ij |(i, j) - centroid|^2) in pixels of each kernel (n, K, K) (0: identity).

    The spatial extent of the blur, independent of where the kernel sits and of zero padding."""
    p = k / k.sum(axis=(1, 2), keepdims=True)
    K = k.shape[-1]
    r = np.arange(K, dtype=np.float64)
    ci = (p.sum(axis=2) * r).sum(axis=1)        # row centroid
    cj = (p.sum(axis=1) * r).sum(axis=1)        # column centroid
    di = (r[None, :] - ci[:, None]) ** 2        # (n, K)
    dj = (r[None, :] - cj[:, None]) ** 2
    var = (p.sum(axis=2) * di).sum(axis=1) + (p.sum(axis=1) * dj).sum(axis=1)
    return np.sqrt(np.maximum(var, 0.0))


def kernel_offset(k: np.ndarray) -> np.ndarray:
    """|centroid - centre| in pixels of each kernel (n, K, K): a kernel off the centre also *shifts*
    the image (true kernels are centred; a delta at an off-centre tap is a pure translation)."""
    p = k / k.sum(axis=(1, 2), keepdims=True)
    K = k.shape[-1]
    r = np.arange(K, dtype=np.float64) - (K - 1) / 2
    ci = (p.sum(axis=2) * r).sum(axis=1)
    cj = (p.sum(axis=1) * r).sum(axis=1)
    return np.hypot(ci, cj)


# ---------------------------------------------------------------------------------------------- per side
@dataclass
class SideStats:
    """Summary of one Degradations (generated or true); None where the stage is absent."""
    entropy: Optional[np.ndarray] = None        # (n,) H(k)
    rg: Optional[np.ndarray] = None             # (n,) R_g
    offset: Optional[np.ndarray] = None         # (n,) |centroid - centre|
    frac_blurred: Optional[float] = None        # flags (truth) or H(k) > 0.1 (generated)
    frac_blurred_entropy: Optional[float] = None  # H(k) > 0.1 on either side
    frac_blurred_mask: Optional[float] = None   # mean m_k > 0.5 (generated with mask)
    q_compressed: Optional[np.ndarray] = None   # q of the compressed images (flag, or m_q > 0.5)
    frac_compressed: Optional[float] = None     # flags, or m_q > 0.5
    frac_compressed_weighted: Optional[float] = None  # mean m_q
    frac_mask_soft: Optional[float] = None      # MASK_SOFT[0] < m_q < MASK_SOFT[1]: neither compressed nor not
    noise_std_mid: Optional[np.ndarray] = None  # (n,) sqrt(var(0.5))
    frac_noised: Optional[float] = None         # flags, or std(0.5) > 1/255
    noise_curve: Optional[np.ndarray] = None    # population std sqrt(E[var(x)]) on NOISE_X
    log10_a: Optional[np.ndarray] = None        # log10 a of noised images with a > 0
    log10_b: Optional[np.ndarray] = None        # log10 b of noised images with b > 0


def side_stats(d: Degradations) -> SideStats:
    s = SideStats()
    if d.has_blur:
        s.entropy = kernel_entropy(d.k)
        s.rg = radius_of_gyration(d.k)
        s.offset = kernel_offset(d.k)
        s.frac_blurred_entropy = float(np.mean(s.entropy > BLUR_ENTROPY_NATS))
        s.frac_blurred = float(np.mean(d.blurred)) if d.blurred is not None else s.frac_blurred_entropy
        if d.m_k is not None:
            s.frac_blurred_mask = float(np.mean(d.m_k > MASK_THRESHOLD))
    if d.has_jpeg:
        comp = d.compressed if d.compressed is not None else d.m_q > MASK_THRESHOLD
        s.q_compressed = d.q[comp]
        s.frac_compressed = float(np.mean(comp))
        s.frac_compressed_weighted = float(np.mean(d.m_q))
        s.frac_mask_soft = float(np.mean((d.m_q > MASK_SOFT[0]) & (d.m_q < MASK_SOFT[1])))
    if d.has_noise:
        s.noise_std_mid = np.sqrt(np.maximum(d.noise_var(np.array([0.5]))[:, 0], 0.0))
        noised = d.noised if d.noised is not None else s.noise_std_mid > NOISE_STD_MIN
        s.frac_noised = float(np.mean(noised))
        s.noise_curve = np.sqrt(np.maximum(d.noise_var(NOISE_X).mean(axis=0), 0.0))
        a, b = d.a[noised], d.b[noised]
        s.log10_a = np.log10(a[a > 0])
        s.log10_b = np.log10(b[b > 0])
    return s


# ---------------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One line of the recovery table: generated value, true value, error (None: not available).

    `fmt` formats generated / true values, `err_fmt` the error; tuples are rendered joined by '/'.
    """
    key: str
    label: str
    generated: Value
    true: Value = None
    error: Value = None
    fmt: str = ".3f"
    err_fmt: str = "+.3f"

    @staticmethod
    def _f(v: Value, spec: str) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, (tuple, list, np.ndarray)):
            return "/".join(Row._f(float(x), spec) for x in v) if len(v) else "n/a"
        v = float(v)
        if not math.isfinite(v):
            return "n/a"
        out = format(v, spec)
        return format(0.0, spec) if out.startswith("-") and float(out.rstrip("%")) == 0 else out  # no "-0.000"

    def cells(self) -> tuple[str, str, str, str]:
        """(label, generated, true, error) as the text both renderers show."""
        return self.label, self._f(self.generated, self.fmt), self._f(self.true, self.fmt), self._f(self.error, self.err_fmt)


def _w1(u: Optional[np.ndarray], v: Optional[np.ndarray], uw: Optional[np.ndarray] = None) -> Optional[float]:
    if u is None or v is None or len(u) == 0 or len(v) == 0:
        return None
    if uw is not None:
        keep = uw > 0
        if not keep.any():
            return None
        u, uw = u[keep], uw[keep]
    return float(wasserstein_distance(u, v, uw))


def _diff(g: Optional[float], t: Optional[float]) -> Optional[float]:
    return None if g is None or t is None else g - t


def _mean(x: Optional[np.ndarray]) -> Optional[float]:
    return None if x is None or len(x) == 0 else float(np.mean(x))


def _quantiles(x: Optional[np.ndarray]) -> Optional[tuple[float, ...]]:
    return None if x is None or len(x) == 0 else tuple(float(v) for v in np.quantile(x, QUANTILES))


def _max_abs_diff(g, t) -> Optional[float]:
    return None if g is None or t is None else float(np.max(np.abs(np.subtract(g, t))))


@dataclass
class Recovery:
    """All numbers of a report: per-side statistics and the rows of the table."""
    gen: SideStats
    true: Optional[SideStats]
    rows: list[Row]

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)


def recovery(gen: Degradations, truth: Optional[Degradations],
             x_range: Optional[tuple[float, float]] = None) -> Recovery:
    """Compare generated degradations with the ground truth (or summarise them alone: truth None).

    x_range: the intensities (in [0, 1]) that the training images occupy, e.g. their 1-99 % quantiles; adds the
    std curve's error over that range alone. Outside it the data has (almost) no pixels, so the curve there is
    G_n's extrapolation, which no training signal constrains (the embedded shapes: 1 % of pixels below 0.094)."""
    g = side_stats(gen)
    t = side_stats(truth) if truth is not None else None
    T = t if t is not None else SideStats()
    rows: list[Row] = []
    if gen.has_blur:
        rows.append(Row("frac_blurred", f"fraction blurred (H(k) > {BLUR_ENTROPY_NATS:g} nats)", g.frac_blurred,
                        T.frac_blurred, _diff(g.frac_blurred, T.frac_blurred)))
        if g.frac_blurred_mask is not None:
            rows.append(Row("frac_blurred_mask", "fraction blurred (mean m_k > 0.5)", g.frac_blurred_mask,
                            T.frac_blurred, _diff(g.frac_blurred_mask, T.frac_blurred)))
        if t is not None:
            rows.append(Row("frac_entropy_rule", f"kernels with H(k) > {BLUR_ENTROPY_NATS:g} nats (same rule both)",
                            g.frac_blurred_entropy, t.frac_blurred_entropy,
                            _diff(g.frac_blurred_entropy, t.frac_blurred_entropy)))
        rows.append(Row("entropy_mean", "mean kernel entropy H(k) (nats)", _mean(g.entropy), _mean(T.entropy),
                        _diff(_mean(g.entropy), _mean(T.entropy))))
        rows.append(Row("entropy_w1", "W1 of H(k) distributions (nats)", None, None, _w1(g.entropy, T.entropy),
                        err_fmt=".3f"))
        rows.append(Row("rg_mean", "mean kernel radius of gyration R_g (px)", _mean(g.rg), _mean(T.rg),
                        _diff(_mean(g.rg), _mean(T.rg))))
        rows.append(Row("rg_w1", "W1 of R_g distributions (px)", None, None, _w1(g.rg, T.rg), err_fmt=".3f"))
        rows.append(Row("offset_mean", "mean kernel centroid offset (px; a shift, not blur)", _mean(g.offset),
                        _mean(T.offset), _diff(_mean(g.offset), _mean(T.offset))))
    if gen.has_noise:
        rows.append(Row("frac_noised", "fraction noised (std at x=0.5 > 1/255)", g.frac_noised, T.frac_noised,
                        _diff(g.frac_noised, T.frac_noised)))
        mid = len(NOISE_X) // 2
        gm = float(g.noise_curve[mid])
        tm = float(T.noise_curve[mid]) if T.noise_curve is not None else None
        rows.append(Row("noise_std_mid", "population noise std at x=0.5 (0-255 grey levels)", 255 * gm,
                        None if tm is None else 255 * tm, None if tm is None else 255 * (gm - tm),
                        fmt=".2f", err_fmt="+.2f"))
        if T.noise_curve is not None and np.all(T.noise_curve > 0):
            err = float(np.max(np.abs(g.noise_curve - T.noise_curve) / T.noise_curve))
        else:
            err = None
        rows.append(Row("noise_curve_maxrel", "std curve sqrt(E[var(x)]), max relative error on [0, 1]",
                        None, None, err, err_fmt=".1%"))
        if x_range is not None:
            lo, hi = x_range
            sel = (NOISE_X >= lo - 1e-9) & (NOISE_X <= hi + 1e-9)   # grid points inside, up to rounding
            err_d = None
            if sel.any() and T.noise_curve is not None and np.all(T.noise_curve[sel] > 0):
                err_d = float(np.max(np.abs(g.noise_curve[sel] - T.noise_curve[sel]) / T.noise_curve[sel]))
            rows.append(Row("noise_curve_maxrel_data", f"std curve, max relative error on the data's intensities "
                            f"[{lo:.2f}, {hi:.2f}] (1-99 %)", None, None, err_d, err_fmt=".1%"))
        qa, qta = _quantiles(g.log10_a), _quantiles(T.log10_a)
        rows.append(Row("log10_a_q", "log10 a vs log10 shot, quantiles 5/50/95% (noised)", qa, qta,
                        _max_abs_diff(qa, qta), fmt=".2f", err_fmt=".2f"))
        qb, qtb = _quantiles(g.log10_b), _quantiles(T.log10_b)
        rows.append(Row("log10_b_q", "log10 b vs log10 read, quantiles 5/50/95% (noised)", qb, qtb,
                        _max_abs_diff(qb, qtb), fmt=".2f", err_fmt=".2f"))
    if gen.has_jpeg:
        rows.append(Row("frac_compressed", "fraction compressed (m_q > 0.5)", g.frac_compressed, T.frac_compressed,
                        _diff(g.frac_compressed, T.frac_compressed)))
        rows.append(Row("frac_compressed_w", "fraction compressed (mean m_q)", g.frac_compressed_weighted,
                        T.frac_compressed, _diff(g.frac_compressed_weighted, T.frac_compressed)))
        rows.append(Row("frac_mask_soft", f"soft masks ({MASK_SOFT[0]} < m_q < {MASK_SOFT[1]}: a blend of "
                        "compressed and not)", g.frac_mask_soft, T.frac_mask_soft,
                        _diff(g.frac_mask_soft, T.frac_mask_soft)))
        rows.append(Row("q_mean", "mean q of compressed images", _mean(g.q_compressed), _mean(T.q_compressed),
                        _diff(_mean(g.q_compressed), _mean(T.q_compressed)), fmt=".1f", err_fmt="+.1f"))
        rows.append(Row("q_w1", "W1 of q over compressed images (m_q > 0.5)", None, None,
                        _w1(g.q_compressed, T.q_compressed), err_fmt=".2f"))
        tq = None if truth is None else truth.q[truth.compressed] if truth.compressed is not None else None
        rows.append(Row("q_w1_weighted", "W1 of q, generated weighted by m_q", None, None,
                        _w1(gen.q, tq, gen.m_q), err_fmt=".2f"))
    return Recovery(g, t, rows)


def markdown_table(rows: Sequence[Row], with_truth: bool = True) -> str:
    """The rows as a GitHub markdown table (the terminal rendering of the report's numbers)."""
    head = ["quantity", "generated", "true", "error"] if with_truth else ["quantity", "generated"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        c = r.cells()
        if not with_truth and r.generated is None:
            continue
        lines.append("| " + " | ".join(c if with_truth else c[:2]) + " |")
    return "\n".join(lines)


def parse_markdown_table(text: str) -> dict[str, tuple[str, ...]]:
    """label -> the other cells of each row of a table printed by :func:`markdown_table`."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| quantity"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = tuple(cells[1:])
    return out
