"""Kills and races: a conversion killed at each phase leaves a whole model and the next run cleans up after it, two
writers of one output are refused, a torn metrics row resumes, and bad inputs are one line.

A kill is ``os._exit`` in a child process at a named point (``univigu.loading._reached``, or mid-way through the
shards): nothing after it runs, no ``finally`` nor ``except``. The children fork from a server that has already
imported the library, so each starts in well under a second.
"""

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from univigu import UniViGUTransformer
from univigu.cli import main as cli_main
from univigu.durable import InUseError, exclusive_lock
from univigu.loading import MARKER, _exchange, convert_official
from univigu.official import convert_official_state_dict, load_official_state_dict

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["univigu.loading", "univigu.batch.engines"])
KILLED = 86  # the exit status of a child stopped at its phase


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def _convert_child(at: str, swap: bool, kwargs: dict, signals: str) -> None:
    """Convert with ``kwargs``, stopped at phase ``at``: killed there, or (``at="wait:PHASE"``) held there until
    ``signals``/go appears. ``swap=False``: as on a filesystem that cannot swap two folders."""
    import univigu.loading as loading
    import univigu.official as official

    if not swap:
        loading._exchange = lambda a, b: False
    phase, wait = at.removeprefix("wait:"), at.startswith("wait:")

    def reached(name: str) -> None:
        if name != phase:
            return
        if not wait:
            os._exit(KILLED)
        (Path(signals) / "ready").touch()
        _wait_for(Path(signals) / "go")

    loading._reached = reached
    if at == "mid-write":
        save, written = official._save_shard, []

        def save_then_die(shard, path):
            save(shard, path)
            written.append(path)
            if len(written) == 2:
                os._exit(KILLED)

        official._save_shard = save_then_die
    loading.convert_official(**kwargs)


@pytest.fixture(scope="module")
def official(official_fixture):
    """(checkpoint, wan config, the checkpoint's weights under our keys)."""
    checkpoint = os.path.join(official_fixture, "checkpoint.pth")
    source = convert_official_state_dict(load_official_state_dict(checkpoint), 32)
    return checkpoint, os.path.join(official_fixture, "wan_transformer_config.json"), source


def _old_and_new(official, out: Path) -> tuple[dict, dict]:
    """The conversion that writes the old model (float32, rounded time embedding) and the one that overwrites it
    (bfloat16 in several shards, float32 time embedding)."""
    checkpoint, wan, _ = official
    old = dict(checkpoint=checkpoint, wan=wan, out=str(out), vocab_size=50)
    new = dict(old, overwrite=True, dtype="bfloat16", bf16_time_embedding=False, max_shard_size="200KB")
    return old, new


def _which(folder: Path, official) -> str:
    """ "old" or "new": the complete model ``folder`` holds (every weight loads and equals the checkpoint's)."""
    model = UniViGUTransformer.from_pretrained(folder)
    state, source = model.state_dict(), official[2]
    assert set(state) == set(source)
    kind = "old" if model.config.time_embedding_rounding == "bfloat16" else "new"
    dtype = torch.float32 if kind == "old" else torch.bfloat16
    for name in ("blocks.1.ffn_t.net.2.weight", "text_proj_out.weight", "patch_embedding.weight"):
        assert torch.equal(state[name], source[name].to(dtype)), name
    return kind


def _run_child(target, *args) -> multiprocessing.Process:
    proc = CTX.Process(target=target, args=args)
    proc.start()
    return proc


def _swappable(folder: Path) -> bool:
    a, b = folder / "swap-a", folder / "swap-b"
    a.mkdir()
    b.mkdir()
    try:
        return _exchange(str(a), str(b))
    finally:
        a.rmdir()
        b.rmdir()


@pytest.mark.parametrize(
    "at,swap,left",
    [
        ("mid-write", True, "old"),  # a shard half-way: the old model untouched
        ("written", True, "old"),  # the new folder complete, not yet in place
        ("swapped", True, "new"),  # swapped in, the old one not yet deleted
        ("aside", False, "aside"),  # no swap: the old model renamed aside, the new not yet in
        ("renamed", False, "new"),  # no swap: the new one renamed in, the old one not yet deleted
    ],
)
def test_a_conversion_killed_at_each_phase_leaves_a_whole_model(official, tmp_path, at, swap, left):
    if swap and not _swappable(tmp_path):
        pytest.skip("this filesystem cannot swap two folders (renameat2 RENAME_EXCHANGE)")
    models = tmp_path / "models"
    out = models / "out"
    old, new = _old_and_new(official, out)
    convert_official(**old)
    child = _run_child(_convert_child, at, swap, new, str(tmp_path))
    child.join(120)
    assert child.exitcode == KILLED, f"the conversion was not stopped at {at}"
    if left == "aside":  # the one instant without `out`: the old model waits, whole, beside it
        assert not out.exists() and _which(models / ".convert-out.old", official) == "old"
    else:
        assert _which(out, official) == left
    assert len(os.listdir(models)) > 1  # what the kill left (a temporary folder, the old model aside)

    # The next run, even one that then refuses to overwrite, first puts the old model back or finishes the swap
    with pytest.raises(ValueError, match="already exists"):
        convert_official(**old)
    assert os.listdir(models) == ["out"] and not (out / MARKER).exists()
    assert _which(out, official) == ("old" if left == "aside" else left)
    convert_official(**new)  # and an overwrite then succeeds, leaving nothing beside it
    assert os.listdir(models) == ["out"] and _which(out, official) == "new"


def test_a_second_conversion_into_one_out_is_refused_and_leaves_the_first_alone(official, tmp_path, capsys):
    models = tmp_path / "models"
    out = models / "out"
    old, new = _old_and_new(official, out)
    convert_official(**old)
    child = _run_child(_convert_child, "wait:written", True, new, str(tmp_path))
    try:
        _wait_for(tmp_path / "ready")
        (temp,) = [p for p in os.listdir(models) if p.startswith(".convert-out-")]
        argv = ["convert-official", "--checkpoint", old["checkpoint"], "--wan", old["wan"], "--out", str(out)]
        assert cli_main([*argv, "--vocab-size", "50", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"another conversion into {out} is running (pid {child.pid})" in err and err.count("\n") == 1, err
        assert (models / temp / MARKER).exists()  # in use: not taken for a killed run's leftovers
    finally:
        (tmp_path / "go").touch()
        child.join(120)
    assert child.exitcode == 0
    assert os.listdir(models) == ["out"] and _which(out, official) == "new"


def _caption_child(argv: list[str], signals: str) -> None:
    """``univigu caption --videos`` that holds its output until ``signals``/go appears (as a slow model would)."""
    from univigu.batch.work import CaptionJob
    from univigu.cli import main

    run = CaptionJob.run

    def slow(job, *args):
        (Path(signals) / "ready").touch()
        _wait_for(Path(signals) / "go")
        return run(job, *args)

    CaptionJob.run = slow
    sys.exit(main(argv))


def test_two_folder_captions_into_one_out_never_duplicate_a_row(tiny_pipe_dir, tmp_path, capsys):
    from univigu.video_io import write_video

    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    clips = []
    for n in range(3):
        clips.append(str(videos / f"{n}.mp4"))
        write_video(clips[-1], (np.random.default_rng(n).random((5, 16, 16, 3)) * 255).astype(np.uint8), fps=8)
    out = tmp_path / "data" / "metadata.jsonl"
    argv = ["caption", "--model", tiny_pipe_dir, "--videos", str(videos), "--out", str(out), "--steps", "1"]
    first = _run_child(_caption_child, argv, str(tmp_path))
    try:
        _wait_for(tmp_path / "ready")
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert f"{out} is being written by another run (pid {first.pid})" in err and err.count("\n") == 1, err
    finally:
        (tmp_path / "go").touch()
        first.join(120)
    assert first.exitcode == 0
    rows = [json.loads(line)["video"] for line in out.read_text().splitlines()]
    assert sorted(rows) == [f"videos/{n}.mp4" for n in range(3)]
    assert cli_main(argv) == 0  # after it: the second run resumes, and has nothing left to do
    assert "captioned 0, skipped 3" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 3 and not Path(f"{out}.lock").exists()


def test_a_lock_names_its_holder_and_goes_with_it(tmp_path):
    lock = tmp_path / "out.lock"
    with exclusive_lock(lock, "busy (pid {pid})"):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(InUseError, match=rf"busy \(pid {os.getpid()}\)"):
            with exclusive_lock(lock, "busy (pid {pid})"):
                pass
    assert not lock.exists()
    with exclusive_lock(lock, "busy (pid {pid})"):  # free again
        pass


def test_a_torn_metrics_row_is_cut_on_resume(tmp_path, capsys):
    from training.train import _truncate_metrics

    metrics = tmp_path / "metrics.jsonl"
    rows = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3)]
    metrics.write_text("".join(f"{r}\n" for r in rows) + '{"step": 4, "lo')  # killed writing step 4
    _truncate_metrics(metrics, 2)  # resumed from the checkpoint of step 2
    assert metrics.read_text() == f"{rows[0]}\n{rows[1]}\n" and "torn" in capsys.readouterr().err
    metrics.write_text(f"{rows[0]}\nnot json\n{rows[2]}\n")
    with pytest.raises(SystemExit, match="line 2 is not a metrics row"):
        _truncate_metrics(metrics, 3)


def test_init_that_is_no_model_folder_is_one_line(tmp_path, capsys):
    from training.train import main

    weights = tmp_path / "some.bin"
    weights.write_bytes(b"\0" * 64)
    pipeline = tmp_path / "pipe"
    (pipeline / "transformer").mkdir(parents=True)
    (pipeline / "model_index.json").write_text("{}")
    (pipeline / "transformer" / "config.json").write_text(json.dumps({"_class_name": "UniViGUTransformer"}))
    for init, message in [
        (weights, f"--init {weights} is a file; it takes a model folder saved by save_pretrained"),
        (tmp_path / "missing", "is not found; it takes a model folder"),
        (pipeline, "is a pipeline folder: pass its transformer/ folder"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main([f"--init={init}", f"--out_dir={tmp_path / 'run'}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # refused before anything was written
