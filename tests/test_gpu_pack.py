"""benchmarks/gpu_pack.py: what comes back from a GPU batch (last snapshots; training states of unfinished runs)."""
from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_pack", ROOT / "benchmarks" / "gpu_pack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(d: Path, reached: int, iters: int = 6000) -> None:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"iters": iters}}))
    (d / "stats.jsonl").write_text("\n".join(json.dumps({"iteration": i}) for i in range(500, reached + 1, 500)))
    for i in range(500, reached + 1, 500):
        (d / f"snapshot-{i:06d}.pt").write_bytes(b"s" * 100)
    (d / "training-state.pt").write_bytes(b"t" * 1000)


def test_pack_keeps_last_snapshots_and_states_of_unfinished_runs_in_job_order(tmp_path, capsys):
    pack = _load()
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    _run(runs / "done", 6000)
    _run(runs / "cut", 4500)
    (tmp_path / "jobs.txt").write_text("# comment\ncut --model x\ndone --model y\nmissing --model z\n")
    pack.main(str(runs), str(out), str(tmp_path / "jobs.txt"))
    names = tarfile.open(out / "runs-0.tar").getnames()
    assert "done/snapshot-006000.pt" in names and "done/snapshot-005500.pt" not in names
    assert "cut/snapshot-004500.pt" in names and "cut/training-state.pt" in names
    assert "done/training-state.pt" not in names
    assert names.index("cut/config.json") < names.index("done/config.json")      # the job file's order
    text = capsys.readouterr().out
    assert "finished: done" in text and "unfinished: cut" in text


def test_pack_splits_into_tars_under_the_limit(tmp_path, monkeypatch):
    pack = _load()
    monkeypatch.setattr(pack, "LIMIT", 2500)
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    for n in ("a", "b", "c"):
        _run(runs / n, 3000)
    (tmp_path / "jobs.txt").write_text("a\nb\nc\n")
    pack.main(str(runs), str(out), str(tmp_path / "jobs.txt"))
    tars = sorted(out.glob("runs-*.tar"))
    assert len(tars) >= 2
    assert all(sum(m.size for m in tarfile.open(t).getmembers()) <= 2500 for t in tars)
    packed = [n for t in tars for n in tarfile.open(t).getnames()]
    assert sorted(packed) == sorted(set(packed)) and "c/training-state.pt" in packed
