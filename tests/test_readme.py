"""Every `bncr` command shown in the README parses (so none can rot unnoticed)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from bncr.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    text = README.read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if "bncr " not in line or "..." in line:
                continue
            argv = shlex.split(line)
            start = argv.index("bncr") if "bncr" in argv else argv.index("-m") + 1
            cmds.append(argv[start + 1:])
    for inline in re.findall(r"`(bncr [^`]+)`", text):
        argv = shlex.split(inline)[1:]
        if "..." not in inline and len(argv) > 1:   # a bare `bncr inspect` names a command, it is not a command line
            cmds.append(argv)
    return cmds


def test_readme_names_only_real_commands():
    from bncr.cli import COMMANDS
    for name in re.findall(r"`bncr ([a-z]+)", README.read_text()):
        assert name in COMMANDS, name


def test_readme_commands_parse():
    cmds = readme_commands()
    assert len(cmds) >= 10
    parser = build_parser()
    for argv in cmds:
        args = parser.parse_args(argv)          # SystemExit (a test failure) on any unknown option
        assert args.command == argv[0]


def test_docs_have_no_machine_paths():
    root = README.parent
    for p in [README, *sorted((root / "docs").rglob("*.md"))]:
        text = p.read_text()
        for bad in ("/work/", "/root/", "/home/", "/tmp/", "/scratch/"):
            assert bad not in text, f"{p.relative_to(root)} holds the machine path {bad}"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")   # [text](target) and ![alt](target)


def _relative_link_targets(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)                  # commands in code blocks are not links
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue                                                    # http:, mailto:, in-page anchors
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_in_docs_resolve():
    root = README.parent
    broken = []
    for p in [README, *sorted((root / "docs").rglob("*.md"))]:
        for target in _relative_link_targets(p.read_text()):
            if target and not (p.parent / target).exists():
                broken.append(f"{p.relative_to(root)}: {target}")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_research_pages_are_dated_and_summarised():
    """docs/research/: a title, then `Dated: YYYY-MM-DD (last updated YYYY-MM-DD)`, then a Summary section
    (generated pages, which say "Do not edit by hand", and the index are exempt)."""
    bad = []
    for p in sorted((README.parent / "docs" / "research").glob("*.md")):
        text = p.read_text()
        if p.name == "README.md" or "Do not edit by hand" in text:
            continue
        lines = text.splitlines()
        dated = len(lines) > 2 and re.fullmatch(r"Dated: \d{4}-\d{2}-\d{2} \(last updated \d{4}-\d{2}-\d{2}\)", lines[2])
        if not (lines[0].startswith("# ") and dated and re.search(r"^## Summary", text, flags=re.M)):
            bad.append(p.name)
    assert not bad, f"research pages without the title / Dated line / Summary section: {bad}"


def test_every_kept_benchmark_script_answers_help():
    import subprocess
    import sys
    scripts = sorted((README.parent / "benchmarks").glob("*.py"))
    assert len(scripts) >= 5
    for s in scripts:
        r = subprocess.run([sys.executable, str(s), "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), f"{s.name}: {r.stderr[-300:]}"
