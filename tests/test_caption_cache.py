"""Captioning on a cached clip (``video_cache_interval``), batches of clips, and captioning a folder."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_transformer import inputs, make

from univigu import UniViGUPipeline
from univigu.cli import main as cli_main
from univigu.loading import load_pipeline
from univigu.models.video_context import VideoContext
from univigu.pipeline_streams import VideoStream
from univigu.tiny import tiny_pipeline
from univigu.video_io import read_video, write_video

BUNDLED = os.path.join(os.path.dirname(__file__), "..", "assets", "univigu-shapesworld")


def _text_only(x: dict) -> dict:
    return {**x, "video_latents": None, "video_timestep": None}


def _inputs(formulation: str) -> dict:
    x = inputs()
    if formulation == "embedding":
        del x["text_tokens"]
        x["text_latents"] = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(2))
    x["text_attention_mask"] = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    return x


def _text_out(out):
    return out.text_logits if out.text_logits is not None else out.text_velocity


@torch.no_grad()
@pytest.mark.parametrize("formulation,source", [("discrete", "mask"), ("embedding", "uniform")])
def test_a_text_only_forward_on_its_own_cache_equals_the_full_forward(formulation, source):
    model, x = make(formulation, text_source=source), _inputs(formulation)
    context = VideoContext()
    full = model(**x, video_context=context)
    torch.testing.assert_close(_text_out(full), _text_out(model(**x)), atol=0, rtol=0)  # recording changes nothing
    assert context.filled and context.num_video == 3 * 2 * 3 and len(context.layers) == 2
    text = model(**_text_only(x), video_context=context)
    assert text.video_velocity is None
    torch.testing.assert_close(_text_out(text), _text_out(full), atol=1e-5, rtol=1e-5)
    # the cache is of the clip: another text state reads it, and the result moves with the text
    moved = model(**{**_text_only(x), "text_timestep": torch.tensor([300.0, 600.0])}, video_context=context)
    assert (_text_out(moved) - _text_out(text)).abs().max() > 1e-3


@torch.no_grad()
def test_the_cache_works_in_bf16_with_group_offload_and_each_backend():
    x = _inputs("discrete")
    bf16 = make().to(torch.bfloat16)
    xb = {k: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in x.items()}
    context = VideoContext()
    full = bf16(**xb, video_context=context)
    assert context.layers[0].key.dtype == torch.bfloat16
    torch.testing.assert_close(bf16(**_text_only(xb), video_context=context).text_logits, full.text_logits)
    ref_context = VideoContext()
    ref = make()(**x, video_context=ref_context)
    offloaded = make()
    offloaded.enable_group_offload(torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1)
    native = make()
    native.set_attention_backend("native")
    for model in (offloaded, native):
        context = VideoContext()
        model(**x, video_context=context)
        out = model(**_text_only(x), video_context=context)
        torch.testing.assert_close(out.text_logits, ref.text_logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_the_cache_works_on_a_converted_official_checkpoint(official_fixture):
    from univigu.official import transformer_from_official

    cases = torch.load(os.path.join(official_fixture, "cases.pt"), weights_only=True)
    with open(os.path.join(official_fixture, "wan_transformer_config.json")) as f:
        wan = json.load(f)
    name = next(n for n in cases if n != "_meta" and cases[n]["checkpoint"] == "checkpoint_masked.pth")
    model = transformer_from_official(os.path.join(official_fixture, "checkpoint_masked.pth"), wan, vocab_size=50)
    case = cases[name]["inputs"]
    x = dict(
        video_latents=case["x_v"],
        video_timestep=case["time_v"],
        encoder_hidden_states=case["cond_t"],
        text_timestep=case["time_t"],
        text_tokens=case["x_t"],
        text_attention_mask=case["x_t_attention_mask"],
    )
    context = VideoContext()
    full = model.eval()(**x, video_context=context)
    text = model(**_text_only(x), video_context=context)
    torch.testing.assert_close(text.text_logits, full.text_logits, atol=1e-5, rtol=1e-5)


def test_a_text_only_forward_needs_a_filled_context():
    model, x = make(), _inputs("discrete")
    with pytest.raises(ValueError, match="video_context"):
        model(**_text_only(x))
    with pytest.raises(ValueError, match="video_context"):
        model(**_text_only(x), video_context=VideoContext())


def _spy(pipe):
    """Per transformer call: whether it ran the clip; and the number of video FFN (FFN_v) calls."""
    calls, ffn_v = [], []
    handles = [
        pipe.transformer.register_forward_pre_hook(
            lambda m, a, kw: calls.append(kw.get("video_latents") is not None), with_kwargs=True
        ),
        pipe.transformer.blocks[0].ffn.register_forward_pre_hook(lambda m, a: ffn_v.append(1)),
    ]
    return calls, ffn_v, handles


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def _clip(seed=0):
    return (np.random.default_rng(seed).random((5, 16, 16, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("interval,full_steps", [(1, 6), (2, 3), (4, 2), (6, 1), (100, 1)])
def test_the_clip_runs_every_interval_steps_and_the_text_alone_between(pipe, interval, full_steps):
    calls, ffn_v, handles = _spy(pipe)
    try:
        pipe.caption(_clip(), num_inference_steps=6, video_cache_interval=interval)
    finally:
        for h in handles:
            h.remove()
    assert len(calls) == 6 and sum(calls) == full_steps and calls[0]
    assert [i for i, c in enumerate(calls) if c] == list(range(0, 6, interval))
    assert len(ffn_v) == full_steps  # the video tokens (and the video head) are not computed between


def test_interval_one_is_the_full_forward_every_step(pipe):
    """k = 1 runs today's forward (no context recorded) at every step: each step's logits are the plain
    full forward's on that step's inputs."""
    seen = []

    def hook(module, args, kwargs, output):
        seen.append(({k: v for k, v in kwargs.items()}, output.text_logits))

    handle = pipe.transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        pipe.caption(_clip(), num_inference_steps=5, video_cache_interval=1)
    finally:
        handle.remove()
    assert len(seen) == 5
    for kwargs, logits in seen:
        assert kwargs.get("video_context") is None and kwargs["video_latents"] is not None
        with torch.no_grad():
            torch.testing.assert_close(pipe.transformer(**kwargs).text_logits, logits, atol=0, rtol=0)


def test_bad_intervals_give_one_line_errors_naming_the_valid_values(pipe, tiny_pipe_dir, tmp_path):
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            pipe.caption(_clip(), num_inference_steps=2, video_cache_interval=bad)
    with pytest.raises(ValueError, match="applies to captioning"):
        VideoStream(pipe.scheduler, shape=(4, 2, 4, 4), cache_interval=4)
    clip = tmp_path / "c.mp4"
    write_video(str(clip), _clip(), fps=8)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "univigu",
            "caption",
            "--model",
            tiny_pipe_dir,
            "--video",
            str(clip),
            "--video-cache-interval",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "integer >= 1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def bundled():
    p = UniViGUPipeline.from_pretrained(BUNDLED)
    p.set_progress_bar_config(disable=True)
    return p


def _scene(color, background, x0, dx):
    frames = np.zeros((17, 64, 64, 3), np.uint8)
    frames[:] = background
    for i in range(17):
        frames[i, 24:40, x0 + dx * i : x0 + dx * i + 16] = color
    return frames


def test_a_batch_of_clips_captions_the_same_as_one_by_one(bundled):
    clips = [_scene((220, 30, 30), (0, 0, 0), 4, 2), _scene((30, 30, 220), (200, 200, 200), 40, -2)]
    batch = bundled.caption(clips, num_inference_steps=8)
    one_by_one = [bundled.caption(c, num_inference_steps=8).text for c in clips]
    assert batch.text == one_by_one and len(set(one_by_one)) == 2  # two real, different captions
    assert batch.notes == [[], []]


def test_caption_a_folder_resumes_and_skips_a_corrupt_clip(tiny_pipe_dir, tmp_path, capsys):
    from training.data import read_metadata

    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    for n in range(3):
        write_video(str(videos / f"{n}.mp4"), _clip(n), fps=8)
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "data" / "metadata.jsonl"
    args = [
        "caption",
        "--model",
        tiny_pipe_dir,
        "--videos",
        str(videos),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "2",
    ]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "could not decode" in captured.err
    assert "captioned 3, skipped 0 (already in the output), failed 1" in captured.out
    seed = int(re.search(r"\(seed (\d+)\)", captured.out).group(1))  # drawn once for the folder, and reported
    rows = read_metadata(out.parent)  # the training data format
    assert sorted(r["video"] for r in rows) == [f"videos/{n}.mp4" for n in range(3)]
    pipe = load_pipeline(tiny_pipe_dir)  # each row holds the library's caption of its clip
    for r in rows:
        expected = pipe.caption(read_video(str(out.parent / r["video"]))[0], num_inference_steps=2, seed=seed).text
        assert r["prompt"] == r["caption"] == expected
    first = out.read_text()

    assert cli_main(args) == 0  # everything done: nothing redone, nothing appended
    assert "captioned 0, skipped 3 (already in the output), failed 1" in capsys.readouterr().out
    assert out.read_text() == first

    lines = first.splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])  # an interrupted run: a torn last row
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    assert "captioned 1, skipped 2" in captured.out and "torn" in captured.err
    assert sorted(out.read_text().splitlines()) == sorted(first.splitlines())

    assert (
        cli_main(["caption", "--model", tiny_pipe_dir, "--videos", str(tmp_path / "none" / "*.mp4"), "--out", str(out)])
        == 2
    )
    assert "no video files" in capsys.readouterr().err
    assert cli_main(["caption", "--model", tiny_pipe_dir, "--videos", str(videos)]) == 2
    assert "--out" in capsys.readouterr().err
