"""The training loop shared by every model (it never branches on the model name).

One iteration = one D step (batch B real, B fake) then one G step (batch g_batch_mult * B) on
G_x and the learned degradation generators, then EMA. Periodic ticks write stats, image grids
and checkpoints into the run directory.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import __version__
from ..baselines.dataset import describe, degraded_by, restore_images, restore_options
from ..data import open_dataset
from ..data.cache import cache_dir, read_arrays, write_arrays
from ..data.degraded import DegradedDataset
from ..degradations.settings import Setting, get_setting
from ..errors import UserError
from ..io import atomic_write_text, ensure_writable_dir
from ..models.pipeline import DegradationPipeline
from ..models.pixels import levels_to_model
from ..models.registry import ModelSpec, get_model
from ..nets.resnet import ResNetDiscriminator, ResNetGenerator
from . import visual
from .checkpoint import SNAPSHOT_FORMAT, STATE_FILE, STATE_FORMAT, load_checked, resume_path, save_atomic
from .config import TrainConfig
from .loss import BNCRLoss
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


def data_key(clean, setting: Setting, data_seed: int) -> str:
    """Cache key of the degraded data: the clean data's identity *and content*, setting, data seed.

    Content = 16 evenly spaced images, so another split, seed or root of the same name and size never
    shares an entry.
    """
    n_all = len(clean)
    probe = hashlib.sha1()
    for i in sorted({int(j) for j in np.linspace(0, n_all - 1, 16)}):
        probe.update(np.ascontiguousarray(clean[i]).tobytes())
    return json.dumps([getattr(clean, "name", "?"), n_all, getattr(clean, "resolution", None),
                       getattr(clean, "split", None), setting.to_dict(), data_seed, probe.hexdigest(), "v1"],
                      sort_keys=True)


def _cache_path(setting: Setting, key: str, suffix: str = "") -> Path:
    return cache_dir() / f"{setting.name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}{suffix}.npz"


def materialise(clean, setting: Setting, data_seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """(degraded y, clean x) as uint8 arrays (N, H, W, 3), cached on disk by content key (checked on read)."""
    key = data_key(clean, setting, data_seed)
    cache = _cache_path(setting, key)
    n = len(clean)
    x0 = clean[0]
    shape = ((n, *x0.shape), np.dtype(np.uint8))
    hit = read_arrays(cache, key, {"y": shape, "x": shape}, "degraded-data cache")
    if hit is not None:
        return hit["y"], hit["x"]
    ds = DegradedDataset(clean, setting, data_seed)
    y = np.empty((n, *x0.shape), np.uint8)
    x = np.empty((n, *x0.shape), np.uint8)
    for i in tqdm(range(n), desc=f"degrading {n} images by setting {setting.name}", unit="img",
                  disable=not progress, mininterval=1.0):
        x[i] = clean[i]
        y[i] = ds[i][0] if not setting.is_clean else x[i]
    write_arrays(cache, key, {"y": y, "x": x})
    return y, x


def materialise_restored(clean, setting: Setting, data_seed: int, restore: str,
                         progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(restored y, clean x, mask of the restored images, restoration options) of the degraded data, cached.

    The entry sits next to the degraded data's (same directory, its name extends it), keyed on the degraded
    data's key and :func:`bncr.baselines.dataset.restore_options` (method after "auto", options, versions),
    so installing jpegqs or changing a default makes a new entry rather than reusing a stale one.
    """
    opts = restore_options(restore)
    y, x = materialise(clean, setting, data_seed, progress)
    dkey = data_key(clean, setting, data_seed)
    key = json.dumps([dkey, opts, "restored-v1"], sort_keys=True)
    cache = _cache_path(setting, dkey, f".{restore}-{hashlib.sha1(key.encode()).hexdigest()[:12]}")
    hit = read_arrays(cache, key, {"y": (y.shape, np.dtype(np.uint8)), "restored": ((len(y),), np.dtype(bool))},
                      "restored-data cache")
    if hit is not None:
        return hit["y"], x, hit["restored"], opts
    r, done = restore_images(y, x, setting, data_seed, opts, progress)
    write_arrays(cache, key, {"y": r, "restored": done})
    return r, x, done, opts


def training_data(clean, setting: Setting, data_seed: int, restore: Optional[str],
                  progress: bool) -> tuple[np.ndarray, np.ndarray, Optional[dict[str, Any]]]:
    """(real images D is shown, clean x, restoration record or None) of a model's training set.

    The degraded data, or for a model with ``spec.restore`` the degraded data restored image by image
    (Deblur+GAN, Deblock+GAN); the record says how (options) and how many images were restored.
    """
    if restore is None:
        y, x = materialise(clean, setting, data_seed, progress)
        return y, x, None
    r, x, done, opts = materialise_restored(clean, setting, data_seed, restore, progress)
    return r, x, {"options": opts, "restored": int(done.sum()), "images": int(len(done))}


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
    pipe = DegradationPipeline.from_config(cfg, spec, setting, resolution)
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
        cfg.validate()
        if cfg.batch % self.d.world:
            raise UserError(f"batch {cfg.batch} is not divisible by the {self.d.world} ranks")
        self.out = Path(out)
        if self.d.main:
            ensure_writable_dir(self.out)
        state_path = resume_path(self.out, resume, STATE_FILE)
        # data
        clean = open_dataset(cfg.dataset, cfg.resolution, root=cfg.data_root, count=cfg.count, skip_bad=cfg.skip_bad)
        self.resolution = int(clean.resolution)
        # nets first (same init on every rank): a bad option fails before the data are degraded
        torch.manual_seed(cfg.seed)
        self.nets = build_nets(cfg, self.spec, self.setting, self.resolution)
        if self.d.main:
            y, x, self.restored = training_data(clean, self.setting, cfg.data_seed, self.spec.restore, self.progress)
        barrier(self.d)
        if not self.d.main:
            y, x, self.restored = training_data(clean, self.setting, cfg.data_seed, self.spec.restore, False)
        if state_path is not None and self.d.main:
            self._check_same_restoration()
        self.y_real = torch.from_numpy(y)
        self.x_clean = torch.from_numpy(x) if cfg.oracle_clean else None
        for m in (self.nets.G_x, self.nets.D_y, self.nets.pipe, self.nets.G_x_ema, self.nets.pipe_ema):
            m.to(self.device)
            broadcast_params(m, self.d)
        betas = (cfg.beta1, cfg.beta2)
        if cfg.deg_lr is None:
            self.opt_G = torch.optim.Adam(self.nets.g_params(), lr=cfg.lr, betas=betas)
        else:   # G_k / G_n / G_q at their own rate (Adam moves their few outputs fast; docs/research/oracle-diagnostic.md)
            self.opt_G = torch.optim.Adam([{"params": list(self.nets.G_x.parameters())},
                                           {"params": list(self.nets.pipe.parameters()), "lr": cfg.deg_lr}],
                                          lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.nets.D_y.parameters(), lr=cfg.lr if cfg.d_lr is None else cfg.d_lr, betas=betas)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.d.rank)
        self.loss = BNCRLoss(cfg, self.nets.D_y, self.nets.pipe, self.gen)
        self.it = 0
        if state_path is not None:
            self._load_state(state_path)
        self.fixed = self._fixed_latents()
        if self.d.main:
            atomic_write_text(self.out / "config.json", json.dumps(
                {"config": cfg.to_dict(), "spec": self.nets.pipe.spec.to_dict(),
                 "setting": self.setting.to_dict(), "resolution": self.resolution,
                 "world_size": self.d.world, "torch": torch.__version__,
                 "device": device_name(self.device), "bncr_version": __version__, "git_commit": git_commit(),
                 **({"restore": self.restored} if self.restored else {})},
                indent=1, sort_keys=True) + "\n")

    # -------------------------------------------------------------- resume
    def _check_same_restoration(self) -> None:
        """A resumed run must go on with the restored images it started with (e.g. not jpegqs, then dct)."""
        try:
            before = json.loads((self.out / "config.json").read_text()).get("restore")
        except (OSError, ValueError):
            return
        now = self.restored
        if before is not None and now is not None and before["options"] != now["options"]:
            diff = sorted(k for k in set(before["options"]) | set(now["options"])
                          if before["options"].get(k) != now["options"].get(k))
            k = diff[0]
            raise UserError(f"cannot resume {self.out}: its training images were restored with {k}="
                            f"{before['options'].get(k)!r}, now {now['options'].get(k)!r} (e.g. jpegqs installed or "
                            f"removed since); restore the same way, or start a new --out")

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
        """One iteration: a D phase, then a G phase on G_x and the degradation generators, then EMA."""
        cfg, n, d = self.cfg, self.nets, self.d
        B = cfg.batch // d.world
        stats: dict[str, float] = {}
        # ---- D phase
        n.D_y.requires_grad_(True)
        real = self._real_batch(B).requires_grad_(True)
        with torch.no_grad():
            x_g, _ = self._clean_fakes(B)
            y_g = n.pipe(x_g, n.pipe.sample_latents(B, self.gen, self.device)).y
        terms, real_logits, fake_logits = self.loss.d_terms(real, y_g)
        _check_finite(terms, self.it)
        self.opt_D.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        all_reduce_grads(n.D_y.parameters(), d)
        self.opt_D.step()
        stats.update({k: v.item() for k, v in terms.items()})
        stats["D_real"], stats["D_fake"] = real_logits.mean().item(), fake_logits.mean().item()
        # ---- G phase
        n.D_y.requires_grad_(False)
        Bg = B * cfg.g_batch_mult
        x_g, _ = self._clean_fakes(Bg)
        lat = n.pipe.sample_latents(Bg, self.gen, self.device)
        out = n.pipe(x_g, lat)
        terms = self.loss.g_terms(out, lat)
        _check_finite(terms, self.it)
        self.opt_G.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        all_reduce_grads(n.g_params(), d)
        if self.it < cfg.deg_warmup:
            # G_k / G_n / G_q held at their initialisation (docs/research/cpu-scale.md); Adam skips
            # parameters whose grad is None.
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
        real = "real restored y^r" if self.restored else "real degraded y^r"
        visual.save_panels([(real, f["real"].numpy()), ("degraded fakes y^g", visual.to_uint8(out.y)),
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
            if self.restored:
                r = self.restored
                what = degraded_by(r["options"]["restore"])
                rest = r["images"] - r["restored"]
                say(f"training images {describe(r['options'])}: {r['restored']} of {r['images']} restored"
                    + (f"; the other {rest} were not {what} and are kept as they are" if rest else ""))
                if r["restored"] == 0:
                    say(f"note: setting {self.setting.name} has no {what} image, so nothing was restored and "
                        f"this run trains like gan")
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
