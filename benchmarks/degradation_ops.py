"""Benchmark the generator-side degradation layers against kornia and Pillow's real JPEG.

For the same inputs in one run it prints:
  1. forward fidelity of diff_jpeg vs Pillow (libjpeg) per quality: mean PSNR and identical values,
     next to the Shin & Song polynomial rounding (rounding="cubic") and kornia's differentiable JPEG;
  2. an ablation: what each reproduced libjpeg detail is worth in PSNR against Pillow;
  3. the quality gradient: autograd dE/dq against the finite-difference slope of real JPEG's error,
     E(q) = ||JPEG(x, q) - x||^2, slope = (E_pillow(q + 5) - E_pillow(q - 5)) / 10, over images with
     q ~ U[20, 95]: sign agreement, Spearman rank correlation, median ratio gradient / slope;
  4. forward+backward time of diff_jpeg, blur and the noise layer at 64x3x32x32 and 16x3x128x128.

Data: random crops of the colour photographs bundled with scikit-image (no download).
kornia and scikit-image are benchmark-only dependencies: `pip install kornia scikit-image`.

    python benchmarks/degradation_ops.py            # the run recorded in docs/degradation-ops.md
    python benchmarks/degradation_ops.py --quick    # smaller sample counts, for a smoke test
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import PIL
import torch
from PIL import features
from scipy.stats import spearmanr

from bncr.degradations import diff_jpeg as dj
from bncr.degradations.blur import blur, identity_kernel
from bncr.degradations.jpeg import jpeg_pil
from bncr.degradations.noise_layer import generated_noise

try:  # optional benchmark dependency
    import kornia
except ImportError:  # pragma: no cover - reported in the output
    kornia = None

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "stereo_motorcycle")


def load_photos() -> list:
    try:
        import skimage.data as skd
    except ImportError:
        sys.exit("this benchmark needs scikit-image for its natural images: pip install scikit-image")
    out = []
    for name in PHOTOS:
        a = getattr(skd, name)()
        a = a[0] if isinstance(a, tuple) else a
        out.append(np.ascontiguousarray(a[..., :3]))
    return out


def crops(photos: list, n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    res = []
    for i in range(n):
        a = photos[i % len(photos)]
        r, c = rng.integers(0, a.shape[0] - h), rng.integers(0, a.shape[1] - w)
        res.append(a[r:r + h, c:c + w])
    return np.stack(res)


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255.0


def pillow(u8: np.ndarray, qualities) -> torch.Tensor:
    return to_tensor(np.stack([jpeg_pil(im, int(q)) for im, q in zip(u8, qualities)]))


def psnr_stats(y: torch.Tensor, ref: torch.Tensor) -> tuple:
    """(mean per-image PSNR in dB, inf if every image is identical; % of identical uint8 values)."""
    y8 = torch.round(y.detach().clamp(0, 1) * 255)
    r8 = torch.round(ref * 255)
    same = (y8 == r8).float().mean().item() * 100
    mse = ((y.detach() - ref) ** 2).flatten(1).mean(1)
    if bool((mse == 0).all()):
        return float("inf"), same
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))  # identical images count as 100 dB
    return psnr.mean().item(), same


def codecs() -> dict:
    out = {
        "ours (ste)": lambda x, q: dj.diff_jpeg(x, q),
        "ours cubic": lambda x, q: dj.diff_jpeg(x, q, rounding="cubic"),
    }
    if kornia is not None:
        out["kornia"] = lambda x, q: kornia.enhance.jpeg_codec_differentiable(x, q)
    return out


def fmt_psnr(p: float) -> str:
    return "   inf" if p == float("inf") else f"{p:6.2f}"


def section_fidelity(photos: list, n32: int, n128: int, seed: int) -> None:
    print("\n## 1. Forward fidelity against Pillow (same uint8 inputs, same integer q)")
    qs = (10, 30, 50, 60, 70, 75, 80, 90, 95, 100)
    for (h, w, n) in ((32, 32, n32), (45, 37, n32), (128, 128, n128)):
        u8 = crops(photos, n, h, w, seed + h)
        x = to_tensor(u8)
        print(f"\n{n} crops of {h}x{w}: mean per-image PSNR in dB (identical uint8 values in %)")
        names = list(codecs())
        print("    q  " + "".join(f"{nm:>24s}" for nm in names))
        for q in qs:
            ref = pillow(u8, [q] * n)
            cells = []
            for nm, fn in codecs().items():
                with torch.no_grad():
                    p, same = psnr_stats(fn(x, torch.full((n,), float(q))), ref)
                cells.append(f"{fmt_psnr(p)} ({same:6.2f}%)")
            print(f"  {q:3d}  " + "".join(f"{c:>24s}" for c in cells))


def section_ablation(photos: list, n: int, seed: int) -> None:
    print("\n## 2. Ablation: each libjpeg detail switched off alone (ours, rounding='ste')")
    print(f"{n} crops of 32x32 plus {n} of 45x37; PSNR vs Pillow, q in 60/70/80/90/100; min and mean over q")
    qs = (60, 70, 80, 90, 100)
    sets = [crops(photos, n, 32, 32, seed + 1), crops(photos, n, 45, 37, seed + 2)]
    refs = [[pillow(u8, [q] * n) for q in qs] for u8 in sets]
    descriptions = {
        "round_input": "x*255 not rounded to integers",
        "round_ycc": "RGB->YCbCr not rounded",
        "round_down": "4:2:0 box average without floor/bias",
        "bottom_pad": "bottom rows replicated before downsampling",
        "islow": "float DCT/IDCT instead of JDCT_ISLOW",
        "fancy": "nearest (box) upsampling instead of fancy",
        "round_up": "fancy upsampling without floor",
        "round_rgb": "YCbCr->RGB tables not rounded",
    }
    variants = [("all details (diff_jpeg)", dj.LIBJPEG_DETAILS)]
    variants += [(f"- {descriptions[d]}", dj.LIBJPEG_DETAILS - {d}) for d in sorted(dj.LIBJPEG_DETAILS)]
    variants.append(("only the final uint8 rounding", frozenset()))
    for name, details in variants:
        ps = []
        for u8, rq in zip(sets, refs):
            x = to_tensor(u8)
            for q, ref in zip(qs, rq):
                with torch.no_grad():
                    y = dj._codec(x, torch.full((n,), float(q)), "ste", details, "residual")
                ps.append(psnr_stats(y, ref)[0])
        finite = [min(p, 100.0) for p in ps]
        lo = "inf" if min(ps) == float("inf") else f"{min(ps):.2f}"
        print(f"  {name:48s} min {lo:>6s}   mean {statistics.mean(finite):6.2f}  (identical images count as 100)")


def section_qgrad(photos: list, n: int, seed: int) -> None:
    print("\n## 3. Quality gradient vs the finite-difference slope of real JPEG error")
    u8 = crops(photos, n, 32, 32, seed + 7)
    x = to_tensor(u8)
    q = np.random.default_rng(seed + 3).uniform(20, 95, size=n)
    qi = np.round(q).astype(int)

    def err(y):
        return ((y - x) ** 2).flatten(1).sum(1)

    slope = ((err(pillow(u8, qi + 5)) - err(pillow(u8, qi - 5))) / 10.0).numpy()
    neg = slope < 0
    print(f"{n} crops of 32x32, q ~ U[20, 95] (seed {seed + 3}); E = sum of squared error over pixels in [0,1];")
    print(f"real JPEG's slope is negative for {neg.mean() * 100:.1f}% of the images (so that is the best"
          " sign agreement a gradient that always says 'lower q, more error' can reach)")
    rules = {
        "ours (ste, residual rule)": lambda x, q: dj.diff_jpeg(x, q),
        "ours, zero q-grad for k=0": lambda x, q: dj._codec(x, q, "ste", dj.LIBJPEG_DETAILS, "nonzero"),
        "ours, exact a.e. d(Qk)/dQ=k": lambda x, q: dj._codec(x, q, "ste", dj.LIBJPEG_DETAILS, "exact"),
        "ours cubic (Shin & Song)": lambda x, q: dj.diff_jpeg(x, q, rounding="cubic"),
    }
    if kornia is not None:
        rules["kornia"] = lambda x, q: kornia.enhance.jpeg_codec_differentiable(x, q)
    bins = (20, 35, 50, 65, 80, 95.01)
    print(f"  {'layer':30s} {'sign agree':>10s} {'Spearman':>9s} {'median grad/slope':>18s}   "
          "median grad/slope for q in [20,35) [35,50) [50,65) [65,80) [80,95]")
    for name, fn in rules.items():
        qt = torch.tensor(q, dtype=torch.float32, requires_grad=True)
        (g,) = torch.autograd.grad(err(fn(x, qt)).sum(), qt)
        g = g.numpy()
        sign = float((np.sign(g) == np.sign(slope)).mean())
        rho = spearmanr(g, slope).correlation
        ratio = float(np.median(g[neg] / slope[neg]))
        per_bin = []
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = neg & (q >= lo) & (q < hi)
            per_bin.append(f"{np.median(g[sel] / slope[sel]):8.3g}")
        print(f"  {name:30s} {sign * 100:9.1f}% {rho:9.3f} {ratio:18.3g}   {''.join(per_bin)}")


def section_recovery(photos: list, seed: int) -> None:
    print("\n## 3b. Recovering a hidden q* by gradient descent on q (x fixed, targets made by Pillow at q*)")
    u8 = crops(photos, 8, 32, 32, seed + 11)
    x = to_tensor(u8)
    print("8 crops of 32x32; Adam lr 4, x0.95 per step, 80 steps, one q for all 8 images, clamped to [1, 100]")
    print("  loss 'energy': mean (log||psi(x,q)-x||^2 - log||JPEG(x,q*)-x||^2)^2 (a distortion statistic)")
    print("  loss 'pixel' : mean ||psi(x,q) - JPEG(x,q*)||^2 (match one particular JPEG pixel by pixel)")
    for loss_kind in ("energy", "pixel"):
        cells = []
        for q_star, q_start in ((30, 75), (60, 20), (90, 40)):
            target = pillow(u8, [q_star] * 8)
            e_star = ((target - x) ** 2).flatten(1).sum(1)
            q = torch.tensor(float(q_start), requires_grad=True)
            opt = torch.optim.Adam([q], lr=4.0)
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
            for _ in range(80):
                y = dj.diff_jpeg(x, q.expand(8))
                if loss_kind == "energy":
                    loss = (((y - x) ** 2).flatten(1).sum(1).log() - e_star.log()).square().mean()
                else:
                    loss = ((y - target) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    q.clamp_(1.0, 100.0)
            cells.append(f"q*={q_star} from {q_start}: {q.item():6.2f}")
        print(f"  {loss_kind:7s} " + "   ".join(cells))


def timed(fn, reps: int) -> float:
    """Median wall time in ms of fn() (forward + backward), after 3 warm-up calls."""
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


def section_speed(reps: int, seed: int) -> None:
    print(f"\n## 4. Forward + backward time (median of {reps} runs, ms), loss = sum of squares of the output")
    torch.manual_seed(seed)
    for shape in ((64, 3, 32, 32), (16, 3, 128, 128)):
        n = shape[0]
        x = torch.rand(shape, requires_grad=True)
        q = torch.full((n,), 75.0, requires_grad=True)
        kern = torch.softmax(torch.randn(n, 7 * 7), dim=1).view(n, 7, 7).requires_grad_()
        g = (torch.rand(shape) * 2 - 1).requires_grad_()
        ab = torch.tensor([[1e-2, 1e-4]]).repeat(n, 1).requires_grad_()

        def run(f):
            return lambda: f().square().sum().backward()

        jobs = {"diff_jpeg ours": run(lambda: dj.diff_jpeg(x, q))}
        if kornia is not None:
            jobs["diff_jpeg kornia"] = run(lambda: kornia.enhance.jpeg_codec_differentiable(x, q))
        jobs["blur 7x7 ours"] = run(lambda: blur(x, kern))
        if kornia is not None:
            # kornia filters by correlation; flip to the same convolution as ours
            jobs["blur 7x7 kornia filter2d"] = run(
                lambda: kornia.filters.filter2d(x, kern.flip(-1, -2), border_type="reflect"))
        jobs["noise 'poisson' ours"] = run(lambda: generated_noise(x * 2 - 1, g, "poisson"))
        jobs["noise 'brooks' ours"] = run(lambda: generated_noise(x, ab, "brooks"))
        # interleave the layers so that load changes on a shared machine hit all of them alike
        times = {k: [] for k in jobs}
        for _ in range(3):
            for k, f in jobs.items():
                times[k].append(timed(f, max(1, reps // 3)))
        print(f"\n  {'x'.join(map(str, shape))}")
        for k in jobs:
            print(f"    {k:28s} {statistics.median(times[k]):8.1f}")
        if kornia is not None:
            r = statistics.median(times["diff_jpeg ours"]) / statistics.median(times["diff_jpeg kornia"])
            print(f"    diff_jpeg time ratio ours / kornia: {r:.2f}")
            with torch.no_grad():
                d = (blur(x, kern) - kornia.filters.filter2d(x, kern.flip(-1, -2), border_type="reflect")).abs().max()
            print(f"    blur: max |ours - kornia| = {d.item():.2e}; identity kernel exact: "
                  f"{torch.equal(blur(x.detach(), identity_kernel(7).expand(n, 7, 7)), x.detach())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: less noise on shared machines)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=21, help="timed repetitions per layer and shape")
    ap.add_argument("--quick", action="store_true", help="small sample counts (smoke test)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n32, n128, n_abl, n_grad = (16, 4, 8, 64) if args.quick else (128, 32, 64, 512)

    print("# Degradation layers vs kornia and Pillow")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs visible, torch threads {args.threads}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"torch {torch.__version__}, Pillow {PIL.__version__} (libjpeg-turbo "
          f"{features.version('libjpeg_turbo')}), kornia {getattr(kornia, '__version__', 'not installed')}, "
          f"numpy {np.__version__}")
    photos = load_photos()
    print(f"data: random crops of scikit-image photos {', '.join(PHOTOS)}")
    t0 = time.time()
    section_fidelity(photos, n32, n128, args.seed)
    section_ablation(photos, n_abl, args.seed)
    section_qgrad(photos, n_grad, args.seed)
    section_recovery(photos, args.seed)
    section_speed(args.reps, args.seed)
    print(f"\ntotal benchmark time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
