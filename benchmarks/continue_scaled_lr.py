"""Continue a finished run from its training state with G_x's and D's learning rates scaled (a diagnostic,
docs/research/cpu-scale.md section 13): does the learned kernel narrow once G_x stops jittering?

    python benchmarks/continue_scaled_lr.py RUN OUT --iters 1500 --scale 0.1

RUN must hold a training-state.pt; OUT gets a copy of it and trains `--iters` more iterations with the run's own
options, except that G_x's and D's Adam learning rates are multiplied by `--scale` (G_k, G_n, G_q keep
their deg_lr when the run has one, as `laptop` does).
The options a run stores cannot say this (a resumed run must keep its options), so OUT's config.json records
the run's options (only iters changed); this script's command line is the record of the scaling. One thread.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from bncr.train.config import TrainConfig
from bncr.train.loop import STATE_FILE, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--iters", type=int, default=1500, help="iterations to add (default 1500)")
    ap.add_argument("--scale", type=float, default=0.1, help="factor on G_x's and D's learning rates (default 0.1)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(a.run / STATE_FILE, a.out / STATE_FILE)
    cfg = TrainConfig.from_dict(json.loads((a.run / "config.json").read_text())["config"])
    cfg.threads = 1
    start = int(torch.load(a.out / STATE_FILE, weights_only=True, map_location="cpu")["iteration"])
    cfg.iters = start + a.iters
    t = Trainer(cfg, a.out, resume="auto", progress=False)
    t.opt_G.param_groups[0]["lr"] *= a.scale      # group 0 is G_x; group 1 (deg_lr) is G_k, G_n, G_q
    for g in t.opt_D.param_groups:
        g["lr"] *= a.scale
    print(f"from iteration {start} to {cfg.iters}: G lrs {[g['lr'] for g in t.opt_G.param_groups]}, "
          f"D lr {t.opt_D.param_groups[0]['lr']}")
    t.run()


if __name__ == "__main__":
    main()
