"""The paper's models as specs of one degradation pipeline (no per-model code).

Each stage of y = JPEG(x * k + n, q) is one of:
  off        the stage does nothing                                   (GAN)
  known      parameters drawn from the true simulator of the setting  (AmbientGAN)
  parameter  one learned parameter, no latent, no generator           (P-AmbientGAN)
  generator  a learned generator G_k / G_n / G_q                      (BR-, NR-, CR-, BNCR-GAN)
"auto" (AmbientGAN, P-AmbientGAN) means: "known"/"parameter" for the stages the setting has, off
for the others. `mask` switches the Eq. 3 / Eq. 5 bypass; `ac_blur` / `ac_comp` the adaptive
consistency losses of Eq. 7 / 8. `restore` ("deblur" | "deblock") trains on the degraded data restored
image by image with its ground truth (the paper's Deblur+GAN / Deblock+GAN: a plain GAN on restored
images; bncr.baselines.dataset) instead of on the degraded data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

from ..degradations.settings import Setting
from ..errors import UserError

MODES = ("off", "known", "parameter", "generator")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    blur: str = "off"
    noise: str = "off"
    jpeg: str = "off"
    blur_mask: bool = True
    jpeg_mask: bool = True
    ac_blur: bool = False
    ac_comp: bool = False
    restore: Optional[str] = None   # training data: the degraded images, or restored by "deblur" / "deblock"

    def __post_init__(self) -> None:
        if self.restore not in (None, "deblur", "deblock"):
            raise ValueError(f"ModelSpec {self.name}: restore must be None, 'deblur' or 'deblock', "
                             f"got {self.restore!r}")

    def resolve(self, setting: Setting) -> "ModelSpec":
        """Replace 'auto-known' / 'auto-parameter' by the stages the setting really has."""
        has = {"blur": setting.p_blur > 0, "noise": setting.p_noise > 0, "jpeg": setting.p_jpeg > 0}
        out = {}
        for stage in ("blur", "noise", "jpeg"):
            mode = getattr(self, stage)
            if mode.startswith("auto-"):
                out[stage] = mode[5:] if has[stage] else "off"
        return replace(self, **out)

    def unused_options(self) -> frozenset[str]:
        """Training options this model never reads, so runs that differ only in them train identically (the
        adaptive consistency options of a model without those terms, G_q's mask options of a model without G_q's
        mask, the diversity-sensitive options of a stage without a learned generator)."""
        unused = set()
        if self.blur != "generator":
            unused |= {"ds_k", "ds_k_tau"}
        if self.noise != "generator":
            unused |= {"ds_n", "ds_n_tau", "ds_n_target", "ds_ab"}
        if self.jpeg != "generator":
            unused |= {"ds_q", "ds_q_tau", "ds_q_target"}
        if "generator" not in self.stages:
            unused |= {"ds", "ds_tau"}
        if not (self.jpeg == "generator" and self.jpeg_mask):
            unused |= {"q_mask"}
        if not self.ac_blur:
            unused |= {"mu_k"}
        if not self.ac_comp:
            unused |= {"ac_comp", "ac_comp_on", "mu_q"}
        if not (self.ac_blur or self.ac_comp):
            unused |= {"ac", "ac_norm"}
        return frozenset(unused)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def stages(self) -> tuple[str, str, str]:
        return self.blur, self.noise, self.jpeg


MODELS: dict[str, ModelSpec] = {m.name: m for m in [
    ModelSpec("gan", "standard GAN, degradation-agnostic"),
    ModelSpec("ambientgan", "true degradation simulator of the setting on fakes (advantaged baseline)",
              "auto-known", "auto-known", "auto-known"),
    ModelSpec("p-ambientgan", "one learned degradation parameter per stage of the setting, no generator",
              "auto-parameter", "auto-parameter", "auto-parameter"),
    ModelSpec("br-gan", "blur-kernel generator G_k with mask (Eq. 3)", blur="generator"),
    ModelSpec("br-gan-nomask", "BR-GAN without the kernel mask", blur="generator", blur_mask=False),
    ModelSpec("br-gan-ac", "BR-GAN with the blur consistency loss (Eq. 7; our diagnostic, like footnote 9)",
              blur="generator", ac_blur=True),
    ModelSpec("nr-gan", "noise generator G_n (NR-GAN)", noise="generator"),
    ModelSpec("cr-gan", "quality generator G_q with mask (Eq. 5), differentiable JPEG", jpeg="generator"),
    ModelSpec("cr-gan-nomask", "CR-GAN without the compression mask", jpeg="generator", jpeg_mask=False),
    ModelSpec("cr-gan-ac", "CR-GAN with the compression consistency loss (paper footnote 9)",
              jpeg="generator", ac_comp=True),
    ModelSpec("bncr-gan", "G_k, G_n, G_q with masks and adaptive consistency losses (Eq. 6-8)",
              "generator", "generator", "generator", ac_blur=True, ac_comp=True),
    ModelSpec("bncr-gan-noac", "BNCR-GAN without adaptive consistency losses",
              "generator", "generator", "generator"),
    # diagnostics (not in the paper): BNCR-GAN with one part of the degradation given by the true simulator,
    # to attribute its gap to AmbientGAN to the learned blur or to the learned noise and JPEG
    ModelSpec("bncr-gan-known-blur", "BNCR-GAN with the true blur simulator in place of G_k (diagnostic)",
              "known", "generator", "generator", ac_comp=True),
    ModelSpec("bncr-gan-known-nq", "BNCR-GAN with the true noise and JPEG simulators, only G_k learned (diagnostic)",
              "generator", "known", "known", ac_blur=True),
    # the same, one stage at a time for the noise-quality trade (JPEG removes noise: cpu-scale.md section 26)
    ModelSpec("bncr-gan-known-jpeg", "BNCR-GAN with the true JPEG simulator in place of G_q (diagnostic)",
              "generator", "generator", "known", ac_blur=True),
    ModelSpec("bncr-gan-known-noise", "BNCR-GAN with the true noise simulator in place of G_n (diagnostic)",
              "generator", "known", "generator", ac_blur=True, ac_comp=True),
    ModelSpec("deblur+gan", "GAN on the training images deblurred with each one's true kernel "
              "(Krishnan-Fergus deconvolution; the paper's Deblur+GAN†)", restore="deblur"),
    ModelSpec("deblock+gan", "GAN on the training images deblocked at each one's true JPEG quality "
              "(jpegqs, else DCT thresholding: substitutes for the paper's SA-DCT)", restore="deblock"),
]}


def get_model(name: str) -> ModelSpec:
    key = str(name).strip().lower()
    if key not in MODELS:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} (`bncr models` lists them)")
    return MODELS[key]
