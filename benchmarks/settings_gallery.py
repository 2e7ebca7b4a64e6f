"""Pictures and measured statistics of the degradation settings A-Q (for docs/degradations.md, docs/datasets.md).

    OMP_NUM_THREADS=1 python benchmarks/settings_gallery.py --out docs > report.md

What it does (every image's degradation is the one `bncr degrade --data-seed 0` writes for that index):

(a) one figure per group of settings (blur B-G, JPEG H-M, combined N-Q + noise-only) showing the
    same 8 clean images and their degraded versions, enlarged with nearest-neighbour so that blur,
    noise and JPEG blocks are visible, each tile captioned with its ground truth (r, T, sigma, q);
    for the dead-leaves data and, when installed, Fashion-MNIST;
(b) kernel galleries: disk kernels for r in [0.5, 2] and motion kernels (length 5) for exposure
    T in {0.1, 0.5, 1} (same trajectories in each T row), and the FFHQ variants (r up to 4, length 10);
(c) statistics of the ground truth over `--n` images per setting: rates of the partial settings
    (from `decisions`, with the nesting and independence checks), kernel entropy of B, C, D,
    JPEG quality of H, I, J, and a refit of the Brooks et al. noise law;
(d) clean vs degraded mean absolute pixel gradient, fraction of spectral power above half Nyquist
    and PSNR per setting on `--n-pixel` dead-leaves images (and Fashion-MNIST when installed);
(e) wall time of `bncr degrade` for settings A, B, C, J, N on `--n-time` dead-leaves images;
(f) dataset sample grids and power-spectrum slopes (for docs/datasets.md).

It prints a markdown report on stdout (progress goes to stderr) and writes PNGs into <out>/img/.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bncr.data import open_dataset
from bncr.data.deadleaves import radial_power_slope, render_dead_leaves
from bncr.degradations.camera_noise import READ_INTERCEPT, READ_SLOPE, READ_STD, SHOT_MAX, SHOT_MIN
from bncr.degradations.kernels import disk_kernel, kernel_entropy_np, motion_kernel, pad_kernel
from bncr.degradations.settings import decisions, degrade, get_setting, sample_params
from bncr.errors import UserError

SHORT = {
    "A": "clean", "B": "disk blur, r~U[0.5,2]", "C": "motion blur, L=5,\nT in {0.1,0.5,1}",
    "D": "B or C (1/2 each)", "E": "1/4 blurred (D)", "F": "1/2 blurred (D)", "G": "3/4 blurred (D)",
    "H": "JPEG q~U{60..80}", "I": "JPEG q~U{80..100}", "J": "JPEG q~U{60..100}",
    "K": "1/4 JPEG (J)", "L": "1/2 JPEG (J)", "M": "3/4 JPEG (J)",
    "N": "all: blur (D),\nnoise, JPEG (J)", "O": "each type\non 1/4, indep.", "P": "each type\non 1/2, indep.",
    "Q": "each type\non 3/4, indep.", "noise": "camera noise\nonly (Brooks)",
}
GROUPS = {"blur": "BCDEFG", "jpeg": "HIJKLM", "combined": ["N", "O", "P", "Q", "noise"]}
ALL = list("ABCDEFGHIJKLMNOPQ") + ["noise"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- drawing helpers
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, size)


def compose(rows: list[tuple[str, list[tuple[np.ndarray, str]]]], tile: int, title: str = "",
            label_w: int = 150, font_size: int = 12, gap: int = 4) -> Image.Image:
    """Tile rows of (row label, [(uint8 HxWx3 image, caption)]) into one picture.

    Each image is enlarged with nearest-neighbour to about `tile` pixels (integer factor) so that
    single pixels stay sharp; captions (one or more lines) go under each tile, labels on the left.
    """
    f, fb = _font(font_size), _font(font_size + 1, bold=True)
    line_h = font_size + 3
    ncap = max((c.count("\n") + 1 if c else 0) for _, items in rows for _, c in items)
    ncols = max(len(items) for _, items in rows)
    title_h = (line_h + 6) * (title.count("\n") + 1) if title else 0
    cell_h = tile + ncap * line_h + gap
    W = label_w + ncols * (tile + gap) + gap
    H = title_h + len(rows) * cell_h + gap
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    if title:
        d.multiline_text((gap, 3), title, fill="black", font=fb, spacing=4)
    for r, (label, items) in enumerate(rows):
        y = title_h + r * cell_h + gap
        if label:  # first line bold (setting letter), the rest normal
            head, _, rest = label.partition("\n")
            d.text((gap, y + 2), head, fill="black", font=fb)
            if rest:
                d.multiline_text((gap, y + 2 + line_h + 3), rest, fill="black", font=f, spacing=2)
        for c, (img, cap) in enumerate(items):
            s = max(1, tile // img.shape[0])
            big = np.repeat(np.repeat(img, s, axis=0), s, axis=1)
            x = label_w + c * (tile + gap) + gap
            off = (tile - big.shape[0]) // 2
            canvas.paste(Image.fromarray(big), (x + off, y + off))
            if cap:
                d.multiline_text((x, y + tile + 1), cap, fill="black", font=f, spacing=1)
    return canvas


def save_png(img: Image.Image, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)
    return path.stat().st_size


def noise_sigma(shot: float, read: float, x: float = 0.5) -> float:
    """Noise std at intensity x (0..1) in 8-bit levels: 255 sqrt(x shot + read)."""
    return 255.0 * float(np.sqrt(x * shot + read))


def caption(p) -> str:
    """Ground truth of one image in a few characters: r (disk), T (motion), sigma@0.5 (noise), q."""
    parts = []
    if p.blurred:
        parts.append(f"r={p.radius:.2f}" if p.kernel_type == "disk" else f"T={p.exposure:g}")
    if p.noised:
        parts.append(f"\u03c3={noise_sigma(p.shot, p.read):.1f}")
    if p.compressed:
        parts.append(f"q={p.quality}")
    if not parts:
        return "clean"
    one = " ".join(parts)
    return one if len(one) <= 13 else " ".join(parts[:-1]) + "\n" + parts[-1]


def kernel_tile(k: np.ndarray) -> np.ndarray:
    """Kernel -> uint8 RGB through the 'inferno' colour map, each kernel scaled by its own maximum."""
    from matplotlib import colormaps
    rgba = colormaps["inferno"](k / k.max())
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- (a) setting galleries
def setting_figures(name: str, clean: list[np.ndarray], img_dir: Path, tile: int) -> list[str]:
    out = []
    for group, names in GROUPS.items():
        rows = [("clean x\n(index 0..7)", [(x, f"#{i}") for i, x in enumerate(clean)])]
        for s in names:
            st = get_setting(s)
            items = []
            for i, x in enumerate(clean):
                y, p = degrade(x, st, 0, i)
                items.append((y, caption(p)))
            rows.append((f"{s}\n{SHORT[s]}", items))
        title = (f"{name}, 32x32, data seed 0: degraded y = JPEG(x*k + n, q) per setting "
                 f"(enlarged {max(1, tile // clean[0].shape[0])}x, nearest)\n"
                 f"captions: r = disk radius, T = motion exposure, \u03c3 = noise std at x=0.5 (8-bit levels), "
                 f"q = JPEG quality")
        path = img_dir / f"settings_{group}_{name}.png"
        size = save_png(compose(rows, tile, title, font_size=11), path)
        log(f"  wrote {path} ({size / 1e3:.0f} kB)")
        out.append(path.name)
    return out


# ---------------------------------------------------------------- (b) kernel galleries
def kernel_figures(img_dir: Path) -> list[str]:
    out = []
    for tag, rmax, length, setting in (("32", 2.0, 5.0, "D"), ("ffhq", 4.0, 10.0, "D-ffhq")):
        K = get_setting(setting).blur.size
        tile = 9 * K if K <= 7 else 5 * K
        rows = []
        radii = np.linspace(0.5, rmax, 16)
        items = []
        for r in radii:
            k = pad_kernel(disk_kernel(float(r)), K)
            items.append((kernel_tile(k), f"r={r:.2f}\nH={kernel_entropy_np(k) + 0.0:.2f}"))
        rows.append((f"disk\nr in [0.5, {rmax:g}]", items))
        for T in (0.1, 0.5, 1.0):
            items = []
            for j in range(16):  # same 16 trajectories in each T row (generator seeded by column)
                k = motion_kernel(length, T, size=K, generator=np.random.default_rng([2021, j]))
                items.append((kernel_tile(k), f"H={kernel_entropy_np(k):.2f}"))
            rows.append((f"motion L={length:g}\nT={T:g}", items))
        title = (f"{'CIFAR-size (32x32)' if tag == '32' else 'FFHQ (128x128)'} kernels, K={K} (setting {setting}); "
                 f"each scaled to its own max; H = entropy (nats).\nMotion rows: the same 16 Boracchi-Foi "
                 f"trajectories of length {length:g} px, first T of the exposure.")
        path = img_dir / f"kernels_{tag}.png"
        size = save_png(compose(rows, tile, title, label_w=120, font_size=10, gap=3), path)
        log(f"  wrote {path} ({size / 1e3:.0f} kB)")
        out.append(path.name)
    return out


def ffhq_figure(img_dir: Path) -> str:
    """FFHQ variants (D-ffhq, J-ffhq, P-ffhq of the paper's Table 3, and N-ffhq) on 128x128 dead leaves.

    The images are degraded at 128x128; the figure shows their central 64x64 (enlarged 2x), which
    keeps the file small and the pixels visible.
    """
    clean = [render_dead_leaves(0, i, 128) for i in range(5)]
    crop = lambda im: im[32:96, 32:96]  # noqa: E731
    rows = [("clean x", [(crop(x), f"#{i}") for i, x in enumerate(clean)])]
    for s in ("D-ffhq", "J-ffhq", "N-ffhq", "P-ffhq"):
        st = get_setting(s)
        items = []
        for i, x in enumerate(clean):
            y, p = degrade(x, st, 0, i)
            items.append((crop(y), caption(p)))
        rows.append((f"{s}\n{SHORT[s.split('-')[0]]}", items))
    title = ("FFHQ variants (disk r~U[0.5,4], motion length 10, K=13) on 128x128 dead leaves, data seed 0;\n"
             "central 64x64 of each 128x128 image, enlarged 2x")
    path = img_dir / "settings_ffhq_deadleaves128.png"
    size = save_png(compose(rows, 128, title, label_w=140, font_size=11), path)
    log(f"  wrote {path} ({size / 1e3:.0f} kB)")
    return path.name


# ---------------------------------------------------------------- (c) ground-truth statistics
def param_stats(n: int) -> list[str]:
    md = []
    # Rates of the partial settings, from `decisions`.
    t0 = time.perf_counter()
    dec = {s: np.array([decisions(get_setting(s), 0, i) for i in range(n)]) for s in "EFGKLMOPQ"}
    md += [f"### Rates of the partial settings ({n:,} images, data seed 0, `decisions`)", "",
           "| setting | target | blurred | noised | compressed | >= 1 type (expected) | all 3 types (expected) |",
           "|---|---|---|---|---|---|---|"]
    for s in "EFGKLMOPQ":
        st, d = get_setting(s), dec[s]
        p = max(st.p_blur, st.p_noise, st.p_jpeg)
        cols = [f"{d[:, j].mean():.4f}" for j in range(3)]
        if s in "OPQ":
            anyt = f"{d.any(axis=1).mean():.4f} ({1 - (1 - p) ** 3:.4f})"
            allt = f"{d.all(axis=1).mean():.4f} ({p ** 3:.4f})"
        else:
            anyt = allt = "-"
        md.append(f"| {s} | {p:g} | {' | '.join(cols)} | {anyt} | {allt} |")
    viol = []
    for fam, col in (("EFG", 0), ("KLM", 2), ("OPQ", 0), ("OPQ", 1), ("OPQ", 2)):
        a, b, c = (dec[s][:, col] for s in fam)
        viol.append(f"{fam}/{['blur', 'noise', 'jpeg'][col]}: {int((a & ~b).sum() + (b & ~c).sum())}")
    md += ["", f"Nesting check (images degraded in the smaller setting but not in the larger one; 0 = nested): "
           + ", ".join(viol) + ".", ""]
    log(f"  rates: {time.perf_counter() - t0:.1f} s")

    # Kernel entropy of B, C, D.
    t0 = time.perf_counter()
    md += [f"### Blur kernels ({n:,} images per setting, data seed 0, `sample_params`)", "",
           "| setting | kernels | K | entropy H(k) mean | std | min | max | detail |", "|---|---|---|---|---|---|---|---|"]
    for s in ("B", "C", "D"):
        st = get_setting(s)
        H, kind, T, R = [], [], [], []
        for i in range(n):
            p, _ = sample_params(st, 0, i)
            H.append(kernel_entropy_np(p.kernel))
            kind.append(p.kernel_type)
            T.append(p.exposure if p.exposure is not None else np.nan)
            R.append(p.radius if p.radius is not None else np.nan)
        H, kind, T, R = np.array(H), np.array(kind), np.array(T), np.array(R)
        det = []
        if (kind == "disk").any():
            det.append(f"disk {np.mean(kind == 'disk'):.3f} of kernels, r in [{np.nanmin(R):.3f}, {np.nanmax(R):.3f}], "
                       f"H {H[kind == 'disk'].mean():.3f}")
        for t in (0.1, 0.5, 1.0):
            m = T == t
            if m.any():
                det.append(f"T={t:g}: {m.mean():.3f} of kernels, H {H[m].mean():.3f}")
        md.append(f"| {s} | {n} | {st.blur.size} | {H.mean():.3f} | {H.std():.3f} | {H.min():.3f} | {H.max():.3f} | "
                  f"{'; '.join(det)} |")
    md.append("")
    log(f"  kernels: {time.perf_counter() - t0:.1f} s")

    # JPEG quality of H, I, J.
    md += [f"### JPEG quality ({n:,} images per setting)", "",
           "| setting | range | mean q (expected) | min | max | fraction q = 100 |", "|---|---|---|---|---|---|"]
    for s in "HIJ":
        st = get_setting(s)
        q = np.array([sample_params(st, 0, i)[0].quality for i in range(n)])
        lo, hi = st.quality
        md.append(f"| {s} | {lo}..{hi} | {q.mean():.2f} ({(lo + hi) / 2:g}) | {q.min()} | {q.max()} | {np.mean(q == 100):.4f} |")
    md.append("")

    # Brooks et al. noise law.
    st = get_setting("noise")
    ps = [sample_params(st, 0, i)[0] for i in range(n)]
    ls, lr = np.log([p.shot for p in ps]), np.log([p.read for p in ps])
    slope, icpt = np.polyfit(ls, lr, 1)
    resid = lr - (slope * ls + icpt)
    sig = np.array([noise_sigma(p.shot, p.read) for p in ps])
    md += [f"### Camera noise law (setting `noise`, {n:,} images)", "",
           "Least-squares fit of log(read) = a log(shot) + b + e (natural logs):", "",
           "| | fitted | the law (Brooks et al. 2019) |", "|---|---|---|",
           f"| slope a | {slope:.4f} | {READ_SLOPE} |", f"| intercept b | {icpt:.4f} | {READ_INTERCEPT} |",
           f"| residual std | {resid.std(ddof=2):.4f} | {READ_STD} |",
           f"| log(shot) range | [{ls.min():.3f}, {ls.max():.3f}] | [{np.log(SHOT_MIN):.3f}, {np.log(SHOT_MAX):.3f}] |",
           f"| mean log(shot) | {ls.mean():.4f} | {(np.log(SHOT_MIN) + np.log(SHOT_MAX)) / 2:.4f} |", "",
           f"Noise std at x = 0.5, sqrt(0.5 shot + read), in 8-bit levels: median {np.median(sig):.2f}, "
           f"5% {np.percentile(sig, 5):.2f}, 95% {np.percentile(sig, 95):.2f}, min {sig.min():.2f}, max {sig.max():.2f}; "
           f"fraction below 2 levels: {np.mean(sig < 2):.3f}.", ""]
    return md


# ---------------------------------------------------------------- (d) pixel statistics
def hf_fraction(imgs: np.ndarray) -> float:
    """Fraction of spectral power (per channel, mean removed, Hann window, summed over images and channels)
    at radial frequency above half Nyquist (|f| > 0.25 cycles/pixel)."""
    x = imgs.astype(np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    n = x.shape[1]
    w = np.hanning(n)
    x = x * (w[:, None] * w[None, :])[None, :, :, None]
    pw = (np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2).sum(axis=(0, 3))
    f = np.fft.fftfreq(n)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    total = pw.sum()
    # nan when there is (numerically) nothing to measure, e.g. the chroma of grey images (rounding residue)
    return float(pw[fr > 0.25].sum() / total) if total > 1e-6 * x[..., 0].size else float("nan")


def ycbcr(imgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JFIF luma Y (N x H x W x 1) and chroma Cb, Cr (N x H x W x 2) of uint8 RGB images, as JPEG sees them."""
    a = imgs.astype(np.float64)
    y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    cb = -0.168736 * a[..., 0] - 0.331264 * a[..., 1] + 0.5 * a[..., 2]
    cr = 0.5 * a[..., 0] - 0.418688 * a[..., 1] - 0.081312 * a[..., 2]
    return y[..., None], np.stack([cb, cr], axis=-1)


def mean_grad(imgs: np.ndarray) -> float:
    """Mean absolute difference of horizontally and vertically adjacent pixels, in 8-bit levels."""
    x = imgs.astype(np.float64)
    return float((np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()) / 2)


def blockiness(imgs: np.ndarray) -> float:
    """Mean |neighbour difference| across the 8x8 JPEG block boundaries / elsewhere (1 = no blocking)."""
    x = imgs.astype(np.float64)
    ratios = []
    for axis in (1, 2):
        d = np.abs(np.diff(x, axis=axis))
        at = (np.arange(d.shape[axis]) % 8) == 7  # difference between pixel 8m+7 and 8m+8
        ratios.append((np.compress(at, d, axis=axis).mean(), np.compress(~at, d, axis=axis).mean()))
    return float(sum(a for a, _ in ratios) / sum(b for _, b in ratios))


def _rel(v: float, v0: float) -> str:
    if np.isnan(v):
        return "-"
    return f"{v:.4f} ({v / v0:.2f})" if v0 > 0 else f"{v:.4f}"


def pixel_stats(name: str, clean: np.ndarray) -> list[str]:
    n = len(clean)
    g0, b0 = mean_grad(clean), blockiness(clean)
    y0, c0 = (hf_fraction(a) for a in ycbcr(clean))
    md = [f"### Pixel statistics, {name} ({n:,} images 32x32, data seed 0)", "",
          "grad = mean |x(i+1) - x(i)| over horizontal and vertical neighbours (8-bit levels); "
          "HF = fraction of spectral power above half Nyquist (|f| > 0.25 cycles/px; mean removed, Hann window) "
          "of the luma Y and of the chroma Cb, Cr (JFIF YCbCr); (ratio to the clean images in brackets); block = mean |difference| across 8x8 block boundaries / elsewhere "
          "(JPEG blocking; 1 = none); PSNR of y against x over the images the setting degrades (aggregate MSE); "
          "ms = `degrade()` time per image in this process.", "",
          "| setting | degraded | grad | HF of Y | HF of CbCr | block | PSNR (dB) | ms/image |",
          "|---|---|---|---|---|---|---|---|",
          f"| clean x | - | {g0:.2f} | {_rel(y0, 0)} | {_rel(c0, 0)} | {b0:.3f} | - | - |"]
    for s in ALL:
        st = get_setting(s)
        ys, deg = np.empty_like(clean), np.zeros(n, bool)
        t0 = time.perf_counter()
        for i in range(n):
            y, p = degrade(clean[i], st, 0, i)
            ys[i], deg[i] = y, p.blurred or p.noised or p.compressed
        ms = 1000 * (time.perf_counter() - t0) / n
        g = mean_grad(ys)
        hy, hc = (hf_fraction(a) for a in ycbcr(ys))
        if deg.any():
            mse = np.mean((ys[deg].astype(np.float64) - clean[deg].astype(np.float64)) ** 2)
            psnr = f"{10 * np.log10(255 ** 2 / mse):.2f}"
        else:
            psnr = "inf"
        md.append(f"| {s} | {deg.mean():.3f} | {g:.2f} ({g / g0:.2f}) | {_rel(hy, y0)} | {_rel(hc, c0)} | "
                  f"{blockiness(ys):.3f} | {psnr} | {ms:.2f} |")
    md.append("")
    return md


# ---------------------------------------------------------------- (e) CLI timing
def cli_timing(n: int, settings: str = "ABCJN") -> list[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    md = [f"### `bncr degrade` wall time (deadleaves, {n:,} images, `--format npy`, OMP_NUM_THREADS=1)", "",
          "Each run is a fresh process: Python + torch import, dead-leaves rendering (about 2 ms/image), "
          "degradation, writing degraded.npy / manifest.json / preview.png / params.png. "
          "'per image' = (t(N) - t(10)) / (N - 10), which removes the fixed start-up and plotting cost "
          "(t(10): best of 2 runs; on a shared machine expect about +-1 ms/image of noise).", "",
          "CPU = user + system time of the child process (less sensitive than wall time to the other "
          "jobs on a shared machine).", "",
          f"| setting | wall t(10) s | wall t({n}) s | wall per image ms | CPU t(10) s | CPU t({n}) s | "
          f"CPU per image ms |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for s in settings:
            ts, cs = [], []
            for m in (10, n):
                cmd = [sys.executable, "-m", "bncr", "degrade", "--dataset", "deadleaves", "--setting", s,
                       "--limit", str(m), "--out", str(Path(tmp) / f"{s}-{m}")]
                best, best_cpu = float("inf"), float("inf")
                for _ in range(2 if m == 10 else 1):  # the short run twice (min): start-up time is noisy
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    best = min(best, time.perf_counter() - t0)
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    best_cpu = min(best_cpu, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
                ts.append(best)
                cs.append(best_cpu)
            md.append(f"| {s} | {ts[0]:.2f} | {ts[1]:.2f} | {1000 * (ts[1] - ts[0]) / (n - 10):.2f} | "
                      f"{cs[0]:.2f} | {cs[1]:.2f} | {1000 * (cs[1] - cs[0]) / (n - 10):.2f} |")
            log(f"  bncr degrade {s}: wall {ts}, cpu {cs}")
    md.append("")
    return md


# ---------------------------------------------------------------- (f) datasets
def dataset_section(img_dir: Path, fm) -> list[str]:
    md = ["### Datasets: power-spectrum slopes (`radial_power_slope`, grey, Hann window, seed 0)", "",
          "| data | images | rings (cycles/image) | slope |", "|---|---|---|---|"]
    dl64 = np.stack([render_dead_leaves(0, i, 64) for i in range(256)])
    md.append(f"| deadleaves 64x64 | 256 | 2..16 | {radial_power_slope(dl64):.3f} |")
    md.append(f"| deadleaves 64x64 | 256 | 2..32 | {radial_power_slope(dl64, 2, 32):.3f} |")
    dl32 = np.stack([render_dead_leaves(0, i, 32) for i in range(1000)])
    md.append(f"| deadleaves 32x32 | 1000 | 2..8 | {radial_power_slope(dl32):.3f} |")
    md.append(f"| deadleaves 32x32 | 1000 | 2..16 | {radial_power_slope(dl32, 2, 16):.3f} |")
    if fm is not None:
        fx = np.stack([fm[i] for i in range(1000)])
        md.append(f"| fashion-mnist 32x32 | 1000 | 2..8 | {radial_power_slope(fx):.3f} |")
        md.append(f"| fashion-mnist 32x32 | 1000 | 2..16 | {radial_power_slope(fx, 2, 16):.3f} |")
    md.append("")
    rows = [("", [(dl32[8 * r + c], "") for c in range(8)]) for r in range(4)]
    p = img_dir / "deadleaves_32.png"
    log(f"  wrote {p} ({save_png(compose(rows, 96, 'deadleaves train images 0..31, 32x32, seed 0 (enlarged 3x)', label_w=0), p) / 1e3:.0f} kB)")
    rows = [("", [(render_dead_leaves(0, i, 128), "") for i in range(5)])]
    p = img_dir / "deadleaves_128.png"
    log(f"  wrote {p} ({save_png(compose(rows, 128, 'deadleaves train images 0..4 at 128x128, seed 0 (1:1)', label_w=0), p) / 1e3:.0f} kB)")
    if fm is not None:
        rows = [("", [(fm[8 * r + c], "") for c in range(8)]) for r in range(3)]
        p = img_dir / "fashion_mnist_32.png"
        log(f"  wrote {p} ({save_png(compose(rows, 96, 'fashion-mnist train images 0..23, padded to 32x32, grey -> RGB (enlarged 3x)', label_w=0), p) / 1e3:.0f} kB)")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs", help="docs folder; figures go to OUT/img (default docs)")
    ap.add_argument("--n", type=int, default=10000, help="images per setting for the ground-truth statistics")
    ap.add_argument("--n-pixel", type=int, default=1000, help="dead-leaves images for the pixel statistics")
    ap.add_argument("--n-time", type=int, default=1000, help="images per `bncr degrade` timing run (0: skip)")
    ap.add_argument("--tile", type=int, default=96, help="tile size in px of the setting figures (32px x 3)")
    ap.add_argument("--fashion-root", default=None, help="Fashion-MNIST folder (default: bncr's search path)")
    args = ap.parse_args()
    if args.n < 10 or args.n_pixel < 10:
        raise SystemExit("--n and --n-pixel must be at least 10")
    img_dir = Path(args.out) / "img"
    t_start = time.perf_counter()
    import matplotlib
    import PIL
    import scipy
    import torch
    print("## Measured by `benchmarks/settings_gallery.py`\n")
    print(f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python "
          f"benchmarks/settings_gallery.py {' '.join(sys.argv[1:])}`; machine: {os.cpu_count()}-core CPU "
          f"(shared), Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"Pillow {PIL.__version__}, scipy {scipy.__version__}, matplotlib {matplotlib.__version__}.\n")

    dl = open_dataset("deadleaves", count=max(args.n_pixel, 8))
    try:
        fm = open_dataset("fashion-mnist", root=args.fashion_root, count=1000)
    except UserError as e:
        log(f"Fashion-MNIST not available ({e}); skipping it")
        fm = None

    log("(a) setting figures")
    figs = setting_figures("deadleaves", [dl[i] for i in range(8)], img_dir, args.tile)
    if fm is not None:
        figs += setting_figures("fashion-mnist", [fm[i] for i in range(8)], img_dir, args.tile)
    figs.append(ffhq_figure(img_dir))
    log("(b) kernel figures")
    figs += kernel_figures(img_dir)
    md: list[str] = []
    log("(f) datasets")
    md += dataset_section(img_dir, fm)
    log("(c) ground-truth statistics")
    md += param_stats(args.n)
    log("(d) pixel statistics")
    clean = np.stack([dl[i] for i in range(args.n_pixel)])
    md += pixel_stats("deadleaves", clean)
    if fm is not None:
        md += pixel_stats("fashion-mnist", np.stack([fm[i] for i in range(min(args.n_pixel, len(fm)))]))
    if args.n_time:
        log("(e) bncr degrade timing")
        md += cli_timing(args.n_time)
    print("\n".join(md))
    sizes = sorted((p.name, p.stat().st_size) for p in img_dir.glob("*.png"))
    print(f"Figures in {img_dir}: " + ", ".join(f"{n} ({s / 1e3:.0f} kB)" for n, s in sizes)
          + f"; total {sum(s for _, s in sizes) / 1e6:.2f} MB.\n")
    print(f"Total runtime of this script: {time.perf_counter() - t_start:.0f} s.")


if __name__ == "__main__":
    main()
