"""Datasets in batch (univigu.batch): the local and the ray engine write the same rows whatever the workers, batch
size or order; a run resumes, survives a killed worker, records a corrupt clip, and a finished one does no work.

One local Ray for the module (two CPUs, a small object store, no dashboard); each Ray test has a timeout so a
stall fails instead of hanging. The model is a tiny random pipeline whose captions draw from the seed (the uniform
text source), so a row that took another item's or batch's randomness would show.
"""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from univigu.batch import engines
from univigu.batch.work import item_seed
from univigu.cli import main as cli_main
from univigu.loading import load_pipeline
from univigu.video_io import read_video, write_video

CLIPS = 8
STEPS = "3"


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A tiny pipeline whose captions depend on the seed (uniform text source: random tokens to start from)."""
    from univigu.tiny import tiny_pipeline

    path = str(tmp_path_factory.mktemp("uniform") / "pipe")
    tiny_pipeline(text_source="uniform").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """CLIPS clips (two of them in a subfolder) and a file that is not a video."""
    folder = tmp_path_factory.mktemp("data") / "videos"
    (folder / "sub").mkdir(parents=True)
    for n in range(CLIPS):
        clip = (np.random.default_rng(n).random((5, 16, 16, 3)) * 255).astype(np.uint8)
        write_video(folder / ("sub" if n < 2 else "") / f"{n}.mp4", clip, fps=8)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def _caption(model, videos, out, *extra) -> list[str]:
    argv = ["caption", "--model", model, "--videos", str(videos), "--out", str(out), "--steps", STEPS, "--seed", "7"]
    return [*argv, *extra]


@pytest.fixture(scope="module")
def expected(model, videos) -> str:
    """The local engine's rows, one clip at a time."""
    out = videos.parent / "local.jsonl"
    assert cli_main(_caption(model, videos, out, "--json")) == 0
    return out.read_text()


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_row_is_its_clips_caption_from_its_own_seed(model, videos, expected):
    rows = _rows(expected)
    assert len(rows) == CLIPS and len({r["video"] for r in rows}) == CLIPS
    assert len({r["caption"] for r in rows}) > 1  # different draws for different clips
    pipe = load_pipeline(model)
    for row in rows[:3]:
        frames, _ = read_video(videos.parent / row["video"])
        text = pipe.caption(frames, num_inference_steps=int(STEPS), seed=item_seed(7, row["video"])).text
        assert row["caption"] == row["prompt"] == text
    failures = _rows((videos.parent / "failures.jsonl").read_text())
    assert [f["video"] for f in failures] == ["videos/broken.mp4"] and "could not decode" in failures[0]["error"]


@pytest.mark.timeout(120)
def test_a_finished_dataset_does_no_model_work(local_ray, model, videos, expected, monkeypatch, capsys):
    out = videos.parent / "done.jsonl"
    out.write_text(expected)
    spied = []
    monkeypatch.setattr("univigu.batch.ray_engine.run_batches", lambda *a, **k: spied.append(a) or iter(()))
    monkeypatch.setattr("univigu.batch.work.ModelSpec.load", lambda self: spied.append(self))
    good = str(videos / "**" / "[0-9].mp4")  # every clip but the broken one, which would be tried again
    for engine in ("local", "ray"):
        assert cli_main(_caption(model, good, out, "--engine", engine)) == 0
        assert f"captioned 0, skipped {CLIPS}" in capsys.readouterr().out
    assert spied == [] and out.read_text() == expected


def _stopping_after(monkeypatch, n: int | None) -> list[list[str]]:
    """Stop the driver (as ^C does) right after its n-th finished shard; the keys of each shard written."""
    write_shard, shards = engines.Output.write_shard, []

    def write_then_stop(self, records):
        shards.append([r.key for r in records])
        write_shard(self, records)
        if len(shards) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(engines.Output, "write_shard", write_then_stop)
    return shards


def test_merge_alone_assembles_the_finished_shards(model, videos, expected, monkeypatch, capsys):
    out = videos.parent / "merged.jsonl"
    argv = _caption(model, videos, out, "--batch-size", "3")
    shards = _stopping_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        cli_main(argv)
    monkeypatch.undo()
    assert not out.exists() and cli_main([*argv, "--merge"]) == 0
    assert f"merged 3 rows into {out}" in capsys.readouterr().out
    assert [r["video"] for r in _rows(out.read_text())] == shards[0]
    assert not (videos.parent / f"{out.name}.shards").exists()
    assert cli_main(argv) == 0
    assert sorted(out.read_text().splitlines()) == sorted(expected.splitlines())


@pytest.mark.timeout(300)
def test_the_ray_engine_stopped_and_resumed_writes_the_local_engines_rows(
    local_ray, model, videos, expected, monkeypatch, capsys
):
    """Two workers, batches of 2, the driver stopped after two finished shards; resumed with one worker and batches
    of 3, it redoes no finished clip and ends with the local engine's file, row for row."""
    out = videos.parent / "ray.jsonl"
    argv = _caption(model, videos, out, "--engine", "ray")
    shards = _stopping_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        cli_main([*argv, "--workers", "2", "--batch-size", "2"])
    finished = {key for shard in shards for key in shard} - {"videos/broken.mp4"}  # a failure is tried again
    assert len(list((videos.parent / f"{out.name}.shards").glob("*.jsonl"))) == 2 and not out.exists()

    monkeypatch.undo()
    shards = _stopping_after(monkeypatch, None)  # a spy now
    capsys.readouterr()
    assert cli_main([*argv, "--workers", "1", "--batch-size", "3"]) == 0
    assert not {key for shard in shards for key in shard} & finished
    captured = capsys.readouterr()
    assert f"captioned {CLIPS - len(finished)}, skipped {len(finished)} (already in the output), failed 1;" in (
        captured.out
    )
    assert "clips per minute" in captured.out and "broken.mp4" in captured.err
    assert out.read_text() == expected  # row for row, in the work list's order
    assert not (videos.parent / f"{out.name}.shards").exists() and not Path(f"{out}.lock").exists()
    failures = _rows((videos.parent / "failures.jsonl").read_text())
    assert [f["video"] for f in failures] == ["videos/broken.mp4"]


def _actor_pids() -> set[int]:
    """This test's Ray actors that run the model (Ray titles their processes after the actor class)."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" in " ".join(proc.cmdline()):
                pids.add(proc.pid)
        except psutil.Error:
            pass
    return pids


@pytest.mark.timeout(240)
def test_a_killed_worker_loses_and_duplicates_no_row(local_ray, model, videos, expected):
    out = videos.parent / "killed.jsonl"
    shards = videos.parent / f"{out.name}.shards"
    argv = _caption(model, videos, out, "--engine", "ray", "--workers", "2", "--batch-size", "1", "--json")
    codes = []
    driver = threading.Thread(target=lambda: codes.append(cli_main(argv)))
    driver.start()
    deadline, killed = time.monotonic() + 180, None
    while killed is None and driver.is_alive() and time.monotonic() < deadline:
        pids = _actor_pids()
        if pids and shards.is_dir() and any(shards.glob("*.jsonl")):  # the actors are working: kill one mid-run
            killed = min(pids)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    driver.join(180)
    assert killed is not None, "the run finished before a worker could be killed"
    assert codes == [0] and not psutil.pid_exists(killed)
    assert out.read_text() == expected  # nothing lost, nothing twice


@pytest.mark.timeout(240)
def test_a_prompts_file_makes_clips_whose_seeds_remake_them(local_ray, model, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"prompt": "a red circle moves left"}, {"prompt": "a blue square stays still", "seed": 5}, {"prompt": "a"}]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    base = ["t2v", "--model", model, "--prompts", str(prompts), "--steps", "2", "--seed", "3"]
    assert cli_main([*base, "--out-dir", str(tmp_path / "local")]) == 0
    assert "generated 3, skipped 0 (already in the output), failed 0" in capsys.readouterr().out
    assert cli_main([*base, "--out-dir", str(tmp_path / "ray"), "--engine", "ray", "--batch-size", "2"]) == 0
    local, ray = ((tmp_path / name / "metadata.jsonl").read_text() for name in ("local", "ray"))
    assert local == ray
    rows = _rows(local)
    assert [r["video"] for r in rows] == [f"videos/{n:06d}.mp4" for n in range(3)]
    assert [r["seed"] for r in rows] == [item_seed(3, "0"), 5, item_seed(3, "2")]
    assert all(r["prompt"] == r["caption"] == line["prompt"] for r, line in zip(rows, lines))
    for row in rows[:2]:
        one = tmp_path / "one.mp4"
        argv = ["t2v", "--model", model, "--prompt", row["prompt"], "--steps", "2", "--seed", str(row["seed"])]
        assert cli_main([*argv, "--out", str(one)]) == 0
        for name in ("local", "ray"):
            assert np.array_equal(read_video(tmp_path / name / row["video"])[0], read_video(one)[0])


def test_ray_errors_are_one_line(local_ray, model, videos, tmp_path, monkeypatch, capsys):
    argv = _caption(model, videos, tmp_path / "m.jsonl", "--engine", "ray")
    assert cli_main([*argv, "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --address: nothing answers at 127.0.0.1:1") and err.count("\n") == 1, err
    monkeypatch.setitem(__import__("sys").modules, "ray.data", None)  # as if Ray were not installed
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'univigu[ray]'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.jsonl").exists()
