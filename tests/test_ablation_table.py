"""The model card's ablation table: finished rows, a row still training (partial), and the shared base's time."""

import json

from training.shapesworld.ablation_table import collect, markdown


def _eval(path, color, exact):
    path.write_text(json.dumps({"captioning": {"attrs": {"color": color}, "exact": exact}}))


def test_rows_steps_times_and_partial(tmp_path):
    run, bundled = tmp_path / "run", tmp_path / "bundled"
    bundled.mkdir()
    (bundled / "timings.tsv").write_text("data\t98\nbase\t600\nrecall\t300\nrefine\t900\n")
    for row in ("shipped", "no-stage1", "scratch"):
        (run / "ablation" / row).mkdir(parents=True)
    (run / "ablation" / "no-stage1" / "timings.tsv").write_text("precompute\t400\nbase\t1200\nrefine\t2400\n")
    (run / "ablation" / "scratch" / "timings.tsv").write_text("precompute\t400\n")
    for split in ("test", "compositional"):
        _eval(run / "ablation" / "shipped" / f"eval-{split}.json", 0.8, 0.2)
        _eval(run / "ablation" / "no-stage1" / f"eval-{split}.json", 0.7, 0.1)
        _eval(run / "ablation" / "scratch" / f"eval-refine-5000-{split}.json", 0.3, 0.0)
        _eval(run / "ablation" / "scratch" / f"eval-refine-2000-{split}.json", 0.1, 0.0)  # an older partial
    entries = collect(run, bundled)
    assert [(e["row"], e["split"]) for e in entries] == [
        (row, split) for split in ("test", "compositional") for row in ("shipped", "scratch", "no-stage1")
    ]
    by_row = {e["row"]: e for e in entries if e["split"] == "test"}
    assert by_row["shipped"]["seconds"] == 1800 and by_row["shipped"]["steps"] == 19000
    # no-stage1: its own Stage 2 plus the base generator it recorded; 8000 + 11000 steps
    assert by_row["no-stage1"]["seconds"] == 3600 and by_row["no-stage1"]["steps"] == 19000
    scratch = by_row["scratch"]
    assert scratch["partial"] and scratch["steps"] == 5000 and scratch["seconds"] is None
    assert scratch["result"]["captioning"]["attrs"]["color"] == 0.3  # the newest partial evaluation
    table = markdown(entries)
    assert "| scratch (partial) (test) |" in table and "5,000 of 19,000" in table
    assert "| captioning: main colour | 80.0 | 30.0 | 70.0 | 80.0 | 30.0 | 70.0 |" in table
    assert "| training wall time | 30 min | – | 60 min | 30 min | – | 60 min |" in table


def test_thesis_rows_take_the_shared_prompt_only_stages_times(tmp_path):
    run = tmp_path / "run"
    (run / "thesis").mkdir(parents=True)
    (run / "thesis" / "timings.tsv").write_text("data\t900\nprecompute\t4000\nbase\t1200\nrecall\t600\n")
    for row in ("generator-first-1000", "unified-1000"):
        (run / "ablation" / row).mkdir(parents=True)
        for split in ("test", "compositional"):
            _eval(run / "ablation" / row / f"eval-{split}.json", 0.5, 0.0)
    (run / "ablation" / "generator-first-1000" / "timings.tsv").write_text("refine\t1800\n")
    (run / "ablation" / "unified-1000" / "timings.tsv").write_text("refine\t3000\n")
    # text-to-video from the brief prompt is evaluated apart (eval-brief-SPLIT.json) and joins the row's column
    brief = {"text_to_video_brief": {"attrs": {"motion": 0.25}}}
    (run / "ablation" / "generator-first-1000" / "eval-brief-test.json").write_text(json.dumps(brief))
    entries = collect(run, tmp_path, rows=("generator-first-1000", "unified-1000"))
    by_row = {e["row"]: e for e in entries if e["split"] == "test"}
    # base + Stage 1 from the shared run, Stage 2 its own; every row 19,000 steps
    assert by_row["generator-first-1000"]["seconds"] == 3600 and by_row["generator-first-1000"]["steps"] == 19000
    assert by_row["unified-1000"]["seconds"] == 3000 and by_row["unified-1000"]["steps"] == 19000
    table = markdown(entries)
    assert "| generator-first-1000 (test) | unified-1000 (test) |" in table
    assert "| text-to-video from the brief prompt: motion | 25.0 | – | – | – |" in table
