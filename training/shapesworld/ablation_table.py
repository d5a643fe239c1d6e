"""The ablation table of the model card: one column per row of ``ablation.sh`` and split, one line per metric.

    python -m training.shapesworld.ablation_table --run runs/shapesworld [--out table.md]
    python -m training.shapesworld.ablation_table --run runs/shapesworld --rows generator-first-1000 \
        captions-only-1000 unified-1000 generator-first-3000 captions-only-3000 unified-3000   (the thesis)

Reads each row's evaluations (``RUN/ablation/ROW/eval-SPLIT.json``, with text-to-video from the brief prompt
from ``eval-brief-SPLIT.json``; a row still training: its newest partial evaluation, ``eval-STAGE-STEP-SPLIT.json``,
marked partial) and its stages' wall times (``timings.tsv``; the
shared base generator's from whichever row trained it, the thesis rows' prompt-only base and Stage 1 from
``RUN/thesis/timings.tsv``, the shipped row's from the bundled model's folder).
"""

import argparse
import json
import re
from pathlib import Path

from .table import ROWS, _cell, _interval, _value

# ablation.sh's rows and their training stages with optimizer steps (its defaults)
BASE, RECALL, REFINE = 8000, 2500, 8500
ROW_STAGES = {
    "shipped": {"base": BASE, "recall": RECALL, "refine": REFINE},
    "scratch": {"refine": BASE + RECALL + REFINE},
    "no-stage1": {"base": BASE, "refine": RECALL + REFINE},
    "embedding": {"base": BASE, "recall": RECALL, "refine": REFINE},
}
# the thesis rows, named ROW-N_SMALL (ablation.sh)
THESIS_STAGES = {
    "generator-first": {"base": BASE, "recall": RECALL, "refine": REFINE},
    "captions-only": {"refine": BASE + RECALL + REFINE},
    "unified": {"refine": BASE + RECALL + REFINE},
}


def _stages(row: str) -> tuple[str, dict[str, int]]:
    """A row folder's name (``no-stage1-seed1``, ``unified-1000``) -> (its row, its stages and steps)."""
    name = re.sub(r"-seed\d+$", "", row)
    thesis = re.sub(r"-\d+$", "", name)
    if thesis in THESIS_STAGES:
        return thesis, THESIS_STAGES[thesis]
    return name, ROW_STAGES[name]


SPLITS = ("test", "compositional")
SKIP = {"parsed", "brief_prompt_attrs", "second_named"}  # info rows of the main table


def _timings(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    rows = (line.split("\t") for line in path.read_text().splitlines() if "\t" in line)
    return {name: int(seconds) for name, seconds in rows}


def _partial(row_dir: Path, split: str) -> tuple[Path, str, int] | None:
    """The newest partial evaluation of ``split`` in ``row_dir``: (file, stage, step)."""
    found = []
    for path in row_dir.glob(f"eval-*-{split}.json"):
        match = re.fullmatch(rf"eval-(\w+)-(\d+)-{split}\.json", path.name)
        if match:
            found.append((int(match[2]), match[1], path))
    if not found:
        return None
    step, stage, path = max(found)
    return path, stage, step


def collect(run: Path, bundled: Path, rows=tuple(ROW_STAGES), seed_rows=()) -> list[dict]:
    """One entry per (split, row), the test split's first: its evaluation, the steps it trained, its wall time and
    whether it is partial."""
    base_seconds = next(
        (t["base"] for d in sorted((run / "ablation").glob("*")) if "base" in (t := _timings(d / "timings.tsv"))),
        None,
    )
    entries = []
    for row in [*rows, *seed_rows]:
        name, stages = _stages(row)
        row_dir = run / "ablation" / row
        timings = _timings(bundled / "timings.tsv") if name == "shipped" else _timings(row_dir / "timings.tsv")
        if name == "generator-first":
            timings = _timings(run / "thesis" / "timings.tsv") | timings
        elif name != "shipped" and "base" in stages:
            timings.setdefault("base", base_seconds)
        for split in SPLITS:
            path, partial_at = row_dir / f"eval-{split}.json", None
            steps = sum(stages.values())
            if not path.exists():
                partial = _partial(row_dir, split)
                if partial is None:
                    continue
                path, stage, step = partial
                # the stages before the one in progress ran in full
                order = list(stages)
                steps = sum(stages[s] for s in order[: order.index(stage)]) + step
                partial_at = steps
            seconds = [timings.get(s) for s in stages]
            result = json.loads(path.read_text())
            brief = row_dir / f"eval-brief-{split}.json"  # text-to-video from the brief prompt, run apart
            if not partial_at and brief.exists():
                result["text_to_video_brief"] = json.loads(brief.read_text())["text_to_video_brief"]
            entries.append(
                {
                    "row": row,
                    "split": split,
                    "result": result,
                    "steps": steps,
                    "planned": sum(stages.values()),
                    "seconds": None if partial_at or None in seconds else sum(seconds),
                    "partial": partial_at is not None,
                }
            )
    return sorted(entries, key=lambda e: SPLITS.index(e["split"]))  # stable: the rows' order within a split


def markdown(entries: list[dict]) -> str:
    head = " | ".join(f"{e['row']}{' (partial)' if e['partial'] else ''} ({e['split']})" for e in entries)
    lines = [f"| metric | {head} |", "|" + "---|" * (len(entries) + 1)]
    for task, key, label in ROWS:
        if key in SKIP:
            continue
        values = [_value(e["result"], task, key) for e in entries]
        if all(v is None for v in values):
            continue
        cells = [_cell(v, None if v is None else _interval(e["result"], task, key)) for v, e in zip(values, entries)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    steps = [f"{e['steps']:,}" + ("" if e["steps"] == e["planned"] else f" of {e['planned']:,}") for e in entries]
    lines.append("| optimizer steps (batch 8) | " + " | ".join(steps) + " |")
    times = ["–" if e["seconds"] is None else f"{e['seconds'] / 60:.0f} min" for e in entries]
    lines.append("| training wall time | " + " | ".join(times) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/shapesworld")
    parser.add_argument("--bundled", default="assets/univigu-shapesworld", help="the shipped row's folder")
    parser.add_argument("--rows", nargs="*", default=list(ROW_STAGES), help="row folders (default: equal data)")
    parser.add_argument("--seed-rows", nargs="*", default=[], help="seed reruns to add, e.g. no-stage1-seed1")
    parser.add_argument("--out", help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    table = markdown(collect(Path(args.run), Path(args.bundled), args.rows, args.seed_rows))
    if args.out:
        Path(args.out).write_text(table)
    else:
        print(table, end="")


if __name__ == "__main__":
    main()
