"""The CPU scale (docs/research/cpu-scale.md): convergence curves and comparison tables of small runs.

    python benchmarks/cpu_scale.py curve runs/x [runs/y ...] [--num 500] [--kid]
        per snapshot of each run: the degradation statistics of 500 EMA samples of G_x and their 7x7-patch
        sliced Wasserstein distance to 500 clean training images (cheap); --kid adds KID (Inception, slow),
        --kid-every K adds it at multiples of K iterations only
    python benchmarks/cpu_scale.py table OUT.md runs/x [runs/y ...] [--num 500]
        `bncr compare` of the runs (clean and degraded data rows first), medians per model, written to OUT.md (+ .json)
    python benchmarks/cpu_scale.py recovery runs/x [runs/y ...]
        `bncr inspect` numbers of each run against the recovery targets (pass / FAIL)
    python benchmarks/cpu_scale.py readnoise [--n 2000]
        how much of setting N's read noise (the std curve at x = 0) the degraded shapes show at all
    python benchmarks/cpu_scale.py spread runs/x [runs/y ...] [--num 500] [--k 8]
        the image statistics' spread between sets of 500 images of one source (clean sets; latent seeds of a run)
    python benchmarks/cpu_scale.py profile runs/x [runs/y ...] [--num 2000]
        mean |neighbour difference| at each position of a row or column over its mean: where the edges lie (a frame)
    python benchmarks/cpu_scale.py dprobe runs/x [runs/y ...] [--n 1000]
        the run's final D on the degraded data, the clean data, the pipeline's JPEG at the true q, half of it, q 95
    python benchmarks/cpu_scale.py dsee [--widths 32 64] [--r1 1 0.1] [--masks 0 0.5] [--steps 1000] [--setting J] [--fake-q Q] [--every N] [--seed S]
        a D alone, trained to tell the data's JPEG from none (m 0) or half of it (m 0.5): held-out accuracy
    python benchmarks/cpu_scale.py dgrad runs/x [runs/y ...] [--n 512]
        per grid phase (position mod 8), how the final D's gradient asks G_x to change its neighbour differences
    python benchmarks/cpu_scale.py jpegnoise [--stds 0 1 2 4] [--qs 60 80 100] [--num 500]
        the flat-region noise statistic of clean shapes plus white noise of each std, after JPEG at each quality:
        which noise levels the data's JPEG leaves visible at all
    python benchmarks/cpu_scale.py init [--seeds 0 1 ...] [--set KEY=VALUE ...]
        the degradation generators' initial outputs per seed (what the warm-up holds), `laptop` BNCR-GAN on N

Run directories are ordinary `bncr train` outputs, so every number here can be reproduced with the command
stored in the run's config.json (`bncr train --like RUN --out ...`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def curve(runs: list[str], num: int, kid: bool, kid_every: int = 0) -> None:
    from bncr.api import load_generator, sample_images
    from bncr.metrics.evaluate import evaluate_run, list_snapshots, open_reference, run_config, snapshot_iteration
    from bncr.metrics.imagestats import STAT_KEYS, image_stats
    for run in runs:
        cfg = run_config(run)
        ref = open_reference(cfg)
        clean = np.stack([ref[i] for i in range(min(num, len(ref)))])
        kids = {}
        if kid and not kid_every:
            rep = evaluate_run(run, metrics=("kid",), num=num, snapshots="all", progress=False)
            kids = {r.iteration: r.value for r in rep.rows}
        if kid_every:   # KID of the same samples as the statistics, on every kid_every-th iteration only
            from bncr.metrics.fid import kid_from_features
            from bncr.metrics.inception import InceptionFeatures
            from bncr.metrics.reference import reference_features
            ext = InceptionFeatures(progress=False)
            ref_f = reference_features(ref, num, ext, split="train", progress=False)
        print(f"{run}: {cfg['config']['model']} on {cfg['config']['dataset']} setting {cfg['config']['setting']}")
        print(f"{'iteration':>9} " + " ".join(f"{k:>10}" for k in (*STAT_KEYS, "patch_swd")) + ("  KID x1e3" if kid or kid_every else ""))
        for snap in list_snapshots(run):
            it = snapshot_iteration(snap)
            x = sample_images(load_generator(snap), num, seed=0).numpy()
            s = image_stats(x, clean)
            if kid_every and it % kid_every == 0:
                f = ext.from_batches([x], total=len(x), progress=False)
                kids[it] = kid_from_features(f, ref_f.features, subset_size=min(1000, len(f), ref_f.count))[0]
            line = f"{it:>9} " + " ".join(f"{s[k]:>10.3f}" for k in (*STAT_KEYS, "patch_swd"))
            print(line + (f"  {kids[it] * 1e3:8.2f}" if it in kids else ""), flush=True)


def medians(rows) -> str:
    """Per model: the median over its runs (seeds) of each column, and the KID of every seed."""
    from bncr.metrics.compare import COLUMNS
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.name, []).append(r)
    cols = [c for c in COLUMNS if any(c in r.values for r in rows)]
    lines = ["| images | runs | " + " | ".join("KID x1e3" if c == "kid" else c for c in cols) + " | KID x1e3 per run |",
             "|" + "---|" * (len(cols) + 3)]
    for name, rs in groups.items():
        med = {c: float(np.median([r.values[c] for r in rs if c in r.values])) for c in cols}
        cells = [f"{med[c] * 1e3:.1f}" if c == "kid" else f"{med[c]:.3g}" for c in cols]
        per = ", ".join(f"{r.values['kid'] * 1e3:.1f}" for r in rs)
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {per} |")
    return "\n".join(lines)


def table(out: str, runs: list[str], num: int) -> None:
    from bncr.io import atomic_write_text
    from bncr.metrics.compare import compare_runs, markdown, to_json
    rows = compare_runs(runs, num=num, progress=False)
    text = "Median over runs:\n\n" + medians(rows) + "\n\nEvery run:\n\n" + markdown(rows)
    print(text)
    atomic_write_text(out, text + "\n")
    atomic_write_text(str(Path(out).with_suffix(".json")), to_json(rows) + "\n")


RECOVERY = (("entropy_mean", "mean kernel entropy H(k) (nats)", 0.15, "rel"),
            ("frac_blurred", "fraction blurred (H(k) > 0.1)", 0.10, "abs"),
            ("noise_curve_maxrel_data", "noise std curve on the data's intensities, max relative error", 0.25, "err"),
            ("noise_curve_maxrel", "noise std curve on [0, 1] (outside the data below ~0.1), max relative error", None,
             "info"),
            ("frac_noised", "fraction noised", 0.10, "abs"),
            ("q_w1", "W1 of q over compressed images", 8.0, "err"),
            ("frac_compressed", "fraction compressed (m_q > 0.5)", 0.10, "abs"),
            ("frac_mask_soft", "soft masks (0.1 < m_q < 0.9)", None, "info"),
            ("blur_strength", "blur strength, rms of x * k - x on G_x's images (grey levels), learned vs true", None,
             "pair"),
            ("jpeg_strength", "JPEG strength, rms of y - u (grey levels), learned vs true", None, "pair"))


def recovery(runs: list[str], n: int = 2048) -> str:
    """`bncr inspect` numbers of each run against the targets of the issue (entropy within 15 %, W1 of q <= 8,
    fractions within 10 points, noise std curve within 25 % on the intensities the training images have; the
    curve on all of [0, 1] is shown too); one column per run."""
    from bncr.report import inspect_run
    reps = [inspect_run(r, n=n, images=False) for r in runs]
    lines = ["| quantity (target) | " + " | ".join(f"{Path(r).name}" for r in runs) + " |",
             "|" + "---|" * (len(runs) + 1)]
    for key, label, tol, kind in RECOVERY:
        cells = []
        for rep in reps:
            try:
                row = rep.recovery.row(key)
            except KeyError:
                cells.append("n/a")
                continue
            if kind == "info":   # the error where the row has one (curve), else the generated value
                cells.append(row.cells()[3] if row.generated is None else row.cells()[1])
            elif kind == "pair":
                cells.append(f"{row.cells()[1]} vs {row.cells()[2]} ({row.cells()[3]})")
            elif kind == "err":
                ok = row.error is not None and row.error <= tol
                cells.append(f"{row.cells()[3]} {'pass' if ok else 'FAIL'}")
            else:
                g, t = row.generated, row.true
                err = abs(g - t) / abs(t) if kind == "rel" else abs(g - t)
                cells.append(f"{row.cells()[1]} vs {row.cells()[2]} {'pass' if err <= tol else 'FAIL'}")
        want = "no target" if tol is None else f"within {tol:.0%}" if kind == "rel" else f"<= {tol:g}" if kind == "err" and tol > 1 else \
            f"within {tol:.0%}" if kind == "err" else f"within {tol * 100:.0f} points"
        lines.append(f"| {label} ({want}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def initial_outputs(seeds: list[int], sets: list[str], n: int = 4096) -> str:
    """Mean initial q, m_q, kernel entropy, m_k and shot variance a of BNCR-GAN's generators per training seed,
    built as `bncr train` builds them (same seed, same order), over `n` latents."""
    from bncr.degradations import get_setting
    from bncr.models.registry import get_model
    from bncr.degradations.blur import kernel_entropy
    from bncr.train.config import preset
    from bncr.train.loop import build_nets
    lines = ["| seed | mean q | mean m_q | kernel entropy | mean m_k | mean shot variance a |", "|---|---:|---:|---:|---:|---:|"]
    for seed in seeds:
        cfg = preset("laptop").override([f"model=bncr-gan", "setting=N", f"seed={seed}", *sets])
        torch.manual_seed(cfg.seed)
        pipe = build_nets(cfg, get_model(cfg.model), get_setting(cfg.setting), 32).pipe
        z = torch.randn(n, cfg.z_dim, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            q, k, ab = pipe.G_q(z), pipe.G_k(z), pipe.G_n(z)
        lines.append(f"| {seed} | {q.q.mean():.1f} | {q.m_q.mean():.2f} | {kernel_entropy(k.k).mean():.2f} | "
                     f"{k.m_k.mean():.2f} | {ab.a.mean():.2e} |")
    return "\n".join(lines)


def read_noise_probe(n: int = 2000, setting: str = "N", dark: float = 0.05) -> str:
    """How much of the true read noise the degraded data shows: the shapes' intensity quantiles, and the same n
    training images degraded by `setting` with the true read variance and with read variance 0 (every other draw
    equal), compared at the dark pixels (blurred clean intensity < `dark`), where the read term dominates."""
    import copy
    from bncr.data import open_dataset
    from bncr.degradations.settings import apply_degradation, blur_np, get_setting, sample_params
    st, ds = get_setting(setting), open_dataset("shapes", count=n)
    px = np.concatenate([ds[i].ravel() for i in range(n)]) / 255.0
    qs = np.quantile(px, [0.0, 0.01, 0.5, 0.99, 1.0])
    res = {"true": [], "read0": []}
    diff = []
    for i in range(n):
        x = ds[i]
        p, rn = sample_params(st, 0, i)
        xb = blur_np(x.astype(np.float64) / 255.0, p.kernel) if p.blurred else x / 255.0
        m = xb < dark
        p0 = copy.copy(p)
        p0.read = 0.0
        y1 = apply_degradation(x, p, copy.deepcopy(rn)).astype(np.float64)
        y0 = apply_degradation(x, p0, copy.deepcopy(rn)).astype(np.float64)
        res["true"].append((y1 - 255 * xb)[m])
        res["read0"].append((y0 - 255 * xb)[m])
        diff.append((y1 - y0)[m])
    d = np.concatenate(diff)
    lines = [f"{n} shapes training images: pixel intensity min / 1 % / median / 99 % / max = "
             + " / ".join(f"{v:.3f}" for v in qs) + f"; below {dark}: {np.mean(px < dark):.3%}, below 0.1: "
             f"{np.mean(px < 0.1):.2%}"]
    for k, v in res.items():
        v = np.concatenate(v)
        lines.append(f"setting {setting}, {k:5s}: residual y - x*k at the {v.size} dark pixels (x*k < {dark}): "
                     f"rms {np.sqrt(np.mean(v ** 2)):.3f} grey levels")
    lines.append(f"true - read0 at those pixels: rms {np.sqrt(np.mean(d ** 2)):.3f} grey levels, "
                 f"{np.mean(d != 0):.2%} of them differ")
    return "\n".join(lines)


SPREAD_STATS = ("sharpness", "noise", "blocks", "frame", "hf")


def sampling_spread(runs: list[str], num: int = 500, k: int = 8) -> str:
    """How much the image statistics of `bncr compare` move between sets of `num` images of the same source: the
    clean training images in k disjoint sets, and each run's EMA G_x sampled with k latent seeds. A model's
    statistic is only closer to the clean data's than another's when the gap exceeds these spreads."""
    from bncr.api import find_snapshot, load_generator, sample_images
    from bncr.data import open_dataset
    from bncr.degradations.settings import get_setting
    from bncr.metrics.evaluate import run_config
    from bncr.metrics.imagestats import blocks, frame, grid_phases, hf_energy, noise_std, phases_border_excess, sharpness
    from bncr.train.loop import materialise
    fns = dict(zip(SPREAD_STATS, (sharpness, noise_std, blocks, frame, hf_energy)))

    def stats(sets) -> dict[str, np.ndarray]:
        out = {name: np.array([f(u8) for u8 in sets]) for name, f in fns.items()}
        out["phases"] = np.mean([grid_phases(u8, inner=True) for u8 in sets], axis=0)
        out["phases_all"] = np.mean([grid_phases(u8) for u8 in sets], axis=0)
        return out

    cfg = run_config(runs[0])["config"]
    ds = open_dataset(cfg["dataset"], count=cfg["count"])
    if k * num > len(ds):
        raise SystemExit(f"spread: {k} disjoint sets of {num} need {k * num} clean images, the runs' data has {len(ds)}")
    rows = [("clean data", f"{k} disjoint sets of {num} training images",
             stats([np.stack([ds[i] for i in range(j * num, (j + 1) * num)]) for j in range(k)]))]
    # the same sets degraded by each run's setting: where "no degradation removed" lies on each statistic
    for s in dict.fromkeys(run_config(r)["config"]["setting"] for r in runs):
        y, _ = materialise(ds, get_setting(s), int(cfg["data_seed"]), False)
        rows.append((f"degraded data ({s})", f"the same {k} sets degraded by setting {s}",
                     stats([y[j * num:(j + 1) * num] for j in range(k)])))
    for r in runs:
        G = load_generator(find_snapshot(r))
        sets = [sample_images(G, num, seed=s).numpy() for s in range(k)]
        rows.append((run_config(r)["config"]["model"], r, stats(sets)))
    head = "| images | " + " | ".join(f"{n} (mean ± sd)" for n in SPREAD_STATS) + " | source |"
    out = [head, "|---" * (len(SPREAD_STATS) + 2) + "|"]
    for name, src, v in rows:
        cells = [f"{v[n].mean():.4g} ± {v[n].std(ddof=1):.2g}" for n in SPREAD_STATS]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {src} |")
    out += ["", "Mean |difference| between neighbouring pixels at each position j mod 8 of the difference between "
            "pixels j and j+1 (rows and columns), over its mean, the outermost difference at each side left out (a frame "
            "would read as phases 0 and 6; cpu-scale.md section 24): JPEG's block edges are phase 7.", "",
            "| images | " + " | ".join(f"phase {p}" for p in range(8)) + " | inside-border excess | with the outermost "
            "differences (sections 21-23) | source |",
            "|---" * 12 + "|"]
    out += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in st["phases"]) + f" | {phases_border_excess(st['phases']):+.3f}"
            f" | {phases_border_excess(st['phases_all']):+.3f} | {src} |" for name, src, st in rows]
    return "\n".join(out)


def edge_profiles(runs: list[str], num: int = 2000) -> str:
    """Where each set's edges lie: mean |neighbour difference| at each position j (between pixels j and j + 1, rows
    and columns together) over its mean, for num clean training images and num EMA fakes of each run (seed 0)."""
    from bncr.api import find_snapshot, load_generator, sample_images
    from bncr.data import open_dataset
    from bncr.metrics.evaluate import run_config
    from bncr.metrics.imagestats import edge_profile
    cfg = run_config(runs[0])["config"]
    ds = open_dataset(cfg["dataset"], count=cfg["count"])
    sets = [("clean data", np.stack([ds[i] for i in range(min(num, len(ds)))]))]
    sets += [(r, sample_images(load_generator(find_snapshot(r)), num, seed=0).numpy()) for r in runs]
    lines = []
    for name, u8 in sets:
        m = edge_profile(u8)
        lines.append(f"{name}: " + " ".join(f"{v:.2f}" for v in m / m.mean()))
    return "\n".join(lines)


def d_probe(runs: list[str], n: int = 1000) -> str:
    """What each run's final discriminator D_y (training-state.pt) says about the JPEG of its setting: its mean output
    on n training images (i) as degraded (what D saw as real), (ii) clean, (iii) clean through the pipeline's JPEG
    stage at each image's true quality (m_q = 1; the fakes' path), (iv) the half blend of (iii) and (ii) (m_q = 0.5),
    (v) the pipeline's JPEG at q 95. If D scores (iv) or (v) above (iii), weaker JPEG looks more real to it."""
    from bncr.data import open_dataset
    from bncr.degradations.diff_jpeg import diff_jpeg
    from bncr.degradations.settings import get_setting, sample_params
    from bncr.models.pixels import levels_to_model
    from bncr.models.registry import get_model
    from bncr.train.checkpoint import STATE_FORMAT, load_checked
    from bncr.train.config import TrainConfig
    from bncr.train.loop import build_nets, materialise
    lines = ["| run | D on the degraded data (real) | clean | pipeline JPEG at the true q | half blend (m_q 0.5) "
             "| pipeline JPEG at q 95 | pipeline JPEG vs the data's JPEG: max / mean abs difference (levels) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        st = load_checked(Path(r) / "training-state.pt", STATE_FORMAT)
        cfg = TrainConfig.from_dict(st["config"])
        setting = get_setting(cfg.setting)
        ds = open_dataset(cfg.dataset, count=cfg.count)
        y, x = materialise(ds, setting, cfg.data_seed, False)
        D = build_nets(cfg, get_model(cfg.model), setting, x.shape[1]).D_y   # the state holds no resolution
        D.load_state_dict(st["D_y"])
        D.eval().requires_grad_(False)
        idx = np.arange(min(n, len(y)))
        truth = [sample_params(setting, cfg.data_seed, int(i))[0] for i in idx]
        q = torch.tensor([float(p.quality or 100) for p in truth])
        comp = torch.tensor([bool(p.compressed) for p in truth])
        gen = torch.Generator().manual_seed(0)

        def to_model(v: torch.Tensor) -> torch.Tensor:   # grey levels (N, 3, H, W) -> D's input, as training does
            u = torch.rand(v.shape, generator=gen) if cfg.dequantize else None
            return levels_to_model(v, u, cfg.dequantize)

        def score(v: torch.Tensor) -> float:
            with torch.no_grad():
                return float(torch.cat([D(to_model(v[i:i + 250])).flatten() for i in range(0, len(v), 250)]).mean())

        yv = torch.from_numpy(y[idx]).permute(0, 3, 1, 2).float()
        xv = torch.from_numpy(x[idx]).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            jt = torch.where(comp.view(-1, 1, 1, 1), diff_jpeg(xv / 255, q) * 255, xv).round()
            j95 = (diff_jpeg(xv / 255, torch.full_like(q, 95.0)) * 255).round()
        dd = (jt - yv).abs()
        lines.append(f"| {r} | {score(yv):.3f} | {score(xv):.3f} | {score(jt):.3f} | {score((jt + xv) / 2):.3f} | "
                     f"{score(j95):.3f} | {dd.max():.0f} / {dd.mean():.3f} |")
    return "\n".join(lines)


def d_grad_phases(runs: list[str], n: int = 512) -> str:
    """Which grid phases the final D asks G_x to sharpen. For n fakes of each run's final (non-EMA) G_x, the gradient
    g of G's non-saturating loss with respect to (i) G_x's image x, through the run's degradation pipeline (what G_x
    receives), and (ii) the degraded fake y at D's input; a step -g changes the neighbour difference |x_j+1 - x_j| at
    rate -sign(x_j+1 - x_j) (g_j+1 - g_j). Its mean per phase j mod 8 (rows and columns), over the mean of its
    absolute values over phases: positive where D's gradient asks for more edge, negative for less."""
    from bncr.data import open_dataset
    from bncr.degradations.settings import get_setting
    from bncr.models.losses import g_loss_nonsaturating
    from bncr.models.registry import get_model
    from bncr.train.checkpoint import STATE_FORMAT, load_checked
    from bncr.train.config import TrainConfig
    from bncr.train.loop import build_nets

    def push(img: torch.Tensor, g: torch.Tensor) -> np.ndarray:
        rates = np.zeros(8)
        for dim in (2, 3):
            d = img.diff(dim=dim)
            r = (-torch.sign(d) * g.diff(dim=dim)).transpose(dim, -1).reshape(-1, d.shape[dim])
            for p in range(8):
                rates[p] += float(r[:, p::8].mean())
        return rates / np.abs(rates).mean()

    lines = ["| run | gradient on | " + " | ".join(f"phase {p}" for p in range(8)) + " |", "|---|---|" + "---:|" * 8]
    for r in runs:
        st = load_checked(Path(r) / "training-state.pt", STATE_FORMAT)
        cfg = TrainConfig.from_dict(st["config"])
        setting = get_setting(cfg.setting)
        res = open_dataset(cfg.dataset, count=1)[0].shape[0]
        nets = build_nets(cfg, get_model(cfg.model), setting, res)
        for name in ("G_x", "D_y", "pipe"):
            getattr(nets, name).load_state_dict(st[name])
            getattr(nets, name).eval().requires_grad_(False)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            x = nets.G_x(torch.randn(n, cfg.z_dim, generator=gen))
        x.requires_grad_(True)
        out = nets.pipe(x, nets.pipe.sample_latents(n, gen, torch.device("cpu")))
        y = out.y.detach().requires_grad_(True)
        g_x, = torch.autograd.grad(g_loss_nonsaturating(nets.D_y(out.y)), x)
        g_y, = torch.autograd.grad(g_loss_nonsaturating(nets.D_y(y)), y)
        for what, img, g in (("G_x's image x (through the pipeline)", x.detach(), g_x), ("the degraded fake y", y.detach(), g_y)):
            lines.append(f"| {r} | {what} | " + " | ".join(f"{v:+.2f}" for v in push(img, g)) + " |")
    return "\n".join(lines)


def d_sees_jpeg(widths: list[int], r1s: list[float], masks: list[float], steps: int = 1000, setting: str = "J",
                batch: int = 16, lr: float = 1e-3, seed: int = 0, fake_q: Optional[int] = None, every: int = 0) -> str:
    """Can the discriminator of this scale see the setting's JPEG on real content? A D alone (the training's
    architecture, Adam, non-saturating loss and R1) learns to tell the degraded training images (real) from other
    training images compressed only at strength m, m y + (1 - m) x (fake: m = 0 clean, 0.5 CR-GAN's soft mask; for a
    JPEG-only setting y is exactly JPEG(x, q) at the image's true q). fake_q: instead, real = the clean images and
    fake = JPEG(x, fake_q) (a control with a strong JPEG). Reported: held-out accuracy and logit gap, at the end
    (and every `every` steps)."""
    from bncr.data import open_dataset
    from bncr.degradations.settings import get_setting
    from bncr.models.losses import d_loss_nonsaturating, r1_penalty
    from bncr.nets.resnet import ResNetDiscriminator
    from bncr.train.loop import materialise, to_model_range
    st = get_setting(setting)
    if st.p_blur or st.p_noise:
        raise SystemExit(f"dsee: setting {setting} has blur or noise; y = JPEG(x, q) holds only for JPEG-only settings")
    ds = open_dataset("shapes", count=5000)
    y, x = materialise(ds, st, 0, False)
    y, x = torch.from_numpy(y), torch.from_numpy(x)
    if fake_q is not None:      # the control: clean reals, fakes compressed at one strong quality
        from bncr.degradations.jpeg import jpeg_pil
        y, x = x, torch.from_numpy(np.stack([jpeg_pil(im, int(fake_q)) for im in x.numpy()]))
        masks = [0.0]           # fake = 0 y + 1 x = the compressed images
    real_tr, fake_tr, real_te, fake_te = (np.arange(a, b) for a, b in ((0, 2000), (2000, 4000), (4000, 4500), (4500, 5000)))
    what = (f"real clean, fake JPEG q {fake_q}" if fake_q is not None else
            f"real = setting {setting}'s data; fake = m JPEG + (1 - m) clean, m")
    lines = [f"| D width | R1 | {what} | steps | held-out accuracy | logit gap real - fake (held out) | R1 |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for w in widths:
        for r1 in r1s:
            for m in masks:
                torch.manual_seed(seed)
                g = torch.Generator().manual_seed(seed)
                D = ResNetDiscriminator(32, w, residual_factor=1.0)
                opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99))

                def fake(idx: np.ndarray) -> torch.Tensor:
                    v = (m * y[idx].float() + (1 - m) * x[idx].float()).round().clamp(0, 255).to(torch.uint8)
                    return to_model_range(v, g, True)

                def measure(step: int, r1v: float) -> str:
                    with torch.no_grad():
                        sr = D(to_model_range(y[real_te], g, True)).flatten()
                        sf = D(fake(fake_te)).flatten()
                    acc = float(((sr > 0).float().mean() + (sf < 0).float().mean()) / 2)
                    return (f"| {w} | {r1:g} | {'-' if fake_q is not None else f'{m:g}'} | {step} | {acc:.3f} | {float(sr.mean() - sf.mean()):.3f} | "
                            f"{r1v:.2g} |")

                r1v = 0.0
                for step in range(1, steps + 1):
                    ri = real_tr[torch.randint(0, len(real_tr), (batch,), generator=g).numpy()]
                    fi = fake_tr[torch.randint(0, len(fake_tr), (batch,), generator=g).numpy()]
                    real = to_model_range(y[ri], g, True).requires_grad_(True)
                    lr_, lf = D(real), D(fake(fi))
                    pen = r1_penalty(lr_, real)
                    loss = d_loss_nonsaturating(lr_, lf) + r1 * pen
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    r1v = float(pen.detach())
                    if (every and step % every == 0) or step == steps:
                        lines.append(measure(step, r1v))
                        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def trajectory(runs: list[str], bins: int = 12) -> str:
    """The live (not EMA) learned noise std and mean q of each run over training, from its stats.jsonl: the mean of
    each stat over `bins` equal stretches of iterations. An AmbientGAN run logs the true simulator on its fakes, so
    it gives the truth's values on the same images."""
    import json
    from pathlib import Path
    logs = {}
    for run in runs:
        rows = [json.loads(ln) for ln in (Path(run) / "stats.jsonl").read_text().splitlines() if ln.strip()]
        logs[run] = [r for r in rows if "noise_std_mean" in r or "q_mean" in r]
        if not logs[run]:
            raise SystemExit(f"{run}: stats.jsonl has no noise_std_mean or q_mean (a model without noise or JPEG)")
    edges = np.linspace(0, max(r["iteration"] for rows in logs.values() for r in rows), bins + 1)  # shared stretches
    lines = ["| run | stat | " + " | ".join(f"{int(a)}-{int(b)}" for a, b in zip(edges[:-1], edges[1:])) + " |",
             "|---|---|" + "---:|" * bins]
    for run, rows in logs.items():
        for key, name, scale in (("noise_std_mean", "noise std (grey levels)", 255.0), ("q_mean", "q", 1.0)):
            cells = []
            for a, b in zip(edges[:-1], edges[1:]):
                v = [r[key] for r in rows if key in r and a < r["iteration"] <= b]
                cells.append(f"{scale * np.mean(v):.1f}" if v else "")
            if any(cells):
                lines.append(f"| {run} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


NOISE_QUANTILES = (5, 25, 50, 75, 95)
NOISE_CURVE_AT = (0.05, 0.10, 0.50, 0.90)      # intensities where noiselevels prints the population std curve


def level_rows(name: str, log10_a: np.ndarray, log10_a_true: np.ndarray) -> list[str]:
    """Two table rows: quantiles of log10 of the shot variance a (the noise level of each image) learned and true,
    the 5-95 % spread of each, the share above the truth's 75 % quantile (its noisiest quarter), and E[a] (what the
    population noise curve sqrt(E[var]) averages) learned / true."""
    g, t = np.percentile(log10_a, NOISE_QUANTILES), np.percentile(log10_a_true, NOISE_QUANTILES)
    ratio = float(np.mean(10.0 ** log10_a) / np.mean(10.0 ** log10_a_true))
    top = float(np.mean(log10_a > np.percentile(log10_a_true, 75)))   # the truth's noisiest quarter: 0.25
    return [f"| {name} | learned | " + " | ".join(f"{v:.2f}" for v in g) + f" | {g[-1] - g[0]:.2f} | {top:.3f} | "
            f"{ratio:.2f} |",
            f"| {name} | true | " + " | ".join(f"{v:.2f}" for v in t) + f" | {t[-1] - t[0]:.2f} | 0.25 | 1 |"]


def noise_levels(runs: list[str], n: int = 2048) -> str:
    """How each run's G_n spreads the noise level over images against the data: quantiles of log10 a (a the shot
    variance per unit intensity; setting N's a is log-uniform on [1e-4, 1.2e-2]) and the ratio of E[a], then the
    population std curve at a few intensities (the recovery target's curve; its dark end is the read variance b). The
    population noise curve of the recovery targets is dominated by the noisiest images, so a distribution narrower
    than the truth's fails it with the median level right."""
    from bncr.report import inspect_run
    from bncr.report.recovery import NOISE_X
    at = [int(np.argmin(np.abs(NOISE_X - x))) for x in NOISE_CURVE_AT]
    lines = ["| run | | " + " | ".join(f"{q} %" for q in NOISE_QUANTILES) + " | spread 5-95 % | above true 75 % | E[a] / true |",
             "|---|---|" + "---:|" * (len(NOISE_QUANTILES) + 3)]
    curve = ["| run | | " + " | ".join(f"std at {x:.2f}" for x in NOISE_CURVE_AT) + " |",
             "|---|---|" + "---:|" * len(NOISE_CURVE_AT)]
    for run in runs:
        rec = inspect_run(run, n=n, images=False).recovery
        if rec.gen.log10_a is None or rec.true is None or rec.true.log10_a is None:
            raise SystemExit(f"{run}: no learned noise generator and true noise to compare (a model or setting "
                             f"without noise)")
        lines += level_rows(Path(run).name, rec.gen.log10_a, rec.true.log10_a)
        for who, c in (("learned", rec.gen.noise_curve), ("true", rec.true.noise_curve)):
            curve.append(f"| {Path(run).name} | {who} | " + " | ".join(f"{255 * c[i]:.2f}" for i in at) + " |")
    return "\n".join(lines + ["", "Population noise std sqrt(E[a x + b]) in grey levels at intensity x:", ""] + curve)


def jpeg_hides_noise(stds: list[float], qs: list[int], num: int = 500, seed: int = 0) -> str:
    """The flat-region noise statistic (grey levels) of `num` clean shapes images plus white noise of each std (grey
    levels), before and after JPEG at each quality: a noise level JPEG reads down to the noise-free value is one a D
    sees little of."""
    from bncr.data import open_dataset
    from bncr.degradations.jpeg import jpeg_pil
    from bncr.metrics.imagestats import noise_std
    ds = open_dataset("shapes", count=num)
    x = np.stack([ds[i] for i in range(num)]).astype(np.float64)
    rng = np.random.default_rng(seed)
    out = ["| white noise std (grey levels) | no JPEG | " + " | ".join(f"JPEG q {q}" for q in qs) + " |",
           "|---:|---:|" + "---:|" * len(qs)]
    for s in stds:
        y = np.clip(np.round(x + s * rng.standard_normal(x.shape)), 0, 255).astype(np.uint8)
        cells = [noise_std(y)] + [noise_std(np.stack([jpeg_pil(im, q) for im in y])) for q in qs]
        out.append(f"| {s:g} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curve", help="statistics (and KID) of every snapshot of each run")
    c.add_argument("runs", nargs="+")
    c.add_argument("--num", type=int, default=500)
    c.add_argument("--kid", action="store_true")
    c.add_argument("--kid-every", type=int, default=0, metavar="K",
                   help="KID only of the snapshots at multiples of K iterations (cheaper than --kid)")
    t = sub.add_parser("table", help="bncr compare of the runs, written to OUT")
    t.add_argument("out")
    t.add_argument("runs", nargs="+")
    t.add_argument("--num", type=int, default=500)
    r = sub.add_parser("recovery", help="bncr inspect of each run against the recovery targets")
    r.add_argument("runs", nargs="+")
    i = sub.add_parser("init", help="the degradation generators' initial outputs per seed (laptop, BNCR-GAN on N)")
    i.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    i.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. deg_center_init=true")
    rp = sub.add_parser("readnoise", help="how much of setting N's read noise the degraded shapes show")
    rp.add_argument("--n", type=int, default=2000)
    sp = sub.add_parser("spread", help="sampling spread of the image statistics: disjoint clean sets, latent seeds")
    sp.add_argument("runs", nargs="+")
    sp.add_argument("--num", type=int, default=500)
    sp.add_argument("--k", type=int, default=8)
    pp = sub.add_parser("profile", help="where each set's edges lie: the mean neighbour difference per position")
    pp.add_argument("runs", nargs="+")
    pp.add_argument("--num", type=int, default=2000)
    tj = sub.add_parser("trajectory", help="the live learned noise std and q of each run over training (stats.jsonl)")
    tj.add_argument("runs", nargs="+")
    tj.add_argument("--bins", type=int, default=12)
    nl = sub.add_parser("noiselevels", help="the spread of the learned noise level over images against the data's")
    nl.add_argument("runs", nargs="+")
    dp = sub.add_parser("dprobe", help="the final D's scores of the data's JPEG, none, and weaker JPEG")
    dp.add_argument("runs", nargs="+")
    dp.add_argument("--n", type=int, default=1000)
    dg = sub.add_parser("dgrad", help="per grid phase, where the final D's gradient asks G_x for more or less edge")
    dg.add_argument("runs", nargs="+")
    dg.add_argument("--n", type=int, default=512)
    jn = sub.add_parser("jpegnoise", help="which white-noise levels JPEG leaves visible in flat regions of shapes")
    jn.add_argument("--stds", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    jn.add_argument("--qs", type=int, nargs="+", default=[60, 80, 100])
    jn.add_argument("--num", type=int, default=500)
    ds_ = sub.add_parser("dsee", help="a D alone: can it tell the data's JPEG from none or half of it?")
    ds_.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    ds_.add_argument("--r1", type=float, nargs="+", default=[1.0, 0.1])
    ds_.add_argument("--masks", type=float, nargs="+", default=[0.0, 0.5])
    ds_.add_argument("--steps", type=int, default=1000)
    ds_.add_argument("--setting", default="J")
    ds_.add_argument("--fake-q", type=int, default=None, help="control: clean reals against JPEG at this quality")
    ds_.add_argument("--every", type=int, default=0, help="also measure every N steps")
    ds_.add_argument("--seed", type=int, default=0, help="D's initialisation and the batches")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "curve":
        curve(a.runs, a.num, a.kid, a.kid_every)
    elif a.cmd == "recovery":
        print(recovery(a.runs))
    elif a.cmd == "readnoise":
        print(read_noise_probe(a.n))
    elif a.cmd == "dsee":
        print(d_sees_jpeg(a.widths, a.r1, a.masks, a.steps, a.setting, seed=a.seed, fake_q=a.fake_q, every=a.every))
    elif a.cmd == "dprobe":
        print(d_probe(a.runs, a.n))
    elif a.cmd == "dgrad":
        print(d_grad_phases(a.runs, a.n))
    elif a.cmd == "spread":
        print(sampling_spread(a.runs, a.num, a.k))
    elif a.cmd == "trajectory":
        print(trajectory(a.runs, a.bins))
    elif a.cmd == "noiselevels":
        print(noise_levels(a.runs))
    elif a.cmd == "profile":
        print(edge_profiles(a.runs, a.num))
    elif a.cmd == "jpegnoise":
        print(jpeg_hides_noise(a.stds, a.qs, a.num))
    elif a.cmd == "init":
        print(initial_outputs(a.seeds, a.set))
    else:
        table(a.out, a.runs, a.num)
    return 0


if __name__ == "__main__":
    sys.exit(main())
