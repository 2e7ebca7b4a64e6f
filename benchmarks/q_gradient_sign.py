"""Does the differentiable JPEG's q-gradient point the way the adversarial loss really changes?

Loads D from a run's training-state.pt (e.g. an oracle J run, whose D has learned to tell J images from the
fakes), takes 128 clean dead-leaves images (indices 4000-4127, mapped like real pixels), and prints:
  1. G_adv (non-saturating, mean over images) of the *real* codec (Pillow) at several q, with the mean D logit,
     and the mean dG_adv/dq of the differentiable JPEG (straight-through rounding) at each q;
  2. at a few q: the finite-difference slope (G_adv(q + 5) - G_adv(q)) / 5 of the differentiable JPEG's
     forward (equal to the codec's) against its gradient sum in each rounding mode (ste, cubic, none).
A gradient whose sign disagrees with the slope drives G_q the wrong way.

    python benchmarks/q_gradient_sign.py RUN_DIR/training-state.pt
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from bncr.data import open_dataset
from bncr.degradations.diff_jpeg import diff_jpeg
from bncr.degradations.jpeg import jpeg_pil
from bncr.degradations.settings import get_setting
from bncr.models.losses import g_loss_nonsaturating
from bncr.models.pixels import levels_to_model, model_to_unit
from bncr.models.registry import get_model
from bncr.train.config import TrainConfig
from bncr.train.loop import build_nets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", help="a run's training-state.pt")
    a = ap.parse_args()
    torch.set_num_threads(1)
    s = torch.load(a.state, weights_only=True)
    cfg = TrainConfig.from_dict(s["config"])
    D = build_nets(cfg, get_model(cfg.model), get_setting(cfg.setting), 32).D_y
    D.load_state_dict(s["D_y"])
    D.eval().requires_grad_(False)
    ds = open_dataset("deadleaves", count=5000)
    idx = range(4000, 4128)
    n = len(idx)
    x8 = torch.from_numpy(np.stack([ds[i] for i in idx])).permute(0, 3, 1, 2).float()
    g = torch.Generator().manual_seed(0)
    x = levels_to_model(x8, torch.rand(x8.shape, generator=g))
    print(f"D of {a.state} (iteration {s['iteration']}); mean D logit on clean images {float(D(x).mean()):+.3f}\n")
    print("| q | mean D logit, real codec | G_adv, real codec | dG_adv/dq (diff. JPEG, ste), mean | share of images with dG_adv/dq < 0 |")
    print("|---|---|---|---|---|")
    for qv in (2, 5, 10, 20, 40, 60, 80, 95, 100):
        y = levels_to_model(torch.from_numpy(np.stack([jpeg_pil(ds[i], qv) for i in idx])).permute(0, 3, 1, 2).float(),
                            torch.rand(x8.shape, generator=g))
        q = torch.full((n,), float(qv), requires_grad=True)
        yd = levels_to_model(diff_jpeg(model_to_unit(x), q) * 255, torch.rand(x8.shape, generator=g))
        (gq,) = torch.autograd.grad(g_loss_nonsaturating(D(yd)), q)
        with torch.no_grad():
            print(f"| {qv} | {float(D(y).mean()):+.3f} | {float(g_loss_nonsaturating(D(y))):.3f} | "
                  f"{float(gq.mean()):+.2e} | {float((gq < 0).float().mean()):.2f} |")
    print("\n| q | finite-difference slope of G_adv | gradient sum: ste | cubic | none |\n|---|---|---|---|---|")
    deq = torch.rand(x8.shape, generator=g)
    for qv in (2, 10, 40, 80):
        def f(qq: float) -> float:
            with torch.no_grad():
                return float(g_loss_nonsaturating(D(levels_to_model(
                    diff_jpeg(model_to_unit(x), torch.full((n,), float(qq))) * 255, deq))))
        row = [f"{(f(qv + 5) - f(qv)) / 5:+.2e}"]
        for mode in ("ste", "cubic", "none"):
            q = torch.full((n,), float(qv), requires_grad=True)
            yd = levels_to_model(diff_jpeg(model_to_unit(x), q, rounding=mode) * 255, deq)
            if not yd.requires_grad:   # "none": without rounding the codec does not depend on q at all
                row.append("0 (no q dependence)")
                continue
            (gq,) = torch.autograd.grad(g_loss_nonsaturating(D(yd)), q)
            row.append(f"{float(gq.sum()):+.2e}")
        print(f"| {qv} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
