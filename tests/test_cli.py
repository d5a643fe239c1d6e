"""`univigu` CLI round trip on a tiny random pipeline saved to disk."""

import json
import subprocess
import sys

from univigu.loading import load_pipeline
from univigu.video_io import read_video


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "univigu", *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_generate_caption_and_joint_round_trip(tiny_pipe_dir, tmp_path):
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

    code, out, err = run("caption", "--model", tiny_pipe_dir, "--video", str(clip), "--steps", "2", "--json")
    assert code == 0, err
    pipe = load_pipeline(tiny_pipe_dir)  # the command's caption is the library's, for the same clip and the seed
    result = json.loads(out)  # drawn at random without --seed, and reported
    assert result["caption"] == pipe.caption(frames, num_inference_steps=2, seed=result["seed"]).text

    joint = tmp_path / "joint.gif"
    code, out, err = run(
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


def test_errors_are_one_line_messages(tiny_pipe_dir, tmp_path):
    code, _, err = run("t2v", "--model", str(tmp_path / "nope"), "--prompt", "a", "--out", str(tmp_path / "x.mp4"))
    assert code == 2 and "no such file or folder" in err and "Traceback" not in err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    code, out, _ = run("caption", "--model", tiny_pipe_dir, "--video", str(broken), "--json")
    assert code == 2 and "could not decode" in json.loads(out)["error"]
    code, _, err = run(
        "t2v", "--model", tiny_pipe_dir, "--prompt", "a", "--frames", "6", "--out", str(tmp_path / "y.mp4")
    )
    assert code == 2 and "1 + 4k" in err
    assert not (tmp_path / "y.mp4").exists()


def test_unknown_words_and_unreadable_checkpoints_are_one_line(tiny_pipe_dir, tmp_path):
    code, _, err = run(
        "t2v", "--model", tiny_pipe_dir, "--prompt", "a zebra circle gallops", "--out", str(tmp_path / "z.mp4")
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "does not know 'zebra', 'gallops'; rephrase without them" in err and "circle" in err  # it lists its words
    assert not (tmp_path / "z.mp4").exists()

    config = tmp_path / "wan.json"
    config.write_text(json.dumps({"_class_name": "WanTransformer3DModel", "attention_head_dim": 32}))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04not really a pickle" * 10)
    code, _, err = run(
        "convert-official", "--checkpoint", str(garbage), "--wan", str(config), "--out", str(tmp_path / "o")
    )
    assert code == 2 and err.count("\n") == 1 and "is not a torch checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
