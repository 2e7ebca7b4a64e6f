"""Evaluate a run: FID / KID of the clean generator G_x (EMA) of each snapshot against clean images.

BNCR-GAN is trained on degraded images y but judged on what G_x makes: its samples x^g are compared
with the *clean* versions x of the very training images the run saw (the first ``count`` images of
the training split, or the whole split when the run used all of it). Each (snapshot, metric) result
is appended as one JSON line to ``<run>/metric-<name>.jsonl`` (e.g. ``metric-fid10k_train.jsonl``)
with the full protocol: feature network incl. weights hash, resize convention, quantisation, sample
counts, reference images, latent seed, bncr version and a timestamp. Lines whose protocol and
snapshot hash match are reused, so re-running an evaluation (or a benchmark cell) is cheap.

    from bncr.metrics.evaluate import evaluate_run
    report = evaluate_run("runs/x", metrics=("fid", "kid"), num=10000)
    report.best("fid10k_train"), report.last("fid10k_train")
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import UserError
from .fid import KID_SUBSET_SIZE, KID_SUBSETS, feature_stats, fid_from_stats, check_fid_sample_count, kid_from_features
from .inception import InceptionFeatures, to_uint8
from .reference import ReferenceStats, metric_name, reference_features

METRIC_KINDS = ("fid", "kid")
SNAPSHOT_CHOICES = ("all", "last")
REFERENCE_SPLIT = "train"
QUANTISATION = "uint8 = clamp(round_half_even((x + 1) * 127.5), 0, 255)"
GENERATOR = "G_x (EMA weights of the snapshot)"


# ----------------------------------------------------------------------------------------------
# Small helpers

def metric_file(run_dir: Union[str, Path], name: str) -> Path:
    """<run>/metric-<name>.jsonl, e.g. metric-fid10k_train.jsonl."""
    return Path(run_dir) / f"metric-{name}.jsonl"


def file_digest(path: Union[str, Path]) -> str:
    """First 16 hex digits of the sha256 of a file (identifies a snapshot's exact weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def snapshot_iteration(path: Union[str, Path]) -> int:
    """snapshot-003000.pt -> 3000 (-1 if the name has no number)."""
    stem = Path(path).stem
    try:
        return int(stem.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def list_snapshots(run_dir: Union[str, Path]) -> list[Path]:
    """The run's snapshot-*.pt files in iteration order."""
    return sorted(Path(run_dir).glob("snapshot-*.pt"), key=lambda p: (snapshot_iteration(p), p.name))


def read_metric_lines(path: Union[str, Path]) -> list[dict]:
    """All JSON records of a metric file; a torn last line (crash while appending) is skipped with a warning."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{p}:{n}: skipping an unreadable line")
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def append_jsonl(path: Union[str, Path], record: dict) -> None:
    """Append one JSON line and fsync it (one write call, so concurrent appenders do not interleave lines)."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def one_line_warnings(stream: Any = None, prefix: str = "bncr: warning: ") -> Iterator[None]:
    """Show Python warnings as one line each (``bncr: warning: ...``), each distinct message once."""
    seen: set[str] = set()
    old = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        text = str(message).splitlines()[0] if str(message) else category.__name__
        if text not in seen:
            seen.add(text)
            print(prefix + text, file=stream or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = old


# ----------------------------------------------------------------------------------------------
# The reference images: clean versions of the run's training images.

class CleanReference:
    """The clean training images x of a run (first `count` of the training split), keyed for the cache.

    ``name`` and ``resolution`` come from the dataset; ``fingerprint`` hashes 16 evenly spaced images
    (content) plus the data root, so another copy or version of a dataset never reuses cached statistics.
    """

    def __init__(self, dataset: Any, description: str, data_root: Optional[str] = None):
        self.dataset = dataset
        self.name = str(getattr(dataset, "name", "images"))
        self.resolution = getattr(dataset, "resolution", None)
        self.split = REFERENCE_SPLIT
        self.description = description
        n = len(dataset)
        h = hashlib.sha1(str(data_root or "").encode())
        for i in sorted({int(j) for j in np.linspace(0, n - 1, min(n, 16))}):
            x = dataset[i]
            h.update(np.ascontiguousarray(x[0] if isinstance(x, (tuple, list)) else x).tobytes())
        self.fingerprint = h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.dataset[i]


def run_config(run_dir: Union[str, Path]) -> dict:
    """The run's config.json ({"config": complete TrainConfig dict, "resolution": ..., ...})."""
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise UserError(f"{run_dir}: no config.json (not a bncr run directory)")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
        raise UserError(f"{p}: not a bncr run config (no 'config' entry)")
    from ..train.config import TrainConfig
    try:      # complete and valid: readers index it without defaults (old configs upgraded, train/upgrade.py)
        d["config"] = TrainConfig.from_dict(d["config"]).to_dict()
    except UserError as e:
        raise UserError(f"{p}: {e}") from None
    return d


def open_reference(config: dict) -> CleanReference:
    """Open the clean training images of a run config: same dataset, root, resolution and `count`."""
    from ..data import open_dataset
    c = config["config"]
    ds = open_dataset(c["dataset"], c.get("resolution"), root=c.get("data_root"),
                      split=REFERENCE_SPLIT, count=c.get("count"), skip_bad=bool(c.get("skip_bad")))
    res = config.get("resolution")
    if res is not None and int(ds.resolution) != int(res):
        raise UserError(f"the run was trained at {res}px but its dataset now opens at {ds.resolution}px")
    count = c.get("count")
    desc = (f"clean {REFERENCE_SPLIT} images of {ds.name}: the first {len(ds)} (the run's count)" if count
            else f"clean {REFERENCE_SPLIT} images of {ds.name}: the whole split ({len(ds)})")
    return CleanReference(ds, desc, c.get("data_root"))


# ----------------------------------------------------------------------------------------------
# Generated features

@torch.no_grad()
def generated_features(G: torch.nn.Module, num: int, extractor: Any, *, seed: int = 0, batch: int = 64,
                       progress: Optional[bool] = None, desc: str = "inception (generated)") -> np.ndarray:
    """Features of `num` samples x^g = G_x(z), z ~ N(0, I) drawn from `seed`, quantised by to_uint8.

    All latents are drawn at once on the CPU, so they depend only on (seed, num, z_dim): every snapshot
    of a run, any batch size and any device see the same z.
    """
    g = torch.Generator().manual_seed(int(seed))
    dev = next(G.parameters()).device
    z_all = torch.randn(int(num), int(G.z_dim), generator=g)

    def batches() -> Iterator[torch.Tensor]:
        for i in range(0, num, batch):
            z = z_all[i:i + batch].to(dev)
            yield to_uint8(G(z)).cpu()  # (n, 3, H, W) uint8, exactly as real images are stored

    return extractor.from_batches(batches(), total=num, progress=progress, desc=desc)


# ----------------------------------------------------------------------------------------------
# Results

@dataclass
class EvalRow:
    """One (snapshot, metric) result; `std` is KID's spread over subsets (None for FID)."""

    metric: str
    kind: str
    snapshot: str
    iteration: int
    value: float
    std: Optional[float] = None
    reused: bool = False
    record: dict = field(default_factory=dict, repr=False)


@dataclass
class EvalReport:
    """All rows of one evaluation plus where they were written; best = lowest value over snapshots."""

    run_dir: Path
    rows: list[EvalRow]
    files: dict[str, Path]
    reference: dict

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r.metric for r in self.rows))

    def best(self, metric: str) -> EvalRow:
        rows = [r for r in self.rows if r.metric == metric]
        if not rows:
            raise KeyError(metric)
        return min(rows, key=lambda r: (r.value, r.iteration))

    def last(self, metric: str) -> EvalRow:
        rows = [r for r in self.rows if r.metric == metric]
        if not rows:
            raise KeyError(metric)
        return max(rows, key=lambda r: r.iteration)

    def table(self) -> str:
        """A small text table: one line per snapshot, one column per metric, then best and last."""
        names = self.metrics()
        snaps = sorted({(r.iteration, r.snapshot) for r in self.rows})
        by = {(r.snapshot, r.metric): r for r in self.rows}

        def fmt(r: Optional[EvalRow]) -> str:
            if r is None:
                return "-"
            if r.kind == "kid":
                return f"{r.value:.5f} ± {r.std:.5f}" if r.std is not None else f"{r.value:.5f}"
            return f"{r.value:.2f}"

        w0 = max([len("snapshot")] + [len(s) for _, s in snaps] + [len("best (snapshot-000000.pt)") + 2])
        cols = [max(len(n), 18) for n in names]
        lines = ["  ".join([f"{'snapshot':<{w0}}"] + [f"{n:>{w}}" for n, w in zip(names, cols)])]
        for _, s in snaps:
            lines.append("  ".join([f"{s:<{w0}}"] + [f"{fmt(by.get((s, n))):>{w}}" for n, w in zip(names, cols)]))
        for label, pick in (("best", self.best), ("last", self.last)):
            parts = [f"{label:<{w0}}"]
            for n, w in zip(names, cols):
                r = pick(n)
                parts.append(f"{fmt(r) + ' @' + str(r.iteration):>{w}}")
            lines.append("  ".join(parts))
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The evaluation

def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """`device`, or cuda when available else cpu; a UserError for unknown or unavailable devices."""
    try:
        dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    except RuntimeError:
        raise UserError(f"--device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    return dev


def _check_args(metrics: Sequence[str], num: int, snapshots: str, batch: int,
                ref_num: Optional[Union[int, str]]) -> list[str]:
    kinds = [str(m).strip().lower() for m in metrics]
    bad = [m for m in kinds if m not in METRIC_KINDS]
    if bad or not kinds:
        raise UserError(f"--metric {bad[0] if bad else ''!r}: choose fid or kid (repeatable)")
    if isinstance(num, bool) or int(num) < 2:
        raise UserError(f"--num must be >= 2 generated images, got {num}")
    if snapshots not in SNAPSHOT_CHOICES:
        raise UserError(f"--snapshots {snapshots!r}: choose all or last")
    if int(batch) < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    if ref_num is not None and ref_num != "all" and (isinstance(ref_num, bool) or not isinstance(ref_num, int)
                                                     or ref_num < 2):
        raise UserError(f"--ref-num must be 'all' or an integer >= 2 (reference images), got {ref_num!r}")
    return list(dict.fromkeys(kinds))


def evaluate_run(run_dir: Union[str, Path], metrics: Sequence[str] = ("fid",), num: int = 10000, *,
                 snapshots: str = "all", inception: Optional[Union[str, Path]] = None, batch: int = 64,
                 seed: int = 0, ref_num: Optional[Union[int, str]] = None,
                 device: Optional[Union[str, torch.device]] = None,
                 progress: bool = True, force: bool = False, cache_dir: Optional[Union[str, Path]] = None,
                 extractor: Optional[Any] = None, candidates: Optional[Sequence[tuple[str, Path]]] = None,
                 kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                 log: Optional[Callable[[str], None]] = None) -> EvalReport:
    """FID / KID of the clean generator G_x (EMA) of a run's snapshots against its clean training images.

    run_dir: a run directory (config.json + snapshot-*.pt). metrics: "fid" and/or "kid". num: generated
    images per snapshot (the metric name says it: fid10k_train). snapshots: "all" or "last".
    ref_num: reference images (default = num; "all" = every clean image the run trained on, i.e. its
    first `count` images; a larger number is clamped to those, with a warning).
    seed: latent seed (the same z for every snapshot).
    extractor: anything with ``protocol``, ``weights`` and ``from_batches``/``from_dataset`` (tests
    inject a fake); by default ``InceptionFeatures(inception, ...)``, built first so that missing weights
    fail before any work. Lines already in the metric file for the same snapshot file and protocol are
    reused unless `force`. Returns an :class:`EvalReport` (best = lowest value, as the paper reports).
    """
    kinds = _check_args(metrics, num, snapshots, batch, ref_num)
    num, batch = int(num), int(batch)
    say = log or (lambda s: None)
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory")
    config = run_config(run)
    snaps = list_snapshots(run)
    if not snaps:
        raise UserError(f"{run}: no snapshot-*.pt in this run directory (has the run saved one yet?)")
    if snapshots == "last":
        snaps = snaps[-1:]
    dev = resolve_device(device)
    if extractor is None:
        extractor = InceptionFeatures(inception, device=dev, batch_size=batch, progress=progress,
                                      candidates=candidates)
    reference = open_reference(config)
    n_ref = len(reference) if ref_num == "all" else int(ref_num) if ref_num is not None else num
    ref: ReferenceStats = reference_features(reference, n_ref, extractor, split=REFERENCE_SPLIT,
                                             cache_dir=cache_dir, progress=progress)
    if "fid" in kinds:
        check_fid_sample_count(min(num, ref.count))  # warn once, before the (long) generation
    weights = getattr(extractor, "weights", None)
    ref_meta = {k: ref.meta[k] for k in ("dataset", "fingerprint", "split", "resolution", "dataset_size",
                                         "count", "subset", "indices_sha256") if k in ref.meta}
    ref_meta["images"] = reference.description
    ref_meta["requested"] = n_ref
    c = config["config"]
    run_info = {k: c.get(k) for k in ("model", "setting", "dataset", "count", "seed", "iters", "data_seed")}
    run_info["resolution"] = config.get("resolution")
    base_protocol = {
        "network": weights.network_id if weights is not None else str(extractor.protocol).split(";")[0],
        "feature_protocol": extractor.protocol,
        "resize": getattr(extractor, "resize", None),
        "quantisation": QUANTISATION,
        "generator": GENERATOR,
        "num_generated": num,
        "num_reference": ref.count,
        "latent_seed": int(seed),
        "reference": ref_meta,
    }
    protos: dict[str, dict] = {}
    names: dict[str, str] = {}
    for kind in kinds:
        names[kind] = metric_name(kind, num, REFERENCE_SPLIT)
        extra = ({"fid_sqrt": "eigh"} if kind == "fid" else
                 {"kid_subsets": int(kid_subsets), "kid_subset_size": int(min(kid_subset_size, num, ref.count)),
                  "kid_seed": 0, "kid_kernel": "(a.b/d + 1)^3"})
        protos[kind] = json.loads(json.dumps({"kind": kind, **base_protocol, **extra}))  # as read back
    files = {names[k]: metric_file(run, names[k]) for k in kinds}
    existing = {k: read_metric_lines(files[names[k]]) for k in kinds}
    from .. import __version__
    rows: list[EvalRow] = []
    ref_stats = (ref.mu, ref.sigma)
    for snap in snaps:
        digest = file_digest(snap)
        it = snapshot_iteration(snap)
        todo = []
        for kind in kinds:
            hit = None if force else next((r for r in reversed(existing[kind])
                                           if r.get("snapshot_sha256") == digest and r.get("protocol") == protos[kind]),
                                          None)
            if hit is not None:
                rows.append(EvalRow(names[kind], kind, snap.name, it, float(hit["value"]), hit.get("std"), True, hit))
            else:
                todo.append(kind)
        if not todo:
            say(f"{snap.name}: {', '.join(names[k] for k in kinds)} already in the metric file(s); reused")
            continue
        t0 = time.time()
        from ..api import load_generator
        G = load_generator(snap, dev)
        feats = generated_features(G, num, extractor, seed=seed, batch=batch, progress=progress,
                                   desc=f"inception ({snap.name})")
        del G
        t_feat = time.time() - t0
        for kind in todo:
            t1 = time.time()
            std = None
            if kind == "fid":
                with warnings.catch_warnings():  # the sample-count warning was given once above
                    warnings.simplefilter("ignore")
                    value = fid_from_stats(*feature_stats(feats), *ref_stats)
            else:
                value, std = kid_from_features(feats, ref.features, subsets=int(kid_subsets),
                                               subset_size=int(kid_subset_size), seed=0)
            rec = {"metric": names[kind], "kind": kind, "value": float(value), "std": std,
                   "snapshot": snap.name, "iteration": it, "snapshot_sha256": digest,
                   "run": run_info, "protocol": protos[kind], "bncr_version": __version__,
                   "torch": torch.__version__, "device": str(dev), "weights_source": getattr(weights, "source", None),
                   "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": {"generate_and_features": round(t_feat, 3), "metric": round(time.time() - t1, 3)}}
            append_jsonl(files[names[kind]], rec)
            rows.append(EvalRow(names[kind], kind, snap.name, it, float(value), std, False, rec))
            say(f"{snap.name}: {names[kind]} = {value:.6g}" + (f" ± {std:.3g}" if std is not None else ""))
    return EvalReport(run, rows, files, ref.meta)
