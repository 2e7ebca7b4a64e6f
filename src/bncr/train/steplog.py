"""Per-step statistics and finite checks kept on the training device, read once when the host needs them.

A read of a device value (``.item()``, ``bool()``) stalls the host until the GPU's queue drains; the step used to
make ~30 of them. Here each step adds its statistics into one device vector and records, per loss term, the first
iteration at which it was not finite (and that value); :meth:`StepLog.read` brings all of it over in one transfer,
at a tick, a picture or a checkpoint. The step itself never waits, so it can also be captured as a CUDA graph
(the device tensors keep their addresses: they are only ever updated in place).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class Divergence:
    """The first non-finite loss term: its name, value and (0-based) iteration."""
    term: str
    value: float
    iteration: int


class StepLog:
    """Sums of named per-step values (float64) and the first non-finite loss term, on `device`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.keys: list[str] = []          # statistics, in order of first appearance
        self.terms: list[str] = []         # loss terms watched for non-finite values
        self.sums = torch.zeros(0, dtype=torch.float64, device=device)
        self.first_it = torch.zeros(0, dtype=torch.int64, device=device)   # -1: finite so far
        self.first_val = torch.zeros(0, dtype=torch.float32, device=device)
        self.counts: dict[str, int] = {}   # steps per statistic since the last reset (host side: no read)
        self.frozen = False                # inside a CUDA graph capture: the key sets must not grow
        self._zero: Optional[torch.Tensor] = None

    def _grow(self, keys: list[str], terms: list[str]) -> None:
        """New names (the first steps of a run): longer vectors, outside any capture."""
        if self.frozen:
            raise RuntimeError(f"StepLog: new names {keys + terms} during a CUDA graph capture")
        z = lambda n, dt: torch.zeros(n, dtype=dt, device=self.device)
        self.keys += keys
        self.sums = torch.cat([self.sums, z(len(keys), torch.float64)])
        self.terms += terms
        self.first_it = torch.cat([self.first_it, z(len(terms), torch.int64) - 1])
        self.first_val = torch.cat([self.first_val, z(len(terms), torch.float32)])

    def record(self, stats: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], it: torch.Tensor) -> None:
        """Add one step's 0-d statistics; note loss terms that are not finite at (device) iteration `it`.

        Device work only (a handful of kernels); :meth:`count` does the host's bookkeeping of the step.
        """
        new_k, new_t = [k for k in stats if k not in self.keys], [k for k in terms if k not in self.terms]
        if new_k or new_t:
            self._grow(new_k, new_t)
        if self._zero is None:
            self._zero = torch.zeros((), device=self.device)
        # a statistic missing from this step adds 0 (its count tells the mean so)
        self.sums.add_(torch.stack([stats[k].detach().float() if k in stats else self._zero for k in self.keys]))
        v = torch.stack([terms[k].detach().float() if k in terms else self._zero for k in self.terms])
        new = ~torch.isfinite(v) & (self.first_it < 0)
        self.first_it.copy_(torch.where(new, it, self.first_it))
        self.first_val.copy_(torch.where(new, v, self.first_val))

    def count(self, keys) -> None:
        """One more step for each statistic in `keys` (host side; a graph replay calls it too)."""
        for k in keys:
            self.counts[k] = self.counts.get(k, 0) + 1

    def read(self) -> tuple[dict[str, float], Optional[Divergence]]:
        """(mean of each statistic since the last reset, the first divergence or None): one device read."""
        n_k, n_t = len(self.keys), len(self.terms)
        vals = torch.cat([self.sums, self.first_it.double(), self.first_val.double()]).tolist()
        sums, first_it, first_val = vals[:n_k], vals[n_k:n_k + n_t], vals[n_k + n_t:]
        means = {k: s / self.counts[k] for k, s in zip(self.keys, sums) if self.counts.get(k)}
        bad = [(int(i), j) for j, i in enumerate(first_it) if i >= 0]
        if not bad:
            return means, None
        it, j = min(bad)              # the earliest iteration; at a tie the term recorded first
        return means, Divergence(self.terms[j], first_val[j], it)

    def reset(self) -> None:
        """Start the next tick's means (in place: a captured graph keeps adding into the same memory)."""
        self.sums.zero_()
        self.counts.clear()


class HostReads:
    """Counts what would make the host wait for the device: a context manager over a stretch of code.

    Counted: reads of tensor values (``aten._local_scalar_dense``, behind ``.item()``, ``float()`` and ``bool()`` on
    a tensor; ``Tensor.tolist`` and ``Tensor.numpy``), copies between devices (blocking on a GPU, either way) and the
    operations whose output shape depends on values (``nonzero``, boolean indexing, ``masked_select``, ``unique``),
    and tensors made from host data during the step (``lift_fresh``: ``torch.tensor(x)``, ``t[i] = 1.0``).
    On a CPU nothing actually waits, but the same code on a GPU would: so a CPU test can prove a step sync-free.
    `ignore` holds tensors whose reads are known not to happen on a GPU (Adam's CPU step counters, which are device
    tensors under ``capturable=True``). ``where`` keeps the source line (outside torch) of each count.
    """

    _SHAPE_FROM_VALUES = {"nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive"}

    def __init__(self, ignore: tuple[torch.Tensor, ...] = ()):
        self.ignore = {id(t) for t in ignore}
        self.count = 0
        self.where: list[str] = []
        self._mode = None
        self._saved: dict[str, object] = {}

    def _hit(self, what: str) -> None:
        import traceback
        self.count += 1
        here = [f"{f.filename.split('/src/')[-1]}:{f.lineno}" for f in traceback.extract_stack()
                if f.name not in ("_hit", "counted", "__torch_dispatch__") and "/torch/" not in f.filename]
        self.where.append(f"{what} at {here[-1] if here else '?'}")

    def reads(self, func, args, kwargs) -> bool:
        """Whether one dispatched operation makes the host wait."""
        name = func.overloadpacket.__name__
        if name == "_local_scalar_dense":
            return id(args[0]) not in self.ignore
        if name in self._SHAPE_FROM_VALUES:
            return True
        if name == "index" and any(t is not None and t.dtype in (torch.bool, torch.uint8) for t in args[1]):
            return True
        if name == "repeat_interleave" and torch.is_tensor(args[0]) and len(args) > 1 and torch.is_tensor(args[1]) \
                and kwargs.get("output_size") is None:
            return True
        if name == "_to_copy" and "device" in kwargs and kwargs["device"] is not None:
            return torch.device(kwargs["device"]).type != args[0].device.type
        if name == "copy_":
            return args[0].device.type != args[1].device.type
        if name in ("lift_fresh", "lift_fresh_copy"):
            # a tensor made from host data inside the step (`torch.tensor(x)`, `t[i] = 1.0`): on a GPU a copy from the
            # host, which a CUDA graph cannot capture (seen: the identity kernel's `k[c, c] = 1.0` broke the capture)
            return True
        return False

    def __enter__(self) -> "HostReads":
        from torch.utils._python_dispatch import TorchDispatchMode
        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if outer.reads(func, args, kwargs):
                    outer._hit(str(func))
                return func(*args, **kwargs)

        for name in ("tolist", "numpy"):
            orig = getattr(torch.Tensor, name)
            self._saved[name] = orig

            def counted(t, *a, _orig=orig, _name=name, **k):
                self._hit(f"Tensor.{_name}")
                return _orig(t, *a, **k)
            setattr(torch.Tensor, name, counted)
        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)
        for name, orig in self._saved.items():
            setattr(torch.Tensor, name, orig)
        self._saved.clear()


def adam_host_steps(*opts: torch.optim.Optimizer) -> tuple[torch.Tensor, ...]:
    """The step counters of optimisers that live on the host (read by torch's non-capturable Adam each step)."""
    return tuple(s["step"] for o in opts for s in o.state.values()
                 if torch.is_tensor(s.get("step")) and s["step"].device.type == "cpu")
