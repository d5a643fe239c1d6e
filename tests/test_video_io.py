"""Decoding straight to a model's clip size (``read_clip``): the frames fit_video would pick, ffmpeg's resize, and
a request's memory bounded by the clip it returns rather than by the upload."""

import importlib.util
import subprocess
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from univigu.video_io import VideoError, fit_video, read_clip, read_video, write_video

ROOT = Path(__file__).resolve().parent.parent


def _smooth(frames: int, height: int, width: int) -> np.ndarray:
    """A moving colour gradient: camera-like content, where resamplers agree."""
    y, x = np.mgrid[0:height, 0:width]
    clip = [np.stack([(x + 3 * k) % 256, (y * 2 + k) % 256, (x + y) // 2 % 256], -1) for k in range(frames)]
    return np.asarray(clip, np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    noise = np.random.default_rng(0).integers(0, 256, size=(8, 24, 32, 3), dtype=np.uint8)
    out = {"mp4": Path(write_video(d / "noise.mp4", noise, fps=8)), "gif": Path(write_video(d / "noise.gif", noise))}
    for ext, codec in [("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("mov", "libx264")]:
        out[ext] = d / f"noise.{ext}"
        iio.imwrite(out[ext], noise, fps=8, codec=codec, macro_block_size=1)
    out["smooth"] = Path(write_video(d / "smooth.mp4", _smooth(12, 60, 100), fps=8))
    out["rotated"] = d / "rotated.mp4"  # the same clip shown turned a quarter: decoded 60x100
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    rotate = ["-display_rotation", "90", "-i", str(out["smooth"]), "-c", "copy", str(out["rotated"])]
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", *rotate], check=True)
    return out


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi", "mov", "gif"])
@pytest.mark.parametrize("num_frames", [5, 8, 17])  # fewer frames than the file, as many, more
def test_at_the_files_size_it_is_fit_video_of_read_video(clips, ext, num_frames):
    native, fps = read_video(clips[ext])
    clip = read_clip(clips[ext], num_frames, 24, 32)
    expected, notes = fit_video(native, num_frames, 24, 32)
    assert np.array_equal(clip.frames, expected) and clip.notes == notes
    assert (clip.source_frames, clip.source_size, clip.fps) == (8, (32, 24), fps)


@pytest.mark.parametrize("name", ["smooth", "rotated", "mp4"])
@pytest.mark.parametrize("size", [(5, 16, 16), (17, 64, 64)])  # down (area) and up (bilinear)
def test_resized_it_samples_and_crops_as_fit_video_with_ffmpegs_scaler(clips, name, size):
    native, _ = read_video(clips[name])
    clip = read_clip(clips[name], *size)
    expected, notes = fit_video(native, *size)
    assert clip.frames.shape == expected.shape and clip.frames.dtype == np.uint8
    assert clip.notes == notes and clip.source_size == (native.shape[2], native.shape[1])
    diff = np.abs(clip.frames.astype(int) - expected.astype(int))
    if name == "mp4" and size[1] == 16:  # pixel noise shrunk 1.5x: the two resamplers' bins differ
        assert diff.mean() < 16
    else:  # smooth content, or any upscale: within a grey level
        assert diff.mean() < 0.5 and diff.max() <= 2, (diff.mean(), diff.max())


def test_refusals(clips, tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_clip(tmp_path / "missing.mp4", 5, 16, 16)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(VideoError, match="could not decode corrupt.mp4 as a video"):
        read_clip(corrupt, 5, 16, 16)
    for ext in ("mp4", "gif"):
        with pytest.raises(VideoError, match="more than 7 frames"):
            read_clip(clips[ext], 5, 16, 16, max_frames=7)
        assert read_clip(clips[ext], 5, 16, 16, max_frames=8).source_frames == 8


def _benchmark():
    spec = importlib.util.spec_from_file_location("upload_memory", ROOT / "benchmarks" / "upload_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REQUEST_MB = 300  # a caption request's peak: the studio's growth plus its largest ffmpeg process


def test_the_largest_upload_the_limits_allow_costs_a_bounded_request(tmp_path):
    """The studio's worst upload (3840x2160, 43 frames) through /caption in a child process: before read_clip the
    request took 2.0 GB in the studio and 0.6 GB in ffmpeg (2-core x86_64); now the clip's 5 frames of 16x16."""
    bench = _benchmark()
    width, height, frames = bench.worst_upload()
    path = tmp_path / "upload.mp4"
    bench.make_clip(path, width, height, frames)
    row = bench.measure(path)
    assert f"decoded {frames} frames of {width}x{height}" in row["notes"]  # the whole clip went through
    assert row["request_mb"] < REQUEST_MB and row["python_mb"] < 100, row
