"""Pictures of a run: clean fakes / degraded fakes / real degraded side by side, kernels, q histogram."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data.grid import make_grid
from ..io import atomic_path


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, the quantisation used for real images."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(images: np.ndarray, nrow: int) -> np.ndarray:
    """Tile uint8 images (N, H, W, 3) with 1-pixel white gaps."""
    return make_grid(images, nrow=nrow, padding=1, pad_value=255)


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _mpl():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_panels(panels: Sequence[tuple[str, np.ndarray]], path: Path, title: str = "", nrow: int = 8) -> None:
    """Side-by-side grids with titles, e.g. real y^r | degraded fake y^g | clean fake x^g."""
    plt = _mpl()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], panels):
        ax.imshow(grid(imgs, nrow), interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94) if title else None)
    _savefig(fig, path)


def save_kernels(k: torch.Tensor, path: Path, title: str = "generated kernels k^g",
                 real: Optional[np.ndarray] = None) -> None:
    """Kernels (N, K, K) as small heat maps (each scaled to its own maximum)."""
    plt = _mpl()
    rows = [("generated", k.detach().cpu().numpy()[:16])]
    if real is not None:
        rows.append(("true", real[:16]))
    fig, axes = plt.subplots(len(rows), 16, figsize=(16 * 0.7, 0.8 * len(rows) + 0.4), squeeze=False)
    for r, (name, ks) in enumerate(rows):
        for i in range(16):
            ax = axes[r, i]
            ax.axis("off")
            if i < len(ks):
                ax.imshow(ks[i], cmap="magma", interpolation="nearest")
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    _savefig(fig, path)


def save_histogram(values: np.ndarray, path: Path, title: str, bins: int = 40,
                   range_: Optional[tuple[float, float]] = None, real: Optional[np.ndarray] = None) -> None:
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.hist(values, bins=bins, range=range_, alpha=0.7, density=True, label="generated")
    if real is not None:
        ax.hist(real, bins=bins, range=range_, alpha=0.5, density=True, label="true")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _savefig(fig, path)
