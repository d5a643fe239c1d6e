"""The studio (app.py) end to end over its API: a real `python app.py` process driven by gradio_client.

The app runs on a tiny random pipeline built into a temp folder (deterministic, seconds per run); one
test loads the bundled ShapesWorld model and is skipped, saying why, when that model is absent.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from univigu.loading import load_pipeline  # noqa: E402
from univigu.settings import MAX_SEED  # noqa: E402
from univigu.studio.request import RunRequest  # noqa: E402
from univigu.video_io import read_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "assets" / "univigu-shapesworld"
EXAMPLES = REPO / "assets" / "examples"
TINY_SIZE = (5, 16, 16)  # frames, height, width of the test model


# ------------------------------------------------------------------------------------------------
# Harness (also used by test_app_browser.py)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py ARGS` on a free port; `.url`, `.alive`, `.log()`; stop() ends it."""

    def __init__(self, args: list[str], workdir: Path, env: dict | None = None, timeout: float = 180):
        self.port, self.workdir = free_port(), workdir
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = workdir / f"app-{self.port}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
        cmd = [
            sys.executable,
            str(REPO / "app.py"),
            *args,
            "--port",
            str(self.port),
            "--output-dir",
            str(workdir / f"out-{self.port}"),
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not serve within {timeout}s:\n{self.log()[-3000:]}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def build_tiny_model(directory: Path) -> Path:
    from univigu.tiny import tiny_pipeline

    tiny_pipeline(size=TINY_SIZE).save_pretrained(directory)
    return directory


def make_client(url: str, download_dir: Path) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(download_dir))


# ------------------------------------------------------------------------------------------------
# Fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studio-api")


@pytest.fixture(scope="module")
def client(app, workdir):
    return make_client(app.url, workdir / "downloads")


@pytest.fixture(scope="module")
def clips(workdir) -> dict[str, Path]:
    """Test clips: one per container, and the bad ones."""
    from univigu.video_io import write_video

    d = workdir / "clips"
    d.mkdir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, 24, 32, 3), dtype=np.uint8)
    out = {}
    for ext, kwargs in [
        ("webm", {"codec": "libvpx-vp9"}),
        ("avi", {"codec": "mpeg4"}),
        ("mov", {"codec": "libx264"}),
    ]:
        out[ext] = d / f"clip.{ext}"
        iio.imwrite(out[ext], frames, fps=8, macro_block_size=1, **kwargs)
    out["mp4"] = Path(write_video(d / "clip.mp4", frames, fps=8))
    out["gif"] = Path(write_video(d / "clip.gif", frames, fps=8))
    out["one_frame"] = Path(write_video(d / "one.mp4", frames[:1], fps=8))
    out["corrupt"] = d / "corrupt.mp4"
    out["corrupt"].write_bytes(rng.bytes(4096))
    out["text"] = d / "notes.mp4"
    out["text"].write_text("meeting notes, not a video\n" * 20)
    out["long"] = d / "long.mp4"
    iio.imwrite(out["long"], np.zeros((1500, 16, 16, 3), np.uint8), fps=30, codec="libx264", macro_block_size=1)
    out["huge"] = d / "huge.mp4"
    iio.imwrite(out["huge"], np.zeros((2, 2400, 4000, 3), np.uint8), fps=8, codec="libx264", macro_block_size=1)
    import imageio_ffmpeg

    def ffmpeg(*args: str) -> None:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)

    out["zero_frames"] = d / "zero.mp4"  # a video stream with no frames in it
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16:r=8", "-frames:v", "0", "-c:v", "libx264", str(out["zero_frames"]))
    out["audio_only"] = d / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.5", "-c:a", "aac", str(out["audio_only"]))
    return out


def good_request(client) -> None:
    """A request that must still succeed after whatever came before."""
    video, trajectory, _ = client.predict(prompt="a red circle moves left", seed=1, steps=2, api_name="/text_to_video")
    assert Path(video).is_file() and trajectory["num_steps"] == 2


def decoded(path) -> np.ndarray:
    return iio.imread(path, plugin="FFMPEG")


# ------------------------------------------------------------------------------------------------
# The API end to end
def test_api_names_and_parameters(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {name: [p["parameter_name"] for p in info["parameters"]] for name, info in endpoints.items()}
    assert {"/text_to_video", "/caption", "/joint", "/cancel"} <= set(params)
    for name, needed in [("/text_to_video", "prompt"), ("/joint", "prompt"), ("/caption", "video")]:
        assert needed in params[name] and "seed" in params[name], params[name]
    assert not any("scrub" in n or "load_example" in n for n in params), "UI-only events leak into the API"


def test_served_offline_without_analytics(app):
    with urllib.request.urlopen(app.url + "config", timeout=10) as response:
        config = json.load(response)
    assert config["analytics_enabled"] is False
    assert "gradio.live" not in app.log() and "public URL" not in app.log()
    # the log names our flag, not launch()'s argument
    assert "To create a public link, run with --share." in app.log() and "share=True" not in app.log()
    assert f"Running on local URL:  http://127.0.0.1:{app.port}" in app.log()


def test_header_names_the_model_not_its_path(app):
    with urllib.request.urlopen(app.url + "config", timeout=10) as response:
        page = response.read().decode()
    assert "Model `tiny-model`" in page  # the folder's name ...
    assert str(app.workdir) not in page  # ... never where it lies on the server


def test_text_to_video(client):
    video, trajectory, status = client.predict(
        prompt="a red circle moves left", seed=7, steps=4, guidance=3.0, api_name="/text_to_video"
    )
    frames = decoded(video)
    assert frames.shape == (TINY_SIZE[0], TINY_SIZE[1], TINY_SIZE[2], 3)
    assert trajectory["task"] == "text_to_video" and trajectory["seed"] == 7 and trajectory["num_steps"] == 4
    steps = trajectory["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert all(s["video_delta"] > 0 for s in steps) and all(s["tokens"] is None for s in steps)
    assert "done" in status
    # The same seed gives the same clip; another seed another one.
    again, _, _ = client.predict(
        prompt="a red circle moves left", seed=7, steps=4, guidance=3.0, api_name="/text_to_video"
    )
    other, _, _ = client.predict(
        prompt="a red circle moves left", seed=8, steps=4, guidance=3.0, api_name="/text_to_video"
    )
    assert np.array_equal(decoded(again), frames)
    assert not np.array_equal(decoded(other), frames)


def test_text_to_video_smaller_size(client):
    video, trajectory, _ = client.predict(
        prompt="a blue square moves up",
        seed=0,
        steps=2,
        num_frames=1,
        height=8,
        width=16,
        api_name="/text_to_video",
    )
    assert decoded(video).shape == (1, 8, 16, 3)


def test_joint(client):
    video, caption, trajectory, status = client.predict(
        prompt="a green triangle moves right", seed=3, steps=5, api_name="/joint"
    )
    assert decoded(video).shape[0] == TINY_SIZE[0]
    steps = trajectory["steps"]
    assert len(steps) == 5 and trajectory["text"] == caption == steps[-1]["text"]
    for s in steps:
        n = len(s["tokens"])
        assert n == len(s["confidence"]) == len(s["changed"]) > 0
        assert s["num_changed"] == sum(s["changed"])
        assert all(0.0 <= c <= 1.0 for c in s["confidence"]) and s["video_delta"] is not None
    assert steps[0]["num_changed"] == len(steps[0]["tokens"])  # the first step changes every position
    assert "<mask>" in steps[0]["tokens"] or steps[0]["tokens"] != steps[-1]["tokens"]


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi", "mov", "gif"])
def test_caption_any_container(client, clips, ext):
    caption, notes, seen, trajectory, status = client.predict(
        video=handle_file(str(clips[ext])), seed=0, steps=3, api_name="/caption"
    )
    assert trajectory["text"] == caption == trajectory["steps"][-1]["text"]
    assert "decoded 8 frames of 32x24" in notes
    assert "sampled 5 of 8 frames evenly" in notes and "resized 32x24 to 16x16 after a centre crop" in notes
    assert decoded(seen).shape == (5, 16, 16, 3)  # what the model saw, as a clip
    assert len(trajectory["steps"]) == 3 and trajectory["steps"][0]["tokens"] is not None


def test_caption_example_clip_with_hint(client):
    examples = json.loads((EXAMPLES / "examples.json").read_text())
    clip = EXAMPLES / examples[0]["file"]
    caption, notes, _, trajectory, _ = client.predict(
        video=handle_file(str(clip)), seed=2, steps=3, prompt="a red circle", api_name="/caption"
    )
    assert trajectory["prompt"] == "a red circle" and trajectory["text"] == caption


def test_caption_fill_in(client, clips):
    template = "a _ circle moves _"
    caption, _, _, trajectory, _ = client.predict(
        video=handle_file(str(clips["mp4"])), seed=0, steps=3, template=template, api_name="/caption"
    )
    assert caption.startswith("a") and caption == trajectory["steps"][-1]["text"]
    for k, step in enumerate(trajectory["steps"]):  # the template's words held, the blanks denoised
        held, tokens = step["held"], step["tokens"]
        assert len(held) == len(tokens) and held[:5] == [True, False, True, True, False]
        assert [tokens[0], tokens[2], tokens[3]] == ["a", "circle", "moves"]
        assert k == 0 or not any(changed for changed, kept in zip(step["changed"], held) if kept)
    plain, *_ = client.predict(video=handle_file(str(clips["mp4"])), seed=0, steps=3, api_name="/caption")
    assert plain  # an old caller, without the trailing template: free captioning as before
    with pytest.raises(AppError) as info:
        client.predict(video=handle_file(str(clips["mp4"])), seed=0, steps=3, template="a red", api_name="/caption")
    assert str(info.value) == "Fill in: the template has no blank: mark each word to fill with _ (or _*N for N words)"
    with pytest.raises(AppError, match=r"^Fill in: the model does not know 'zebra'"):
        client.predict(video=handle_file(str(clips["mp4"])), seed=0, steps=3, template="a _ zebra", api_name="/caption")
    good_request(client)


# ------------------------------------------------------------------------------------------------
# Bad input: a short message each, and the next request works
LONG_PROMPT_WORDS = " ".join(["a red circle moves left ,"] * 4)  # 24 known words: more tokens than the model holds

BAD_TEXT = [
    ("empty prompt", {"prompt": ""}, "Prompt is empty"),
    ("blank prompt", {"prompt": "   \n "}, "Prompt is empty"),
    ("overlong prompt", {"prompt": "red " * 600}, "characters long"),
    ("too many tokens", {"prompt": LONG_PROMPT_WORDS}, "too long"),
    ("unknown words", {"prompt": "a purple blob moves left"}, "Prompt: the model does not know 'purple', 'blob'"),
    ("steps 0", {"steps": 0}, "Steps"),
    ("steps too many", {"steps": 101}, "Steps: Value 101 is greater than maximum value 100"),
    ("guidance low", {"guidance": 0.5}, "Guidance"),
    ("guidance high", {"guidance": 16}, "Guidance"),
    ("seed negative", {"seed": -1}, "Seed"),
    ("seed huge", {"seed": 2**32}, "Seed"),
    ("frames not 1+4k", {"num_frames": 3}, "Frames must be 1 + 4k"),
    ("frames too many", {"num_frames": 9}, "Frames"),
    ("height not a multiple", {"height": 12}, "Height must be a positive multiple of 8"),
    ("width too big", {"width": 64}, "Width"),
]


@pytest.mark.parametrize("api", ["/text_to_video", "/joint"])
@pytest.mark.parametrize(("case", "override", "message"), BAD_TEXT, ids=[c[0] for c in BAD_TEXT])
def test_bad_generation_input(client, app, api, case, override, message):
    kwargs = {"prompt": "a red circle moves left", "seed": 0, "steps": 2, **override}
    with pytest.raises(AppError) as info:
        client.predict(api_name=api, **kwargs)
    text = str(info.value)
    assert message in text, text
    assert "Traceback" not in text and len(text) < 600
    if case == "unknown words":
        assert "It knows:" in text and "circle" in text
    good_request(client)
    assert app.alive


BAD_VIDEOS = [
    ("corrupt", "corrupt or not a video"),
    ("text", "is a text file, not a video"),
    ("zero_frames", "has no video frames"),
    ("audio_only", "has no video frames"),
    ("one_frame", "has only 1 frame"),
    ("long", "Trim it to a shorter clip"),
    ("huge", "is 4000x2400"),
]


@pytest.mark.parametrize(("name", "message"), BAD_VIDEOS, ids=[c[0] for c in BAD_VIDEOS])
def test_bad_video(client, app, clips, name, message):
    start = time.monotonic()
    with pytest.raises(AppError) as info:
        client.predict(video=handle_file(str(clips[name])), seed=0, steps=2, api_name="/caption")
    text = str(info.value)
    assert message in text, text
    assert "Traceback" not in text
    assert time.monotonic() - start < 30  # refused fast, not decoded into memory
    good_request(client)
    assert app.alive


def test_caption_without_video(client):
    with pytest.raises(AppError, match="No video"):
        client.predict(video=None, seed=0, steps=2, api_name="/caption")
    good_request(client)


def test_caption_out_of_range_steps(client, clips):
    with pytest.raises(AppError, match="Steps"):
        client.predict(video=handle_file(str(clips["mp4"])), seed=0, steps=1000, api_name="/caption")
    good_request(client)


def test_cancel_mid_run(client, app):
    job = client.submit(prompt="a red circle moves left", seed=0, steps=100, api_name="/joint")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 2 and time.monotonic() < deadline:  # progress is streaming
        time.sleep(0.02)
    assert len(job.outputs()) >= 2, "no progress streamed"
    status = client.predict(api_name="/cancel")
    assert "Cancelled run #" in status and "of 100" in status
    with pytest.raises(AppError) as info:
        job.result(timeout=60)
    text = str(info.value)
    assert text.startswith("Cancelled") and "Press Run to start again" in text
    stopped_at = int(text.split("after step ")[1].split(" ")[0])
    assert 1 <= stopped_at < 100
    good_request(client)
    assert app.alive


def test_cancel_when_idle(client):
    assert "Nothing is running" in client.predict(api_name="/cancel")


def test_client_side_cancel_leaves_server_usable(client, app):
    job = client.submit(prompt="a red circle moves left", seed=0, steps=100, api_name="/joint")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.cancel()
    good_request(client)
    assert app.alive


# ------------------------------------------------------------------------------------------------
# Cancel ahead of a full queue, and sessions that go away
@pytest.fixture(scope="module")
def busy_app(workdir):
    """A studio that runs one request at a time and lets two more wait (--max-queue 2)."""
    model = workdir / "tiny-model"
    if not (model / "model_index.json").exists():
        build_tiny_model(model)
    server = AppServer(["--model", str(model), "--concurrency", "1", "--max-queue", "2"], workdir)
    yield server
    server.stop()


def _waiting(app) -> int:
    with urllib.request.urlopen(app.url + "gradio_api/queue/status", timeout=10) as response:
        return json.load(response)["queue_size"]


def _until(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _started(app) -> int:
    """Runs the server started computing (it logs each)."""
    return len(re.findall(r"run #\d+ started \(", app.log()))


def test_cancel_gets_through_a_full_queue_and_takes_the_waiting_run_too(busy_app, workdir):
    from gradio_client.utils import QueueError

    mine = make_client(busy_app.url, workdir / "downloads-mine")
    theirs = make_client(busy_app.url, workdir / "downloads-theirs")
    long_run = {"prompt": "a red circle moves left", "seed": 0, "steps": 100, "api_name": "/joint"}
    started = _started(busy_app)
    running = mine.submit(**long_run)
    _until(lambda: len(running.outputs()) >= 2, what="the first run to stream progress")
    waiting = mine.submit(**long_run)
    other = theirs.submit(prompt="a blue square moves up", seed=1, steps=2, api_name="/text_to_video")
    _until(lambda: _waiting(busy_app) == 2, what="two runs waiting")
    with pytest.raises(QueueError):  # the queue is full: a third run is turned away ...
        theirs.predict(prompt="a blue square moves up", seed=2, steps=2, api_name="/text_to_video")

    status = mine.predict(api_name="/cancel")  # ... a cancel is not (and the page posts it past the queue)
    with urllib.request.urlopen(busy_app.url + "config", timeout=10) as response:
        dependencies = json.load(response)["dependencies"]
    assert [d["queue"] for d in dependencies if d.get("api_name") == "cancel"] == [False]
    assert "Cancelled run #" in status and "of 100" in status
    with pytest.raises(AppError, match=r"^Cancelled \(stopped after step"):
        running.result(timeout=60)
    with pytest.raises(AppError, match=r"^Cancelled \(before it started") as info:
        waiting.result(timeout=60)  # left the queue already cancelled: no step, nothing loaded
    assert "Press Run to start again" in str(info.value)
    assert waiting.outputs() == []
    video, trajectory, _ = other.result(timeout=60)  # another session's run is untouched
    assert trajectory["num_steps"] == 2 and Path(video).is_file()
    assert _started(busy_app) == started + 2  # the cancelled run that waited never started
    # A run submitted after the cancel runs as usual
    video, trajectory, _ = mine.predict(prompt="a red circle moves left", seed=0, steps=2, api_name="/text_to_video")
    assert trajectory["num_steps"] == 2
    assert busy_app.alive


CLOSED_TAB = """
import sys, time
from gradio_client import Client
client = Client(sys.argv[1], verbose=False, analytics_enabled=False, download_files=False)
kwargs = {"prompt": "a red circle moves left", "seed": 0, "steps": 100, "api_name": "/joint"}
running = client.submit(**kwargs)
while len(running.outputs()) < 2:
    time.sleep(0.05)
waiting = client.submit(**kwargs)
print("submitted", flush=True)
time.sleep(600)
"""


def test_a_closed_session_leaves_nothing_running_or_waiting(busy_app, workdir):
    started = _started(busy_app)
    tab = subprocess.Popen([sys.executable, "-c", CLOSED_TAB, busy_app.url], stdout=subprocess.PIPE, text=True)
    try:
        assert tab.stdout.readline().strip() == "submitted"
        _until(lambda: _waiting(busy_app) == 1, what="the second run to wait")
    finally:
        tab.kill()  # the tab goes: every connection of its session drops at once
        tab.wait()
    _until(lambda: "ended (cancelled: stopped after step" in busy_app.log(), timeout=60, what="the running run to stop")
    _until(lambda: _waiting(busy_app) == 0, timeout=30, what="the waiting run to leave the queue")
    good_request(make_client(busy_app.url, workdir / "downloads-after"))
    assert _started(busy_app) == started + 2  # the closed tab's first run and ours; its second never ran
    assert busy_app.alive


def test_upload_over_the_size_limit_names_the_field(client, workdir):
    big = workdir / "too-big.mp4"
    with open(big, "wb") as f:  # sparse: larger than the limit without filling the disk
        f.truncate(201 * 2**20)
    with pytest.raises(ValueError) as info:
        client.predict(video=handle_file(str(big)), seed=0, steps=2, api_name="/caption")
    text = str(info.value)
    assert "Clip to describe" in text and " set in  component" not in text, text
    assert len(text.splitlines()) == 1


def test_settings(client):
    # An undocumented endpoint (positional: device, dtype, offload, vae_tiling, preview).
    with pytest.raises(AppError, match="Offload: .sequential. offload .*no GPU"):  # not offered on a CPU machine
        client.predict("cpu", "float32", "sequential", False, "auto", api_name="/apply_settings")
    applied = client.predict("cpu", "float32", "none", True, "project", api_name="/apply_settings")
    assert "VAE tiling" in applied and "previews project" in applied
    try:
        good_request(client)
    finally:
        client.predict("cpu", "float32", "none", False, "auto", api_name="/apply_settings")
    good_request(client)


def test_step_cache_setting(client):
    # An undocumented endpoint, run by the page's Apply after /apply_settings
    with pytest.raises(AppError, match="unknown step cache 'warp'; valid: none, first_block"):
        client.predict("warp", api_name="/apply_step_cache")
    try:
        applied = client.predict("first_block", api_name="/apply_step_cache")
        assert "step cache first_block:0.05" in applied  # the default threshold, named
        good_request(client)
        assert "step cache first_block:0.05" in client.predict(
            "cpu", "float32", "none", False, "auto", api_name="/apply_settings"
        )  # the other settings keep it
    finally:
        assert "step cache none" in client.predict("none", api_name="/apply_step_cache")
    good_request(client)


def test_caption_clip_cache_interval(client, clips):
    for every in (1, 3):
        caption, _, _, trajectory, _ = client.predict(
            video=handle_file(str(clips["mp4"])), seed=0, steps=3, video_cache_interval=every, api_name="/caption"
        )
        assert len(trajectory["steps"]) == 3
    with pytest.raises(AppError, match="Clip cache interval: Value 0 is less than minimum value 1"):
        client.predict(
            video=handle_file(str(clips["mp4"])), seed=0, steps=3, video_cache_interval=0, api_name="/caption"
        )


def test_missing_model_is_one_line(workdir):
    env = {**os.environ, "UNIVIGU_MODEL": str(workdir / "no-such-model"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py"), "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2
    assert "no-such-model" in result.stderr and "error:" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------
# The engine in-process: previews and the projection
def test_projection_recovers_a_linear_latent_space():
    import torch

    from univigu.studio.preview import _synthetic_clips, fit_projection_from

    rng = np.random.default_rng(0)
    mix = torch.from_numpy(rng.normal(size=(3, 6))).float()  # a fake VAE: 6 latent channels, linear in RGB
    clips = _synthetic_clips(32, 5)
    pooled = torch.nn.functional.avg_pool2d(
        torch.from_numpy(clips[:, 0]).float().permute(0, 3, 1, 2) / 127.5 - 1, 8
    )  # [N, 3, 4, 4]
    latents = torch.einsum("nchw,cd->ndhw", pooled, mix)[:, :, None].expand(-1, -1, 2, -1, -1)
    projection = fit_projection_from(latents, clips, temporal=4, spatial=8)
    frames = projection(latents[0])
    assert frames.shape == (5, 32, 32, 3)
    assert np.abs(frames.astype(int) - clips[0].astype(int)).mean() < 3  # solid colour: exact up to rounding


def test_a_blank_seed_is_drawn_and_a_given_one_kept(tmp_path):
    from univigu.offload import Placement
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    drawn = {studio.checks.seed(blank) for blank in (None, "", None, "", None, "")}
    assert len(drawn) > 1 and all(0 <= s <= MAX_SEED for s in drawn)
    assert studio.checks.seed(7) == 7 and studio.checks.seed("7") == 7 and studio.checks.seed(7.0) == 7
    for bad in (-1, 2**32, 1.5, "seven"):
        with pytest.raises(ValueError, match=r"^Seed must be a whole number from 0 to 4294967295"):
            studio.checks.seed(bad)


def test_step_previews_decode_and_project(tmp_path):
    from univigu.offload import Placement
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline
    from univigu.trajectory import TrajectoryRecorder

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    record = studio.new_record(studio.check(RunRequest("joint", "a red circle", seed=0, steps=3)))
    for kind, value in studio.stream(
        "s",
        lambda cb: studio.pipe.joint(
            "a red circle", num_inference_steps=3, callback_on_step_end=TrajectoryRecorder(on_step=cb)
        ),
    ):
        if kind == "step":
            record.trajectory.append(value)
    assert studio.previews.kind(studio.pipe) == "decode"  # a small VAE: decode every step
    path1, note1 = studio.step_preview(record, 1)
    path3, _ = studio.step_preview(record, 3)
    assert path1.endswith("-decode.png") and "decoded by the VAE" in note1
    assert not np.array_equal(iio.imread(path1), iio.imread(path3))
    assert studio.live_preview(record.trajectory[0]) is not None  # the projection was fitted for live previews
    studio.previews.mode = "project"
    path, note = studio.step_preview(record, 2)
    assert path.endswith("-project.png") and "fast latent-to-RGB preview" in note
    full, note = studio.step_preview(record, 2, full=True)
    assert full.endswith("-decode.png")
    record.previews.clear()
    studio.previews.mode = "decode"
    with studio.lock:  # a busy model: decode previews fall back to the projection instead of waiting
        path, _ = studio.step_preview(record, 1, wait=0.05)
    assert path.endswith("-project.png")


def test_step_cache_setting_reaches_the_pipeline(tmp_path):
    from univigu.offload import Placement
    from univigu.studio.checks import UserError
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    transformer = studio.pipe.transformer
    assert studio.pipe.step_cache == "none" and not transformer.is_cache_enabled
    assert "step cache taylorseer:3" in studio.apply_settings(
        Settings(Placement(device="cpu", step_cache="taylorseer:3"))
    )
    assert studio.pipe.step_cache == "taylorseer:3" and transformer.is_cache_enabled
    assert studio.pipe is not None and studio.pipe.transformer is transformer  # switched in place, not reloaded
    with pytest.raises(UserError, match="taylorseer's interval must be an integer"):
        studio.apply_settings(Settings(Placement(device="cpu", step_cache="taylorseer:99")))
    assert studio.pipe.step_cache == "taylorseer:3" and studio.settings.placement.step_cache == "taylorseer:3"
    studio.apply_settings(Settings(Placement(device="cpu", step_cache="none")))
    assert studio.pipe.step_cache == "none" and not transformer.is_cache_enabled


def test_caption_clip_cache_reaches_the_pipeline(tmp_path, clips, monkeypatch):
    from univigu.offload import Placement
    from univigu.studio import tasks
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    asked, caption = [], studio.pipe.caption

    def recorded(*args, **kwargs):
        asked.append(kwargs["video_cache_interval"])
        return caption(*args, **kwargs)

    monkeypatch.setattr(studio.pipe, "caption", recorded)
    handlers = tasks.make_handlers(studio)
    for every in (2, None):  # None: the pipeline's default
        *_, (text, *_) = handlers["caption"](str(clips["mp4"]), 0, 4, "", every, request=None)
    assert asked == [2, tasks.CAPTION_VIDEO_CACHE_INTERVAL]


def test_run_history_is_capped_and_forgotten_files_go(tmp_path):
    from univigu.studio.runs import RunRecord, RunStore

    store = RunStore(per_session=2, total=3)
    records = []
    for k in range(4):
        video = tmp_path / f"run{k}.mp4"
        video.write_bytes(b"x")
        record = RunRecord(run_id=k, task="joint", prompt="p", seed=0, num_steps=1, fps=8, video_path=str(video))
        store.add("a" if k < 3 else "b", record)
        records.append(record)
    assert [r.run_id for r in store.runs("a")] == [1, 2] and [r.run_id for r in store.runs("b")] == [3]
    assert not Path(records[0].video_path).exists() and Path(records[1].video_path).exists()
    store.drop_session("a")
    assert store.runs("a") == [] and not Path(records[2].video_path).exists()
    assert store.get("b", "3") is records[3] and store.get("b", "not a number") is None


def test_cancel_generations():
    import threading

    from univigu.studio.runs import RunStore

    store = RunStore(generations=2)
    assert store.generation("a") == 0 and not store.cancelled_since("a", None)
    joined = store.generation("a")  # a run joins the queue ...
    store.cancel("a")  # ... and its session cancels while it waits
    assert store.cancelled_since("a", joined) and not store.cancelled_since("a", store.generation("a"))
    late = threading.Event()  # it reaches the model after the cancel: stopped as it registers
    store.register("a", late, joined=joined)
    assert late.is_set()
    fresh = threading.Event()
    store.register("a", fresh, joined=store.generation("a"))
    assert not fresh.is_set()
    store.drop_session("a")  # a page that goes away cancels as Cancel does
    assert fresh.is_set() and store.generation("a") == 2
    store.cancel("b")
    store.cancel("c")  # only the last ``generations`` sessions are remembered
    assert store.generation("a") == 0 and store.generation("c") == 1


def test_a_run_cancelled_while_it_waited_ends_before_it_loads_anything(tmp_path):
    from types import SimpleNamespace

    import gradio as gr

    from univigu.offload import Placement
    from univigu.studio import tasks
    from univigu.studio.engine import Settings, Studio
    from univigu.studio.run_queue import stamp_joined
    from univigu.tiny import tiny_pipeline

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    handlers = tasks.make_handlers(studio)
    http = SimpleNamespace(state=SimpleNamespace())  # what gradio's queue hands the run: the joining request
    request = gr.Request(request=http, session_hash="tab")
    stamp_joined(http, studio.store.generation("tab"))
    studio.store.cancel("tab")
    with pytest.raises(gr.Error) as info:  # the clip is never opened: its absence would be the error otherwise
        list(handlers["caption"](str(tmp_path / "never-read.mp4"), 0, 2, "", 1, request=request))
    assert info.value.message.startswith("Cancelled (before it started")
    assert studio.store.runs("tab") == []
    stamp_joined(http, studio.store.generation("tab"))  # a run that joins after the cancel runs
    *_, (video, trajectory, _) = handlers["text_to_video"]("a red circle", 0, 1, 1.0, *TINY_SIZE, request=request)
    assert trajectory["num_steps"] == 1 and Path(video).is_file()


def test_unexpected_errors_are_one_line_and_logged(caplog):
    import gradio as gr

    from univigu.studio.errors import guarded

    @guarded
    def broken_run(prompt):
        yield "step 1"
        raise RuntimeError("tensor went sideways\n  File x.py, line 3")

    run = broken_run("a red circle")
    assert next(run) == "step 1"
    with caplog.at_level("ERROR", logger="univigu.studio"), pytest.raises(gr.Error) as info:
        next(run)
    message = info.value.message
    assert "RuntimeError: tensor went sideways" in message and "File x.py" not in message
    assert "server log" in message
    assert any(r.exc_info and "tensor went sideways" in str(r.exc_info[1]) for r in caplog.records)


def test_model_name_is_a_folder_name_or_hub_id(tmp_path):
    from univigu.offload import Placement
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline

    pipe = tiny_pipeline(size=TINY_SIZE)
    snapshot = tmp_path / "hub" / "models--org--uni-vigu-1.3b" / "snapshots" / "0123abc"
    for model, name, folder in [
        (tmp_path / "my-model", "my-model", True),
        (str(tmp_path / "my-model") + os.sep, "my-model", True),
        (snapshot, "org/uni-vigu-1.3b", True),
        ("org/uni-vigu-1.3b", "org/uni-vigu-1.3b", False),  # a hub id not downloaded yet
    ]:
        if folder:
            Path(model).mkdir(parents=True, exist_ok=True)
        studio = Studio(str(model), Settings(Placement(device="cpu")), str(tmp_path / "out"), pipe=pipe)
        assert studio.model_name == name
        assert str(tmp_path) not in studio.model_name


def test_spaces_gpu_is_a_no_op_off_spaces(monkeypatch):
    spaces = pytest.importorskip("spaces")  # requirements-dev.txt
    from univigu.studio import tasks

    def handler(session, task, *args):
        yield "done", 1

    assert tasks.spaces is spaces and not spaces.config.Config.zero_gpu  # the real package, off a Space
    assert tasks.gpu(lambda *args, **kwargs: 30)(handler) is handler
    monkeypatch.setattr(tasks, "spaces", None)  # without the package
    assert tasks.gpu(lambda *args, **kwargs: 30)(handler) is handler


def _same(a, b) -> bool:
    """Deep equality of what the handlers yield: strings, dataclasses, arrays, tensors, containers."""
    import dataclasses

    import torch

    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dict__"):  # e.g. the fitted LatentProjection
        return _same(vars(a), vars(b))
    return a == b


def test_zerogpu_wraps_the_streaming_runs(tmp_path, monkeypatch, clips):
    """On a ZeroGPU Space, ``spaces.GPU(duration=fn)`` calls ``fn(*args, **kwargs)`` with the handler's own
    arguments to size the GPU lease (``static_duration`` in spaces/zero/wrappers.py), runs the generator in a
    forked worker and pickles each yielded value back (a fork-context ``SimpleQueue``). This stands in for that
    lease and transport (they need a Space's device API) to check what the studio hands them and gets back."""
    import inspect
    import math
    import pickle
    from multiprocessing.reduction import ForkingPickler
    from types import SimpleNamespace

    from univigu.offload import Placement
    from univigu.studio import tasks
    from univigu.studio.engine import Settings, Studio
    from univigu.tiny import tiny_pipeline

    leases = []

    def GPU(duration):
        def decorate(fn):
            assert inspect.isgeneratorfunction(fn)  # the streaming function, not a whole-run one

            def on_gpu(*args, **kwargs):
                lease = {"seconds": duration(*args, **kwargs), "args": args, "sent": [], "back": []}
                leases.append(lease)
                for item in fn(*args, **kwargs):
                    back = pickle.loads(ForkingPickler.dumps(item))
                    lease["sent"].append(item)
                    lease["back"].append(back)
                    yield back

            return on_gpu

        return decorate

    monkeypatch.setattr(tasks, "spaces", SimpleNamespace(GPU=GPU))
    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    handlers = tasks.make_handlers(studio)
    f0, h0, w0 = TINY_SIZE
    *_, joint = handlers["joint"]("a red circle", 3, 4, 5.0, f0, h0, w0, request=None)
    *_, caption = handlers["caption"](str(clips["mp4"]), 0, 2, "", 1, request=None)

    assert [lease["args"][1].task for lease in leases] == ["joint", "caption"]  # checked runs go to the GPU
    for lease in leases:
        kinds = [kind for kind, _ in lease["back"]]
        assert kinds[-1] == "done" and set(kinds[:-1]) == {"progress"}
        assert all(_same(a, b) for a, b in zip(lease["sent"], lease["back"], strict=True))  # unchanged
    joint_record, caption_record = (lease["back"][-1][1] for lease in leases)
    assert joint[0] == joint_record.video_path and Path(joint[0]).is_file()  # the page shows what came back
    assert len(joint[2]["steps"]) == 4 and caption[0] == (caption_record.text or "")
    assert studio.store.runs("anonymous") == [joint_record, caption_record]  # stored: the copies that came back

    # The lease is sized from the request, in whole seconds
    expected = [math.ceil(tasks.gpu_seconds(studio.pipe, lease["args"][1])) for lease in leases]
    assert [lease["seconds"] for lease in leases] == expected
    assert all(isinstance(s, int) and s >= tasks.GPU_OVERHEAD_S for s in expected)


def test_zerogpu_duration_follows_the_request(tmp_path):
    from univigu.offload import Placement
    from univigu.studio.engine import Settings, Studio
    from univigu.studio.request import Run
    from univigu.studio.tasks import GPU_OVERHEAD_S, gpu_seconds
    from univigu.tiny import tiny_pipeline

    studio = Studio("tiny", Settings(Placement(device="cpu")), str(tmp_path), pipe=tiny_pipeline(size=TINY_SIZE))
    f0, h0, w0 = TINY_SIZE

    def compute(task="joint", steps=10, guidance=5.0, frames=f0, height=h0, width=w0, every=None) -> float:
        run = Run(task, "p", 0, steps, (frames, height, width), guidance, video_cache_interval=every)
        return gpu_seconds(studio.pipe, run) - GPU_OVERHEAD_S

    assert compute() > 0
    assert compute(steps=20) == pytest.approx(2 * compute(steps=10))  # linear in the steps
    assert compute(guidance=1.0) == pytest.approx(compute() / 2)  # no guidance: one pass a step, not two
    assert compute(frames=1) < compute() and compute(height=8, width=8) < compute()  # smaller clips, sooner
    # A caption: one pass; the steps between refreshes of the clip's cache run the text only
    assert compute("caption", every=1) == pytest.approx(compute(guidance=1.0))
    cached = [compute("caption", every=k) for k in (1, 2, 5, 10)]
    assert cached == sorted(cached, reverse=True) and cached[-1] < cached[0]


def test_token_html_marks_changes_and_masks():
    from univigu.studio.render import stats_svg, tokens_html
    from univigu.trajectory import TrajectoryStep

    step = TrajectoryStep(
        step=2,
        num_steps=3,
        text_tokens=["a", "<mask>", "red", "</s>", "<pad>"],
        text_confidence=[0.9, 0.1, 0.5, 0.99, 0.2],
        changed=[False, False, True, False, False],
        text="a _ red",
        video_delta=0.5,
    )
    html = tokens_html(step)
    assert html.count('data-changed="1"') == 1 and 'uv-chg" data-changed="1"' in html
    assert ">_<" in html and "hsl(108," in html and "hsl(12," in html  # confidence colours
    svg = stats_svg([step, step, step], current=2)
    assert svg.count("<polyline") == 3 and svg.count("<line") == 1


# ------------------------------------------------------------------------------------------------
# The bundled model
def test_bundled_model(tmp_path):
    server = AppServer([], tmp_path, env={"UNIVIGU_MODEL": ""})  # no --model: the bundled one
    try:
        with urllib.request.urlopen(server.url + "config", timeout=10) as response:
            page = response.read().decode()
        assert "A small demonstration model" in page  # the header says what it is, and links its card's numbers
        link = re.search(r"\[its card's numbers\]\(([^)]+)\)", page).group(1)
        assert link == "gradio_api/file=assets/univigu-shapesworld/README.md#evaluation"
        with urllib.request.urlopen(server.url + link.split("#")[0], timeout=10) as response:
            assert response.status == 200 and "## Evaluation" in response.read().decode()
        client = make_client(server.url, tmp_path / "downloads")
        examples = json.loads((EXAMPLES / "examples.json").read_text())
        video, caption, trajectory, _ = client.predict(prompt=examples[0]["prompt"], seed=0, steps=8, api_name="/joint")
        assert decoded(video).shape[0] > 1 and len(trajectory["steps"]) == 8 and trajectory["text"] == caption
        caption, notes, _, _, _ = client.predict(
            video=handle_file(str(EXAMPLES / examples[0]["file"])), seed=0, steps=8, api_name="/caption"
        )
        frames, _ = read_video(str(EXAMPLES / examples[0]["file"]))  # the studio captions as the library does
        assert caption and caption == load_pipeline().caption(frames, num_inference_steps=8, seed=0).text
        with pytest.raises(AppError, match="does not know 'zebra'"):
            client.predict(prompt="a zebra moves left", seed=0, steps=2, api_name="/joint")
    finally:
        server.stop()
