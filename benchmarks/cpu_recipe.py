"""Calibrate the small-net CPU recipe (``--preset cpu``): train a candidate, print a quality-proxy table.

FID is too slow on a CPU (Inception runs at 2-8 img/s), so the candidates are compared with cheap
statistics of n EMA samples of G_x against n clean dead-leaves images (the *test* split, so the
training images are not the reference):

- ``grad``   mean absolute pixel gradient (|dx| + |dy|) / 2, values in [0, 1];
- ``slope``  log-log slope of the radially averaged power spectrum, rings 2..8 cycles/image;
- ``hf``     fraction of spectral energy (DC excluded) at radius > 8 cycles/image (32 px images);
- ``flat``   fraction of pixels whose 3x3 neighbourhood spans <= 4 grey levels in every channel
             (dead leaves: flat discs; GAN "blobs": smooth ramps that are never flat);
- ``step``   fraction of pixels with a gradient > 0.15 (sharp disc edges);
- ``hist``   total-variation distance of 8x8x8 RGB colour histograms, in [0, 1];
- ``swd``    sliced Wasserstein distance of 7x7 RGB patches (x1e3; 128 random projections),
             a distribution distance that sees shapes and edges, 0 for identical sets;
- ``rel``    mean relative error of grad, hf, flat, step and |slope| against the clean set.
The first row of the table is clean train vs clean test (the floor of every statistic).

Usage (from the repository root; one thread per run on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/cpu_recipe.py --out runs/recipe/x --iters 3000 \
        --set lr=5e-4 --set ema=0.99 [--model gan --setting A] [--ema-ramp 0.1] [--kid 500]
    python benchmarks/cpu_recipe.py --eval runs/recipe/x [runs/recipe/y ...] [--all-snapshots]

Training uses ``--preset cpu`` plus the ``--set`` overrides, writes an ordinary run directory, and
adds ``recipe.json`` (wall time, CPU time, it/s, proxy statistics of the EMA and the live G_x).
``--ema-ramp F`` (this script only) replaces the constant EMA decay by
``min(ema, 1 - 1 / (1 + F * it))``: the EMA averages over about the last F * it iterations.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bncr.api import find_snapshot, load_generator, sample_images
from bncr.metrics.imagestats import patch_swd
from bncr.data.deadleaves import DeadLeavesDataset
from bncr.train import loop as loop_mod
from bncr.train.config import preset
from bncr.train.visual import to_uint8

STATS = ("grad", "slope", "hf", "flat", "step", "hist", "swd", "rel")


# --------------------------------------------------------------------------------------- statistics
def _grey(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float64).mean(axis=-1) / 255.0


def spectrum(u8: np.ndarray) -> tuple[float, float]:
    """(slope over rings 2..8, energy fraction beyond ring 8) of the mean power spectrum (Hann window)."""
    x = _grey(u8)
    n = x.shape[1]
    x = x - x.mean(axis=(1, 2), keepdims=True)
    w = np.hanning(n)
    p = (np.abs(np.fft.fft2(x * (w[:, None] * w[None, :]))) ** 2).mean(axis=0)
    f = np.fft.fftfreq(n) * n
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    ks = np.arange(2, n // 4 + 1)
    ring = np.array([p[(fr >= k - 0.5) & (fr < k + 0.5)].mean() for k in ks])
    slope = float(np.polyfit(np.log(ks), np.log(ring), 1)[0])
    hf = float(p[fr > n // 4].sum() / p[fr > 0].sum())
    return slope, hf


def pixel_stats(u8: np.ndarray) -> dict[str, float]:
    x = u8.astype(np.float64) / 255.0
    dx = np.abs(np.diff(x, axis=2))[:, :-1]          # (N, H-1, W-1, 3)
    dy = np.abs(np.diff(x, axis=1))[:, :, :-1]
    g = (dx + dy) / 2
    mag = np.sqrt(dx ** 2 + dy ** 2).max(axis=-1)     # strongest channel
    # 3x3 range per channel
    t = torch.from_numpy(u8.astype(np.float32)).permute(0, 3, 1, 2)
    mx = torch.nn.functional.max_pool2d(t, 3, 1)
    mn = -torch.nn.functional.max_pool2d(-t, 3, 1)
    rng = (mx - mn).amax(dim=1)
    slope, hf = spectrum(u8)
    return {"grad": float(g.mean()), "slope": slope, "hf": hf, "flat": float((rng <= 4).float().mean()),
            "step": float((mag > 0.15).mean())}


def colour_hist(u8: np.ndarray, bins: int = 8) -> np.ndarray:
    q = (u8.astype(np.int64) * bins) // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float64)
    return h / h.sum()


def compare(fake: np.ndarray, ref: np.ndarray, ref_stats: Optional[dict] = None) -> dict[str, float]:
    """Proxy statistics of `fake` (N,H,W,3 uint8) and their distances to `ref`."""
    rs = ref_stats or pixel_stats(ref)
    s = pixel_stats(fake)
    s["hist"] = float(0.5 * np.abs(colour_hist(fake) - colour_hist(ref)).sum())
    s["swd"] = patch_swd(fake, ref)
    keys = ("grad", "hf", "flat", "step", "slope")
    s["rel"] = float(np.mean([abs(s[k] - rs[k]) / max(abs(rs[k]), 1e-9) for k in keys]))
    return s


_REF: dict = {}


def reference(n: int) -> tuple[np.ndarray, dict]:
    """n clean test-split dead-leaves images (the reference) and their statistics, cached per process."""
    if n not in _REF:
        ref = DeadLeavesDataset(count=n, resolution=32, split="test").batch(range(n))
        _REF[n] = (ref, pixel_stats(ref))
    return _REF[n]


def kid(fake: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from bncr.metrics.fid import kid_from_features
    from bncr.metrics.inception import InceptionFeatures
    ext = InceptionFeatures()
    ff = ext.from_batches((torch.from_numpy(fake[i:i + 50]) for i in range(0, len(fake), 50)), total=len(fake))
    fr = ext.from_batches((torch.from_numpy(ref[i:i + 50]) for i in range(0, len(ref), 50)), total=len(ref))
    m, s = kid_from_features(ff, fr)
    return float(m), float(s)


# ---------------------------------------------------------------------------------------------- runs
def fmt_row(name: str, s: dict, extra: str = "") -> str:
    return (f"{name:<34} {extra}" + " ".join(f"{s[k]:>7.4f}" if k not in ("swd",) else f"{s[k]:>7.1f}"
                                             for k in STATS))


def header(extra: str = "") -> str:
    return f"{'run':<34} {extra}" + " ".join(f"{k:>7}" for k in STATS)


def train_candidate(args: argparse.Namespace) -> dict:
    cfg = preset("cpu").override(list(args.set) + [f"model={args.model}", f"setting={args.setting}",
                                                   "threads=" + str(args.threads)])
    if args.iters:
        cfg = cfg.override([f"iters={args.iters}"])
    trainer = loop_mod.Trainer(cfg, args.out, resume=None, progress=False)
    if args.ema_ramp:
        orig = loop_mod.ema_update
        f = float(args.ema_ramp)

        def ramped(ema, live, decay):  # uses the trainer's iteration counter (updated after step())
            orig(ema, live, min(decay, 1.0 - 1.0 / (1.0 + f * (trainer.it + 1))))
        loop_mod.ema_update = ramped
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [json.loads(line) for line in open(Path(args.out) / "stats.jsonl")]
    ref, rs = reference(args.samples)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        live = np.concatenate([to_uint8(trainer.nets.G_x(torch.randn(250, cfg.z_dim, generator=g)))
                               for _ in range(args.samples // 250)])
    ema = sample_images(load_generator(args.out), args.samples, seed=1).numpy()
    res = {"config": cfg.to_dict(), "ema_ramp": args.ema_ramp, "iters": cfg.iters, "wall_s": wall, "cpu_s": cpu,
           "it_per_s_wall": cfg.iters / wall, "it_per_s_cpu": cfg.iters / cpu,
           "it_per_s_ticks_median": float(np.median([r["it_per_s"] for r in rows])),
           "load_avg_end": os.getloadavg()[0], "samples": args.samples,
           "ema": compare(ema, ref, rs), "live": compare(live, ref, rs)}
    if args.kid:
        res["kid"] = kid(ema[:args.kid], ref[:args.kid])
    (Path(args.out) / "recipe.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def save_grid_png(images: np.ndarray, path: Path, scale: int = 2) -> None:
    """64 images as an 8x8 grid, enlarged `scale` x with nearest neighbour (edges stay visible)."""
    from bncr.data.grid import make_grid
    from PIL import Image
    g = make_grid(images[:64], nrow=8, padding=2, pad_value=255)
    Image.fromarray(g).resize((g.shape[1] * scale, g.shape[0] * scale), Image.NEAREST).save(path)


def eval_run(path: Path, samples: int, all_snaps: bool, kid_n: int,
             grid_dir: Optional[Path] = None) -> list[tuple[str, dict]]:
    ref, rs = reference(samples)
    snaps = sorted(path.glob("snapshot-*.pt")) if all_snaps else [find_snapshot(path)]
    out = []
    for sp in snaps:
        fake = sample_images(load_generator(sp), samples, seed=1).numpy()
        if grid_dir is not None:
            save_grid_png(fake, grid_dir / f"recipe-{path.name}-{int(sp.stem.split('-')[1])}.png")
        s = compare(fake, ref, rs)
        if kid_n:
            s["kid"] = kid(fake[:kid_n], ref[:kid_n])
        out.append((f"{path.name}@{int(sp.stem.split('-')[1])}", s))
    return out


def clean_floor(samples: int) -> dict:
    ref, rs = reference(samples)
    train = DeadLeavesDataset(count=samples, resolution=32, split="train").batch(range(samples))
    return compare(train, ref, rs)


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="run directory of the candidate to train")
    ap.add_argument("--eval", nargs="+", help="only evaluate these run directories")
    ap.add_argument("--all-snapshots", action="store_true", help="with --eval: every snapshot, not only the last")
    ap.add_argument("--model", default="gan")
    ap.add_argument("--setting", default="A")
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--ema-ramp", type=float, default=0.0, help="EMA horizon as a fraction of elapsed iterations")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--kid", type=int, default=0, help="also KID on this many EMA samples (slow: Inception)")
    ap.add_argument("--grid-dir", default=None, help="with --eval: save recipe-<run>-<iter>.png sample grids "
                    "(and recipe-clean.png) here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    floor = clean_floor(args.samples)
    if args.eval:
        print(header())
        print(fmt_row("clean train vs test", floor))
        gd = Path(args.grid_dir) if args.grid_dir else None
        if gd is not None:
            gd.mkdir(parents=True, exist_ok=True)
            save_grid_png(reference(args.samples)[0], gd / "recipe-clean.png")
        for p in args.eval:
            for name, s in eval_run(Path(p), args.samples, args.all_snapshots, args.kid, gd):
                print(fmt_row(name, s) + (f"  KID {s['kid'][0]:.4f}+-{s['kid'][1]:.4f}" if "kid" in s else ""))
        return
    if not args.out:
        ap.error("give --out (train a candidate) or --eval RUN...")
    r = train_candidate(args)
    extra = f"{'iters':>6} {'wall_s':>7} {'it/s':>6} {'it/s cpu':>8} "
    print(header(extra))
    print(fmt_row("clean train vs test", floor, " " * len(extra)))
    x = f"{r['iters']:>6} {r['wall_s']:>7.0f} {r['it_per_s_wall']:>6.2f} {r['it_per_s_cpu']:>8.2f} "
    print(fmt_row(Path(args.out).name + " (EMA)", r["ema"], x))
    print(fmt_row(Path(args.out).name + " (live G)", r["live"], x))
    if "kid" in r:
        print(f"KID (Inception, {args.kid} EMA samples vs {args.kid} clean test images): "
              f"{r['kid'][0]:.4f} +- {r['kid'][1]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
