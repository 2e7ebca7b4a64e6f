"""Tests of bncr.bench and `bncr benchmark`: grids vs the paper's tables, resume, jobs, collect, results."""
from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
import torch

from bncr.bench import (GRIDS, BenchOptions, cell_config, cell_status, collect, markdown_tables, run_cell, run_grid,
                        train_eval_commands, write_results_document)
from bncr.bench.paper import PAPER_TABLES, cifar10_conditions
from bncr.cli import main
from bncr.errors import UserError
from bncr.models.registry import MODELS

torch.set_num_threads(1)


def dry_run_cells(capsys, *argv) -> list[list[str]]:
    assert main(["benchmark", *argv, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["cell", "model", "setting", "seed", "dataset", "status"]
    return [line.split() for line in out[1:] if "/" in line.split()[0] and not line.startswith("not available")]


# ------------------------------------------------------------------------------------------------ grids
def test_table2_dry_run_lists_exactly_the_papers_cells(capsys, tmp_path):
    rows = dry_run_cells(capsys, "--grid", "table2", "--root", str(tmp_path))
    # Table 2: GAN, AmbientGAN, BR-GAN, NR-GAN, CR-GAN, BNCR-GAN, BNCR-GAN w/o L_AC x (A, N, O, P, Q),
    # AmbientGAN on (A) printed as "-": 7 * 5 - 1 = 34 conditions, 3 seeds each.
    assert len(rows) == 34 * 3
    ids = {r[0] for r in rows}
    assert {"cifar10/N/bncr-gan/seed2", "cifar10/A/gan/seed0", "cifar10/Q/nr-gan/seed1",
            "cifar10/O/ambientgan/seed0", "cifar10/P/bncr-gan-noac/seed2", "cifar10/A/cr-gan/seed1"} <= ids
    assert not any(i.startswith("cifar10/A/ambientgan/") for i in ids)
    assert not any("/p-ambientgan/" in i or "/br-gan-nomask/" in i for i in ids)
    assert {r[2] for r in rows} == set("ANOPQ") and {r[3] for r in rows} == {"0", "1", "2"}
    assert {r[1] for r in rows} == {"gan", "ambientgan", "br-gan", "nr-gan", "cr-gan", "bncr-gan", "bncr-gan-noac"}
    assert all(r[5] == "todo" for r in rows)


@pytest.mark.parametrize("name", ["table1-blur", "table1-jpeg", "table2", "table3-ffhq"])
def test_grid_cells_are_the_printed_cells_of_the_paper_table(name):
    grid, table = GRIDS[name], PAPER_TABLES[name]
    printed = {(s, m) for m in table.models for s in table.settings if table.has_cell(m, s)}
    runnable = {(s, m) for s, m in printed if m in MODELS}
    assert set(grid.pairs()) == runnable
    assert set(grid.unavailable) == printed - runnable  # Deblur+GAN / Deblock+GAN cells
    assert all(m in MODELS for _, m in grid.pairs())


def test_grid_sizes():
    # 8 models x 7 settings without AmbientGAN and Deblur+GAN / Deblock+GAN on A (empty in the paper)
    assert len(GRIDS["table1-blur"].expand()) == (8 * 7 - 2) * 3
    assert len(GRIDS["table1-jpeg"].expand()) == (8 * 7 - 2) * 3
    assert len(GRIDS["table3-ffhq"].expand()) == 11 and GRIDS["table3-ffhq"].resolution == 128
    assert len(GRIDS["cpu-shapes"].expand()) == 27 * 3   # docs/benchmark.md lists the cells
    assert dict(GRIDS["cpu-shapes"].cells)["B"][-1] == "deblur+gan"
    assert dict(GRIDS["cpu-shapes"].cells)["H"][-1] == "deblock+gan"
    assert not any(g.unavailable for g in GRIDS.values())   # every model of the paper is implemented
    mini = GRIDS["cpu-mini"]
    assert len(mini.expand()) == 2 * 9 and mini.preset == "cpu" and set(mini.metrics) == {"fid", "kid"}
    assert mini.num >= 1000 and set(mini.datasets) == {"deadleaves", "fashion-mnist"}
    assert dict(mini.cells) == {"A": ("gan",), "D": ("gan", "br-gan"), "J": ("gan", "cr-gan"),
                                "N": ("gan", "ambientgan", "bncr-gan", "bncr-gan-noac")}


def test_paper_transcription_matches_the_papers_count_of_conditions():
    # "we tested 134 total conditions" (Sections 1 and 7.4): Tables 1-2, repeated clean-column results once
    assert len(cifar10_conditions()) == 134
    assert PAPER_TABLES["table2"].value("bncr-gan", "N") == 34.1
    assert PAPER_TABLES["table1-jpeg"].value("p-ambientgan", "A") == 35.7
    assert PAPER_TABLES["table1-blur"].value("ambientgan", "A") is None
    assert PAPER_TABLES["table3-ffhq"].value("bncr-gan", "P-ffhq") == 24.2


def test_only_and_seeds_select_cells(capsys, tmp_path):
    rows = dry_run_cells(capsys, "--grid", "table2", "--root", str(tmp_path), "--only", "cifar10/N/*", "--seeds", "4")
    assert [r[0] for r in rows] == [f"cifar10/N/{m}/seed4" for m in GRIDS["table2"].cells[1][1]]
    assert main(["benchmark", "--grid", "table2", "--only", "cifar10/Z/*", "--dry-run"]) == 2
    assert "matches no cell" in capsys.readouterr().err
    assert main(["benchmark", "--grid", "table2", "--seeds", "a,b", "--dry-run"]) == 2


def test_jobs_print_one_runnable_command_per_cell(capsys, tmp_path):
    assert main(["benchmark", "--grid", "table2", "--root", str(tmp_path), "--jobs", "--iters", "50"]) == 0
    cmds = capsys.readouterr().out.splitlines()
    assert len(cmds) == 102
    argv = shlex.split(cmds[7])
    assert argv[:3] == ["bncr", "benchmark", "--grid"] and "--iters" in argv
    only = argv[argv.index("--only") + 1]
    rows = dry_run_cells(capsys, *argv[2:])  # the job's own command selects exactly its cell
    assert [r[0] for r in rows] == [only]


def test_equivalent_train_command_builds_the_same_config(monkeypatch, tmp_path):
    import bncr.train.loop as loop
    grid = GRIDS["table3-ffhq"]
    opts = BenchOptions(root=tmp_path, iters=7, ffhq=str(tmp_path / "ffhq"), sets=("threads=1", "lr=0.001"))
    cell = grid.expand()[5]
    seen = {}
    monkeypatch.setattr(loop, "train", lambda cfg, out, resume=None, progress=True: seen.update(cfg=cfg, out=out,
                                                                                               resume=resume))
    train_cmd, eval_cmd = train_eval_commands(cell, grid, opts)
    assert main(shlex.split(train_cmd)[1:]) == 0
    assert seen["cfg"].to_dict() == cell_config(cell, grid, opts).to_dict()
    assert Path(seen["out"]) == cell.run_dir(tmp_path) and seen["resume"] == "auto"
    assert seen["cfg"].resolution == 128 and seen["cfg"].lr == 0.001 and seen["cfg"].iters == 7
    assert "bncr eval" in eval_cmd and "--num 10000" in eval_cmd


# ------------------------------------------------------------------------------------------------ running
class FakeCell:
    """Fake train / eval: write the files a real cell leaves (final snapshot, stats, metric lines)."""

    def __init__(self, fail_at: int | None = None):
        self.trained: list[str] = []
        self.evaluated: list[str] = []
        self.fail_at = fail_at

    def train(self, cfg, out, resume=None, progress=True):
        assert resume == "auto"
        self.trained.append(str(out))
        if self.fail_at is not None and len(self.trained) == self.fail_at:
            raise KeyboardInterrupt  # the grid is interrupted inside this cell
        out = Path(out)
        (out / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "resolution": 32}))
        (out / f"snapshot-{cfg.iters:06d}.pt").write_bytes(b"fake")
        (out / "stats.jsonl").write_text(json.dumps({"iteration": cfg.iters, "it_per_s": cfg.iters / 2.0}) + "\n")

    def eval(self, run, *, metrics, num, snapshots, **kw):
        self.evaluated.append(str(run))
        snap = sorted(Path(run).glob("snapshot-*.pt"))[-1]
        for kind in metrics:
            name = f"{kind}{num}_train"
            with open(Path(run) / f"metric-{name}.jsonl", "a") as f:
                f.write(json.dumps({"metric": name, "kind": kind, "value": 1.0 + len(self.evaluated),
                                    "std": 0.1 if kind == "kid" else None, "snapshot": snap.name,
                                    "iteration": int(snap.stem.split("-")[1]),
                                    "seconds": {"generate_and_features": 3.0, "metric": 0.5}}) + "\n")


def test_resume_skips_finished_cells_after_an_interruption(tmp_path):
    grid = dataclasses.replace(GRIDS["cpu-mini"], commit_results=False)
    opts = BenchOptions(root=tmp_path, iters=2, num=4, only="deadleaves/*", progress=False)
    fake = FakeCell(fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, opts, train_fn=fake.train, eval_fn=fake.eval, log=lambda s: None)
    assert len(fake.evaluated) == 3
    cells = grid.expand(datasets=["deadleaves"])
    assert [cell_status(c, grid, opts).state for c in cells[:4]] == ["done", "done", "done", "todo"]
    # a cell whose training finished but whose evaluation did not: only evaluation runs
    cells[4].run_dir(tmp_path).mkdir(parents=True)
    FakeCell().train(cell_config(cells[4], grid, opts), cells[4].run_dir(tmp_path), resume="auto")
    assert cell_status(cells[4], grid, opts).state == "trained"
    fake2 = FakeCell()
    res = run_grid(grid, opts, train_fn=fake2.train, eval_fn=fake2.eval, log=lambda s: None)
    assert res.skipped == [c.id for c in cells[:3]] and not res.failed
    assert len(res.finished) == 6
    assert [Path(p).name for p in fake2.trained] == ["seed0"] * 5
    assert {str(cells[4].run_dir(tmp_path))} <= set(fake2.evaluated) - set(fake2.trained)
    result = json.loads((cells[0].run_dir(tmp_path) / "result.json").read_text())
    assert result["iterations"] == 2 and result["train_seconds"] == pytest.approx(2.0)
    assert result["metrics"]["kid4_train"]["last"] == 2.0 and "bncr train" in result["commands"]["train"]
    # a third run does nothing
    fake3 = FakeCell()
    res = run_grid(grid, opts, train_fn=fake3.train, eval_fn=fake3.eval, log=lambda s: None)
    assert not fake3.trained and not fake3.evaluated and len(res.skipped) == 9


def test_failing_cell_is_reported_and_the_grid_goes_on(tmp_path):
    grid = dataclasses.replace(GRIDS["cpu-mini"], commit_results=False)
    opts = BenchOptions(root=tmp_path, iters=2, num=4, only="fashion-mnist/D/*", progress=False)
    fake = FakeCell()

    def train(cfg, out, resume=None, progress=True):
        if cfg.model == "gan":
            raise UserError("boom")
        fake.train(cfg, out, resume, progress)

    res = run_grid(grid, opts, train_fn=train, eval_fn=fake.eval, log=lambda s: None)
    assert res.failed == [("fashion-mnist/D/gan/seed0", "boom")] and res.finished == ["fashion-mnist/D/br-gan/seed0"]
    err = tmp_path / "cpu-mini/fashion-mnist/D/gan/seed0/cell-error.txt"
    assert err.is_file() and "boom" in err.read_text()
    res = run_grid(grid, opts, train_fn=fake.train, eval_fn=fake.eval, log=lambda s: None)  # fixed: it runs now
    assert res.finished == ["fashion-mnist/D/gan/seed0"] and res.skipped == ["fashion-mnist/D/br-gan/seed0"]
    assert not err.exists()


def _write_metric(run: Path, name: str, values_by_iteration: dict[int, float]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / f"metric-{name}.jsonl", "a") as f:
        for it, v in values_by_iteration.items():
            (run / f"snapshot-{it:06d}.pt").write_bytes(b"x")
            f.write(json.dumps({"metric": name, "kind": name[:3], "value": v, "snapshot": f"snapshot-{it:06d}.pt",
                                "iteration": it}) + "\n")


def test_collect_takes_best_snapshot_then_median_of_seeds(tmp_path, capsys):
    grid = GRIDS["table2"]
    opts = BenchOptions(root=tmp_path, iters=10)
    base = tmp_path / "table2" / "cifar10"
    # bncr-gan on N: best snapshots 30, 10, 20 over seeds -> median 20
    _write_metric(base / "N/bncr-gan/seed0", "fid10k_train", {5: 31.0, 10: 30.0})
    _write_metric(base / "N/bncr-gan/seed1", "fid10k_train", {5: 10.0, 10: 12.0})
    _write_metric(base / "N/bncr-gan/seed2", "fid10k_train", {5: 25.0, 10: 20.0})
    # gan on A: two seeds only -> median of 2 = mean, marked [2/3]
    _write_metric(base / "A/gan/seed0", "fid10k_train", {10: 16.0})
    _write_metric(base / "A/gan/seed1", "fid10k_train", {10: 19.0})
    # a cell without its final snapshot evaluated is pending, not counted
    _write_metric(base / "Q/nr-gan/seed0", "fid10k_train", {5: 1.0})
    col = collect(grid, opts)
    assert col.median("cifar10", "N", "bncr-gan", "fid10k_train") == (20.0, 3)
    assert col.median("cifar10", "A", "gan", "fid10k_train") == (17.5, 2)
    assert col.median("cifar10", "Q", "nr-gan", "fid10k_train") == (None, 0)
    md = markdown_tables(col)
    row = next(x for x in md.splitlines() if "(`bncr-gan`)" in x)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "20.0 / 34.1"  # ours / the paper's Table 2 value for BNCR-GAN on (N)
    gan = [c.strip() for c in next(x for x in md.splitlines() if "(`gan`)" in x).strip("|").split("|")]
    assert gan[1] == "17.5 [2/3] / 18.5" and gan[2] == "… / 58.0"
    amb = [c.strip() for c in next(x for x in md.splitlines() if "(`ambientgan`)" in x).strip("|").split("|")]
    assert amb[1] == "–" and amb[2] == "… / 46.8"
    assert main(["benchmark", "--grid", "table2", "--root", str(tmp_path), "--iters", "10", "--collect"]) == 0
    assert "20.0 / 34.1" in capsys.readouterr().out


def _tiny_cpu_mini_cell():
    """The cpu-mini grid, options for a real 2-iteration cell at a tiny size (relative paths: chdir first), and its
    BR-GAN cell on D."""
    grid = GRIDS["cpu-mini"]
    sets = ("width=8", "d_width=8", "z_dim=16", "batch=4", "count=32", "tick=1", "image_every=1000",
            "snap_every=1000", "threads=1")
    opts = BenchOptions(root=Path("runs"), iters=2, num=4, sets=sets, progress=False,
                        results_dir=Path("benchmarks/results"))
    return grid, opts, next(c for c in grid.expand() if c.id == "deadleaves/D/br-gan/seed0")


def test_cpu_mini_cell_commits_results_and_doc(tmp_path, monkeypatch):
    """A real 2-iteration cell (tiny nets) with a fake evaluation: results copied, result JSON, doc."""
    monkeypatch.chdir(tmp_path)
    grid, opts, cell = _tiny_cpu_mini_cell()
    fake = FakeCell()
    result = run_cell(cell, grid, opts, eval_fn=fake.eval, log=lambda s: None)
    dest = tmp_path / "benchmarks/results/cpu-mini/deadleaves/D/br-gan"
    assert sorted(p.name for p in dest.iterdir()) == ["metric-fid4_train-seed0.jsonl", "metric-kid4_train-seed0.jsonl",
                                                      "result-seed0.json", "samples-seed0.png"]
    assert (dest / "samples-seed0.png").stat().st_size < 200_000
    saved = json.loads((dest / "result-seed0.json").read_text())
    assert saved == result and saved["iterations"] == 2 and saved["train_seconds"] > 0
    assert saved["it_per_s_median"] > 0
    assert saved["eval_seconds"] == pytest.approx(3.0 + 2 * 0.5)  # features once per snapshot, then 2 metrics
    assert saved["config"]["width"] == 8 and saved["machine"]["torch"] == torch.__version__
    assert "--only deadleaves/D/br-gan/seed0" in saved["commands"]["benchmark"]
    # skipped when run again; results stay
    fake2 = FakeCell()
    run_cell(cell, grid, opts, train_fn=fake2.train, eval_fn=fake2.eval, log=lambda s: None)
    assert not fake2.trained and not fake2.evaluated
    # the doc is generated from the committed files
    col = collect(grid, opts, source="results")
    assert col.median("deadleaves", "D", "br-gan", "kid4_train") == (2.0, 1) and len(col.pending) == 17
    doc = write_results_document(col, opts, tmp_path / "docs/research/cpu-mini-results.md", "bncr benchmark --grid cpu-mini --collect "
                                 "--write-doc docs/research/cpu-mini-results.md")
    text = doc.read_text()
    assert "--only deadleaves/D/br-gan/seed0" in text and "| `deadleaves/D/br-gan/seed0` | 2 |" in text
    assert "](../../benchmarks/results/cpu-mini/deadleaves/D/br-gan/samples-seed0.png)" in text
    rows = [x for x in text.splitlines() if x.startswith("| BR-GAN (`br-gan`)")]
    assert len(rows) == 4  # FID and KID tables of both datasets
    assert rows[0].split("|")[3].strip() == "2.0 / 23.4"  # deadleaves FID, D column: ours / paper (CIFAR-10)
    assert rows[1].split("|")[3].strip() == "2000.00"  # deadleaves KID x 10^3: no paper value
    assert rows[2].split("|")[3].strip() == "… / 23.4"  # fashion-mnist: not run yet


def test_training_machine_is_read_from_the_run(tmp_path):
    """Results say where a cell trained (a GPU batch may train cells that a CPU evaluates)."""
    import json as _json
    from bncr.bench.runner import training_machine
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(_json.dumps({"torch": "2.11.0+cu130", "device": "cuda:0 (NVIDIA H200)"}))
    assert training_machine(run) == {"torch": "2.11.0+cu130", "device": "cuda:0 (NVIDIA H200)"}
    (run / "config.json").write_text(_json.dumps({"torch": "2.13.0+cpu"}))   # written before the field existed
    (run / "log.txt").write_text("model gan (...); 5000 training images at 32px; world size 1; device cpu\ndone\n")
    assert training_machine(run) == {"torch": "2.13.0+cpu", "device": "cpu"}
    assert training_machine(tmp_path / "missing") == {}


def test_result_records_the_options_the_run_was_trained_with(tmp_path, monkeypatch):
    """A cell trained with other options than the grid's (by hand, or before the preset changed) keeps its own
    options in result.json, so that collect marks it; before, the result said today's preset."""
    from bncr.bench.collect import option_differences
    from bncr.train.loop import train
    monkeypatch.chdir(tmp_path)
    grid, opts, cell = _tiny_cpu_mini_cell()
    by_hand = lambda cfg, out, **kw: train(cfg.override(["g_pad=reflect"]), out, progress=False)  # noqa: E731
    result = run_cell(cell, grid, opts, train_fn=by_hand, eval_fn=FakeCell().eval, log=lambda s: None)
    assert result["config"]["g_pad"] == "reflect" and cell_config(cell, grid, opts).g_pad == "zeros"
    assert option_differences(result, cell, grid, opts) == {"g_pad": ("reflect", "zeros")}


def test_collect_marks_cells_trained_with_other_options_than_todays_preset(tmp_path):
    """A committed cell whose stored options differ from what the grid trains today is marked and its options
    listed; a difference in an option the model never reads (GAN's AC weight) is not a difference."""
    grid = GRIDS["cpu-shapes"]
    opts = BenchOptions(root=tmp_path / "runs", results_dir=tmp_path / "results")
    for model, setting, sets in (("bncr-gan", "N", ["ac=3.0", "ac_comp=none"]), ("gan", "N", ["ac=3.0"]),
                                 ("ambientgan", "N", [])):
        cell = next(c for c in grid.expand() if c.id == f"shapes/{setting}/{model}/seed0")
        cfg = cell_config(cell, grid, opts).override(sets + ["threads=1"])   # threads: a machine option, ignored
        dest = tmp_path / "results" / "cpu-shapes" / "shapes" / setting / model
        dest.mkdir(parents=True)
        (dest / "result-seed0.json").write_text(json.dumps({
            "dataset": "shapes", "setting": setting, "model": model, "seed": 0, "config": cfg.to_dict(),
            "metrics": {"kid500_train": {"best": 0.1, "last": 0.1}}}))
    col = collect(grid, opts, source="results")
    assert col.differs == {"shapes/N/bncr-gan/seed0": {"ac": (3.0, 1.0), "ac_comp": (None, 1.0)}}
    md = markdown_tables(col)
    row = lambda m: [c.strip() for c in next(x for x in md.splitlines() if f"(`{m}`)" in x).strip("|").split("|")]
    assert row("bncr-gan")[-1] == "100.00 [1/3] ‡" and row("gan")[-1] == "100.00 [1/3]"  # column N
    assert "- `shapes/N/bncr-gan/seed0`: ac=3.0 (today 1.0), ac_comp=None (today 1.0)" in md
