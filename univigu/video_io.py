"""Reading, fitting and writing clips (imageio + imageio-ffmpeg). Frames are uint8 [F, H, W, 3].

:func:`read_video` decodes a whole clip at its own size; :func:`read_clip` decodes a file straight to a model's
clip size (ffmpeg scales each frame as it is decoded), so its memory is that of the clip it returns.
"""

import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif")  # what read_video is asked to open
PILLOW_EXTENSIONS = (".gif",)  # what imageio decodes with Pillow; the rest goes through ffmpeg
MAX_DECODE_FRAMES = 2000  # a longer clip is refused rather than decoded into memory
MAX_FRAME_PIXELS = 4096 * 4096  # so is a frame larger than this
SCALE_CHUNK_BYTES = 64 * 2**20  # Pillow-decoded frames go to ffmpeg's scaler this many bytes at a time
DECODE_THREADS = "2"  # ffmpeg's decoder threads in read_clip: each holds frames at the file's size


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
    """Sample ``num_frames`` evenly in time, centre-crop to the aspect ratio and resize. Returns notes.

    The resize is torch's (``area`` down, ``bilinear`` up); :func:`read_clip` samples and crops the same way but
    resizes with ffmpeg's scaler while decoding.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VideoError(f"expected frames [F,H,W,3] with F > 0, got shape {frames.shape}")
    f, h, w, _ = frames.shape
    if f != num_frames:
        frames = frames[sample_indices(f, num_frames)]
    if (h, w) != (height, width):
        top, left, crop_h, crop_w = _crop_box(h, w, height, width)
        x = torch.from_numpy(frames[:, top : top + crop_h, left : left + crop_w]).permute(0, 3, 1, 2).float()
        mode = "area" if crop_h >= height else "bilinear"
        x = F.interpolate(x, size=(height, width), mode=mode)
        frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(frames), _fit_notes(f, h, w, num_frames, height, width)


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """The frames :func:`fit_video` keeps of ``total``: evenly spaced, first and last included (repeats when
    ``total < num_frames``)."""
    return np.round(np.linspace(0, total - 1, num_frames)).astype(int)


def _crop_box(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w): the centred crop of an h x w frame to height:width's aspect ratio."""
    scale = max(height / h, width / w)
    crop_h, crop_w = min(h, round(height / scale)), min(w, round(width / scale))
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


def _fit_notes(f: int, h: int, w: int, num_frames: int, height: int, width: int) -> list[str]:
    notes = []
    if f != num_frames:
        notes.append(
            f"sampled {num_frames} of {f} frames evenly"
            if f > num_frames
            else f"repeated frames to stretch {f} to {num_frames}"
        )
    if (h, w) != (height, width):
        _, _, crop_h, crop_w = _crop_box(h, w, height, width)
        cropped = " after a centre crop" if (crop_h, crop_w) != (h, w) else ""
        notes.append(f"resized {w}x{h} to {width}x{height}{cropped}")
    return notes


# ------------------------------------------------------------------------------------------------
# Decoding straight to a model's clip size
@dataclass
class Clip:
    """A file read at a model's clip size (:func:`read_clip`)."""

    frames: np.ndarray  # uint8 [num_frames, height, width, 3]
    notes: list[str]  # what fitting did, as fit_video words it
    source_frames: int  # frames the file decoded to
    source_size: tuple[int, int]  # (width, height) of those frames
    fps: float | None


def read_clip(
    path: str | os.PathLike, num_frames: int, height: int, width: int, max_frames: int = MAX_DECODE_FRAMES
) -> Clip:
    """Decode a file straight to ``num_frames`` [height, width] frames, holding only those in memory.

    The frames kept, the centre crop and the notes are :func:`fit_video`'s; the resize is ffmpeg's scaler
    (``area`` down, ``bilinear`` up) applied as each frame is decoded, so a 4K upload is never held in RGB at 4K,
    here or in ffmpeg's queues (its decoder keeps a few frames at the file's size: ~150 MB at 4K). A file already
    at the size gives exactly ``fit_video(read_video(path))``; a resized one differs from torch's resize by well
    under a grey level on average in camera footage (more in pixel noise, where the two resamplers' bins differ).
    Counting the frames takes a fast pass over the packets (and one more decode in the rare file it miscounts).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"no such file: {path}")
    try:
        if path.lower().endswith(PILLOW_EXTENSIONS):
            return _read_clip_pillow(path, num_frames, height, width, max_frames)
        return _read_clip_ffmpeg(path, num_frames, height, width, max_frames)
    except VideoError:
        raise
    except Exception as err:
        raise _undecodable(path, err) from err


def video_meta(path: str | os.PathLike) -> dict:
    """The file's header as ``imageio.v3.immeta`` gives it: ``size`` (width, height) of the frames read_video
    decodes (rotation applied), ``fps``, ``duration``.

    For a file ffmpeg decodes, one frame is decoded, in one thread and in gray: ``immeta`` starts a full-size RGB
    decode, which at 4K fills ffmpeg's queues with ~400 MB before it is stopped.
    """
    path = os.fspath(path)
    if path.lower().endswith(PILLOW_EXTENSIONS):
        return iio.immeta(path)
    frames = imageio_ffmpeg.read_frames(
        path, pix_fmt="gray", bits_per_pixel=8, input_params=["-threads", "1"], output_params=["-frames:v", "1"]
    )
    try:
        return next(frames)
    finally:
        frames.close()


def _read_clip_ffmpeg(path: str, num_frames: int, height: int, width: int, max_frames: int) -> Clip:
    meta = video_meta(path)
    w, h = meta["size"]
    _check_frame_size(w, h)
    scale = _scale_filter(h, w, height, width)
    params = ["-vf", scale] if scale else []
    total = _packet_count(path)
    for _ in range(3):  # the packet count is a guess; decoding tells the truth, which the next pass uses
        frames, decoded = _decode_picked(path, params, total, num_frames, (height, width), max_frames)
        if decoded == 0:
            raise VideoError(f"{os.path.basename(path)} has no video frames; record or export a clip with at least one")
        if decoded == total:
            fps = float(meta["fps"]) if meta.get("fps") else None
            return Clip(frames, _fit_notes(total, h, w, num_frames, height, width), total, (w, h), fps)
        total = decoded
    raise VideoError(f"{os.path.basename(path)} decodes to a different number of frames each time; re-encode it")


def _decode_picked(path, params, total, num_frames, size, max_frames) -> tuple[np.ndarray, int]:
    """Decode every frame, keeping those ``sample_indices(total, num_frames)`` picks; returns them and the count."""
    picks = sample_indices(total, num_frames) if total else np.empty(0, int)
    out = np.empty((num_frames, *size, 3), np.uint8)
    decoded = kept = 0
    frames = imageio_ffmpeg.read_frames(path, input_params=["-threads", DECODE_THREADS], output_params=params)
    try:
        next(frames)  # the header
        for raw in frames:
            if decoded == max_frames:
                raise VideoError(f"the video has more than {max_frames} frames; trim it to a shorter clip")
            while kept < len(picks) and picks[kept] == decoded:
                out[kept] = np.frombuffer(raw, np.uint8).reshape(*size, 3)
                kept += 1
            decoded += 1
    finally:
        frames.close()
    return out, decoded


def _read_clip_pillow(path: str, num_frames: int, height: int, width: int, max_frames: int) -> Clip:
    """A gif, as read_video decodes it (Pillow, a frame at a time): counted, then picked and scaled by ffmpeg."""
    total, shape = 0, None
    for frame in iio.imiter(path):
        frame = _to_rgb(frame)
        _check_frame_size(frame.shape[1], frame.shape[0])
        if shape is not None and frame.shape != shape:
            raise VideoError("the video's frames change size; re-encode it to a constant size")
        shape, total = frame.shape, total + 1
        if total > max_frames:
            raise VideoError(f"the video has more than {max_frames} frames; trim it to a shorter clip")
    if not total:
        raise VideoError(f"{os.path.basename(path)} has no video frames; record or export a clip with at least one")
    h, w = shape[:2]
    picks = sample_indices(total, num_frames)
    scale = _scale_filter(h, w, height, width)
    fitted, chunk = [], []  # fitted: one per distinct pick, in order

    def flush():
        if chunk:
            fitted.extend(_scale_frames(np.stack(chunk), scale) if scale else chunk)
            chunk.clear()

    wanted = set(picks.tolist())
    for i, frame in enumerate(iio.imiter(path)):
        if i in wanted:
            chunk.append(_to_rgb(frame))
            if len(chunk) * frame.nbytes >= SCALE_CHUNK_BYTES:
                flush()
    flush()
    if len(fitted) != len(wanted):
        raise VideoError(f"{os.path.basename(path)} decodes to a different number of frames each time; re-encode it")
    position = {index: k for k, index in enumerate(sorted(wanted))}
    frames = np.stack([fitted[position[index]] for index in picks.tolist()])
    return Clip(frames, _fit_notes(total, h, w, num_frames, height, width), total, (w, h), _gif_fps(path))


def _scale_filter(h: int, w: int, height: int, width: int) -> str | None:
    """ffmpeg's filter for fit_video's crop and resize of h x w RGB frames (None: already the size)."""
    if (h, w) == (height, width):
        return None
    top, left, crop_h, crop_w = _crop_box(h, w, height, width)
    flags = "area" if crop_h >= height else "bilinear"  # fit_video's choice of mode
    # RGB before cropping, so the crop takes exactly the pixels read_video's frames have there
    return f"format=rgb24,crop={crop_w}:{crop_h}:{left}:{top}:exact=1,scale={width}:{height}:flags={flags}"


def _scale_frames(frames: np.ndarray, scale: str) -> list[np.ndarray]:
    """Frames [N, h, w, 3] through ffmpeg's ``scale`` filter: the same output as decoding them with it."""
    n, h, w, _ = frames.shape
    out_w, out_h = (int(v) for v in re.search(r"scale=(\d+):(\d+)", scale).groups())
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-i", "-", "-vf", scale, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True).stdout
    scaled = np.frombuffer(out, np.uint8).reshape(-1, out_h, out_w, 3)
    if len(scaled) != n:
        raise RuntimeError(f"ffmpeg scaled {n} frames into {len(scaled)}")
    return list(scaled)


def _packet_count(path: str) -> int:
    """The video stream's frame count from its packets (no decoding); 0 when ffmpeg can't tell."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    result = subprocess.run(cmd, capture_output=True)
    counts = re.findall(rb"frame=\s*(\d+)", result.stderr)
    return int(counts[-1]) if result.returncode == 0 and counts else 0


def _gif_fps(path: str) -> float | None:
    try:
        fps = iio.immeta(path).get("fps")
    except Exception:
        return None
    return float(fps) if fps else None


def _check_frame_size(w: int, h: int) -> None:
    if w * h > MAX_FRAME_PIXELS:
        raise VideoError(f"the video's frames are {w}x{h}; resize it below 4096x4096")


def _undecodable(path: str, err: Exception) -> VideoError:
    return VideoError(
        f"could not decode {os.path.basename(path)} as a video ({type(err).__name__}); "
        "use an mp4, webm, avi, mov or gif file"
    )


class _QuietResize(logging.Filter):
    """imageio-ffmpeg warns whenever frames are read at another size than the file's: read_clip always does."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The frame size for reading")


logging.getLogger("imageio_ffmpeg").addFilter(_QuietResize())


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
