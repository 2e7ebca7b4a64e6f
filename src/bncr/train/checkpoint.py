"""Checkpoints: a light generator snapshot (inference) and the full training state (resume).

Both hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)`` (never unpickle untrusted data); both are written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import UserError
from ..io import atomic_write_bytes

SNAPSHOT_FORMAT = "bncr-snapshot-v1"
STATE_FORMAT = "bncr-training-state-v1"
STATE_FILE = "training-state.pt"


def save_atomic(obj: Any, path: str | Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checked(path: str | Path, fmt: str) -> dict[str, Any]:
    """torch.load(weights_only=True) with one clear error for missing, corrupt or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such checkpoint file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise UserError(f"{p}: not a readable bncr checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise UserError(f"{p}: not a {fmt} file")
    return obj


def resume_path(out: Path, resume: Optional[str], state_file: str = STATE_FILE) -> Optional[Path]:
    """The training state a run continues from: None for a new run (refused where `out` already holds one),
    `out`'s state file for resume="auto" (None if it has none yet), else the given file or run directory's."""
    existing = out / state_file
    if resume is None:
        if existing.exists() or (out / "config.json").exists():
            raise UserError(f"{out} already holds a run: use --resume auto to continue it, or choose another --out")
        return None
    if resume == "auto":
        return existing if existing.exists() else None
    p = Path(resume)
    return p / state_file if p.is_dir() else p
