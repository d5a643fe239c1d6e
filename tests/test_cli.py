"""The `univigu` command on a tiny random pipeline saved to disk: a round trip as a user runs it (a fresh
interpreter), the rest in this process."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from univigu import cli
from univigu.clip_size import ClipSizes
from univigu.loading import load_pipeline
from univigu.video_io import read_video


def run(*args):
    """The command as a user runs it: a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "univigu", *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_generate_caption_and_joint_round_trip(tiny_pipe_dir, tmp_path, capsys):
    """A clip made by ``python -m univigu t2v`` in a fresh interpreter; caption and joint generation in this one."""
    clip = tmp_path / "clip.mp4"
    code, out, err = run(
        "t2v",
        "--model",
        tiny_pipe_dir,
        "--prompt",
        "a red circle moves left",
        "--out",
        str(clip),
        "--steps",
        "2",
        "--seed",
        "3",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out) == {"video": str(clip), "frames": 5, "seed": 3}
    frames, fps = read_video(clip)
    assert frames.shape == (5, 16, 16, 3) and fps == 8

    code, out, err = run_main(
        capsys, "caption", "--model", tiny_pipe_dir, "--video", str(clip), "--steps", "2", "--json"
    )
    assert code == 0, err
    pipe = load_pipeline(tiny_pipe_dir)  # the command's caption is the library's, for the same clip and the seed
    result = json.loads(out)  # drawn at random without --seed, and reported
    assert result["caption"] == pipe.caption(frames, num_inference_steps=2, seed=result["seed"]).text

    joint = tmp_path / "joint.gif"
    code, out, err = run_main(
        capsys,
        "joint",
        "--model",
        tiny_pipe_dir,
        "--prompt",
        "a blue square stays still",
        "--out",
        str(joint),
        "--steps",
        "2",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == 5
    assert result["caption"] == pipe.joint("a blue square stays still", num_inference_steps=2, seed=result["seed"]).text
    assert read_video(joint)[0].shape[0] == 5


def run_main(capsys, *args):
    """The command in this process (no interpreter start): its exit code, stdout and stderr."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_weights(monkeypatch):
    """Records every attempt to load a pipeline's weights, and refuses it."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("weights loaded")

    monkeypatch.setattr(cli, "load_pipeline", spy)
    return calls


def test_a_broken_clip_and_unknown_words_are_one_line(tiny_pipe_dir, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    code, out, _ = run_main(capsys, "caption", "--model", tiny_pipe_dir, "--video", str(broken), "--json")
    assert code == 2 and json.loads(out)["error"].startswith("--video: could not decode broken.mp4")

    code, _, err = run_main(
        capsys, "t2v", "--model", tiny_pipe_dir, "--prompt", "a zebra circle gallops", "--out", str(tmp_path / "z.mp4")
    )
    assert code == 2 and err.count("\n") == 1
    assert "does not know 'zebra', 'gallops'; rephrase without them" in err and "circle" in err  # it lists its words
    assert not (tmp_path / "z.mp4").exists()


def test_an_unreadable_checkpoint_is_one_line(tmp_path, capsys):
    config = tmp_path / "wan.json"
    config.write_text(json.dumps({"_class_name": "WanTransformer3DModel", "attention_head_dim": 32}))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not really a pickle" * 10)
    code, _, err = run_main(
        capsys, "convert-official", "--checkpoint", str(garbage), "--wan", str(config), "--out", str(tmp_path / "o")
    )
    assert code == 2 and err.count("\n") == 1 and "is not a torch checkpoint" in err
    assert not (tmp_path / "o").exists()

    given = {"--checkpoint": str(garbage), "--wan": str(config), "--out": str(tmp_path / "o")}
    for flag, value, says in (
        ("--checkpoint", str(tmp_path / "missing.pth"), "no such file"),
        ("--wan", str(tmp_path / "missing"), "no such file or folder"),
        ("--vocab-size", "0", "at least 1"),
    ):
        args = [part for item in {**given, flag: value}.items() for part in item]
        code, _, err = run_main(capsys, "convert-official", *args)
        assert code == 2 and err.startswith(f"error: {flag}") and says in err and err.count("\n") == 1, err


def _bad_arguments(tmp: Path) -> list[tuple[list[str], str, str]]:
    """(arguments after --model, the flag the message names, what it says)."""
    (tmp / "empty").mkdir(exist_ok=True)
    t2v = ["t2v", "--prompt", "a red circle moves left", "--steps", "1"]
    out = ["--out", str(tmp / "clip.mp4")]
    return [
        (t2v + ["--out", str(tmp / "x.txt")], "--out", "must name a .mp4 or .gif file"),
        (["joint", "--prompt", "a red circle", "--out", str(tmp / "x.webm")], "--out", "must name a .mp4 or .gif file"),
        (t2v + ["--out", str(tmp / "missing" / "clip.mp4")], "--out", "no such folder"),
        (t2v + ["--out", str(tmp / "empty")], "--out", "is a folder"),
        (t2v + out + ["--steps", "0"], "--steps", "between 1 and 1000"),
        (t2v + out + ["--steps", "1001"], "--steps", "between 1 and 1000"),
        (t2v + out + ["--guidance", "0.5"], "--guidance", "at least 1"),
        (t2v + out + ["--guidance", "nan"], "--guidance", "at least 1"),
        (t2v + out + ["--seed", "-1"], "--seed", "between 0 and 4294967295"),
        (t2v + out + ["--seed", str(2**32)], "--seed", "between 0 and 4294967295"),
        (t2v + out + ["--frames", "0"], "--frames", "1 + 4k"),
        (t2v + out + ["--frames", "6"], "--frames", "1 + 4k (e.g. 5)"),
        (t2v + out + ["--height", "0"], "--height", "positive multiple of 8"),
        (t2v + out + ["--width", "12"], "--width", "positive multiple of 8 (e.g. 8)"),
        (t2v + out + ["--cache", "bogus"], "--cache", "unknown step cache"),
        (t2v[:2] + [" "] + out, "--prompt", "empty"),
        (t2v + out + ["--device", "nonsense"], "--device", "unknown device"),
        (["caption", "--videos", "/nonexistent/", "--out", str(tmp / "m.jsonl")], "--videos", "no such file or folder"),
        (["caption", "--videos", str(tmp / "empty"), "--out", str(tmp / "m.jsonl")], "--videos", "no video files"),
        (["caption", "--videos", str(tmp / "empty"), "--out", str(tmp / "no" / "m.jsonl")], "--out", "no such folder"),
        (
            ["caption", "--videos", str(tmp), "--out", str(tmp / "m.jsonl"), "--batch-size", "0"],
            "--batch-size",
            "at least 1",
        ),
        (["caption", "--video", str(tmp / "missing.mp4")], "--video", "no such file"),
        (["caption", "--video", str(tmp / "c.mp4"), "--video-cache-interval", "0"], "--video-cache-interval", ">= 1"),
        (["caption", "--video", str(tmp / "c.mp4"), "--fill", "a red circle"], "--fill", "has no blank"),
        (["caption", "--videos", str(tmp), "--out", str(tmp / "m.jsonl"), "--fill", "a _"], "--fill", "one clip"),
    ]


def test_bad_arguments_are_one_line_naming_the_flag_before_any_weights_load(
    tiny_pipe_dir, tmp_path, capsys, no_weights
):
    for args, flag, says in _bad_arguments(tmp_path):
        code, out, err = run_main(capsys, *args, "--model", tiny_pipe_dir)
        assert code == 2 and out == "", (args, err)
        assert err.startswith(f"error: {flag}") and err.count("\n") == 1 and says in err, (args, err)
    assert no_weights == []  # the spy: not one run got as far as loading the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nor wrote anything


def test_a_missing_model_is_named_before_anything_loads(tmp_path, capsys, no_weights):
    code, _, err = run_main(capsys, "t2v", "--model", str(tmp_path / "nope"), "--prompt", "a", "--out", "x.mp4")
    assert code == 2 and err == f"error: --model: no such file or folder: {tmp_path / 'nope'}\n" and no_weights == []


def test_the_drawn_seed_is_printed_and_reproduces_the_run(tiny_pipe_dir, tmp_path, capsys):
    def seed_in(line: str) -> str:
        match = re.search(r"\(seed (\d+)\)$", line)
        assert match, line
        return match[1]

    model = ["--model", tiny_pipe_dir, "--steps", "2"]
    prompt = ["--prompt", "a red circle moves left"]
    for command, lines in (("t2v", 1), ("joint", 2)):  # joint: the caption on a second line
        first, again = tmp_path / f"{command}.mp4", tmp_path / f"{command}-again.mp4"
        code, out, err = run_main(capsys, command, *model, *prompt, "--out", str(first))
        seed = seed_in(out.splitlines()[0])
        assert code == 0 and out.startswith(f"wrote {first} (seed {seed})\n") and len(out.splitlines()) == lines
        assert "warning" not in err  # the trained size: nothing to warn about
        code, out_again, _ = run_main(capsys, command, *model, *prompt, "--out", str(again), "--seed", seed)
        assert code == 0 and out_again == out.replace(str(first), str(again))
        assert (read_video(again)[0] == read_video(first)[0]).all()

    code, out, _ = run_main(capsys, "caption", *model, "--video", str(first))
    assert code == 0 and len(out.splitlines()) == 2  # the caption, then its seed
    code, out_again, _ = run_main(capsys, "caption", *model, "--video", str(first), "--seed", seed_in(out.strip()))
    assert code == 0 and out_again == out


def test_help_is_plain_text(capsys):
    for command in ([], ["t2v"], ["joint"], ["caption"], ["convert-official"]):
        with pytest.raises(SystemExit) as exit:
            cli.main([*command, "--help"])
        text = capsys.readouterr().out
        assert exit.value.code == 0 and text.startswith("usage: univigu")
        assert not re.search(r"``|:(class|func|meth):|\*\*", text), text


def test_a_clip_larger_than_the_model_was_trained_on_is_warned_about(tiny_pipe_dir, tmp_path, capsys):
    sizes = ClipSizes.read(tiny_pipe_dir)
    f, h, w = sizes.trained
    bigger = (f + sizes.frames_step, h, w + sizes.size_step)
    clip = tmp_path / "big.mp4"
    code, out, err = run_main(
        capsys,
        "t2v",
        "--model",
        tiny_pipe_dir,
        "--prompt",
        "a red circle",
        "--steps",
        "1",
        "--out",
        str(clip),
        *("--frames", str(bigger[0]), "--width", str(bigger[2])),
    )
    assert code == 0 and out.startswith(f"wrote {clip}")
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning == [
        f"warning: {bigger[0]} frames at {bigger[2]}x{bigger[1]} is larger than this model was trained on "
        f"({f} frames at {w}x{h}); expect a poorer clip, or pass --frames {f} --height {h} --width {w} or less"
    ]
    assert read_video(clip)[0].shape == (*bigger, 3)


def test_fill_keeps_the_template_and_fills_its_blanks(tiny_pipe_dir, tmp_path, capsys):
    pipe = load_pipeline(tiny_pipe_dir)
    pipe.set_progress_bar_config(disable=True)
    clip = tmp_path / "c.mp4"
    code, _, _ = run_main(
        capsys, "t2v", "--model", tiny_pipe_dir, "--steps", "1", "--prompt", "a red circle", "--out", str(clip)
    )
    template = "a _ circle moves _ ."
    code, out, err = run_main(
        capsys,
        "caption",
        "--model",
        tiny_pipe_dir,
        "--steps",
        "3",
        "--video",
        str(clip),
        "--fill",
        template,
        "--seed",
        "4",
    )
    assert code == 0, err
    want = pipe.caption(read_video(clip)[0], num_inference_steps=3, seed=4, template=template).text
    assert out.splitlines()[0] == want  # the library's fill for the same clip and seed
    code, _, err = run_main(capsys, "caption", "--model", tiny_pipe_dir, "--video", str(clip), "--fill", "a _*99")
    assert code == 2 and err.startswith("error: --fill:") and "holds at most" in err and err.count("\n") == 1
