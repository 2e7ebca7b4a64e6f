"""Clean image sources x for BNCR-GAN: CIFAR-10, image folders (e.g. FFHQ), Fashion-MNIST, dead leaves.

Every dataset is an :class:`ImageDataset`: ``len(ds)`` images, ``ds[i]`` is an ``H x W x 3`` uint8 RGB
array (``H = W = ds.resolution``) that depends only on the files (or, for dead leaves, on
``(seed, split, i, resolution)``), so the same index gives the same bytes in every call, process and
DataLoader worker. Datasets pickle small (arrays are reloaded lazily after unpickling), so they are
cheap to send to spawned workers.

Where data files are looked for (first hit wins; ``root=`` overrides all of it):

- CIFAR-10: ``<root>/cifar-10-batches-py/`` or ``<root>/`` itself; default root
  ``$BNCR_DATA_ROOT/cifar10``, else ``$XDG_CACHE_HOME/bncr/cifar10``, else ``~/.cache/bncr/cifar10``.
- Fashion-MNIST: ``<root>/``; by default ``$BNCR_DATA_ROOT/fashion-mnist``,
  ``~/.cache/bncr/fashion-mnist`` (or under ``$XDG_CACHE_HOME``), then the Debian package's
  ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).
"""
from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserError

DATASET_NAMES = ("shapes", "deadleaves", "cifar10", "fashion-mnist")
SPLITS = ("train", "test")
FOLDER_DEFAULT_RESOLUTION = 128

_ALIASES = {
    "shapes": "shapes",
    "deadleaves": "deadleaves", "dead-leaves": "deadleaves", "dead_leaves": "deadleaves",
    "cifar10": "cifar10", "cifar-10": "cifar10", "cifar_10": "cifar10",
    "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
}


class ImageDataset:
    """Base class: a fixed, indexable sequence of clean square RGB images x (uint8, H x W x 3).

    Subclasses set ``name`` and ``resolution`` and implement ``__len__`` and ``_get(i)`` (called with
    ``0 <= i < len(self)``). ``ds[i]`` accepts negative indices like a list and raises IndexError past
    the end, so ``for x in ds`` works.
    """

    name: str
    resolution: int

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> np.ndarray:
        i = operator.index(i)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"image index {i} out of range for {self.name} with {n} images")
        return self._get(i)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self._get(i)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, resolution={self.resolution}, len={len(self)})"


class ArrayDataset(ImageDataset):
    """An ImageDataset whose images live in one array, loaded by ``_load()`` on first use.

    The array is dropped when the dataset is pickled (DataLoader workers reload it lazily), so
    pickles stay small. Subclasses set ``count`` and implement ``_load()`` and ``_get(i)``,
    getting the array from ``self._array()``.
    """

    count: int

    def _load(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _array(self) -> np.ndarray:
        images = self.__dict__.get("_images")
        return images if images is not None else self._load()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_images", None)
        return state

    def __len__(self) -> int:
        return self.count


def data_root() -> Path:
    """Base folder for downloaded/placed datasets: $BNCR_DATA_ROOT, else $XDG_CACHE_HOME/bncr, else ~/.cache/bncr."""
    env = os.environ.get("BNCR_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bncr"


def _canonical(spec: str) -> str | None:
    """'cifar10' etc. for a built-in name (any alias), None for anything else (a folder path)."""
    return _ALIASES.get(spec.strip().lower())


def default_resolution(spec: str) -> int:
    """Default image size for `spec`: 32 for deadleaves / cifar10 / fashion-mnist, 128 for an image folder."""
    return 32 if _canonical(spec) is not None else FOLDER_DEFAULT_RESOLUTION


def check_resolution(resolution: object) -> int:
    """Validate a resolution value (a positive int); return it as int."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or int(resolution) < 1:
        raise UserError(f"resolution must be a positive integer, got {resolution!r}")
    return int(resolution)


def check_count(count: object, available: int | None, what: str) -> int | None:
    """Validate `count` (None or a positive int not above `available`, when that is known)."""
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or int(count) < 1:
        raise UserError(f"count must be a positive integer, got {count!r}")
    if available is not None and int(count) > available:
        raise UserError(f"count={count} but {what} has only {available} images")
    return int(count)


def open_dataset(spec: str, resolution: int | None = None, *, root: str | None = None,
                 download: bool = False, skip_bad: bool = False, split: str = "train",
                 count: int | None = None, seed: int = 0) -> ImageDataset:
    """Open the clean image source x named by `spec`.

    spec: "deadleaves" (synthetic, no files), "cifar10", "fashion-mnist", or a path to a folder of
    images (also written "folder:/path"; use "./cifar10" for a folder that happens to be called like
    a built-in name). resolution: output size (default :func:`default_resolution`). root: where the
    CIFAR-10 / Fashion-MNIST files are (see module doc). download: fetch CIFAR-10 if missing (needs
    internet; ignored by the others). skip_bad: image folders only - skip unreadable files (listed
    in ``ds.skipped``) instead of failing. split: "train" or "test" (folders have no test split).
    count: use only the first `count` images (dead leaves: how many to generate; default 50000 train /
    10000 test, like CIFAR-10). seed: dead leaves only.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise UserError(f"dataset must be deadleaves, cifar10, fashion-mnist or an image folder path, got {spec!r}")
    spec = os.fspath(spec)
    if split not in SPLITS:
        raise UserError(f"split must be 'train' or 'test', got {split!r}")
    res = check_resolution(resolution if resolution is not None else default_resolution(spec))
    kind = _canonical(spec)
    if kind == "deadleaves":
        from .deadleaves import DeadLeavesDataset
        n = check_count(count, None, "deadleaves")
        if n is None:
            n = 50000 if split == "train" else 10000
        return DeadLeavesDataset(count=n, resolution=res, seed=seed, split=split)
    if kind == "shapes":
        from .shapes import ShapesDataset
        n = check_count(count, None, "shapes")
        if n is None:
            n = 50000 if split == "train" else 10000
        return ShapesDataset(count=n, resolution=res, seed=seed, split=split)
    if kind == "cifar10":
        from .cifar10 import Cifar10Dataset
        return Cifar10Dataset(root=root, split=split, resolution=res, download=download, count=count)
    if kind == "fashion-mnist":
        from .fashion_mnist import FashionMnistDataset
        return FashionMnistDataset(root=root, split=split, resolution=res, count=count)
    from .folder import ImageFolderDataset
    path = spec[len("folder:"):] if spec.startswith("folder:") else spec
    if split != "train":
        raise UserError(f"image folder {path} has no '{split}' split: open the folder that holds those images instead")
    p = Path(path).expanduser()
    if not p.exists() and os.sep not in path and "/" not in path:
        raise UserError(f"unknown dataset {spec!r}: use deadleaves, cifar10, fashion-mnist or the path of an "
                        f"image folder (no folder {p.absolute()} exists)")
    return ImageFolderDataset(p, resolution=res, skip_bad=skip_bad, count=count)


# Re-exported for convenience (imported last: these modules use the names defined above).
from .cifar10 import Cifar10Dataset  # noqa: E402
from .deadleaves import DeadLeavesDataset  # noqa: E402
from .shapes import ShapesDataset  # noqa: E402
from .fashion_mnist import FashionMnistDataset  # noqa: E402
from .folder import ImageFolderDataset  # noqa: E402

__all__ = ["ImageDataset", "open_dataset", "default_resolution", "data_root", "DATASET_NAMES", "SPLITS",
           "Cifar10Dataset", "DeadLeavesDataset", "ShapesDataset", "FashionMnistDataset", "ImageFolderDataset"]
