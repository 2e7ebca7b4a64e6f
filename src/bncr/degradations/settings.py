"""The paper's degradation settings (A-Q, noise-only, FFHQ variants) and their exact simulation.

Degradation model (Eq. 1): y = JPEG(x * k + n, q) -- blur, then noise, then JPEG, values clipped
to [0, 1] before JPEG. Every degradation type is applied to an image with its own rate, drawn
independently of the others (rates are 1 for the "all images" settings; 1/4, 1/2, 3/4 for the
partial ones). An image's degradation is a pure function of (clean image, setting, data seed,
index): all its randomness comes from ``numpy.random.SeedSequence([data_seed, index])``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import UserError
from .camera_noise import NoiseParams, add_camera_noise, sample_noise_params
from .jpeg import jpeg_pil
from .kernels import disk_kernel, disk_support, motion_kernel, motion_size, pad_kernel


@dataclass(frozen=True)
class BlurSpec:
    """Blur of a setting: disk with probability p_disk, otherwise motion."""
    p_disk: float                       # 1: out-of-focus only (B), 0: motion only (C), 0.5: (D)
    radius: tuple[float, float] = (0.5, 2.0)      # disk radius r ~ U[lo, hi]
    motion_length: float = 5.0                     # trajectory length (px)
    exposures: tuple[float, ...] = (0.1, 0.5, 1.0)  # exposure T ~ U{...}

    @property
    def size(self) -> int:
        """One kernel size K for all kernels of the setting (covers the largest disk and motion PSF)."""
        sizes = []
        if self.p_disk > 0:
            sizes.append(disk_support(self.radius[1]))
        if self.p_disk < 1:
            sizes.append(motion_size(self.motion_length))
        return max(sizes)


@dataclass(frozen=True)
class Setting:
    """A named degradation setting of the paper."""
    name: str
    description: str
    blur: BlurSpec | None = None
    p_blur: float = 0.0
    noise: bool = False
    p_noise: float = 0.0
    quality: tuple[int, int] | None = None   # JPEG q ~ U{lo..hi}
    p_jpeg: float = 0.0
    resolution: int = 32                     # resolution the blur sizes are meant for

    @property
    def is_clean(self) -> bool:
        return self.p_blur == 0 and self.p_noise == 0 and self.p_jpeg == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel_size"] = self.blur.size if self.blur else None
        return d


@dataclass
class DegradationParams:
    """Ground truth of one degraded image (what the manifest records)."""
    blurred: bool = False
    kernel_type: str | None = None      # "disk" | "motion"
    radius: float | None = None
    motion_length: float | None = None
    exposure: float | None = None
    kernel: np.ndarray | None = field(default=None, repr=False)  # (K, K), K = setting's kernel size
    noised: bool = False
    shot: float | None = None
    read: float | None = None
    compressed: bool = False
    quality: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "kernel"}
        return d


_D = BlurSpec(p_disk=0.5)
_J = (60, 100)


def _build() -> dict[str, Setting]:
    s: list[Setting] = [
        Setting("A", "clean images"),
        Setting("B", "out-of-focus blur, disk kernel r ~ U[0.5, 2]", BlurSpec(1.0), 1.0),
        Setting("C", "motion blur, trajectory length 5, exposure T in {0.1, 0.5, 1}", BlurSpec(0.0), 1.0),
        Setting("D", "blur (B) or (C) with probability 0.5 each", _D, 1.0),
        Setting("E", "1/4 of images blurred by (D), the rest clean", _D, 0.25),
        Setting("F", "1/2 of images blurred by (D), the rest clean", _D, 0.5),
        Setting("G", "3/4 of images blurred by (D), the rest clean", _D, 0.75),
        Setting("H", "JPEG, quality q ~ U{60..80}", quality=(60, 80), p_jpeg=1.0),
        Setting("I", "JPEG, quality q ~ U{80..100}", quality=(80, 100), p_jpeg=1.0),
        Setting("J", "JPEG, quality q ~ U{60..100}", quality=_J, p_jpeg=1.0),
        Setting("K", "1/4 of images compressed by (J), the rest clean", quality=_J, p_jpeg=0.25),
        Setting("L", "1/2 of images compressed by (J), the rest clean", quality=_J, p_jpeg=0.5),
        Setting("M", "3/4 of images compressed by (J), the rest clean", quality=_J, p_jpeg=0.75),
        Setting("N", "all images: blur (D), Brooks camera noise, JPEG (J)", _D, 1.0, True, 1.0, _J, 1.0),
        Setting("O", "each of blur (D), noise, JPEG (J) applied independently to 1/4 of images",
                _D, 0.25, True, 0.25, _J, 0.25),
        Setting("P", "each of blur (D), noise, JPEG (J) applied independently to 1/2 of images",
                _D, 0.5, True, 0.5, _J, 0.5),
        Setting("Q", "each of blur (D), noise, JPEG (J) applied independently to 3/4 of images",
                _D, 0.75, True, 0.75, _J, 0.75),
        Setting("noise", "Brooks camera noise only (the paper's noise 'further analysis')",
                noise=True, p_noise=1.0),
    ]
    table = {x.name: x for x in s}
    # FFHQ 128x128 variants (paper footnote 10): larger disk radii and longer motion trajectories.
    for x in s:
        blur = replace(x.blur, radius=(0.5, 4.0), motion_length=10.0) if x.blur else None
        desc = x.description.replace("r ~ U[0.5, 2]", "r ~ U[0.5, 4]").replace("length 5", "length 10")
        if blur:
            desc += " (FFHQ: disk r in [0.5, 4], motion length 10)"
        table[f"{x.name}-ffhq"] = replace(x, name=f"{x.name}-ffhq", description=desc, blur=blur, resolution=128)
    return table


SETTINGS: dict[str, Setting] = _build()


def get_setting(name: str) -> Setting:
    """The setting named by the paper's letter (A..Q), "noise", or "<letter>-ffhq" (case-insensitive)."""
    key = {k.lower(): k for k in SETTINGS}.get(str(name).strip().lower())
    if key is None:
        letters = ", ".join(k for k in SETTINGS if not k.endswith("-ffhq"))
        raise UserError(f"unknown setting {name!r}: choose one of {letters} (or add '-ffhq', e.g. D-ffhq)")
    return SETTINGS[key]


def image_rngs(data_seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent RNG streams (select, blur, noise, jpeg) of one image."""
    seq = np.random.SeedSequence([int(data_seed), int(index)])
    return tuple(np.random.default_rng(c) for c in seq.spawn(4))


def decisions(setting: Setting, data_seed: int, index: int) -> tuple[bool, bool, bool]:
    """Which degradation types (blur, noise, JPEG) image `index` gets, each drawn independently.

    The uniforms are the same for every setting, so e.g. the images blurred in E are among those
    blurred in F (nested partial settings).
    """
    u = image_rngs(data_seed, index)[0].uniform(size=3)
    return (setting.blur is not None and u[0] < setting.p_blur, setting.noise and u[1] < setting.p_noise,
            setting.quality is not None and u[2] < setting.p_jpeg)


def sample_params(setting: Setting, data_seed: int, index: int) -> tuple[DegradationParams, np.random.Generator]:
    """Draw the ground-truth degradation of image `index`; also returns the RNG for the noise pixels."""
    _, rb, rn, rq = image_rngs(data_seed, index)
    do_blur, do_noise, do_jpeg = decisions(setting, data_seed, index)
    p = DegradationParams()
    if do_blur:
        b = setting.blur
        p.blurred = True
        if rb.uniform() < b.p_disk:
            p.kernel_type, p.radius = "disk", float(rb.uniform(*b.radius))
            k = disk_kernel(p.radius)
        else:
            p.kernel_type, p.motion_length = "motion", float(b.motion_length)
            p.exposure = float(b.exposures[rb.integers(len(b.exposures))])
            k = motion_kernel(b.motion_length, p.exposure, size=b.size, generator=rb)
        p.kernel = pad_kernel(k, b.size)
    if do_noise:
        n: NoiseParams = sample_noise_params(rn)
        p.noised, p.shot, p.read = True, n.shot, n.read
    if do_jpeg:
        p.compressed, p.quality = True, int(rq.integers(setting.quality[0], setting.quality[1] + 1))
    return p, rn


def blur_np(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Convolve each channel of HxWxC float `x` with (K, K) `k`, 'same' size, reflect padding.

    'mirror' in scipy is torch's 'reflect' (edge pixel not repeated), matching the generator side.
    """
    return np.stack([ndimage.convolve(x[..., c], k, mode="mirror") for c in range(x.shape[2])], axis=2)


def apply_degradation(x: np.ndarray, p: DegradationParams, noise_rng: np.random.Generator) -> np.ndarray:
    """y = JPEG(clip(x * k + n), q) for an HxWx3 uint8 image; returns uint8. Clean params: y is x."""
    if not (p.blurred or p.noised or p.compressed):
        return x
    f = x.astype(np.float64) / 255.0
    if p.blurred:
        f = blur_np(f, p.kernel)
    if p.noised:
        f = add_camera_noise(f, NoiseParams(p.shot, p.read), noise_rng)
    u8 = np.round(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)
    return jpeg_pil(u8, p.quality) if p.compressed else u8


def degrade(x: np.ndarray, setting: Setting, data_seed: int, index: int) -> tuple[np.ndarray, DegradationParams]:
    """Degraded image and its ground truth, deterministic in (x, setting, data_seed, index)."""
    p, rn = sample_params(setting, data_seed, index)
    return apply_degradation(x, p, rn), p
