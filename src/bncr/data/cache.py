"""Content-keyed caches of training arrays on disk (degraded data, restored data), checked on every read.

An entry is one ``.npz`` holding its arrays, the JSON key it was made under and a SHA-256 of the
arrays. A read returns the arrays only if the file opens, holds the same key, the expected shapes and
dtypes, and its checksum matches; anything else (truncated, overwritten, written by an older bncr
without a checksum, another key) is reported once as a warning and the caller rebuilds the entry. Entries
are written atomically, so a killed writer leaves no half-written entry under the final name.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..io import atomic_path

# name -> (shape, dtype) that a read must find
Expected = dict[str, tuple[tuple[int, ...], np.dtype]]


def cache_dir() -> Path:
    """Where training-data caches live: ``$BNCR_CACHE/degraded`` (default ``~/.cache/bncr/degraded``)."""
    return Path(os.environ.get("BNCR_CACHE", Path.home() / ".cache" / "bncr")) / "degraded"


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.data.cast("B") if a.size else b"")  # no copy of a large array
    return h.hexdigest()


def write_arrays(path: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write an entry atomically; False (nothing written) where the cache directory is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to a path
                np.savez(f, **arrays, _key=np.array(key), _sha256=np.array(arrays_digest(arrays)))
        return True
    except OSError:
        return False  # the cache is an optimisation only


def read_arrays(path: Path, key: str, expected: Expected, what: str = "cache") -> Optional[dict[str, np.ndarray]]:
    """The arrays of a valid entry; None if there is none, or (with a warning) if it is corrupt or stale."""
    if not path.is_file():
        return None

    def bad(why: str) -> None:
        warnings.warn(f"ignoring {what} {path}: {why}; rebuilding it")

    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if not {"_key", "_sha256"} <= names:
                return bad("no key or checksum (written by an older bncr, or not by bncr)")
            if str(z["_key"]) != key:
                return bad("made under another key")
            if names - {"_key", "_sha256"} != set(expected):
                return bad(f"holds arrays {sorted(names - {'_key', '_sha256'})}, expected {sorted(expected)}")
            arrays = {name: z[name] for name in expected}
            stored = str(z["_sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, io.UnsupportedOperation) as e:
        return bad(f"unreadable ({type(e).__name__})")
    for name, (shape, dtype) in expected.items():
        a = arrays[name]
        if a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
            return bad(f"array {name} is {a.dtype} {a.shape}, expected {np.dtype(dtype)} {tuple(shape)}")
    if arrays_digest(arrays) != stored:
        return bad("checksum mismatch")
    return arrays
