"""Benchmark grids of the paper (Tables 1-3) and a CPU mini-grid: cells, resumable running, collection.

    from bncr.bench import GRIDS, BenchOptions, run_grid, collect, markdown_tables
    opts = BenchOptions(root="runs")
    run_grid(GRIDS["cpu-mini"], opts)                 # trains + evaluates every unfinished cell
    print(markdown_tables(collect(GRIDS["cpu-mini"], opts)))

The command line is ``bncr benchmark --grid NAME [--dry-run | --jobs | --collect]`` (docs/benchmark.md).
"""
from .collect import Collected, collect, markdown_table, markdown_tables, results_document, write_results_document
from .grids import GRIDS, Cell, Grid, get_grid, parse_seeds, select
from .paper import NOT_IMPLEMENTED, PAPER_TABLES, paper_fid
from .runner import (BenchOptions, CellStatus, GridRun, benchmark_command, cell_config, cell_status, grid_cells,
                     run_cell, run_grid, train_eval_commands)

__all__ = ["GRIDS", "Cell", "Grid", "get_grid", "parse_seeds", "select", "PAPER_TABLES", "NOT_IMPLEMENTED",
           "paper_fid", "BenchOptions", "CellStatus", "GridRun", "benchmark_command", "cell_config", "cell_status",
           "grid_cells", "run_cell", "run_grid", "train_eval_commands", "Collected", "collect", "markdown_table",
           "markdown_tables", "results_document", "write_results_document"]
