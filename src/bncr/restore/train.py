"""Training a restorer: UNIR (with a known or a learned degradation F) or CycleGAN, into a run directory.

The run directory holds, like a BNCR-GAN run: config.json (the complete options, the measurement model F and the
data), log.txt, stats.jsonl, images/ (before | after grids), ``restorer-<iteration>.pt`` snapshots (the EMA
restorer alone, for ``bncr restore apply``), ``restore-state.pt`` (everything, for ``--resume auto``) and
final.png, the before | after picture at the end.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import __version__
from ..data import open_dataset
from ..degradations.settings import get_setting
from ..errors import UserError
from ..io import atomic_write_text, ensure_writable_dir
from ..models.pixels import levels_to_model
from ..nets.resnet import ResNetDiscriminator
from ..train import visual
from ..train.checkpoint import load_checked, resume_path, save_atomic
from ..train.loop import TrainingDiverged, device_name, ema_update, git_commit, materialise, to_model_range
from ..train.steplog import StepLog
from .config import RestoreConfig
from .cyclegan import ImagePool, cyclegan_d_terms, cyclegan_g_terms, domains
from .nets import RestorationGenerator
from .unir import known_measurement, learned_measurement, measure, unir_d_terms, unir_g_terms

RESTORER_FORMAT = "bncr-restorer-v1"
STATE_FORMAT = "bncr-restore-state-v1"
STATE_FILE = "restore-state.pt"
RESUMABLE_CHANGES = {"iters", "tick", "image_every", "snap_every", "threads"}


# ---------------------------------------------------------------------------------------------- setup

def resolve(cfg: RestoreConfig, device: Any = "cpu") -> tuple[RestoreConfig, Optional[nn.Module], dict[str, Any]]:
    """(cfg with its data options filled in, the measurement model F or None for CycleGAN, what F is).

    With ``run``: the data default to the run's (dataset, count, setting, data seed, resolution) and, unless
    ``known_setting`` is given, F is its frozen degradation generators. Without: the dataset defaults to
    shapes and the data's setting to ``known_setting``.
    """
    cfg = copy.deepcopy(cfg.validate())
    run_cfg: dict[str, Any] = {}
    F, about = None, {"kind": "none (set-level labels)" if cfg.method == "cyclegan" else None}
    res_run = None
    if cfg.run is not None:
        if cfg.method == "unir" and cfg.known_setting is None:
            F, run_cfg, res_run = learned_measurement(cfg.run, device)
            about = {"kind": "learned", "run": str(cfg.run), "model": run_cfg["model"],
                     "stages": dict(zip(("blur", "noise", "jpeg"), F.spec.stages))}
        else:
            from ..api import load_snapshot
            s = load_snapshot(cfg.run)
            run_cfg, res_run = s["config"], int(s["resolution"])
    for key in ("dataset", "data_root", "count", "setting", "data_seed", "resolution"):
        if getattr(cfg, key) is None and key in run_cfg:
            setattr(cfg, key, run_cfg[key] if key != "resolution" else res_run)
    cfg.dataset = cfg.dataset or "shapes"
    cfg.setting = cfg.setting or cfg.known_setting
    if cfg.setting is None:
        raise UserError("which degradation do the training images have? give --setting X (A: use the images as they "
                        "are, e.g. your own degraded photos) or --run BNCR_RUN")
    cfg.setting = get_setting(cfg.setting).name
    cfg.data_seed = 0 if cfg.data_seed is None else cfg.data_seed
    if F is not None:
        cfg.dequantize = bool(run_cfg["dequantize"])   # real pixels reach F's D the way they reached the run's D
    return cfg, F, about


def build_restorer(cfg: RestoreConfig) -> RestorationGenerator:
    """G as the options describe it (the one place that does; training and loading use it)."""
    return RestorationGenerator(cfg.width, cfg.blocks, cfg.attention, cfg.residual)


def build_discriminator(cfg: RestoreConfig, resolution: int) -> ResNetDiscriminator:
    return ResNetDiscriminator(resolution, cfg.d_width, residual_factor=cfg.residual)


@dataclass
class RestoreNets:
    G: nn.Module                            # the restorer (UNIR's G, CycleGAN's G_AB)
    D: nn.Module                            # D on degraded images (UNIR) / on clean images (CycleGAN's D_B)
    G_ema: nn.Module
    extra: dict[str, nn.Module] = field(default_factory=dict)   # CycleGAN's G_BA and D_A

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema, **self.extra}


# ---------------------------------------------------------------------------------------------- trainer
class RestoreTrainer:
    """One restoration run; ``run()`` trains until cfg.iters."""

    def __init__(self, cfg: RestoreConfig, out: str | Path, resume: Optional[str] = None, progress: bool = True):
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.progress = progress
        self.out = Path(out)
        self.cfg, self.F, self.about = resolve(cfg, self.device)
        cfg = self.cfg
        state_path = resume_path(self.out, resume, STATE_FILE)
        self.setting = get_setting(cfg.setting)
        clean = open_dataset(cfg.dataset, cfg.resolution, root=cfg.data_root, count=cfg.count, skip_bad=cfg.skip_bad)
        self.resolution = int(clean.resolution)
        if cfg.method == "unir" and self.F is None:
            self.F = known_measurement(get_setting(cfg.known_setting), self.resolution, cfg.data_seed, cfg.dequantize,
                                       cfg.bank_size)
            self.about = {"kind": "known", "setting": get_setting(cfg.known_setting).name}
        if self.F is not None and self.F.resolution != self.resolution:
            raise UserError(f"the measurement model works at {self.F.resolution}px but the training images are "
                            f"{self.resolution}px; use --resolution {self.F.resolution}")
        torch.manual_seed(cfg.seed)
        G = build_restorer(cfg)
        self.nets = RestoreNets(G, build_discriminator(cfg, self.resolution), copy.deepcopy(G).eval().requires_grad_(False))
        if cfg.method == "cyclegan":   # the set-level labels; a setting without clean images fails before any file
            a, b = domains(self.setting, cfg.data_seed, len(clean))
            self.idx_a, self.idx_b = torch.from_numpy(a), torch.from_numpy(b)
        ensure_writable_dir(self.out)
        y, x = materialise(clean, self.setting, cfg.data_seed, progress)
        self.y_real, self.x_clean = torch.from_numpy(y), torch.from_numpy(x)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 7)
        lr, d_lr, beta1 = cfg.method_defaults()
        betas = (beta1, cfg.beta2)
        if cfg.method == "cyclegan":
            self.nets.extra = {"G_ba": build_restorer(cfg), "D_a": build_discriminator(cfg, self.resolution)}
            self.pools = (ImagePool(cfg.pool, self.gen), ImagePool(cfg.pool, self.gen))
            g_params = list(G.parameters()) + list(self.nets.extra["G_ba"].parameters())
            d_params = list(self.nets.D.parameters()) + list(self.nets.extra["D_a"].parameters())
        else:
            self.idx_a = torch.arange(len(y))
            g_params, d_params = list(G.parameters()), list(self.nets.D.parameters())
        for m in self.nets.modules().values():
            m.to(self.device)
        if self.F is not None:
            self.F.to(self.device)
        self.opt_G = torch.optim.Adam(g_params, lr=lr, betas=betas)
        self.opt_D = torch.optim.Adam(d_params, lr=d_lr, betas=betas)
        self.it = 0
        # per-step statistics and finite checks stay on the device; read at ticks, pictures and snapshots only
        self.log = StepLog(self.device)
        self.it_dev = torch.zeros((), dtype=torch.int64, device=self.device)
        if state_path is not None:
            self._load_state(state_path)
            self.it_dev.fill_(self.it)
        g = torch.Generator().manual_seed(12345)
        pick = self.idx_a[torch.randint(0, len(self.idx_a), (32,), generator=g)]
        self.fixed = {"y": self.y_real[pick], "x": self.x_clean[pick]}
        atomic_write_text(self.out / "config.json", json.dumps(
            {"config": cfg.to_dict(), "measurement": self.about, "setting": self.setting.to_dict(),
             "resolution": self.resolution, "training_images": len(self.idx_a), "torch": torch.__version__,
             "device": device_name(self.device), "bncr_version": __version__, "git_commit": git_commit(),
             **({"clean_images": len(self.idx_b)} if cfg.method == "cyclegan" else {})},
            indent=1, sort_keys=True) + "\n")

    # -------------------------------------------------------------- resume
    def _load_state(self, path: Path) -> None:
        s = load_checked(path, STATE_FORMAT)
        old = s["config"]
        diff = [k for k, v in self.cfg.to_dict().items() if k not in RESUMABLE_CHANGES and old.get(k) != v]
        if diff:
            raise UserError(f"cannot resume {path}: option {diff[0]} was {old.get(diff[0])!r}, now "
                            f"{self.cfg.to_dict()[diff[0]]!r} (resume with the same options, or start a new --out)")
        for name, m in self.nets.modules().items():
            m.load_state_dict(s[name])
        self.opt_G.load_state_dict(s["opt_G"])
        self.opt_D.load_state_dict(s["opt_D"])
        self.gen.set_state(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        self.it = int(s["iteration"])

    def save(self) -> None:
        state = {"format": STATE_FORMAT, "iteration": self.it, "config": self.cfg.to_dict(),
                 **{k: m.state_dict() for k, m in self.nets.modules().items()},
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                 "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state()}
        save_atomic(state, self.out / STATE_FILE)
        save_atomic(restorer_snapshot(self.nets.G_ema, self.cfg, self.resolution, self.it, self.about),
                    self.out / f"restorer-{self.it:06d}.pt")

    # -------------------------------------------------------------- steps
    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        pick = idx[torch.randint(0, len(idx), (self.cfg.batch,), generator=self.gen)]
        return to_model_range(self.y_real[pick], self.gen, self.cfg.dequantize).to(self.device)

    def step(self) -> None:
        """One D and one G update; the loss terms go to :attr:`log` (no host read)."""
        cfg, n = self.cfg, self.nets
        if cfg.method == "cyclegan":
            a, b = self._batch(self.idx_a), self._batch(self.idx_b)
            G_ba, D_a = n.extra["G_ba"], n.extra["D_a"]
            for d in (n.D, D_a):
                d.requires_grad_(False)
            g_terms, fake_b, fake_a = cyclegan_g_terms(n.G, G_ba, D_a, n.D, a, b, cfg.cycle, cfg.identity)
            self._update(self.opt_G, g_terms)
            for d in (n.D, D_a):
                d.requires_grad_(True)
            d_terms = cyclegan_d_terms(D_a, n.D, a, b, fake_a, fake_b, *self.pools)
            self._update(self.opt_D, d_terms)
        else:
            y = self._batch(self.idx_a)
            _, y_hat, theta = measure(n.G, self.F, y, self.gen)
            n.D.requires_grad_(True)
            d_terms = unir_d_terms(n.D, y, y_hat)
            self._update(self.opt_D, d_terms)
            n.D.requires_grad_(False)
            g_terms = unir_g_terms(n.G, n.D, self.F, y_hat, theta, cfg.lambda_back)
            self._update(self.opt_G, g_terms)
        ema_update(n.G_ema, n.G, cfg.ema)
        terms = {**d_terms, **g_terms}
        self.log.record(terms, terms, self.it_dev)
        self.log.count(terms)
        self.it_dev.add_(1)

    def _update(self, opt: torch.optim.Optimizer, terms: dict[str, torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        opt.step()

    # -------------------------------------------------------------- pictures
    @torch.no_grad()
    def pictures(self, final: bool = False) -> Path:
        y = self.fixed["y"]
        x_hat = restore_uint8(self.nets.G_ema, y.numpy(), self.cfg.dequantize, device=self.device)
        (self.out / "images").mkdir(exist_ok=True)
        path = self.out / "final.png" if final else self.out / "images" / f"restored-{self.it:06d}.png"
        save_before_after(y.numpy(), x_hat, self.fixed["x"].numpy(), path,
                          f"{describe_method(self.cfg, self.about)}; setting {self.setting.name}, iteration {self.it}")
        return path

    # -------------------------------------------------------------- main loop
    def run(self) -> Path:
        cfg = self.cfg
        log, stats_f = open(self.out / "log.txt", "a"), open(self.out / "stats.jsonl", "a")

        def say(msg: str) -> None:
            log.write(msg + "\n")
            log.flush()
            if self.progress:
                tqdm.write(msg)

        if self.it == 0:
            say(f"{describe_method(cfg, self.about)}; {len(self.idx_a)} training images of {cfg.dataset} degraded by "
                f"setting {self.setting.name} ({self.setting.description}) at {self.resolution}px; device {self.device}")
        else:
            say(f"resumed at iteration {self.it}")
        self.log.reset()
        t_tick, it_tick = time.time(), self.it
        bar = tqdm(total=cfg.iters, initial=self.it, desc=f"restore ({cfg.method})", unit="it",
                   disable=not self.progress, dynamic_ncols=True, mininterval=1.0)
        try:
            while self.it < cfg.iters:
                self.step()
                self.it += 1
                bar.update(1)
                tick = self.it % cfg.tick == 0 or self.it == cfg.iters
                picture = self.it % cfg.image_every == 0 or self.it == cfg.iters
                snap = self.it % cfg.snap_every == 0 or self.it == cfg.iters
                if not (tick or picture or snap):
                    continue        # nothing read from the device: the host runs ahead of it
                means, diverged = self.log.read()   # the one read: statistics and finite checks
                if diverged is not None:            # before any picture or checkpoint of the diverged weights
                    raise TrainingDiverged(f"loss term {diverged.term} became {diverged.value} at iteration "
                                           f"{diverged.iteration}; the last good checkpoint is kept in the run "
                                           f"directory")
                if tick:
                    row = {"iteration": self.it, "it_per_s": (self.it - it_tick) / max(time.time() - t_tick, 1e-9),
                           **means}
                    self.log.reset()
                    t_tick, it_tick = time.time(), self.it
                    stats_f.write(json.dumps(row) + "\n")
                    stats_f.flush()
                if picture:
                    self.pictures()
                if snap:
                    self.save()
        finally:
            bar.close()
            stats_f.close()
        final = self.pictures(final=True)
        say(f"done: {self.it} iterations; before | after picture {final}; restorer {self.out}/restorer-{self.it:06d}.pt")
        log.close()
        return self.out


def describe_method(cfg: RestoreConfig, about: dict[str, Any]) -> str:
    """e.g. 'BNCR-GAN+UNIR (F = learned G_k, G_n, G_q of runs/x)'."""
    if cfg.method == "cyclegan":
        return "CycleGAN (set-level labels: degraded vs clean training images)"
    if about.get("kind") == "known":
        return f"UNIR-dagger (F = the true simulator of setting {about['setting']})"
    return f"{about.get('model', 'BNCR-GAN').upper()}+UNIR (F = the learned degradation of {about.get('run')})"


def train_restorer(cfg: RestoreConfig, out: str | Path, resume: Optional[str] = None, progress: bool = True) -> Path:
    """Train a restorer with options `cfg` into run directory `out` (resume: None, 'auto' or a state path)."""
    return RestoreTrainer(cfg, out, resume, progress).run()


# ---------------------------------------------------------------------------------------------- using a restorer
def restorer_snapshot(G: nn.Module, cfg: RestoreConfig, resolution: int, iteration: int,
                      about: dict[str, Any]) -> dict[str, Any]:
    return {"format": RESTORER_FORMAT, "iteration": iteration, "config": cfg.to_dict(), "resolution": resolution,
            "measurement": json.dumps(about), "G": G.state_dict()}


def find_restorer(path: str | Path) -> Path:
    """A restorer file, or the latest ``restorer-*.pt`` of a restoration run directory."""
    p = Path(path)
    if p.is_dir():
        snaps = sorted(p.glob("restorer-*.pt"))
        if not snaps:
            raise UserError(f"{p}: no restorer-*.pt in this directory (is it a `bncr restore train` run that has "
                            f"saved one?)")
        return snaps[-1]
    if not p.exists():
        raise UserError(f"{p}: no such restoration run directory or restorer file")
    return p


def load_restorer(path: str | Path, device: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(G in eval mode, the snapshot's metadata) of a restoration run directory or ``restorer-*.pt`` file."""
    s = load_checked(find_restorer(path), RESTORER_FORMAT)
    cfg = RestoreConfig.from_dict(s["config"])
    G = build_restorer(cfg)
    G.load_state_dict(s["G"])
    info = {k: v for k, v in s.items() if k != "G"}
    info["measurement"] = json.loads(info["measurement"])
    return G.to(device).eval().requires_grad_(False), info


@torch.no_grad()
def restore_uint8(G: nn.Module, y: np.ndarray, dequantize: bool, batch: int = 64, device: Any = None) -> np.ndarray:
    """Restore uint8 images (N, H, W, 3) -> uint8 (N, H, W, 3); pixels mapped as in training (mid-bin)."""
    dev = device or next(G.parameters()).device
    out = []
    for i in range(0, len(y), batch):
        u8 = torch.from_numpy(np.ascontiguousarray(y[i:i + batch]))
        mid = torch.full(u8.shape, 0.5).permute(0, 3, 1, 2) if dequantize else None
        h = levels_to_model(u8.permute(0, 3, 1, 2).float(), mid, dequantize)
        out.append(visual.to_uint8(G(h.to(dev))))
    return np.concatenate(out) if out else np.zeros((0, *y.shape[1:]), np.uint8)


def save_before_after(y: np.ndarray, x_hat: np.ndarray, x: Optional[np.ndarray], path: Path, title: str) -> None:
    """The before | after picture: degraded inputs, their restorations and (where known) the clean images."""
    panels = [("degraded input y", y), ("restored G(y)", x_hat)]
    if x is not None:
        panels.append(("clean x (ground truth, unseen)", x))
    visual.save_panels(panels, path, title)
