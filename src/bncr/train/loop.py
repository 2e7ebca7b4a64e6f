"""The training loop shared by every model (it never branches on the model name).

One iteration = one D step (batch B real, B fake) then one G step (batch g_batch_mult * B) on
G_x and the learned degradation generators, then EMA. Periodic ticks write stats, image grids
and checkpoints into the run directory.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import __version__
from ..data import open_dataset
from ..data.degraded import DegradedDataset
from ..degradations.settings import Setting, get_setting
from ..errors import UserError
from ..io import atomic_path, atomic_write_text, ensure_writable_dir
from ..models.losses import (ac_blur_weight, ac_comp_weight, adaptive_consistency, d_loss_nonsaturating,
                             diversity_sensitive, g_loss_nonsaturating, g_loss_per_image, r1_penalty)
from ..models.pipeline import DegradationPipeline
from ..models.pixels import levels_to_model
from ..models.registry import ModelSpec, get_model
from ..nets.degradation_generators import Q_MIN
from ..nets.resnet import ResNetDiscriminator, ResNetGenerator
from . import visual
from .checkpoint import SNAPSHOT_FORMAT, STATE_FILE, STATE_FORMAT, load_checked, save_atomic
from .config import TrainConfig
from .distributed import Dist, all_reduce_grads, barrier, broadcast_params, init_distributed

# Options that may differ when resuming (they do not change what is computed).
RESUMABLE_CHANGES = {"iters", "tick", "image_every", "snap_every", "threads"}


class TrainingDiverged(UserError):
    """A loss became NaN/Inf."""


# ---------------------------------------------------------------------------------------------- data
def device_name(device: torch.device) -> str:
    """'cpu' or e.g. 'cuda:0 (NVIDIA H200)': recorded in config.json so results can say where a run trained."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def git_commit() -> Optional[str]:
    """The commit of the source tree this package runs from (with "-dirty" if it has changes), None outside git."""
    import subprocess
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cache_dir() -> Path:
    return Path(os.environ.get("BNCR_CACHE", Path.home() / ".cache" / "bncr")) / "degraded"


def materialise(clean, setting: Setting, data_seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(degraded y, clean x) as uint8 arrays (N, H, W, 3), cached on disk by content key."""
    # Key: the data's identity *and content* (16 evenly spaced images), so another split, seed or
    # root of the same name and size never hits this cache.
    n_all = len(clean)
    probe = hashlib.sha1()
    for i in sorted({int(j) for j in np.linspace(0, n_all - 1, 16)}):
        probe.update(np.ascontiguousarray(clean[i]).tobytes())
    key = json.dumps([getattr(clean, "name", "?"), n_all, getattr(clean, "resolution", None),
                      getattr(clean, "split", None), setting.to_dict(), data_seed, probe.hexdigest(), "v1"],
                     sort_keys=True)
    h = hashlib.sha1(key.encode()).hexdigest()[:16]
    cache = _cache_dir() / f"{setting.name}-{h}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return z["y"], z["x"]
    ds = DegradedDataset(clean, setting, data_seed)
    n = len(ds)
    x0 = clean[0]
    y = np.empty((n, *x0.shape), np.uint8)
    x = np.empty((n, *x0.shape), np.uint8)
    for i in tqdm(range(n), desc=f"degrading {n} images by setting {setting.name}", unit="img",
                  disable=not progress, mininterval=1.0):
        x[i] = clean[i]
        y[i] = ds[i][0] if not setting.is_clean else x[i]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, y=y, x=x)
    except OSError:
        pass  # the cache is an optimisation only
    return y, x


def to_model_range(u8: torch.Tensor, gen: Optional[torch.Generator], dequantize: bool) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]; NR-GAN's uniform dequantisation of 1/128."""
    x = u8.permute(0, 3, 1, 2).float()
    return levels_to_model(x, torch.rand(x.shape, generator=gen) if dequantize else None, dequantize)


# ---------------------------------------------------------------------------------------------- model
@dataclass
class Nets:
    G_x: ResNetGenerator
    D_y: ResNetDiscriminator
    pipe: DegradationPipeline
    G_x_ema: ResNetGenerator
    pipe_ema: DegradationPipeline

    def g_params(self) -> list[nn.Parameter]:
        return list(self.G_x.parameters()) + list(self.pipe.parameters())


def build_generator(cfg: TrainConfig, resolution: int) -> ResNetGenerator:
    """G_x as the config describes it (the one place that does; training and loading use it)."""
    G_x = ResNetGenerator(resolution, cfg.width, cfg.z_dim, residual_factor=cfg.residual, upsample=cfg.g_upsample)
    return G_x.to(memory_format=torch.channels_last) if cfg.channels_last else G_x


def build_nets(cfg: TrainConfig, spec: ModelSpec, setting: Setting, resolution: int) -> Nets:
    G_x = build_generator(cfg, resolution)
    D_y = ResNetDiscriminator(resolution, cfg.d_width or cfg.width, residual_factor=cfg.residual)
    if cfg.channels_last:
        D_y = D_y.to(memory_format=torch.channels_last)
    pipe = DegradationPipeline(spec, setting, resolution, z_dim=cfg.z_dim, kernel_size=cfg.kernel_size,
                               noise_gen=cfg.noise_gen, noise_prior=cfg.noise_prior, noise_width=cfg.width,
                               mask_init=cfg.mask_init, data_seed=cfg.data_seed, dequantize=cfg.dequantize,
                               q_param=cfg.q_param, q_grad=cfg.q_grad, ds_ab=cfg.ds_ab,
                               ds_q_target=cfg.ds_q_target, ds_n_target=cfg.ds_n_target)
    return Nets(G_x, D_y, pipe, copy.deepcopy(G_x).eval().requires_grad_(False),
                copy.deepcopy(pipe).eval().requires_grad_(False))


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    # one multi-tensor operation instead of one per parameter (kernel launches on a GPU)
    e, p = list(ema.parameters()), list(live.parameters())
    if e:
        torch._foreach_lerp_(e, p, 1.0 - decay)


def _check_finite(terms: dict[str, torch.Tensor], it: int) -> None:
    # one fused check (one GPU sync per call); the slow path finds the term to name
    if bool(torch.isfinite(torch.stack([v.detach() for v in terms.values()])).all()):
        return
    for name, v in terms.items():
        if not torch.isfinite(v).all():
            raise TrainingDiverged(f"loss term {name} became {v.item()} at iteration {it}; "
                                   f"the last good checkpoint is kept in the run directory")


# ---------------------------------------------------------------------------------------------- run
class Trainer:
    """Holds the state of one run; `run()` trains until cfg.iters."""

    def __init__(self, cfg: TrainConfig, out: str | Path, resume: Optional[str] = None, progress: bool = True):
        self.d: Dist = init_distributed()
        self.cfg, self.progress = cfg, progress and self.d.main
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(f"cuda:{self.d.local_rank}" if torch.cuda.is_available() else "cpu")
        self.spec = get_model(cfg.model)
        self.setting = get_setting(cfg.setting)
        if cfg.iters < 1:
            raise UserError(f"--iters must be >= 1, got {cfg.iters}")
        if cfg.q_fd_sides not in (1, 2):
            raise UserError(f"q_fd_sides must be 1 or 2, got {cfg.q_fd_sides}")
        if cfg.ac_norm not in ("sum", "mean"):
            raise UserError(f"ac_norm must be 'sum' or 'mean', got {cfg.ac_norm!r}")
        for key in ("ds", "ds_k", "ds_n", "ds_q", "ds_tau", "ds_k_tau", "ds_n_tau", "ds_q_tau"):
            if (getattr(cfg, key) or 0) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(cfg, key)}")
        if cfg.batch % self.d.world:
            raise UserError(f"batch {cfg.batch} is not divisible by the {self.d.world} ranks")
        self.out = Path(out)
        if self.d.main:
            ensure_writable_dir(self.out)
        state_path = self._resume_path(resume)
        # data
        clean = open_dataset(cfg.dataset, cfg.resolution, root=cfg.data_root, count=cfg.count, skip_bad=cfg.skip_bad)
        self.resolution = int(clean.resolution)
        # nets first (same init on every rank): a bad option fails before the data are degraded
        torch.manual_seed(cfg.seed)
        self.nets = build_nets(cfg, self.spec, self.setting, self.resolution)
        if self.d.main:
            y, x = materialise(clean, self.setting, cfg.data_seed, self.progress)
        barrier(self.d)
        if not self.d.main:
            y, x = materialise(clean, self.setting, cfg.data_seed, False)
        self.y_real = torch.from_numpy(y)
        self.x_clean = torch.from_numpy(x) if cfg.oracle_clean else None
        for m in (self.nets.G_x, self.nets.D_y, self.nets.pipe, self.nets.G_x_ema, self.nets.pipe_ema):
            m.to(self.device)
            broadcast_params(m, self.d)
        betas = (cfg.beta1, cfg.beta2)
        if cfg.deg_lr is None:
            self.opt_G = torch.optim.Adam(self.nets.g_params(), lr=cfg.lr, betas=betas)
        else:   # G_k / G_n / G_q at their own rate (Adam moves their few outputs fast; docs/oracle-diagnostic.md)
            self.opt_G = torch.optim.Adam([{"params": list(self.nets.G_x.parameters())},
                                           {"params": list(self.nets.pipe.parameters()), "lr": cfg.deg_lr}],
                                          lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.nets.D_y.parameters(), lr=cfg.lr if cfg.d_lr is None else cfg.d_lr, betas=betas)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.d.rank)
        self.it = 0
        if state_path is not None:
            self._load_state(state_path)
        self.fixed = self._fixed_latents()
        if self.d.main:
            atomic_write_text(self.out / "config.json", json.dumps(
                {"config": cfg.to_dict(), "spec": self.nets.pipe.spec.to_dict(),
                 "setting": self.setting.to_dict(), "resolution": self.resolution,
                 "world_size": self.d.world, "torch": torch.__version__,
                 "device": device_name(self.device), "bncr_version": __version__, "git_commit": git_commit()},
                indent=1, sort_keys=True) + "\n")

    # -------------------------------------------------------------- resume
    def _resume_path(self, resume: Optional[str]) -> Optional[Path]:
        existing = self.out / STATE_FILE
        if resume is None:
            if existing.exists() or (self.out / "config.json").exists():
                raise UserError(f"{self.out} already holds a run: use --resume auto to continue it, "
                                f"or choose another --out")
            return None
        if resume == "auto":
            return existing if existing.exists() else None
        p = Path(resume)
        return p / STATE_FILE if p.is_dir() else p

    def _load_state(self, path: Path) -> None:
        s = load_checked(path, STATE_FORMAT)
        old = TrainConfig.from_dict(s["config"])
        diff = [k for k, v in self.cfg.to_dict().items() if k not in RESUMABLE_CHANGES and old.to_dict()[k] != v]
        if diff:
            k = diff[0]
            raise UserError(f"cannot resume {path}: option {k} was {old.to_dict()[k]!r}, now {self.cfg.to_dict()[k]!r} "
                            f"(resume with the same config, or start a new --out)")
        if s["world_size"] != self.d.world:
            raise UserError(f"cannot resume {path}: it was trained on {s['world_size']} ranks, now {self.d.world}")
        n = self.nets
        for name, m in (("G_x", n.G_x), ("D_y", n.D_y), ("pipe", n.pipe), ("G_x_ema", n.G_x_ema), ("pipe_ema", n.pipe_ema)):
            m.load_state_dict(s[name])
        self.opt_G.load_state_dict(s["opt_G"])
        self.opt_D.load_state_dict(s["opt_D"])
        self.gen.set_state(s["rng"][self.d.rank])
        torch.set_rng_state(s["torch_rng"])
        self.it = int(s["iteration"])

    def _gather_rng(self) -> list[torch.Tensor]:
        st = self.gen.get_state()
        if not self.d.enabled:
            return [st]
        import torch.distributed as dist
        out = [torch.empty_like(st) for _ in range(self.d.world)]
        dist.all_gather(out, st)
        return out

    def save(self) -> None:
        rngs = self._gather_rng()
        if not self.d.main:
            return
        n = self.nets
        state = {"format": STATE_FORMAT, "iteration": self.it, "config": self.cfg.to_dict(), "world_size": self.d.world,
                 "G_x": n.G_x.state_dict(), "D_y": n.D_y.state_dict(), "pipe": n.pipe.state_dict(),
                 "G_x_ema": n.G_x_ema.state_dict(), "pipe_ema": n.pipe_ema.state_dict(),
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                 "rng": rngs, "torch_rng": torch.get_rng_state()}
        save_atomic(state, self.out / STATE_FILE)
        snap = {"format": SNAPSHOT_FORMAT, "iteration": self.it, "config": self.cfg.to_dict(),
                "resolution": self.resolution, "G_x": n.G_x_ema.state_dict(), "pipe": n.pipe_ema.state_dict()}
        save_atomic(snap, self.out / f"snapshot-{self.it:06d}.pt")

    # -------------------------------------------------------------- steps
    def _real_batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.y_real), (n,), generator=self.gen)
        return to_model_range(self.y_real[idx], self.gen, self.cfg.dequantize).to(self.device)

    def _clean_fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x^g = G_x(z_x), or real clean images in the oracle diagnostic."""
        if self.x_clean is not None:
            idx = torch.randint(0, len(self.x_clean), (n,), generator=self.gen)
            return to_model_range(self.x_clean[idx], self.gen, self.cfg.dequantize).to(self.device), None
        z = torch.randn(n, self.cfg.z_dim, generator=self.gen).to(self.device)
        return self.nets.G_x(z), z

    def step(self) -> dict[str, float]:
        cfg, n, d = self.cfg, self.nets, self.d
        B = cfg.batch // d.world
        stats: dict[str, float] = {}
        # ---- D step
        n.D_y.requires_grad_(True)
        real = self._real_batch(B).requires_grad_(True)
        with torch.no_grad():
            x_g, _ = self._clean_fakes(B)
            y_g = n.pipe(x_g, n.pipe.sample_latents(B, self.gen, self.device)).y
        real_logits = n.D_y(real)
        fake_logits = n.D_y(y_g)
        terms = {"D_adv": d_loss_nonsaturating(real_logits, fake_logits)}
        if cfg.r1 > 0:
            terms["D_r1"] = cfg.r1 * r1_penalty(real_logits, real)
        _check_finite(terms, self.it)
        self.opt_D.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        all_reduce_grads(n.D_y.parameters(), d)
        self.opt_D.step()
        stats.update({k: v.item() for k, v in terms.items()})
        stats["D_real"], stats["D_fake"] = real_logits.mean().item(), fake_logits.mean().item()
        # ---- G step
        n.D_y.requires_grad_(False)
        Bg = B * cfg.g_batch_mult
        x_g, z_x = self._clean_fakes(Bg)
        lat = n.pipe.sample_latents(Bg, self.gen, self.device)
        out = n.pipe(x_g, lat)
        logits_g = n.D_y(out.y)
        terms = {"G_adv": g_loss_nonsaturating(logits_g)}
        if n.pipe.q_grad == "fd" and out.q is not None and out.q.requires_grad:
            terms["G_q_fd"] = self._q_fd_surrogate(out, lat, g_loss_per_image(logits_g.detach()))
        for name, o in out.ds_outputs.items():         # name: "G_k", "G_n" or "G_q"
            w, tau = getattr(cfg, "ds_" + name[-1]), getattr(cfg, f"ds_{name[-1]}_tau")
            w = cfg.ds if w is None else w
            if w > 0:
                terms[f"{name}_ds"] = w * diversity_sensitive(o, lat["z" + name[1:]],
                                                              tau=cfg.ds_tau if tau is None else tau)
        spec = n.pipe.spec
        if spec.ac_blur and cfg.ac > 0 and out.k is not None:
            terms["AC_blur"] = cfg.ac * adaptive_consistency(out.x, out.x_blur, ac_blur_weight(out.k, cfg.mu_k),
                                                                 cfg.ac_norm)
        if spec.ac_comp and cfg.ac > 0 and out.q is not None:
            terms["AC_comp"] = cfg.ac * adaptive_consistency(out.u, out.y, ac_comp_weight(out.q, cfg.mu_q),
                                                                 cfg.ac_norm)
        _check_finite(terms, self.it)
        self.opt_G.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        all_reduce_grads(n.g_params(), d)
        if self.it < cfg.deg_warmup:
            # G_k / G_n / G_q held still (a dynamics experiment, docs/cpu-mini.md);
            # Adam skips parameters whose grad is None.
            for p in n.pipe.parameters():
                p.grad = None
        self.opt_G.step()
        ema_update(n.G_x_ema, n.G_x, cfg.ema)
        ema_update(n.pipe_ema, n.pipe, cfg.ema)
        stats.update({k: v.item() for k, v in terms.items()})
        for k, v in out.stats.items():
            stats[f"{k}_mean"] = v.float().mean().item()
            if k in ("q", "kernel_entropy"):
                stats[f"{k}_std"] = v.float().std().item() if v.numel() > 1 else 0.0
        return stats

    def _q_fd_surrogate(self, out, lat, loss_at_q: torch.Tensor) -> torch.Tensor:
        """A term whose gradient on each q_i is a finite-difference slope of G_adv in q_i.

        The differentiable JPEG's gradient on q (straight-through or polynomial rounding) was measured to point
        the wrong way for the adversarial loss: with a D that prefers high q, G_adv falls as q rises (real
        codec), yet its q-gradient says the opposite at every q (docs/oracle-diagnostic.md). q is one scalar
        per image and D scores images independently, so extra forward passes give each image's slope of the
        real forward, with steps kept inside [Q_MIN, 100]. q_fd_sides=1: (G_adv_i(q + s h) - G_adv_i(q)) / (s h)
        with a random sign s per image (flipped where q + s h would leave the range), reusing the main forward's
        per-image loss `loss_at_q`: one extra D forward; over random signs the curvature term cancels in
        expectation. q_fd_sides=2: central (G_adv_i(q + h) - G_adv_i(q - h)) / 2h, both sides in one batch of 2N.
        Its *value* is not a loss.
        """
        h, q = self.cfg.q_fd_step, out.q.detach()
        with torch.no_grad():
            if self.cfg.q_fd_sides == 1:
                step = (torch.randint(0, 2, q.shape, generator=self.gen).to(q) * 2 - 1) * h
                step = torch.where((q + step > 100.0) | (q + step < Q_MIN), -step, step)
                q_a, q_b, l_b = (q + step).clamp(Q_MIN, 100.0), q, loss_at_q
                l_a = g_loss_per_image(self.nets.D_y(self.nets.pipe.degrade_at_quality(out, q_a, lat)))
            else:
                q_a, q_b = (q + h).clamp(max=100.0), (q - h).clamp(min=Q_MIN)
                l_a, l_b = g_loss_per_image(self.nets.D_y(
                    self.nets.pipe.degrade_at_quality(out, torch.cat((q_a, q_b)), lat))).chunk(2)
            d = q_a - q_b
            moved = d.abs() > 1e-6       # no step possible (q outside [Q_MIN, 100], sigmoid parametrisation)
            slope = torch.where(moved, (l_a - l_b) / torch.where(moved, d, 1.0), 0.0)
        return (slope * out.q).sum() / q.numel()

    # -------------------------------------------------------------- pictures
    def _fixed_latents(self) -> dict[str, Any]:
        g = torch.Generator().manual_seed(12345)
        n = 32
        lat = {"z": torch.randn(n, self.cfg.z_dim, generator=g).to(self.device),
               "pipe": self.nets.pipe.sample_latents(n, g, self.device),
               "real": self.y_real[torch.randint(0, len(self.y_real), (n,), generator=g)]}
        if self.x_clean is not None:
            lat["clean"] = self.x_clean[torch.randint(0, len(self.x_clean), (n,), generator=g)]
        return lat

    @torch.no_grad()
    def pictures(self, final: bool = False) -> Path:
        n, f = self.nets, self.fixed
        x = (to_model_range(f["clean"], None, False).to(self.device) if "clean" in f else n.G_x_ema(f["z"]))
        out = n.pipe_ema(x, f["pipe"])
        img_dir = self.out / "images"
        img_dir.mkdir(exist_ok=True)
        title = (f"{self.cfg.model} on {self.cfg.dataset}, setting {self.setting.name}, iteration {self.it}"
                 + (" (ORACLE: x = real clean images)" if self.x_clean is not None else ""))
        path = self.out / "final.png" if final else img_dir / f"fakes-{self.it:06d}.png"
        visual.save_panels([("real degraded y^r", f["real"].numpy()), ("degraded fakes y^g", visual.to_uint8(out.y)),
                            ("clean fakes x^g", visual.to_uint8(x))], path, title)
        if out.k is not None and self.spec.blur != "off":
            visual.save_kernels(out.k, img_dir / f"kernels-{self.it:06d}.png",
                                f"kernels k^g at iteration {self.it}")
        if out.q is not None:
            q = out.q.cpu().numpy()
            visual.save_histogram(q, img_dir / f"quality-{self.it:06d}.png",
                                  f"generated q^g at iteration {self.it} (mean m_q {out.m_q.mean().item():.2f})",
                                  range_=(0, 100))
        return path

    # -------------------------------------------------------------- main loop
    def run(self) -> Path:
        cfg = self.cfg
        log = open(self.out / "log.txt", "a") if self.d.main else None
        stats_f = open(self.out / "stats.jsonl", "a") if self.d.main else None

        def say(msg: str) -> None:
            if log:
                log.write(msg + "\n")
                log.flush()
                tqdm.write(msg) if self.progress else None

        if self.it == 0 and self.d.main:
            say(f"model {cfg.model} ({self.nets.pipe.spec.description}); stages blur={self.nets.pipe.spec.blur} "
                f"noise={self.nets.pipe.spec.noise} jpeg={self.nets.pipe.spec.jpeg}; setting {self.setting.name}: "
                f"{self.setting.description}; {len(self.y_real)} training images at {self.resolution}px; "
                f"world size {self.d.world}; device {self.device}")
            if cfg.oracle_clean:
                say("ORACLE DIAGNOSTIC: G_x is replaced by real clean images; not a valid training run")
        elif self.d.main:
            say(f"resumed at iteration {self.it}")
        acc: dict[str, list[float]] = {}
        t_tick, it_tick = time.time(), self.it
        bar = tqdm(total=cfg.iters, initial=self.it, desc=cfg.model, unit="it", disable=not self.progress,
                   dynamic_ncols=True, mininterval=1.0)
        try:
            while self.it < cfg.iters:
                s = self.step()
                self.it += 1
                bar.update(1)
                for k, v in s.items():
                    acc.setdefault(k, []).append(v)
                if self.it % cfg.tick == 0 or self.it == cfg.iters:
                    dt = time.time() - t_tick
                    row = {"iteration": self.it, "it_per_s": (self.it - it_tick) / max(dt, 1e-9),
                           **{k: float(np.mean(v)) for k, v in acc.items()}}
                    acc, t_tick, it_tick = {}, time.time(), self.it
                    if stats_f:
                        stats_f.write(json.dumps(row) + "\n")
                        stats_f.flush()
                        bar.set_postfix({k: f"{row[k]:.3g}" for k in ("G_adv", "D_adv", "q_mean", "kernel_entropy_mean")
                                         if k in row})
                if self.d.main and (self.it % cfg.image_every == 0 or self.it == cfg.iters):
                    self.pictures()
                if self.it % cfg.snap_every == 0 or self.it == cfg.iters:
                    self.save()
                    barrier(self.d)
        finally:
            bar.close()
        if self.d.main:
            final = self.pictures(final=True)
            say(f"done: {self.it} iterations; pictures in {self.out / 'images'}, summary picture {final}")
            log.close()
            stats_f.close()
        return self.out


def train(cfg: TrainConfig, out: str | Path, resume: Optional[str] = None, progress: bool = True) -> Path:
    """Train `cfg` into run directory `out` (resume: None, 'auto' or a state path)."""
    return Trainer(cfg, out, resume, progress).run()
