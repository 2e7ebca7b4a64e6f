"""`bncr inspect`: what degradation a trained BNCR-GAN learned its image collection has.

A trained run holds a learned model of the blur kernels, noise and JPEG qualities of its training
images: the degradation generators G_k, G_n, G_q. :func:`inspect_run` samples them, compares them
with the ground truth when the training images were degraded synthetically (a paper setting, or a
`bncr degrade` manifest), and :func:`write_html` renders a self-contained HTML report::

    from bncr.report import inspect_run, write_html
    rep = inspect_run("runs/x", n=2048)
    print(rep.table())            # the recovery numbers (markdown)
    write_html(rep, "report.html")

On the command line: ``bncr inspect RUN_DIR [--out report.html] [--n 2048]`` (see
bncr.report.command and docs/inspect.md).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..degradations.settings import Setting, degrade, get_setting
from ..errors import UserError
from .recovery import Recovery, markdown_table, recovery
from .samples import (GENERATOR_OF, STAGES, Degradations, manifest_degradations, sample_generated,
                      training_indices, true_degradations)

__all__ = ["Report", "inspect_run", "write_html", "render_html", "add_args", "run", "Degradations",
           "sample_generated", "true_degradations", "manifest_degradations", "recovery"]

FIXED_SEED, FIXED_N = 12345, 32   # the latents of the run's final.png (bncr.train.loop.Trainer._fixed_latents)


@dataclass
class Report:
    """Everything `bncr inspect` shows; the numbers are computed once (``recovery``)."""
    run_dir: Path
    snapshot: Path
    iteration: int
    config: dict
    spec: dict                                  # stages blur / noise / jpeg after resolving "auto"
    setting: Setting
    resolution: int
    n: int
    seed: int
    generated: Degradations
    truth: Optional[Degradations]
    truth_source: str                           # where the ground truth comes from, or why there is none
    recovery: Recovery
    stats_last: Optional[dict] = None           # last line of stats.jsonl
    metrics: list = field(default_factory=list)  # last line of each metric-*.jsonl
    panels: Optional[list] = None               # [(title, uint8 (N, H, W, 3))] of final.png, regenerated
    panels_note: str = ""
    notes: list = field(default_factory=list)
    live: bool = False                          # live weights (training-state.pt) instead of the EMA snapshot

    @property
    def learned(self) -> list[str]:
        return [s for s in STAGES if self.spec[s] in ("parameter", "generator")]

    def table(self) -> str:
        """The recovery numbers as a markdown table (equal text to the HTML report's table)."""
        return markdown_table(self.recovery.rows, with_truth=self.truth is not None)

    def single_values(self) -> dict[str, str]:
        """stage -> the one learned value of a P-AmbientGAN "parameter" stage."""
        g, out = self.generated, {}
        if self.spec["blur"] == "parameter" and g.k is not None:
            r = self.recovery.gen
            out["blur"] = (f"one kernel, H(k) = {r.entropy[0]:.3f} nats, R_g = {r.rg[0]:.3f} px"
                           + (f", mean m_k = {g.m_k[0]:.3f}" if g.m_k is not None else ""))
        if self.spec["noise"] == "parameter" and g.a is not None:
            out["noise"] = f"var(x) = {g.a[0]:.3g} x + {g.b[0]:.3g}" + (f" + {g.c[0]:.3g} x^2" if g.c[0] else "")
        if self.spec["jpeg"] == "parameter" and g.q is not None:
            out["jpeg"] = f"q = {g.q[0]:.1f}, m_q = {g.m_q[0]:.3f}"
        return out

    def summary_lines(self) -> list[str]:
        c = self.config
        w = "live weights" if self.live else "EMA weights"
        lines = [f"run {self.run_dir} ({self.snapshot.name}, {w}, iteration {self.iteration} of {c['iters']}): "
                 f"model {c['model']}, setting {self.setting.name} ({self.setting.description}), "
                 f"dataset {c['dataset']} at {self.resolution}px",
                 "stages: " + ", ".join(f"{s}={self.spec[s]}" for s in STAGES)
                 + f"; {self.n} samples of each learned generator (seed {self.seed})",
                 f"ground truth: {self.truth_source}"]
        for stage, v in self.single_values().items():
            lines.append(f"P-AmbientGAN {stage}: a single learned value: {v}")
        lines += [f"note: {n}" for n in self.notes if n.startswith(("EMA", "ORACLE"))]
        return lines


# ---------------------------------------------------------------------------------------------- helpers
def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line being written
            if isinstance(r, dict):
                rows.append(r)
    except OSError:
        pass
    return rows


def _snapshot_iteration(p: Path) -> int:
    m = re.search(r"(\d+)", p.stem)
    return int(m.group(1)) if m else -1


INTENSITY_IMAGES = 1000


def intensity_range(clean, limit: int = INTENSITY_IMAGES) -> tuple[float, float]:
    """1 % and 99 % quantiles of the pixel intensities (in [0, 1]) of at most `limit` evenly spaced images."""
    idx = training_indices(len(clean), limit)
    px = np.concatenate([np.asarray(clean[int(i)], np.float32).ravel() for i in idx]) / 255.0
    lo, hi = np.quantile(px, [0.01, 0.99])
    return float(lo), float(hi)


def _open_clean(cfg: dict):
    from ..data import open_dataset
    return open_dataset(cfg["dataset"], cfg["resolution"], root=cfg["data_root"], count=cfg["count"],
                        skip_bad=cfg["skip_bad"])


@torch.no_grad()
def regenerate_final(G_x, pipe, cfg: dict, setting: Setting, clean) -> list[tuple[str, np.ndarray]]:
    """The panels of the run's final.png, recomputed from the snapshot: the same fixed latents and
    real images as bncr.train.loop.Trainer (seed 12345, 32 images): real degraded y^r | degraded
    fakes y^g = pipe(x^g) | clean fakes x^g = G_x(z) (real clean images for an oracle run)."""
    from ..train.loop import to_model_range
    from ..train.visual import to_uint8
    dev = next(G_x.parameters()).device
    g = torch.Generator().manual_seed(FIXED_SEED)
    z = torch.randn(FIXED_N, int(cfg["z_dim"]), generator=g).to(dev)
    lat = pipe.sample_latents(FIXED_N, g, dev)
    idx = torch.randint(0, len(clean), (FIXED_N,), generator=g).tolist()
    seed = int(cfg["data_seed"])
    real = np.stack([clean[i] if setting.is_clean else degrade(clean[i], setting, seed, i)[0] for i in idx])
    if cfg["oracle_clean"]:
        cidx = torch.randint(0, len(clean), (FIXED_N,), generator=g).tolist()
        x = to_model_range(torch.from_numpy(np.stack([clean[i] for i in cidx])), None, False).to(dev)
        xname = "real clean images x (ORACLE run)"
    else:
        x = G_x(z)
        xname = "clean fakes x^g = G_x(z)"
    y = pipe(x, lat).y
    return [("real degraded y^r", real), ("degraded fakes y^g", to_uint8(y)), (xname, to_uint8(x))]


# ---------------------------------------------------------------------------------------------- main
def inspect_run(path: str | Path, n: int = 2048, *, seed: int = 0, manifest: Optional[str | Path] = None,
                n_true: Optional[int] = 5000, images: bool = True, live: bool = False,
                device: Optional[str] = None, strengths: bool = True) -> Report:
    """Sample the learned degradation generators of a run (directory or snapshot) and compare them
    with the ground truth of its training images.

    n: samples of each generator; seed: their latents' seed; manifest: a `bncr degrade` directory or
    manifest.json to use as ground truth instead of the run's setting; n_true: at most this many
    training images for the ground truth (evenly spaced; None: all); images: regenerate final.png;
    live: the current (not EMA) weights of G_x and G_k / G_n / G_q, from the run's training-state.pt;
    strengths: add the stage-strength rows (report/strength.py: 512 clean fakes through the learned and the true
    stages, a few seconds on a CPU).
    Raises UserError for a run without learned degradation (e.g. model gan, or AmbientGAN).
    """
    from ..api import find_snapshot, load_pipeline
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise UserError(f"--n must be an integer >= 2 (samples of each generator), got {n!r}")
    if n_true is not None and n_true < 1:
        raise UserError(f"--n-true must be >= 1, got {n_true}")
    snap = find_snapshot(path)
    run_dir = snap.parent
    G_x, pipe, cfg = load_pipeline(snap, device)
    iteration = _snapshot_iteration(snap)
    if live:
        from ..train.checkpoint import STATE_FILE, STATE_FORMAT, load_checked
        sp = run_dir / STATE_FILE
        if not sp.is_file():
            raise UserError(f"{run_dir}: no {STATE_FILE}, which holds the live weights (drop --live to use the "
                            f"EMA weights of {snap.name})")
        st = load_checked(sp, STATE_FORMAT)
        G_x.load_state_dict(st["G_x"])
        pipe.load_state_dict(st["pipe"])
        snap, iteration = sp, int(st["iteration"])
    spec = pipe.spec.to_dict()
    setting = get_setting(cfg["setting"])
    learned = [s for s in STAGES if spec[s] in ("parameter", "generator")]
    if not learned:
        stages = " ".join(f"{s}={spec[s]}" for s in STAGES)
        restored = f", it is a plain GAN on images restored by {spec['restore']}" if spec.get("restore") else ""
        raise UserError(f"{run_dir}: model {cfg['model']} learns no degradation (stages {stages}{restored}); "
                        f"`bncr inspect` needs a run with G_k, G_n or G_q (e.g. --model bncr-gan) or P-AmbientGAN "
                        f"parameters")
    notes = []
    for s in STAGES:
        if spec[s] == "known":
            notes.append(f"{s}: the true simulator of setting {setting.name} (AmbientGAN), nothing learned")
        elif spec[s] == "parameter":
            notes.append(f"{s}: P-AmbientGAN, one learned {GENERATOR_OF[s][2:]} parameter shared by every image")
        elif spec[s] == "off":
            notes.append(f"{s}: off in this model")
    ema = float(cfg["ema"])
    if not live and iteration >= 0 and ema ** iteration > 0.05:
        notes.append(f"EMA weights (decay {ema:g}) after {iteration} iterations still hold {ema ** iteration:.0%} of "
                     f"the initial weights (decay^iterations), so they lag behind training; "
                     f"--live shows the current weights")
    if cfg["oracle_clean"]:
        notes.append("ORACLE run: G_x was replaced by real clean images during training (diagnosis only)")
    gen = sample_generated(pipe, n, seed)
    notes += gen.notes

    clean, clean_err = None, ""
    if images or (manifest is None and not setting.is_clean):
        try:                                     # the images panel, the count and intensities of the training images
            clean = _open_clean(cfg)
        except UserError as e:
            clean_err = str(e)
    if manifest is not None:
        truth, info = manifest_degradations(manifest)
        mset = (info.get("setting") or {}).get("name")
        truth_source = truth.source
        if mset and mset != setting.name:
            truth_source += f" (setting {mset}; the run itself trained with setting {setting.name})"
    elif setting.is_clean:
        truth, truth_source = None, (f"none: setting {setting.name} uses the training images as they are "
                                     f"(pass --manifest DIR if they were written by `bncr degrade`)")
    else:
        count = cfg["count"] or (len(clean) if clean is not None else None)
        if count is None:
            count = n_true or 5000
            notes.append(f"the dataset could not be opened to count its images ({clean_err}); "
                         f"the ground truth uses images 0..{count - 1}")
        idx = training_indices(int(count), n_true)
        truth = true_degradations(setting, int(cfg["data_seed"]), idx)
        truth_source = truth.source + ("" if len(idx) == count else f" (evenly spaced, of {count})")
    x_range = None
    if clean is not None and manifest is None and truth is not None and truth.has_noise:
        x_range = intensity_range(clean)
        notes.append(f"the training images' clean intensities span [{x_range[0]:.3f}, {x_range[1]:.3f}] (1-99 % of "
                     f"the pixels of {min(len(clean), INTENSITY_IMAGES)} images); outside it the noise std curve is "
                     f"G_n's extrapolation, which the data cannot constrain")
    rec = recovery(gen, truth, x_range)
    if strengths and manifest is None and truth is not None and not cfg["oracle_clean"]:
        from .strength import stage_strengths, strength_rows   # the stages' effect on the run's own images
        rec.rows += strength_rows(stage_strengths(G_x, pipe, cfg, setting, min(n, 512), seed))

    stats = _read_jsonl(run_dir / "stats.jsonl")
    metrics = []
    for p in sorted(run_dir.glob("metric-*.jsonl")):
        rows = _read_jsonl(p)
        if rows:
            metrics.append({"file": p.name, **rows[-1]})
    panels, panels_note = None, ""
    if images:
        if clean is None:
            panels_note = f"images not shown: {clean_err}"
        else:
            panels = regenerate_final(G_x, pipe, cfg, setting, clean)
            panels_note = (f"the content of the run's final.png (same {FIXED_N} latents and real images as the "
                           "training loop), regenerated " + ("with the live weights (final.png shows the EMA weights)"
                                                             if live else f"from {snap.name}"))
    return Report(run_dir, snap, iteration, cfg, spec, setting, int(pipe.resolution), n, seed,
                  gen, truth, truth_source, rec, stats[-1] if stats else None, metrics, panels, panels_note, notes,
                  live)


from .render import render_html, write_html  # noqa: E402
from .command import add_args, run  # noqa: E402
