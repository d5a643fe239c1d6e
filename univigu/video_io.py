"""Reading, fitting and writing clips (imageio + imageio-ffmpeg). Frames are uint8 [F, H, W, 3]."""

import os
import tempfile

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif")  # what read_video is asked to open
MAX_DECODE_FRAMES = 2000  # a longer clip is refused rather than decoded into memory
MAX_FRAME_PIXELS = 4096 * 4096  # so is a frame larger than this


class VideoError(ValueError):
    """A file that is not a readable video, or a clip with nothing in it."""


def read_video(path: str | os.PathLike, max_frames: int = MAX_DECODE_FRAMES) -> tuple[np.ndarray, float | None]:
    """Decode any common container (mp4, webm, avi, mov, gif) into frames [F,H,W,3] and its fps."""
    if not os.path.isfile(path):
        raise VideoError(f"no such file: {path}")
    try:
        meta = iio.immeta(path)
    except Exception:
        meta = {}
    frames = []
    try:
        for frame in iio.imiter(path):
            if frame.ndim < 2 or frame.shape[0] * frame.shape[1] > MAX_FRAME_PIXELS:
                raise VideoError(f"the video's frames are {frame.shape[1]}x{frame.shape[0]}; resize it below 4096x4096")
            frames.append(_to_rgb(frame))
            if len(frames) > max_frames:
                raise VideoError(f"the video has more than {max_frames} frames; trim it to a shorter clip")
    except VideoError:
        raise
    except Exception as err:
        raise VideoError(
            f"could not decode {os.path.basename(path)} as a video ({type(err).__name__}); "
            "use an mp4, webm, avi, mov or gif file"
        ) from err
    if not frames:
        raise VideoError(f"{os.path.basename(path)} has no video frames; record or export a clip with at least one")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoError("the video's frames change size; re-encode it to a constant size")
    fps = meta.get("fps") if isinstance(meta, dict) else None
    return np.stack(frames), (float(fps) if fps else None)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.shape[-1] == 4:
        frame = frame[..., :3]
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame


def fit_video(frames: np.ndarray, num_frames: int, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    """Sample ``num_frames`` evenly in time, centre-crop to the aspect ratio and resize. Returns notes."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VideoError(f"expected frames [F,H,W,3] with F > 0, got shape {frames.shape}")
    notes = []
    f, h, w, _ = frames.shape
    if f != num_frames:
        idx = np.round(np.linspace(0, f - 1, num_frames)).astype(int)
        frames = frames[idx]
        notes.append(
            f"sampled {num_frames} of {f} frames evenly"
            if f > num_frames
            else f"repeated frames to stretch {f} to {num_frames}"
        )
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        crop_h, crop_w = min(h, round(height / scale)), min(w, round(width / scale))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        x = torch.from_numpy(frames[:, top : top + crop_h, left : left + crop_w]).permute(0, 3, 1, 2).float()
        mode = "area" if crop_h >= height else "bilinear"
        x = F.interpolate(x, size=(height, width), mode=mode)
        frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        cropped = " after a centre crop" if (crop_h, crop_w) != (h, w) else ""
        notes.append(f"resized {w}x{h} to {width}x{height}{cropped}")
    return np.ascontiguousarray(frames), notes


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 8) -> str:
    """Write an H.264 mp4 (or gif by extension) atomically: a reader never sees a half-written file."""
    frames = np.asarray(frames, dtype=np.uint8)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".mp4"
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=directory)
    os.close(fd)
    try:
        if suffix == ".gif":
            iio.imwrite(tmp, frames, duration=1000 / fps, loop=0)
        else:
            # yuv420p for browsers; macro_block_size=1 keeps tiny sizes such as 64x64 unpadded.
            iio.imwrite(
                tmp,
                frames,
                fps=fps,
                codec="libx264",
                macro_block_size=1,
                pixelformat="yuv420p",
                output_params=["-crf", "12"],
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a written clip is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
