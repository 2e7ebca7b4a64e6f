"""CIFAR-10 (the paper's 32 x 32 setting) from the python-pickle batches.

Files: ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (train, 50,000 images) and
``test_batch`` (test, 10,000), as extracted from ``cifar-10-python.tar.gz``. They are looked for in
``<root>/cifar-10-batches-py/`` and ``<root>/``; the default root is ``$BNCR_DATA_ROOT/cifar10``, else
``$XDG_CACHE_HOME/bncr/cifar10``, else ``~/.cache/bncr/cifar10``. With ``download=True`` the archive
is fetched from the authors' site, its MD5 checked, extracted into a temporary folder next to the
target and renamed into place, so a half-finished download never looks complete.

Safety: the batches are pickles, and unpickling runs code named by the file. They are therefore read
with :class:`RestrictedUnpickler`, which only lets through what the CIFAR batches need (dicts,
lists, str/bytes/ints from the pickle opcodes themselves, plus numpy's array and dtype
reconstruction and latin-1 ``_codecs.encode`` used by protocol-2 pickles of bytes). Any other
global makes loading fail with a UserError naming the file.

Other resolutions than 32: Pillow LANCZOS resize (as for image folders).
"""
from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import ArrayDataset, check_count, check_resolution, data_root
from .folder import resize_square
from ..errors import UserError
from ..io import ensure_writable_dir

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
SPLIT_FILES = {"train": tuple(f"data_batch_{k}" for k in range(1, 6)), "test": ("test_batch",)}
ALL_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"]


def _latin1_encode(obj: object, encoding: str = "latin1") -> bytes:
    """_codecs.encode as protocol-2 pickles use it for bytes, limited to latin-1 text."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {type(obj).__name__}, {encoding!r}")
    return obj.encode("latin1")


def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    """The numpy callables that pickled ndarrays name, found from numpy itself (1.x and 2.x names)."""
    recon = np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]  # multiarray._reconstruct
    frombuf = np.zeros(1, np.uint8).__reduce_ex__(5)[0]     # numeric._frombuffer (protocol 5)
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = recon
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = frombuf
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only an allow-list of globals (numpy arrays/dtypes, latin-1 encode).

    Plain containers and scalars come from pickle opcodes and need no globals, so a CIFAR batch
    loads, while a pickle that names os.system, builtins.eval or any other callable is refused.
    """

    _allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_batch(path: Path) -> np.ndarray:
    """Images of one CIFAR-10 batch file as N x 32 x 32 x 3 uint8 (safe unpickling, validated)."""
    try:
        with open(path, "rb") as f:
            d = RestrictedUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise UserError(f"cannot read CIFAR-10 batch {path}: {e.strerror or e}") from None
    except Exception as e:  # any unpickling failure means a damaged or foreign file
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path} is not a CIFAR-10 python batch (holds a {type(d).__name__}, not a dict)")
    data = d.get(b"data", d.get("data"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path} is not a CIFAR-10 python batch ('data' must be N x 3072 uint8, got {desc})")
    # Rows hold 1024 red, 1024 green, 1024 blue values, each plane row-major 32 x 32.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _candidates(base: Path) -> list[Path]:
    return [base / BATCH_DIR, base]


def find_batches(split: str, root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding all batch files of `split`, or None."""
    base = Path(root).expanduser() if root is not None else data_root() / "cifar10"
    for d in _candidates(base):
        if all((d / f).is_file() for f in SPLIT_FILES[split]):
            return d
    return None


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Members under cifar-10-batches-py/ that are plain files or folders with harmless names."""
    out = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or not parts or parts[0] != BATCH_DIR:
            continue
        if m.isfile() or m.isdir():
            out.append(m)
    return out


def download_cifar10(root: str | os.PathLike | None = None) -> Path:
    """Download, MD5-check and extract CIFAR-10 into `<root>/cifar-10-batches-py` (atomically)."""
    base = ensure_writable_dir(Path(root).expanduser() if root is not None else data_root() / "cifar10")
    final = base / BATCH_DIR
    work = Path(tempfile.mkdtemp(dir=base, prefix=".cifar10-download-"))
    try:
        archive = work / "cifar-10-python.tar.gz"
        md5 = hashlib.md5()
        try:
            with urllib.request.urlopen(CIFAR10_URL, timeout=60) as resp, open(archive, "wb") as f, \
                    tqdm(total=int(resp.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                         desc="CIFAR-10", disable=None) as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    md5.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            raise UserError(f"could not download CIFAR-10 from {CIFAR10_URL} ({reason}); download "
                            f"cifar-10-python.tar.gz elsewhere and extract it into {base}") from None
        if md5.hexdigest() != CIFAR10_MD5:
            raise UserError(f"downloaded CIFAR-10 archive from {CIFAR10_URL} has MD5 {md5.hexdigest()}, "
                            f"expected {CIFAR10_MD5}; nothing was extracted")
        out = work / "extract"
        out.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(out, members=members, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tar.extractall(out, members=members)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(f"cannot extract CIFAR-10 archive {CIFAR10_URL}: {e}") from None
        missing = [f for f in ALL_FILES if not (out / BATCH_DIR / f).is_file()]
        if missing:
            raise UserError(f"CIFAR-10 archive from {CIFAR10_URL} lacks {', '.join(missing)}")
        try:
            os.rename(out / BATCH_DIR, final)
        except OSError:
            if not all((final / f).is_file() for f in ALL_FILES):  # else another process finished first
                raise UserError(f"cannot move the extracted CIFAR-10 into {final}: remove the incomplete "
                                f"folder there and try again") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


class Cifar10Dataset(ArrayDataset):
    """CIFAR-10 train (50,000) or test (10,000) images in file order (see module doc)."""

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", resolution: int = 32,
                 download: bool = False, count: int | None = None) -> None:
        if split not in SPLIT_FILES:
            raise UserError(f"split must be 'train' or 'test', got {split!r}")
        self.resolution = check_resolution(resolution)
        self.split = split
        self.name = "cifar10"
        folder = find_batches(split, root)
        if folder is None and download:
            download_cifar10(root)
            folder = find_batches(split, root)
        if folder is None:
            base = Path(root).expanduser() if root is not None else data_root() / "cifar10"
            raise UserError(
                f"CIFAR-10 not found: put the python-version batches ({', '.join(SPLIT_FILES[split])}) "
                f"in {base / BATCH_DIR} (extract cifar-10-python.tar.gz into {base}), or pass their folder "
                f"as root / set BNCR_DATA_ROOT, or use --download (download=True) on a machine with internet")
        self.folder = folder
        images = self._load()
        self.count = check_count(count, len(images), f"CIFAR-10 {split} ({folder})") or len(images)

    def _load(self) -> np.ndarray:
        self._images = np.concatenate([load_batch(self.folder / f) for f in SPLIT_FILES[self.split]])
        return self._images

    def _get(self, i: int) -> np.ndarray:
        images = self._array()
        x = images[i]
        return resize_square(x, self.resolution) if self.resolution != 32 else x.copy()
