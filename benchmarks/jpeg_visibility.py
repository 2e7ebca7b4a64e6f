"""How visible is a setting's degradation on dead leaves? Per-image statistics, clean vs degraded.

For each statistic: the means over N clean and N degraded images (the same images, degraded by the
setting with data seed 0) and the AUC = P(stat(degraded) > stat(clean)) (Mann-Whitney; 0.5 = the
statistic cannot tell them apart, 0 or 1 = it separates every pair). Pixel values in grey levels
(0..255), luma/chroma by the JFIF transform.

    python benchmarks/jpeg_visibility.py [--setting J] [--n 1000]

Statistics: rms difference to the clean original; luma gradient (mean |horizontal difference|);
chroma gradient (Cb); luma flat fraction (horizontal differences < 0.5 grey level, i.e. exactly flat
neighbours); block ratio (luma differences across the 8-px JPEG block boundaries / inside blocks).
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import mannwhitneyu

from bncr.data import open_dataset
from bncr.degradations.settings import degrade, get_setting


def _luma(a: np.ndarray) -> np.ndarray:
    a = a.astype(float)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def _cb(a: np.ndarray) -> np.ndarray:
    a = a.astype(float)
    return -0.1687 * a[..., 0] - 0.3313 * a[..., 1] + 0.5 * a[..., 2]


def stats(a: np.ndarray) -> dict[str, np.ndarray]:
    d = np.abs(np.diff(_luma(a), axis=2))
    return {"luma gradient": d.mean((1, 2)),
            "chroma gradient": np.abs(np.diff(_cb(a), axis=2)).mean((1, 2)),
            "luma flat fraction": (d < 0.5).mean((1, 2)),
            "block ratio": d[:, :, [7, 15, 23]].mean((1, 2)) / (d[:, :, [3, 11, 19, 27]].mean((1, 2)) + 1e-6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="J")
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    ds = open_dataset("deadleaves", count=a.n)
    x = np.stack([ds[i] for i in range(a.n)]).astype(np.uint8)
    s = get_setting(a.setting)
    y = np.stack([degrade(x[i], s, 0, i)[0] for i in range(a.n)])
    rms = np.sqrt(((y.astype(float) - x) ** 2).mean())
    print(f"setting {a.setting}, {a.n} dead-leaves images (32x32): rms difference to clean {rms:.2f} grey levels\n")
    print("| statistic | clean mean | degraded mean | AUC |\n|---|---|---|---|")
    sx, sy = stats(x), stats(y)
    for k in sx:
        auc = mannwhitneyu(sy[k], sx[k]).statistic / (a.n * a.n)
        print(f"| {k} | {sx[k].mean():.4f} | {sy[k].mean():.4f} | {auc:.3f} |")


if __name__ == "__main__":
    main()
