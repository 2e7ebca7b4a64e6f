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
from ..degradations.blur import blur
from ..degradations.settings import Setting, get_setting
from ..errors import UserError
from ..io import atomic_write_text, ensure_writable_dir
from ..models.pipeline import DegradationPipeline
from ..models.pixels import levels_to_model
from ..models.registry import ModelSpec, get_model
from ..nets.resnet import ResNetDiscriminator, ResNetGenerator, drawn
from . import visual
from .checkpoint import SNAPSHOT_FORMAT, STATE_FILE, STATE_FORMAT, load_checked, resume_path, save_atomic
from .config import TrainConfig
from .loss import BNCRLoss
from .steplog import StepLog
from .distributed import Dist, all_reduce_grads, barrier, broadcast_params, init_distributed

# Options that may differ when resuming (they do not change what is computed; compile only its rounding).
RESUMABLE_CHANGES = {"iters", "tick", "image_every", "snap_every", "threads", "cuda_graph", "compile"}
# Eager steps before a CUDA graph is captured (lazy state: Adam's moments, cuBLAS handles, compiled kernels).
GRAPH_WARMUP = 3


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
    u = drawn(torch.rand, x.shape, generator=gen, device=x.device) if dequantize else None
    return levels_to_model(x, u, dequantize)


def soften(u8: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 (N, H, W, 3) images blurred by a Gaussian of std `sigma` px (the pipeline's `blur`), rounded back to
    uint8: the oracle_blur diagnosis, real clean images made about as soft as a G_x at the CPU scale."""
    r = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=u8.device)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = torch.outer(g, g) / g.sum() ** 2
    x = blur(u8.permute(0, 3, 1, 2).float(), k.expand(len(u8), -1, -1))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


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
    G_x = ResNetGenerator(resolution, cfg.width, cfg.z_dim, residual_factor=cfg.residual, upsample=cfg.g_upsample,
                          padding=cfg.g_pad)
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


def adam(params, device: torch.device, **kw: Any) -> torch.optim.Adam:
    """Adam; on a CUDA device fused (one kernel for all parameters) and capturable (its step count and bias
    corrections stay on the device, so a step never reads the host and can be captured in a CUDA graph). On a CPU
    torch's default, which keeps CPU training numerically as it was."""
    fast = {"fused": True, "capturable": True} if device.type == "cuda" else {}
    return torch.optim.Adam(params, **kw, **fast)


def graph_support(device: torch.device, d: Dist) -> Optional[str]:
    """None when the whole step can be captured as one CUDA graph here, else why not (one phrase)."""
    if device.type != "cuda":
        return f"the training device is {device.type}, not CUDA"
    if d.enabled:
        return "multi-rank training (the gradient all-reduce is not captured)"
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return f"torch {torch.__version__} cannot capture draws of the run's own generator (needs torch >= 2.5)"
    return None


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
        # the training images live on the training device: a batch is a gather there, not a copy from the host
        self.y_real = torch.from_numpy(y).to(self.device)
        self.x_clean = torch.from_numpy(x).to(self.device) if cfg.oracle_clean else None
        if self.x_clean is not None and cfg.oracle_blur > 0:
            self.x_clean = soften(self.x_clean, cfg.oracle_blur)
        for m in (self.nets.G_x, self.nets.D_y, self.nets.pipe, self.nets.G_x_ema, self.nets.pipe_ema):
            m.to(self.device)
            broadcast_params(m, self.d)
        betas, dev = (cfg.beta1, cfg.beta2), self.device
        if cfg.deg_lr is None:
            self.opt_G = adam(self.nets.g_params(), dev, lr=cfg.lr, betas=betas)
        else:   # G_k / G_n / G_q at their own rate (Adam moves their few outputs fast; docs/research/oracle-diagnostic.md)
            self.opt_G = adam([{"params": list(self.nets.G_x.parameters())},
                               {"params": list(self.nets.pipe.parameters()), "lr": cfg.deg_lr}],
                              dev, lr=cfg.lr, betas=betas)
        self.opt_D = adam(self.nets.D_y.parameters(), dev, lr=cfg.lr if cfg.d_lr is None else cfg.d_lr, betas=betas)
        # every draw of a step (real-image indices, dequantisation, latents, eps, bank indices, fd signs) comes
        # from this one generator on the training device
        self.gen = torch.Generator(device=dev).manual_seed(cfg.seed * 1_000_003 + self.d.rank)
        self.loss = BNCRLoss(cfg, self.nets.D_y, self.nets.pipe, self.gen)
        self.it = 0
        self.notes: list[str] = []          # lines for the run's log, written when it starts
        if state_path is not None:
            self._load_state(state_path)
        self.log = StepLog(dev)
        self.it_dev = torch.full((), self.it, dtype=torch.int64, device=dev)   # the iteration, for the device's records
        self._setup_speed()
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
        self.it = int(s["iteration"])
        rng = s["rng"][self.d.rank]
        was = s.get("rng_device", "cpu")
        if was == self.device.type:
            self.gen.set_state(rng)
        else:   # a CPU generator's state cannot seed a CUDA one (and the kernels differ anyway)
            self.gen.manual_seed(self.cfg.seed * 1_000_003 + self.d.rank + 7919 * self.it)
            self.notes.append(f"note: {path} drew its random numbers on {was}, this run on {self.device.type}: the "
                              f"generator is reseeded from the seed and iteration (not identical to a run that "
                              f"stayed on {was})")
        torch.set_rng_state(s["torch_rng"])

    def _gather_rng(self) -> list[torch.Tensor]:
        st = self.gen.get_state()
        if not self.d.enabled:
            return [st]
        import torch.distributed as dist
        st = st.to(self.device)             # NCCL gathers device tensors only
        out = [torch.empty_like(st) for _ in range(self.d.world)]
        dist.all_gather(out, st)
        return [o.cpu() for o in out]

    def save(self) -> None:
        rngs = self._gather_rng()
        if not self.d.main:
            return
        n = self.nets
        state = {"format": STATE_FORMAT, "iteration": self.it, "config": self.cfg.to_dict(), "world_size": self.d.world,
                 "G_x": n.G_x.state_dict(), "D_y": n.D_y.state_dict(), "pipe": n.pipe.state_dict(),
                 "G_x_ema": n.G_x_ema.state_dict(), "pipe_ema": n.pipe_ema.state_dict(),
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                 "rng": rngs, "rng_device": self.device.type, "torch_rng": torch.get_rng_state()}
        save_atomic(state, self.out / STATE_FILE)
        snap = {"format": SNAPSHOT_FORMAT, "iteration": self.it, "config": self.cfg.to_dict(),
                "resolution": self.resolution, "G_x": n.G_x_ema.state_dict(), "pipe": n.pipe_ema.state_dict()}
        save_atomic(snap, self.out / f"snapshot-{self.it:06d}.pt")

    # -------------------------------------------------------------- steps
    def _real_batch(self, n: int) -> torch.Tensor:
        idx = drawn(torch.randint, 0, len(self.y_real), (n,), generator=self.gen, device=self.device)
        return to_model_range(self.y_real[idx], self.gen, self.cfg.dequantize)

    def _clean_fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x^g = G_x(z_x), or real clean images in the oracle diagnostic."""
        if self.x_clean is not None:
            idx = drawn(torch.randint, 0, len(self.x_clean), (n,), generator=self.gen, device=self.device)
            return to_model_range(self.x_clean[idx], self.gen, self.cfg.dequantize), None
        z = drawn(torch.randn, (n, self.cfg.z_dim), generator=self.gen, device=self.device)
        return self.nets.G_x(z), z

    def step(self) -> dict[str, torch.Tensor]:
        """One iteration (D phase, G phase, EMA), eagerly or as a replay of its captured CUDA graph.

        Returns the step's statistics as 0-d device tensors (reading one waits for the device; the run reads
        their sums once per tick, from `self.log`).
        """
        if self._graph is not None:
            self._graph.replay()
            stats = self._graph_stats
        elif self._graph_wanted and self.it >= self.cfg.deg_warmup:
            # warm-up steps on a side stream, as capture needs; then capture and replay
            stats = self._side_stream_step() if self._warm < GRAPH_WARMUP else self._capture()
            self._warm += 1
        else:
            stats = self._step()
        self.log.count(stats)
        return stats

    def _step(self) -> dict[str, torch.Tensor]:
        """The iteration's device work: no read of a device value, so nothing waits and it can be captured."""
        cfg, n, d = self.cfg, self.nets, self.d
        B = cfg.batch // d.world
        # ---- D phase
        n.D_y.requires_grad_(True)
        with_r1 = self.it % cfg.r1_every == 0
        real = self._real_batch(B).requires_grad_(with_r1)
        with torch.no_grad():
            x_g, _ = self._clean_fakes(B)
            y_g = n.pipe(x_g, n.pipe.sample_latents(B, self.gen, self.device)).y
        d_terms, real_logits, fake_logits = self.loss.d_terms(real, y_g, with_r1)
        self.opt_D.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        all_reduce_grads(n.D_y.parameters(), d)
        self.opt_D.step()
        stats = {k: v.detach() for k, v in d_terms.items()}
        stats["D_real"], stats["D_fake"] = real_logits.detach().mean(), fake_logits.detach().mean()
        # ---- G phase
        n.D_y.requires_grad_(False)
        Bg = B * cfg.g_batch_mult
        x_g, _ = self._clean_fakes(Bg)
        lat = n.pipe.sample_latents(Bg, self.gen, self.device)
        out = n.pipe(x_g, lat)
        g_terms = self.loss.g_terms(out, lat)
        self.opt_G.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        all_reduce_grads(n.g_params(), d)
        if self.it < cfg.deg_warmup:
            # the generators named by deg_hold held at their initialisation (docs/research/cpu-scale.md); Adam
            # skips parameters whose grad is None. (A CUDA graph is captured only after this phase.)
            for name, g in n.pipe.generators().items():
                if name[-1] in cfg.deg_hold:
                    for p in g.parameters():
                        p.grad = None
        self.opt_G.step()
        ema_update(n.G_x_ema, n.G_x, cfg.ema)
        ema_update(n.pipe_ema, n.pipe, cfg.ema)
        stats.update({k: v.detach() for k, v in g_terms.items()})
        for k, v in out.stats.items():
            stats[f"{k}_mean"] = v.float().mean()
            if k in ("q", "kernel_entropy"):
                stats[f"{k}_std"] = v.float().std() if v.numel() > 1 else torch.zeros((), device=self.device)
        self.log.record(stats, {**d_terms, **g_terms}, self.it_dev)
        self.it_dev.add_(1)
        return stats

    # -------------------------------------------------------------- speed: CUDA graph, torch.compile
    def _setup_speed(self) -> None:
        """Decide the cuda_graph and compile options for this device (one log line where a wish is not met)."""
        cfg = self.cfg
        self._graph: Optional[torch.cuda.CUDAGraph] = None
        self._say = None
        self._graph_stats: dict[str, torch.Tensor] = {}
        self._warm = 0
        why_not = graph_support(self.device, self.d)
        if why_not is None and cfg.r1_every > 1:
            why_not = "lazy R1 (r1_every > 1) makes two different steps; one graph holds one"
        if why_not is None and cfg.d_shift > 0:
            why_not = "d_shift draws D's shift on the host each phase; a graph would replay one shift"
        self._graph_wanted = cfg.cuda_graph != "false" and why_not is None
        if cfg.cuda_graph == "true" and why_not is not None:
            self.notes.append(f"cuda_graph=true: not used, {why_not}; the step runs eagerly")
        if self.device.type == "cuda":
            # the differentiable JPEG is exact only in full FP32: no TF32 matmuls (the trainer uses no autocast)
            torch.backends.cuda.matmul.allow_tf32 = False
        if cfg.compile:
            if self.device.type != "cuda":
                self.notes.append(f"compile=true: not used, the training device is {self.device.type} (torch.compile "
                                  f"pays off on CUDA only)")
                return
            # inside the compiled graph blur cannot switch cuDNN's TF32 off per call (blur.py): off for every conv
            torch.backends.cudnn.allow_tf32 = False
            for m in (self.nets.G_x, self.nets.pipe):
                m.compile(fullgraph=True, dynamic=False)

    def _side_stream_step(self) -> dict[str, torch.Tensor]:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            stats = self._step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        return stats

    def _capture(self) -> dict[str, torch.Tensor]:
        """Capture one step as a CUDA graph, check its replay against the eager step, use it from now on; eager for
        good (one log line) if capture fails or the replay differs.

        Capture records kernels without running them: the generator (registered with the graph) advances by the
        step's draws on each replay, the iteration counter and statistics are updated in place, so a replay is the
        eager step. Gradients are allocated inside the graph (set to None first), as torch's whole-network capture
        recipe does."""
        graph = torch.cuda.CUDAGraph()

        def capture_and_replay() -> dict[str, torch.Tensor]:
            torch.cuda.synchronize(self.device)
            graph.register_generator_state(self.gen)
            for opt in (self.opt_D, self.opt_G):
                opt.zero_grad(set_to_none=True)
            self.log.frozen = True
            try:
                with torch.cuda.graph(graph):
                    stats = self._step()
            finally:
                self.log.frozen = False
            graph.replay()
            return stats

        stats, why_not, diff = self._checked_replay(capture_and_replay)
        if why_not is None:
            self._graph, self._graph_stats = graph, stats
            self.notes.append(f"cuda_graph: the step is captured at iteration {self.it} and replayed from now on "
                              f"(first replay = eager step; largest state difference {diff:.2g})")
        else:
            self._graph_wanted = False
            self.notes.append(f"cuda_graph: not used from iteration {self.it}, {why_not}; the step runs eagerly")
        self._say_notes()
        return stats

    def _state_tensors(self) -> list[torch.Tensor]:
        """Every tensor a step changes in place: the nets' parameters and buffers, the optimisers' states, the device
        log and iteration counter."""
        n = self.nets
        ts = [t for m in (n.G_x, n.D_y, n.pipe, n.G_x_ema, n.pipe_ema) for t in (*m.parameters(), *m.buffers())]
        ts += [v for opt in (self.opt_D, self.opt_G) for st in opt.state.values() for v in st.values()
               if torch.is_tensor(v)]
        return ts + [self.log.sums, self.log.first_it, self.log.first_val, self.it_dev]

    def _checked_replay(self, replay) -> tuple[dict[str, torch.Tensor], Optional[str], float]:
        """Run the step eagerly as a reference, rewind the state and generator, run `replay` (capture + replay) from
        the same state and compare: (its statistics, None, largest state difference) when it matches the eager
        step, else (the eager step's statistics, why not, nan) with the eager step's result kept.

        Matching: the generator advanced alike (same draws consumed) and every statistic within 1e-3 relative
        (cuDNN's non-deterministic kernels differ in the last bits; a wrong draw or a missing kernel does not)."""
        state = self._state_tensors()
        with torch.no_grad():
            before, g0 = [t.clone() for t in state], self.gen.get_state()
        ref = self._step()
        with torch.no_grad():
            after, g1 = [t.clone() for t in state], self.gen.get_state()
            for t, b in zip(state, before):
                t.copy_(b)
            self.gen.set_state(g0)
        why_not, diff = None, float("nan")
        try:
            got = replay()
        except Exception as e:  # noqa: BLE001 - any failure to capture: say why once, train on eagerly
            why_not = f"capture failed ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        if why_not is None and not torch.equal(self.gen.get_state(), g1):
            why_not = "the replay consumed other random draws than the eager step"
        if why_not is None:
            keys = list(ref)
            a, b = (torch.stack([s[k].detach().float() for k in keys]) for s in (ref, got))
            close = torch.isclose(b, a, rtol=1e-3, atol=1e-5, equal_nan=True)
            d = torch.stack([(t.detach() - u).abs().max().double() for t, u in zip(state, after)
                             if t.is_floating_point() and t.numel()] or [torch.zeros((), dtype=torch.float64)])
            flags, diff = close.tolist(), float(d.max())       # once per run: host reads are fine here
            off = [k for k, ok in zip(keys, flags) if not ok]
            if off:
                why_not = f"its first replay differs from the eager step in {', '.join(off[:3])}"
        if why_not is None:
            return got, None, diff
        with torch.no_grad():
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            for t, u in zip(state, after):
                t.copy_(u)
            self.gen.set_state(g1)
        return ref, why_not, diff

    def _say_notes(self) -> None:
        """Log lines that arose outside `run` (before it started writing, or inside a step)."""
        if self._say is not None:
            for line in self.notes:
                self._say(line)
            self.notes.clear()

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
        visual.save_panels([(real, f["real"].cpu().numpy()), ("degraded fakes y^g", visual.to_uint8(out.y)),
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
        self._say = say
        self._say_notes()
        self.log.reset()
        t_tick, it_tick = time.time(), self.it
        bar = tqdm(total=cfg.iters, initial=self.it, desc=cfg.model, unit="it", disable=not self.progress,
                   dynamic_ncols=True, mininterval=1.0)
        try:
            while self.it < cfg.iters:
                self.step()
                self.it += 1
                bar.update(1)
                tick = self.it % cfg.tick == 0 or self.it == cfg.iters
                picture = self.d.main and (self.it % cfg.image_every == 0 or self.it == cfg.iters)
                snap = self.it % cfg.snap_every == 0 or self.it == cfg.iters
                if not (tick or picture or snap):
                    continue        # nothing read from the device: the host runs ahead of it
                means, diverged = self.log.read()   # the one read: statistics and finite checks
                if diverged is not None:
                    raise TrainingDiverged(f"loss term {diverged.term} became {diverged.value} at iteration "
                                           f"{diverged.iteration}; the last good checkpoint is kept in the run "
                                           f"directory")
                if tick:
                    dt = time.time() - t_tick
                    row = {"iteration": self.it, "it_per_s": (self.it - it_tick) / max(dt, 1e-9), **means}
                    self.log.reset()
                    t_tick, it_tick = time.time(), self.it
                    if stats_f:
                        stats_f.write(json.dumps(row) + "\n")
                        stats_f.flush()
                        bar.set_postfix({k: f"{row[k]:.3g}" for k in ("G_adv", "D_adv", "q_mean", "kernel_entropy_mean")
                                         if k in row})
                if picture:
                    self.pictures()
                if snap:
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
