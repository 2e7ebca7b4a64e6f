"""Reference (real-image) Inception statistics, cached on disk under their full protocol.

A cache entry is keyed by dataset name (and optional `fingerprint`), split, resolution, image count,
the subset of images used, and the feature protocol (network incl. weights hash, resize
convention, input quantisation). It is one ``.npz`` (features float32, mu/sigma float64, and the
key as JSON text inside), written atomically, plus a human-readable ``.json`` sidecar. Loading uses
``np.load(allow_pickle=False)`` and recomputes whenever the stored key differs from the expected one.

Default folder: ``$BNCR_FID_CACHE``, else ``$XDG_CACHE_HOME/bncr/fid-stats``, else
``~/.cache/bncr/fid-stats``; every function takes ``cache_dir=`` to override it.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import UserError
from ..io import atomic_path, atomic_write_text, ensure_writable_dir
from .fid import feature_stats
from ..io import user_cache_dir
from .inception import InceptionFeatures

CACHE_ENV = "BNCR_FID_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """$BNCR_FID_CACHE, else $XDG_CACHE_HOME/bncr/fid-stats, else ~/.cache/bncr/fid-stats."""
    return user_cache_dir("fid-stats", CACHE_ENV)


def format_count(count: int) -> str:
    """10000 -> '10k', 50000 -> '50k', 2500 -> '2500' (StyleGAN2-ADA style)."""
    count = int(count)
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else str(count)


def metric_name(kind: str, count: int, split: str) -> str:
    """Metric name that states its protocol: kind, number of generated samples, reference split.

    metric_name('fid', 10000, 'train') == 'fid10k_train'; metric_name('kid', 1000, 'test') == 'kid1k_test'.
    """
    kind = kind.lower()
    if kind not in ("fid", "kid"):
        raise UserError(f"unknown metric kind {kind!r}; choose 'fid' or 'kid'")
    if int(count) < 1:
        raise UserError(f"metric sample count must be >= 1, got {count}")
    split = re.sub(r"[^a-z0-9]+", "", str(split).lower())
    if not split:
        raise UserError("metric split name is empty")
    return f"{kind}{format_count(count)}_{split}"


@dataclass
class ReferenceStats:
    """Reference statistics: mu (D,), sigma (D, D) float64, the features (N, D) float32 (KID needs them)."""

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    meta: dict
    path: Optional[Path] = None
    from_cache: bool = False

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def protocol(self) -> str:
        return str(self.meta["protocol"])


def reference_indices(n_total: int, count: int, seed: int = 0) -> np.ndarray:
    """Which images form the reference: all of them if count >= n_total, else a fixed random subset
    (sorted; drawn with numpy's default_rng(seed)) so class-ordered folders do not bias it."""
    if count >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:count])


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "x"


def _plain(v: Any) -> Any:
    """Resolution as JSON-friendly value (int, list of ints, or string)."""
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    try:
        return int(v)
    except (TypeError, ValueError):
        return str(v)


def reference_key(dataset: Any, split: str, count: int, protocol: str, seed: int = 0) -> dict:
    """Everything that determines the reference statistics (stored in the cache and compared on load)."""
    name = getattr(dataset, "name", None)
    if not name:
        raise UserError("reference dataset has no .name; it is needed to key the FID statistics cache")
    n_total = len(dataset)
    if n_total < 2:
        raise UserError(f"reference dataset {name!r} has {n_total} images; need at least 2")
    used = min(int(count), n_total)
    idx = reference_indices(n_total, used, seed)
    key = {
        "format": FORMAT_VERSION,
        "dataset": str(name),
        "fingerprint": str(getattr(dataset, "fingerprint", "") or ""),
        "split": str(split),
        "resolution": _plain(getattr(dataset, "resolution", None)),
        "dataset_size": n_total,
        "count": used,
        "subset": "all" if used == n_total else f"random-seed{seed}",
        "indices_sha256": hashlib.sha256(idx.astype(np.int64).tobytes()).hexdigest()[:16],
        "protocol": protocol,
    }
    return json.loads(json.dumps(key))  # exactly what a JSON round trip through the cache gives back


def cache_path(key: dict, cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """<cache>/<dataset>-<split>-<res>px-<count>-<hash of the whole key>.npz"""
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    res = key["resolution"]
    res = "any" if res is None else "x".join(map(str, res)) if isinstance(res, list) else _safe(str(res))
    stem = f"{_safe(key['dataset'])}-{_safe(key['split'])}-{res}px-{key['count']}-{h}"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / f"{stem}.npz"


def save_reference(path: Path, stats: ReferenceStats) -> None:
    """Write the .npz atomically (key inside as JSON text), then the .json sidecar."""
    ensure_writable_dir(path.parent)
    meta_json = json.dumps(stats.meta, sort_keys=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to a path
            np.savez(f, mu=stats.mu, sigma=stats.sigma, features=stats.features, meta=np.array(meta_json))
    atomic_write_text(path.with_suffix(".json"), json.dumps(stats.meta, indent=2, sort_keys=True) + "\n")


def load_reference(path: Path, expected: Optional[dict] = None) -> Optional[ReferenceStats]:
    """Load a cache entry; None (with a warning if the file exists) when missing, corrupt or for another key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            mu, sigma, feats = z["mu"], z["sigma"], z["features"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, io.UnsupportedOperation) as e:
        warnings.warn(f"ignoring unreadable FID statistics cache {path} ({type(e).__name__}); recomputing")
        return None
    if expected is not None and meta != expected:
        diff = sorted(k for k in set(meta) | set(expected) if meta.get(k) != expected.get(k))
        warnings.warn(f"FID statistics cache {path} was made under a different key ({', '.join(diff)}); recomputing")
        return None
    d = mu.shape[0] if mu.ndim == 1 else -1
    if mu.ndim != 1 or sigma.shape != (d, d) or feats.ndim != 2 or feats.shape[1] != d \
            or feats.shape[0] != int(meta.get("count", -1)):
        warnings.warn(f"FID statistics cache {path} has inconsistent shapes; recomputing")
        return None
    return ReferenceStats(mu=mu, sigma=sigma, features=feats, meta=meta, path=path, from_cache=True)


def reference_features(dataset: Any, count: int, extractor: Optional[InceptionFeatures] = None, *,
                       split: Optional[str] = None, cache_dir: Optional[Union[str, Path]] = None,
                       seed: int = 0, recompute: bool = False, progress: Optional[bool] = None) -> ReferenceStats:
    """Reference features and statistics of `count` images of `dataset`, from the cache when valid.

    `dataset`: __len__, __getitem__(i) -> HxWx3 uint8 (or a tuple whose first entry is), `.name`,
    `.resolution`, optionally `.split` and `.fingerprint` (anything else that changes the images,
    e.g. a degradation setting, must be part of `.name` or `.fingerprint`). If `count` exceeds the
    dataset, all images are used (warning) and the entry records the real count.
    `extractor` defaults to ``InceptionFeatures()`` (weights found as documented there).
    """
    split = split or getattr(dataset, "split", None) or "full"
    if extractor is None:
        extractor = InceptionFeatures()
    if int(count) < 2:
        raise UserError(f"reference count must be >= 2, got {count}")
    key = reference_key(dataset, split, count, extractor.protocol, seed)
    if key["count"] < int(count):
        warnings.warn(f"reference dataset {key['dataset']!r} has only {key['count']} images; "
                      f"using all of them instead of {count}")
    path = cache_path(key, cache_dir)
    if not recompute:
        cached = load_reference(path, key)
        if cached is not None:
            return cached
    idx = reference_indices(key["dataset_size"], key["count"], seed)
    feats = extractor.from_dataset(dataset, idx, progress=progress)
    mu, sigma = feature_stats(feats)
    stats = ReferenceStats(mu=mu, sigma=sigma, features=feats.astype(np.float32), meta=key, path=path)
    save_reference(path, stats)
    return stats
