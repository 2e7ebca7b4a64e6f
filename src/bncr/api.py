"""Using a trained model: ``G = bncr.load_generator("runs/x")``; ``bncr sample`` on the command line."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .errors import UserError
from .nets.resnet import ResNetGenerator
from .train.checkpoint import SNAPSHOT_FORMAT, load_checked


def find_snapshot(path: str | Path) -> Path:
    """A snapshot file, or the latest ``snapshot-*.pt`` of a run directory."""
    p = Path(path)
    if p.is_dir():
        snaps = sorted(p.glob("snapshot-*.pt"))
        if not snaps:
            raise UserError(f"{p}: no snapshot-*.pt in this run directory (has the run saved one yet?)")
        return snaps[-1]
    if not p.exists():
        raise UserError(f"{p}: no such run directory or snapshot file")
    return p


def load_snapshot(path: str | Path) -> dict:
    return load_checked(find_snapshot(path), SNAPSHOT_FORMAT)


def load_generator(path: str | Path, device: Optional[str | torch.device] = None) -> ResNetGenerator:
    """The clean-image generator G_x (EMA weights) of a run directory or snapshot file, in eval mode.

    ``G = bncr.load_generator("runs/demo"); x = G(G.sample_z(16))`` gives images in [-1, 1].
    """
    from .train.config import TrainConfig
    from .train.loop import build_generator
    s = load_snapshot(path)
    G = build_generator(TrainConfig.from_dict(s["config"]), int(s["resolution"]))
    G.load_state_dict(s["G_x"])
    return G.to(device or "cpu").eval().requires_grad_(False)


@torch.no_grad()
def sample_images(G: ResNetGenerator, n: int, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """n clean images as uint8 (n, H, W, 3) from G_x with latents drawn from `seed`."""
    from .train.visual import to_uint8
    g = torch.Generator().manual_seed(seed)
    dev = next(G.parameters()).device
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), G.z_dim, generator=g).to(dev)
        out.append(torch.from_numpy(to_uint8(G(z))))
    return torch.cat(out)


def load_pipeline(path: str | Path, device: Optional[str | torch.device] = None):
    """(G_x, pipeline, config dict) of a run or snapshot, EMA weights, eval mode; the dict is complete (every
    option's resolved value, train/config.py).

    The pipeline holds the learned degradation generators G_k / G_n / G_q (``pipe.generators()``);
    ``pipe(x, pipe.sample_latents(n, gen, device))`` degrades clean images x in [-1, 1].
    """
    from .degradations.settings import get_setting
    from .models.registry import get_model
    from .train.config import TrainConfig
    from .train.loop import build_nets
    s = load_snapshot(path)
    cfg = TrainConfig.from_dict(s["config"])
    nets = build_nets(cfg, get_model(cfg.model), get_setting(cfg.setting), int(s["resolution"]))
    nets.G_x_ema.load_state_dict(s["G_x"])
    nets.pipe_ema.load_state_dict(s["pipe"])
    dev = device or "cpu"
    return nets.G_x_ema.to(dev), nets.pipe_ema.to(dev).eval(), cfg.to_dict()
