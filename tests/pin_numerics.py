"""Regenerate tests/data/numerics-pin.json: the losses and parameter sums of a few training steps per preset.

    python tests/pin_numerics.py        # only when a numerical change is intended; say why in the commit

tests/test_numerics_pin.py checks that refactors of the config, the loss and the pipeline leave the training
of the `default` and `paper` presets numerically unchanged.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

PIN = Path(__file__).parent / "data" / "numerics-pin.json"
CASES = [("default", "bncr-gan", "N"), ("paper", "bncr-gan", "N"), ("default", "cr-gan", "J"),
         ("default", "nr-gan", "noise"), ("default", "ambientgan", "N"), ("default", "p-ambientgan", "N"),
         ("default", "br-gan-nomask", "B"), ("map-noise", "nr-gan", "noise")]
TINY = ["width=8", "z_dim=16", "batch=4", "count=32", "threads=1"]
STEPS = 3


def run_case(preset_name: str, model: str, setting: str, out: Path) -> dict:
    """Losses of STEPS steps and the sum / abs-sum of every network's parameters after them."""
    from bncr.train.config import preset
    from bncr.train.loop import Trainer
    cfg = preset("default") if preset_name == "map-noise" else preset(preset_name)
    if preset_name == "map-noise":          # NR-GAN's ResNet G_n (a per-pixel scale map)
        cfg.noise_gen = "map"
    cfg.model, cfg.setting, cfg.iters, cfg.dataset = model, setting, STEPS, "shapes"
    cfg = cfg.override(TINY)
    tr = Trainer(cfg, out, progress=False)
    losses = [tr.step() for _ in range(STEPS)]
    params = {}
    for name in ("G_x", "D_y", "pipe"):
        ps = list(getattr(tr.nets, name).parameters())
        params[name] = [float(sum(p.detach().double().sum() for p in ps)), float(sum(p.detach().double().abs().sum() for p in ps))] \
            if ps else [0.0, 0.0]
    return {"losses": [{k: float(v) for k, v in s.items() if not k.endswith("_std")} for s in losses],
            "params": params}


def main() -> None:
    import tempfile
    torch.set_num_threads(1)
    pins = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            pins["/".join(case)] = run_case(*case, Path(tmp) / "-".join(case))
    PIN.parent.mkdir(exist_ok=True)
    PIN.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PIN}", file=sys.stderr)


if __name__ == "__main__":
    main()
