"""Degradations y = JPEG(x * k + n, q): exact simulation (data side) and differentiable layers (generator side)."""
from .blur import blur, identity_kernel, kernel_entropy
from .camera_noise import NoiseParams, add_camera_noise, sample_noise_params
from .diff_jpeg import diff_jpeg, jpeg_quant_tables
from .jpeg import jpeg_pil
from .kernels import disk_kernel, motion_kernel
from .noise_layer import NOISE_PRIORS, generated_noise
from .settings import SETTINGS, DegradationParams, Setting, degrade, get_setting

__all__ = ["blur", "identity_kernel", "kernel_entropy", "NoiseParams", "add_camera_noise", "sample_noise_params",
           "diff_jpeg", "jpeg_quant_tables", "jpeg_pil", "disk_kernel", "motion_kernel", "NOISE_PRIORS",
           "generated_noise", "SETTINGS", "DegradationParams", "Setting", "degrade", "get_setting"]
