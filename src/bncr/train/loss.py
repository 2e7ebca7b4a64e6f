"""The loss of every model, beside the trainer (as stylegan2-ada's loss.py): one object owns the terms.

Phases: `d_terms` (D_y: non-saturating adversarial + R1 on real images) and `g_terms` (G_x and the degradation
generators: adversarial, the finite-difference q surrogate, diversity-sensitive terms per generator with their
weights and bounds, adaptive consistency Eq. 7-8). What the DS term sees is the pipeline's `ds_outputs`
(chosen by ds_*_target when the pipeline is built). The Trainer owns phases, EMA, ticks, checkpoints, stats.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..degradations.blur import blur
from ..models.losses import (ac_blur_weight, ac_comp_weight, adaptive_consistency, d_loss_nonsaturating,
                             diversity_sensitive, g_loss_nonsaturating, g_loss_per_image, r1_penalty,
                             total_variation)
from ..models.pipeline import DegradationPipeline, PipelineOutput
from ..nets.degradation_generators import Q_MIN
from ..nets.resnet import drawn
from .config import TrainConfig

Terms = dict[str, torch.Tensor]


class BNCRLoss:
    """The GAN objective of the paper's models as configured by `cfg` (Sec. 4-6 of the paper)."""

    def __init__(self, cfg: TrainConfig, D_y: Callable[[torch.Tensor], torch.Tensor], pipe: DegradationPipeline,
                 gen: Optional[torch.Generator]):
        self.cfg, self.D_y, self.pipe, self.gen = cfg, D_y, pipe, gen
        self.shift = (0, 0)

    def draw_shift(self) -> None:
        """d_shift > 0: one circular shift (dy, dx) in [0, d_shift) for every image D sees in this phase (real and
        fake alike, and the finite-difference forwards of the same G step), so D cannot tell where JPEG's grid is
        (d_shift 16 for the 16x16 period of 4:2:0 chroma, 8 for the luma blocks alone)."""
        if self.cfg.d_shift > 0:
            dev = self.gen.device if self.gen is not None else "cpu"   # a host read: an experiment's option, eager only
            self.shift = tuple(torch.randint(self.cfg.d_shift, (2,), generator=self.gen, device=dev).tolist())

    def D(self, y: torch.Tensor) -> torch.Tensor:
        """D_y on y, circularly shifted by the phase's shift when d_shift > 0."""
        return self.D_y(torch.roll(y, self.shift, (2, 3)) if self.shift != (0, 0) else y)

    # ------------------------------------------------------------------ D phase
    def d_terms(self, real: torch.Tensor, y_g: torch.Tensor, with_r1: bool = True) -> tuple[Terms, torch.Tensor,
                                                                                            torch.Tensor]:
        """D's terms on real images (requires_grad for R1) and degraded fakes; also returns both logits.

        with_r1=False skips R1 (the off-steps of lazy R1, which save its double backward; docs/research/train-speed.md);
        on its steps R1 is weighted r1 * r1_every, so its mean over steps is unchanged."""
        self.draw_shift()
        real_logits = self.D(real)
        fake_logits = self.D(y_g)
        terms = {"D_adv": d_loss_nonsaturating(real_logits, fake_logits)}
        if self.cfg.r1 > 0:
            terms["D_r1"] = (self.cfg.r1 * self.cfg.r1_every * r1_penalty(real_logits, real) if with_r1
                             else real_logits.new_zeros(()))
        return terms, real_logits, fake_logits

    # ------------------------------------------------------------------ G phase
    def g_terms(self, out: PipelineOutput, lat: dict[str, torch.Tensor]) -> Terms:
        """The generators' terms for the pipeline output `out` of latents `lat`."""
        cfg, spec = self.cfg, self.pipe.spec
        self.draw_shift()
        logits_g = self.D(out.y)
        terms = {"G_adv": g_loss_nonsaturating(logits_g)}
        if self.pipe.q_grad == "fd" and out.q is not None and out.q.requires_grad:
            terms["G_q_fd"] = self.q_fd_surrogate(out, lat, g_loss_per_image(logits_g.detach()))
        for name, o in out.ds_outputs.items():         # name: "G_k", "G_n" or "G_q"
            w, tau = self.ds_weight(name[-1])
            if w > 0:
                terms[f"{name}_ds"] = w * diversity_sensitive(o, lat["z" + name[1:]], tau=tau)
        if spec.ac_blur and cfg.ac > 0 and out.k is not None:
            terms["AC_blur"] = cfg.ac * adaptive_consistency(out.x, out.x_blur, ac_blur_weight(out.k, cfg.mu_k),
                                                             cfg.ac_norm)
        ac_comp = cfg.ac if cfg.ac_comp is None else cfg.ac_comp
        if spec.ac_comp and ac_comp > 0 and out.q is not None:
            if cfg.ac_comp_on == "x":               # Eq. 8 as written: G_x(z) against psi(G_x(z), q), no mask
                with torch.no_grad():
                    x_psi = self.pipe.psi(out.x.detach(), out.q.detach(), lat.get("deq"),
                                          lat.get("grid")).clamp(-1, 1)
                before, after = out.x, x_psi
            elif cfg.ac_comp_on == "u_x":           # u against y, the gradient reaching G_x alone (Sec. 6): the
                # same value as "u", but k and n are held, so the term cannot make G_n's noise or G_k's kernel
                # smaller (JPEG removes noise: through n, "u" pulls the learned noise down; cpu-scale.md section 25)
                x_k = blur(out.x, out.k.detach()) if out.k is not None else out.x
                before, after = x_k + (out.u - out.x_blur).detach(), out.y
            else:                                   # the JPEG stage's input u = x * k + n against its output y
                before, after = out.u, out.y
            terms["AC_comp"] = ac_comp * adaptive_consistency(before, after, ac_comp_weight(out.q, cfg.mu_q),
                                                             cfg.ac_norm)
        if cfg.tv > 0:
            terms["G_x_tv"] = cfg.tv * total_variation(out.x)
        return terms

    def ds_weight(self, which: str) -> tuple[float, float]:
        """(weight, bound) of the DS term of G_<which> (k, n or q): its own option, else the shared one."""
        cfg = self.cfg
        w, tau = getattr(cfg, f"ds_{which}"), getattr(cfg, f"ds_{which}_tau")
        return (cfg.ds if w is None else w), (cfg.ds_tau if tau is None else tau)

    def q_fd_surrogate(self, out: PipelineOutput, lat: dict[str, torch.Tensor],
                       loss_at_q: torch.Tensor) -> torch.Tensor:
        """A term whose gradient on each q_i is a finite-difference slope of G_adv in q_i.

        The differentiable JPEG's gradient on q (straight-through or polynomial rounding) was measured to point
        the wrong way for the adversarial loss: with a D that prefers high q, G_adv falls as q rises (real
        codec), yet its q-gradient says the opposite at every q (docs/research/oracle-diagnostic.md). q is one scalar
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
                step = (drawn(torch.randint, 0, 2, q.shape, generator=self.gen, device=q.device).to(q) * 2 - 1) * h
                step = torch.where((q + step > 100.0) | (q + step < Q_MIN), -step, step)
                q_a, q_b, l_b = (q + step).clamp(Q_MIN, 100.0), q, loss_at_q
                l_a = g_loss_per_image(self.D(self.pipe.degrade_at_quality(out, q_a, lat)))
            else:
                q_a, q_b = (q + h).clamp(max=100.0), (q - h).clamp(min=Q_MIN)
                l_a, l_b = g_loss_per_image(self.D(
                    self.pipe.degrade_at_quality(out, torch.cat((q_a, q_b)), lat))).chunk(2)
            d = q_a - q_b
            moved = d.abs() > 1e-6       # no step possible (q outside [Q_MIN, 100], sigmoid parametrisation)
            slope = torch.where(moved, (l_a - l_b) / torch.where(moved, d, 1.0), 0.0)
        return (slope * out.q).sum() / q.numel()
