"""Oracle diagnostic (DIAGNOSIS ONLY): can G_k, G_q, G_n identify the true degradation law?

G_x is replaced by real *clean* dead-leaves images (``--oracle-clean``), so only the degradation
generators and D learn against the degraded reals. This isolates the identifiability question
(does the adversarial loss on y = JPEG(x * k + n, q) pin down the law of k, q, (a, b)?) from the
joint game with G_x. It is not a valid training run of any model.

Usage:
    python benchmarks/oracle_diagnostic.py --setting B|J|noise [--iters N] [--out runs/oracle]
        [--name NAME] [--set k=v ...] [--fig-dir docs/research/img] [--resume]
    python benchmarks/oracle_diagnostic.py --eval-only RUN_DIR [--fig-dir docs/research/img]

Criteria (issue; L is our extension):
    B     (br-gan): mean entropy (nats) of the EMA G_k's composed kernels k over 2048 z_k within 10% of
          the true kernels' mean entropy (sample_params, 4000 images of setting B).
    J     (cr-gan): Wasserstein-1 between generated q over samples with m_q > 0.5 and the true q
          (U{60..100}, 4000 draws) <= 8; also the fraction with m_q > 0.5 (true 1.0) and std(q) (true 11.8).
          q is rounded to the integer the codec applies.
    L     (cr-gan): setting L (half the images compressed as in J, half clean): W1 as for J over the compressed
          images' q, and the fraction with m_q > 0.5 within 0.10 of the true compressed share.
    noise (nr-gan): population noise std sqrt(E[a] x + E[b]) vs sqrt(E[shot] x + E[read]) within 20%
          (max relative error over x in {0.05, ..., 0.95}).
Every snapshot is evaluated, so trajectory.json / the printed table show when the metric converges.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from bncr.api import load_pipeline
from bncr.degradations.blur import kernel_entropy
from bncr.degradations.kernels import kernel_entropy_np
from bncr.degradations.settings import get_setting, sample_params
from bncr.errors import UserError
from bncr.train.config import TrainConfig
from bncr.train.loop import train

MODELS = {"B": "br-gan", "J": "cr-gan", "noise": "nr-gan", "L": "cr-gan"}
# D is the only net besides the degradation generators (G_x is built but unused in the oracle).
BASE = {"dataset": "deadleaves", "count": 5000, "oracle_clean": True, "width": 16, "d_width": 16,
        "batch": 32, "tick": 50, "image_every": 500, "snap_every": 250, "threads": 1, "seed": 0,
        "ema": 0.99, "residual": 1.0, "r1": 1.0}   # faster D (d_probe.py); EMA that follows a short run
DEFAULT_ITERS = {"B": 2000, "J": 2000, "noise": 2000, "L": 2000}
N_GEN, N_TRUE = 2048, 4000
X_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
TOL = {"B": 0.10, "J": 8.0, "noise": 0.20, "share": 0.10}


def _kind(setting: str) -> str:
    """B, noise, or J for the JPEG settings (L: half of the images compressed as in J, half clean)."""
    return "J" if setting in ("J", "L") else setting


# ------------------------------------------------------------------------------------------ truth
def truth(setting: str, data_seed: int = 0, n: int = N_TRUE) -> dict:
    """Ground-truth degradation parameters of the first n images of the setting."""
    s = get_setting(setting)
    ps = [sample_params(s, data_seed, i)[0] for i in range(n)]
    if setting == "B":
        ks = [p.kernel for p in ps]
        return {"entropy": np.array([kernel_entropy_np(k) for k in ks]), "kernels": np.stack(ks[:16])}
    if _kind(setting) == "J":   # q of the compressed images, and the compressed share
        return {"q": np.array([p.quality for p in ps if p.compressed], float),
                "share": float(np.mean([p.compressed for p in ps]))}
    return {"shot": np.array([p.shot for p in ps]), "read": np.array([p.read for p in ps])}


def w1(u: np.ndarray, v: np.ndarray, u_w: np.ndarray | None = None) -> float:
    from scipy.stats import wasserstein_distance
    if len(u) == 0:
        return float("nan")
    return float(wasserstein_distance(u, v, u_weights=u_w))


def std_curve(a_mean: float, b_mean: float) -> np.ndarray:
    return np.sqrt(a_mean * X_GRID + b_mean)


# ------------------------------------------------------------------------------------------ eval
@torch.no_grad()
def evaluate(snapshot: Path, setting: str, tr: dict, seed: int = 123) -> dict:
    """Metrics of one EMA snapshot against the truth (plus raw samples under key '_raw')."""
    _, pipe, cfg = load_pipeline(snapshot)
    gens = pipe.generators()
    g = torch.Generator().manual_seed(seed)
    it = int(Path(snapshot).stem.split("-")[-1]) if Path(snapshot).stem.startswith("snapshot") else -1
    r: dict = {"iteration": it}
    if setting == "B":
        G = gens["G_k"]
        o = G(torch.randn(N_GEN, G.z_dim, generator=g))
        H = kernel_entropy(o.k).numpy()
        ht = tr["entropy"]
        r.update(entropy_mean=float(H.mean()), entropy_std=float(H.std()), true_entropy_mean=float(ht.mean()),
                 true_entropy_std=float(ht.std()), rel_err=float(abs(H.mean() - ht.mean()) / ht.mean()),
                 entropy_w1=w1(H, ht), m_k_mean=float(o.m_k.mean()),
                 m_k_centre=float(o.m_k[:, G.kernel_size // 2, G.kernel_size // 2].mean()))
        r["pass"] = r["rel_err"] <= TOL["B"]
        r["_raw"] = {"entropy": H, "kernels": o.k[:16].numpy()}
    elif _kind(setting) == "J":
        G = gens["G_q"]
        q, m = G(torch.randn(N_GEN, G.z_dim, generator=g))
        q, m = q.numpy(), m.numpy()
        qe = np.clip(np.round(q), 1, 100)        # the quality the codec applies
        sel = m > 0.5
        qt = tr["q"]
        r.update(frac_compressed=float(sel.mean()), m_q_mean=float(m.mean()),
                 q_mean=float(qe[sel].mean()) if sel.any() else float("nan"),
                 q_std=float(qe[sel].std()) if sel.any() else float("nan"),
                 q_mean_all=float(qe.mean()), q_std_all=float(qe.std()),
                 true_q_mean=float(qt.mean()), true_q_std=float(qt.std()),
                 w1_masked=w1(qe[sel], qt) if sel.any() else float("inf"),  # no compressed sample: fails
                 w1_weighted=w1(qe, qt, m), w1_point80=w1(np.array([80.0]), qt))
        r["true_share"] = tr["share"]
        r["pass"] = bool(r["w1_masked"] <= TOL["J"]) and (
            setting == "J" or abs(r["frac_compressed"] - tr["share"]) <= TOL["share"])
        r["_raw"] = {"q": qe, "m_q": m}
    else:
        G = gens["G_n"]
        a, b = G(torch.randn(N_GEN, G.z_dim, generator=g))
        a, b = a.numpy().astype(float), b.numpy().astype(float)
        gen_c, true_c = std_curve(a.mean(), b.mean()), std_curve(tr["shot"].mean(), tr["read"].mean())
        rel = np.abs(gen_c - true_c) / true_c
        qs = [0.05, 0.25, 0.5, 0.75, 0.95]
        r.update(max_rel_err=float(rel.max()), a_mean=float(a.mean()), b_mean=float(b.mean()),
                 shot_mean=float(tr["shot"].mean()), read_mean=float(tr["read"].mean()),
                 std_gen=gen_c.tolist(), std_true=true_c.tolist(),
                 log_a_q=np.quantile(np.log(a + 1e-30), qs).tolist(), log_shot_q=np.quantile(np.log(tr["shot"]), qs).tolist(),
                 log_b_q=np.quantile(np.log(b + 1e-30), qs).tolist(), log_read_q=np.quantile(np.log(tr["read"]), qs).tolist(),
                 log_a_std=float(np.log(a + 1e-30).std()), log_shot_std=float(np.log(tr["shot"]).std()))
        r["pass"] = r["max_rel_err"] <= TOL["noise"]
        r["_raw"] = {"a": a, "b": b}
    return r


def headline(setting: str, r: dict) -> str:
    if setting == "B":
        return (f"mean H(k) {r['entropy_mean']:.3f} (true {r['true_entropy_mean']:.3f}), rel err {r['rel_err']:.1%}, "
                f"std {r['entropy_std']:.3f} (true {r['true_entropy_std']:.3f}), W1(H) {r['entropy_w1']:.3f}, "
                f"mean m_k {r['m_k_mean']:.2f}")
    if _kind(setting) == "J":
        return (f"W1 (m_q>0.5) {r['w1_masked']:.2f}, W1 (m_q-weighted) {r['w1_weighted']:.2f}, frac m_q>0.5 "
                f"{r['frac_compressed']:.3f} (true {r.get('true_share', 1.0):.2f}), q mean {r['q_mean']:.1f} std {r['q_std']:.1f} "
                f"(true {r['true_q_mean']:.1f} / {r['true_q_std']:.1f}), mean m_q {r['m_q_mean']:.2f}")
    return (f"max rel err of std curve {r['max_rel_err']:.1%}; E[a] {r['a_mean']:.2e} (true E[shot] {r['shot_mean']:.2e}), "
            f"E[b] {r['b_mean']:.2e} (true E[read] {r['read_mean']:.2e}); std log a {r['log_a_std']:.2f} "
            f"(true {r['log_shot_std']:.2f})")


def figures(setting: str, final: dict, traj: list[dict], tr: dict, fig_dir: Path, run: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig_dir.mkdir(parents=True, exist_ok=True)
    raw, its = final["_raw"], [t["iteration"] for t in traj]
    paths = []
    if setting == "B":
        fig = plt.figure(figsize=(9, 4.2))
        gs = fig.add_gridspec(3, 8, height_ratios=[1, 1, 2.2])
        for row, (name, ks) in enumerate((("generated", raw["kernels"]), ("true", tr["kernels"]))):
            for i in range(8):
                ax = fig.add_subplot(gs[row, i])
                ax.imshow(ks[i], cmap="magma", interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_ylabel(name, fontsize=8)
        ax = fig.add_subplot(gs[2, :4])
        ax.hist(raw["entropy"], bins=40, range=(0, 3.9), density=True, alpha=0.7, label="generated")
        ax.hist(tr["entropy"], bins=40, range=(0, 3.9), density=True, alpha=0.5, label="true")
        ax.set_xlabel("kernel entropy H(k) [nats]", fontsize=8), ax.legend(fontsize=7)
        ax = fig.add_subplot(gs[2, 4:])
        ax.plot(its, [t["entropy_mean"] for t in traj], "o-", ms=3, label="generated mean H")
        ax.axhline(final["true_entropy_mean"], color="k", ls="--", lw=1, label="true mean H")
        ax.axhspan(final["true_entropy_mean"] * 0.9, final["true_entropy_mean"] * 1.1, color="g", alpha=0.15)
        ax.set_xlabel("iteration", fontsize=8), ax.legend(fontsize=7)
        fig.suptitle(f"Oracle diagnostic, setting B (br-gan): EMA G_k at iteration {final['iteration']}", fontsize=9)
        p = fig_dir / "oracle-B.png"
    elif _kind(setting) == "J":
        fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
        ax = axs[0]
        sel = raw["m_q"] > 0.5
        ax.hist(raw["q"][sel], bins=np.arange(0.5, 101.5, 2), density=True, alpha=0.7, label="generated (m_q>0.5)")
        ax.hist(tr["q"], bins=np.arange(0.5, 101.5, 2), density=True, alpha=0.5, label="true U{60..100}")
        ax.set_xlabel("JPEG quality q", fontsize=8), ax.legend(fontsize=7)
        ax = axs[1]
        ax.plot(its, [t["w1_masked"] for t in traj], "o-", ms=3, label="W1 (m_q>0.5)")
        ax.plot(its, [t["q_std"] for t in traj], "s-", ms=3, label="std q")
        ax.plot(its, [t["q_mean"] - 70 for t in traj], "^-", ms=3, label="mean q - 70")
        ax.axhline(8, color="r", ls="--", lw=1, label="W1 criterion 8")
        ax.axhline(final["true_q_std"], color="k", ls=":", lw=1, label="true std / true mean-70")
        ax.set_xlabel("iteration", fontsize=8), ax.legend(fontsize=6)
        fig.suptitle(f"Oracle diagnostic, setting {setting} (cr-gan): EMA G_q at iteration {final['iteration']}", fontsize=9)
        p = fig_dir / f"oracle-{setting}.png"
    else:
        fig, axs = plt.subplots(1, 3, figsize=(11, 3.2))
        ax = axs[0]
        ax.plot(X_GRID, final["std_true"], "k-", label="true sqrt(E[shot] x + E[read])")
        ax.plot(X_GRID, final["std_gen"], "o-", ms=3, label="generated sqrt(E[a] x + E[b])")
        ax.set_xlabel("intensity x", fontsize=8), ax.set_ylabel("noise std", fontsize=8), ax.legend(fontsize=6)
        ax = axs[1]
        qq = np.linspace(0.01, 0.99, 50)
        ax.plot(np.quantile(np.log(tr["shot"]), qq), np.quantile(np.log(raw["a"] + 1e-30), qq), "o", ms=3, label="a vs shot")
        ax.plot(np.quantile(np.log(tr["read"]), qq), np.quantile(np.log(raw["b"] + 1e-30), qq), "s", ms=3, label="b vs read")
        lo = min(np.log(tr["read"]).min(), -12)
        ax.plot([lo, -3], [lo, -3], "k--", lw=1)
        ax.set_xlabel("true log quantile", fontsize=8), ax.set_ylabel("generated log quantile", fontsize=8)
        ax.legend(fontsize=7)
        ax = axs[2]
        ax.plot(its, [t["max_rel_err"] for t in traj], "o-", ms=3, label="max rel err")
        ax.axhline(0.2, color="r", ls="--", lw=1, label="criterion 0.2")
        ax.set_yscale("log"), ax.set_xlabel("iteration", fontsize=8), ax.legend(fontsize=7)
        fig.suptitle(f"Oracle diagnostic, noise-only (nr-gan): EMA G_n at iteration {final['iteration']}", fontsize=9)
        p = fig_dir / "oracle-noise.png"
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def eval_run(run: Path, fig_dir: Path | None) -> dict:
    cfg = json.loads((run / "config.json").read_text())["config"]
    setting = cfg["setting"]
    tr = truth(setting, cfg["data_seed"])
    snaps = sorted(run.glob("snapshot-*.pt"))
    if not snaps:
        raise UserError(f"{run}: no snapshot-*.pt")
    traj = [evaluate(s, setting, tr) for s in snaps]
    final = traj[-1]
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines() if l.strip()]
    its_s = [s["it_per_s"] for s in stats]
    wall = json.loads((run / "wall.json").read_text()) if (run / "wall.json").exists() else {}
    clean = lambda d: {k: v for k, v in d.items() if k != "_raw"}
    (run / "trajectory.json").write_text(json.dumps([clean(t) for t in traj], indent=1) + "\n")
    figs = figures(setting, final, traj, tr, fig_dir or run, run)
    # markdown summary
    lines = [f"## Oracle diagnostic (DIAGNOSIS ONLY: G_x = real clean images), setting {setting}, model {cfg['model']}",
             "", f"run `{run}`; iterations {final['iteration']}; D width {cfg['d_width'] or cfg['width']}, batch "
             f"{cfg['batch']}, lr {cfg['lr']}, ds {cfg['ds']}, r1 {cfg['r1']}, mask_init {cfg['mask_init']}; "
             f"threads {cfg['threads']}; median it/s {np.median(its_s):.2f}"
             + (f"; wall {wall['wall_s']:.0f} s" if wall else ""), "",
             f"**final (EMA, {N_GEN} z samples vs {N_TRUE} true draws): {headline(setting, final)} -> "
             f"{'PASS' if final['pass'] else 'FAIL'}**", "", "| iteration | metric | pass |", "|---|---|---|"]
    for t in traj:
        lines.append(f"| {t['iteration']} | {headline(setting, t)} | {'yes' if t['pass'] else 'no'} |")
    if setting == "noise":
        lines += ["", "| quantile | 5% | 25% | 50% | 75% | 95% |", "|---|---|---|---|---|---|"]
        for k, lab in (("log_a_q", "log a (gen)"), ("log_shot_q", "log shot (true)"),
                       ("log_b_q", "log b (gen)"), ("log_read_q", "log read (true)")):
            lines.append(f"| {lab} | " + " | ".join(f"{v:.2f}" for v in final[k]) + " |")
        lines += ["", "| x | " + " | ".join(f"{x:.2f}" for x in X_GRID[::2]) + " |",
                  "|---|" + "---|" * len(X_GRID[::2]),
                  "| std gen | " + " | ".join(f"{v:.4f}" for v in final["std_gen"][::2]) + " |",
                  "| std true | " + " | ".join(f"{v:.4f}" for v in final["std_true"][::2]) + " |"]
    lines += ["", "figures: " + ", ".join(str(p) for p in figs)]
    md = "\n".join(lines)
    (run / "summary.md").write_text(md + "\n")
    print(md)
    return clean(final)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", choices=list(MODELS))
    ap.add_argument("--iters", type=int)
    ap.add_argument("--out", default="runs/oracle")
    ap.add_argument("--name", help="run directory name under --out (default: the setting)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    ap.add_argument("--eval-only", metavar="RUN", help="evaluate an existing run directory")
    ap.add_argument("--fig-dir", help="where to write oracle-*.png (default: the run directory)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run directory's training state (e.g. to a larger --iters)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    fig_dir = Path(a.fig_dir) if a.fig_dir else None
    try:
        if a.eval_only:
            eval_run(Path(a.eval_only), fig_dir)
            return 0
        if not a.setting:
            raise UserError("--setting is required unless --eval-only RUN is given")
        cfg = TrainConfig(**BASE, model=MODELS[a.setting], setting=a.setting,
                          iters=a.iters or DEFAULT_ITERS[a.setting]).override(a.set)
        if not cfg.oracle_clean:
            raise UserError("oracle_clean=false makes this not an oracle diagnostic")
        run = Path(a.out) / (a.name or a.setting)
        t0 = time.time()
        train(cfg, run, resume="auto" if a.resume else None, progress=False)
        (run / "wall.json").write_text(json.dumps({"wall_s": time.time() - t0, "iters": cfg.iters, "resumed": a.resume,
                                                   "loadavg_end": os.getloadavg()}) + "\n")
        eval_run(run, fig_dir)
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
