"""BR-GAN vs GAN on blurred dead leaves (setting B: disk blur, r ~ U[0.5, 2]) with short CPU runs.

Does BR-GAN's kernel generator G_k learn blur (kernel entropy and mask m_k away from the identity
kernel k_I), and are BR-GAN's clean fakes x^g sharper than GAN's fakes? One command trains both
models (unless the run directories already hold a final snapshot), measures sharpness on EMA
samples and prints a markdown table:

    OMP_NUM_THREADS=1 python benchmarks/blur_experiment.py --iters 3000 --out runs/blur

Sharpness statistics (images in [0, 1], RGB):
  grad  = mean over pixels of (|x[i, j+1] - x[i, j]| + |x[i+1, j] - x[i, j]|) / 2
  hf    = fraction of the (mean-removed, per channel) spectral power at radial frequency above half
          Nyquist (|f| > 0.25 cycles/px)

Variants for the collapse study (``--tag`` names the run ``<model>-<tag>``; the library is patched
in this process only, never edited):
  --gk-lr-mult M     G_k's Adam learning rate = M * lr (G_x keeps lr)
  --gk-head-gain G   Xavier gain of G_k's output layer (how much k, m_k vary with z at init)
  --gk-sigma S       std (px) of the Gaussian that k_hat starts from
  --set key=value    any TrainConfig option (ds, mask_init, r1, ema, ...)
``--only br-gan`` trains/measures one model; ``--measure DIR [DIR ...]`` measures existing runs.
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

import bncr.train.loop as loop
from bncr.api import load_pipeline
from bncr.degradations.kernels import kernel_entropy_np
from bncr.degradations.settings import get_setting, sample_params
from bncr.nets.degradation_generators import KernelGenerator
from bncr.train.config import TrainConfig
from bncr.train.visual import to_uint8

HALF_NYQUIST = 0.25  # cycles per pixel


# ------------------------------------------------------------------------------------------ metrics
def grad_mean(u8: np.ndarray) -> float:
    """Mean absolute horizontal/vertical pixel difference of (N, H, W, 3) uint8 images, on [0, 1]."""
    f = u8.astype(np.float64) / 255.0
    dx = np.abs(np.diff(f, axis=2)).mean()
    dy = np.abs(np.diff(f, axis=1)).mean()
    return float((dx + dy) / 2)


def hf_fraction(u8: np.ndarray, cutoff: float = HALF_NYQUIST) -> float:
    """Fraction of spectral power (mean removed per image and channel) above `cutoff` cycles/px."""
    f = u8.astype(np.float64) / 255.0
    f = f - f.mean(axis=(1, 2), keepdims=True)
    p = np.abs(np.fft.fft2(f, axes=(1, 2))) ** 2
    h, w = u8.shape[1:3]
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    hi = np.sqrt(fx ** 2 + fy ** 2) > cutoff
    return float(p[:, hi].sum() / p.sum())


# ------------------------------------------------------------------------------------------ training
def make_config(model: str, args) -> TrainConfig:
    cfg = TrainConfig(model=model, setting="B", dataset="deadleaves", count=args.count, width=args.width,
                      d_width=args.width, batch=args.batch, iters=args.iters, seed=args.seed, threads=1,
                      tick=50, image_every=500, snap_every=max(500, args.iters // 4))
    return cfg.override(args.set)


def patch_library(args) -> None:
    """Apply the study's variants by patching bncr in this process (G_k init, G_k learning rate)."""
    if args.gk_head_gain is not None or args.gk_sigma is not None:
        orig_build = loop.build_nets

        def build_nets(cfg, spec, setting, resolution):
            import copy
            nets = orig_build(cfg, spec, setting, resolution)
            old = nets.pipe.G_k
            if isinstance(old, KernelGenerator):
                torch.manual_seed(cfg.seed + 7)
                new = KernelGenerator(old.kernel_size, z_dim=old.z_dim, mask=old.mask, mask_init=cfg.mask_init,
                                      kernel_init_sigma=args.gk_sigma,
                                      head_gain=1.0 if args.gk_head_gain is None else args.gk_head_gain)
                nets.pipe.G_k = new
                nets.pipe_ema.G_k = copy.deepcopy(new).eval().requires_grad_(False)
            return nets
        loop.build_nets = build_nets


def train_run(model: str, out: Path, args) -> float:
    """Train one run into `out` (no-op if finished); returns wall seconds (from log if existing)."""
    final = out / f"snapshot-{args.iters:06d}.pt"
    meta = out / "blur_experiment.json"
    if final.exists():
        return json.loads(meta.read_text())["wall_s"] if meta.exists() else float("nan")
    torch.set_num_threads(1)
    cfg = make_config(model, args)
    patch_library(args)
    t0 = time.time()
    tr = loop.Trainer(cfg, out, resume="auto", progress=False)
    if args.gk_lr_mult is not None and tr.nets.pipe.G_k is not None and tr.it == 0:
        gk = list(tr.nets.pipe.G_k.parameters())
        ids = {id(p) for p in gk}
        rest = [p for p in tr.nets.g_params() if id(p) not in ids]
        tr.opt_G = torch.optim.Adam([{"params": rest}, {"params": gk, "lr": cfg.lr * args.gk_lr_mult}],
                                    lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    tr.run()
    wall = time.time() - t0
    meta.write_text(json.dumps({"wall_s": wall, "argv": sys.argv, "iters": args.iters,
                                "gk_lr_mult": args.gk_lr_mult, "gk_head_gain": args.gk_head_gain,
                                "gk_sigma": args.gk_sigma}, indent=1))
    return wall


# ------------------------------------------------------------------------------------------ measuring
def real_images(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean x^r, blurred y^r) uint8 of the first n training images (setting B, data seed 0)."""
    from bncr.data import open_dataset
    clean = open_dataset("deadleaves", 32, count=count)
    y, x = loop.materialise(clean, get_setting("B"), 0, False)
    return x[:n], y[:n]


def true_kernels(n: int, size: int = 7) -> np.ndarray:
    s = get_setting("B")
    out = []
    for i in range(n):
        p, _ = sample_params(s, 0, i)
        k = np.zeros((size, size))
        pad = (size - p.kernel.shape[0]) // 2
        k[pad:size - pad, pad:size - pad] = p.kernel
        out.append(k)
    return np.stack(out)


def load_live(run: Path):
    """(G_x, pipe) with the *live* (non-EMA) weights of the run's training-state.pt.

    Short runs need this: with EMA decay 0.999 the EMA weights after 1,000 iterations still hold
    0.999^1000 = 37% of the random initialisation."""
    from bncr.degradations.settings import get_setting as gs
    from bncr.models.registry import get_model
    from bncr.train.checkpoint import STATE_FORMAT, load_checked
    s = load_checked(run / "training-state.pt", STATE_FORMAT)
    cfg = TrainConfig.from_dict(s["config"])
    nets = loop.build_nets(cfg, get_model(cfg.model), gs(cfg.setting), 32)
    nets.G_x.load_state_dict(s["G_x"])
    nets.pipe.load_state_dict(s["pipe"])
    return nets.G_x.eval().requires_grad_(False), nets.pipe.eval().requires_grad_(False), int(s["iteration"])


@torch.no_grad()
def samples(run: Path, n: int, seed: int = 1, weights: str = "ema") -> dict:
    """Samples of a run (EMA or live weights): clean fakes x^g, degraded fakes y^g, kernels (if G_k)."""
    if weights == "live":
        G, pipe, it = load_live(run)
    else:
        G, pipe, _ = load_pipeline(run)
    g = torch.Generator().manual_seed(seed)
    xs, ys, ks, ms = [], [], [], []
    for i in range(0, n, 250):
        b = min(250, n - i)
        x = G(torch.randn(b, G.z_dim, generator=g))
        o = pipe(x, pipe.sample_latents(b, g, "cpu"))
        xs.append(to_uint8(x))
        ys.append(to_uint8(o.y))
        if o.k is not None:
            ks.append(o.k.numpy())
            ms.append(pipe.G_k(pipe.sample_latents(b, torch.Generator().manual_seed(seed + i), "cpu")["z_k"]).m_k.numpy())
    out = {"x": np.concatenate(xs), "y": np.concatenate(ys)}
    if ks:
        out["k"], out["m_k"] = np.concatenate(ks), np.concatenate(ms)
    return out


def measure(runs: dict[str, Path], n: int, count: int, weights: str = "ema") -> tuple[list[dict], dict]:
    x_r, y_r = real_images(n, count)
    rows = [{"what": "real clean x^r", "grad": grad_mean(x_r), "hf": hf_fraction(x_r)},
            {"what": "real blurred y^r (setting B)", "grad": grad_mean(y_r), "hf": hf_fraction(y_r)}]
    tk = true_kernels(n)
    ent_true = float(np.mean([kernel_entropy_np(k) for k in tk]))
    extra = {"true_entropy": ent_true, "real_x": x_r, "real_y": y_r, "true_k": tk, "samples": {}}
    for name, run in runs.items():
        s = samples(run, n, weights=weights)
        extra["samples"][name] = s
        rows.append({"what": f"{name}: x^g", "grad": grad_mean(s["x"]), "hf": hf_fraction(s["x"])})
        if "k" in s:
            ent = float(np.mean([kernel_entropy_np(k) for k in s["k"]]))
            rows[-1].update(entropy=ent, m_k=float(s["m_k"].mean()))
            rows.append({"what": f"{name}: y^g = x^g * k^g", "grad": grad_mean(s["y"]), "hf": hf_fraction(s["y"])})
    rows[1]["entropy"] = ent_true
    return rows, extra


def table(rows: list[dict]) -> str:
    lines = ["| images | mean abs gradient | HF power fraction (>1/2 Nyquist) | kernel entropy (nats) | mean m_k |",
             "|---|---|---|---|---|"]
    for r in rows:
        e = f"{r['entropy']:.3f}" if "entropy" in r else ""
        m = f"{r['m_k']:.3f}" if "m_k" in r else ""
        lines.append(f"| {r['what']} | {r['grad']:.4f} | {r['hf']:.4f} | {e} | {m} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ pictures
def pictures(extra: dict, runs: dict[str, Path], img_dir: Path, prefix: str = "brgan") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from bncr.train.visual import grid
    img_dir.mkdir(parents=True, exist_ok=True)
    S = extra["samples"]
    panels = [("real clean x^r", extra["real_x"]), ("real blurred y^r (B)", extra["real_y"])]
    for name in runs:
        panels.append((f"{name} x^g", S[name]["x"]))
        if "k" in S[name]:
            panels.append((f"{name} y^g", S[name]["y"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (t, im) in zip(axes, panels):
        ax.imshow(grid(im[:36], 6), interpolation="nearest")
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(img_dir / f"{prefix}-samples.png", dpi=90)
    plt.close(fig)
    # kernels: generated vs true
    kruns = [n for n in runs if "k" in S[n]]
    fig, axes = plt.subplots(1 + len(kruns), 8, figsize=(8 * 1.0, 1.15 * (1 + len(kruns))))
    axes = np.atleast_2d(axes)
    rows = [("true k^r", extra["true_k"])] + [(f"{n} k^g", S[n]["k"]) for n in kruns]
    for r, (t, ks) in enumerate(rows):
        for c in range(8):
            ax = axes[r, c]
            ax.imshow(ks[c], cmap="magma", vmin=0, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(t, fontsize=7)
            ax.set_title(f"H={kernel_entropy_np(ks[c]):.2f}", fontsize=6)
    fig.tight_layout()
    fig.savefig(img_dir / f"{prefix}-kernels.png", dpi=90)
    plt.close(fig)


def curves(runs: dict[str, Path], true_entropy: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, run in runs.items():
        rows = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines() if l.strip()]
        if not rows or "kernel_entropy_mean" not in rows[0]:
            continue
        it = [r["iteration"] for r in rows]
        axes[0].plot(it, [r["kernel_entropy_mean"] for r in rows], label=name)
        axes[1].plot(it, [r["m_k_mean"] for r in rows], label=name)
    axes[0].axhline(true_entropy, color="k", ls="--", lw=1, label=f"true mean {true_entropy:.2f}")
    axes[0].set_ylabel("mean kernel entropy (nats)")
    axes[1].set_ylabel("mean mask m_k")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main
def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--out", default="runs/blur")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=1000, help="EMA samples to measure")
    ap.add_argument("--tag", default="w16")
    ap.add_argument("--only", choices=["gan", "br-gan"], default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--gk-lr-mult", type=float, default=None)
    ap.add_argument("--gk-head-gain", type=float, default=None)
    ap.add_argument("--gk-sigma", type=float, default=None)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--measure", nargs="+", default=None, metavar="RUN", help="only measure these run dirs")
    ap.add_argument("--weights", choices=["ema", "live"], default="ema",
                    help="measure EMA (snapshot) or live (training-state.pt) generators")
    ap.add_argument("--curve-runs", nargs="*", default=[], metavar="RUN",
                    help="extra run dirs whose entropy/mask curves join brgan-curves.png")
    ap.add_argument("--img-dir", default=None, help="write pictures here (e.g. docs/research/img)")
    ap.add_argument("--img-prefix", default="brgan", help="file name prefix of the pictures")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.measure:
        runs = {Path(r).name: Path(r) for r in args.measure}
    else:
        models = [args.only] if args.only else ["gan", "br-gan"]
        runs = {}
        for m in models:
            run = out / f"{m}-{args.tag}"
            wall = train_run(m, run, args)
            print(f"{m}: {args.iters} iterations, wall {wall:.0f} s ({run})", flush=True)
            runs[m] = run
        if args.train_only:
            return
    rows, extra = measure(runs, args.n, args.count, args.weights)
    print(f"\n{args.n} {args.weights} samples per model; setting B dead leaves 32x32; true mean kernel entropy "
          f"{extra['true_entropy']:.3f} nats\n")
    print(table(rows))
    if args.img_dir:
        pictures(extra, runs, Path(args.img_dir), args.img_prefix)
        crv = dict(runs, **{Path(r).name: Path(r) for r in args.curve_runs})
        curves(crv, extra["true_entropy"], Path(args.img_dir) / f"{args.img_prefix}-curves.png")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
