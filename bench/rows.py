"""BENCHMARKS.md rows written by the bench: one section, rows keyed so a rerun updates them.

Pure: text in, text out. The section sits between two markers under a heading;
each row is `| date | machine | commit | grid | figure | value |`, and a row with
the same date, commit, grid and figure as a new one is replaced, so running the
bench twice on one commit and day leaves one row per figure (the last run's).
"""

from __future__ import annotations

from dataclasses import dataclass

HEADING = "## bench/ suite"
BEGIN = "<!-- bench:begin (rows written by `python bench/run.py`; a rerun on the same commit and day replaces them) -->"
END = "<!-- bench:end -->"
HEADER = "| date | machine | commit | grid | figure | value |\n|---|---|---|---|---|---|"
INTRO = (
    "Written by `python bench/run.py side-by-side` (bench/README.md says what each figure means). "
    "Orchestrator and lm-evaluation-harness run the same JSONL examples with the same prompt text, greedy, "
    "in alternating order; a row is the median over the paired repeats with (min–max). "
    "A commit ending in `.dirty` ran with uncommitted changes in the tree."
)


@dataclass(frozen=True)
class Row:
    date: str
    machine: str
    commit: str
    grid: str
    figure: str
    value: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.date, self.commit, self.grid, self.figure)

    def markdown(self) -> str:
        cells = [self.date, self.machine, self.commit, self.grid, self.figure, self.value]
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def parse_row(line: str) -> Row | None:
    """A table line of the section back into a Row (None for anything else)."""
    line = line.strip()
    if not line.startswith("|") or line.startswith("|---") or line.startswith("| date |"):
        return None
    cells = [c.strip().replace("\\|", "|") for c in _split(line.strip("|"))]
    return Row(*cells) if len(cells) == 6 else None


def _split(text: str) -> list[str]:
    """Split on | not escaped as \\|."""
    out, cur, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            cur += "\\|"
            i += 2
            continue
        if text[i] == "|":
            out.append(cur)
            cur = ""
        else:
            cur += text[i]
        i += 1
    out.append(cur)
    return out


def upsert(markdown: str, rows: list[Row]) -> str:
    """`markdown` with the bench section holding its old rows plus `rows` (same key: replaced in place)."""
    if BEGIN not in markdown:
        section = f"\n{HEADING}\n\n{INTRO}\n\n{BEGIN}\n{HEADER}\n{END}\n"
        markdown = markdown.rstrip("\n") + "\n" + section
    head, rest = markdown.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    old = [r for r in (parse_row(line) for line in body.splitlines()) if r is not None]
    new = {r.key: r for r in rows}
    kept = [new.pop(r.key) if r.key in new else r for r in old]
    kept += list(new.values())
    table = "\n".join([HEADER, *(r.markdown() for r in kept)])
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"
