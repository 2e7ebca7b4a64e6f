"""The degraded training set of a setting: y_i = JPEG(x_i * k_i + n_i, q_i), fixed per image.

Image i's degradation is a pure function of (clean image i, setting, data seed, i), so it is the
same on every epoch, DataLoader worker, process and machine (NR-GAN's protocol).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..degradations.settings import DegradationParams, Setting, degrade


class DegradedDataset:
    """Map-style dataset of (y uint8 HxWx3, ground-truth DegradationParams) pairs."""

    def __init__(self, clean: Sequence[np.ndarray], setting: Setting, data_seed: int = 0):
        self.clean, self.setting, self.data_seed = clean, setting, int(data_seed)
        self.name = f"{getattr(clean, 'name', 'images')}-{setting.name}-seed{self.data_seed}"
        self.resolution = getattr(clean, "resolution", None)

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int) -> tuple[np.ndarray, DegradationParams]:
        return degrade(self.clean[i], self.setting, self.data_seed, i)


def list_collate(batch: list[Any]) -> list[Any]:
    """DataLoader collate that keeps samples as a list (ground-truth params hold None fields)."""
    return batch
