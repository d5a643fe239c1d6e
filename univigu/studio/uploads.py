"""Uploaded clips: probe before decoding (size, frame count, is it a video at all), then decode straight to the
model's clip size (``read_clip``: a request holds the frames the model takes, whatever the upload's size)."""

import math
import os

import imageio.v3 as iio
import numpy as np

from ..video_io import VIDEO_EXTENSIONS, VideoError, read_clip, video_meta
from .checks import Limits, UserError


class UploadChecks:
    """Decoding uploads to ``clip_size`` (frames, height, width: the model's) with checks that fail fast, within
    ``limits``."""

    def __init__(self, limits: Limits, clip_size: tuple[int, int, int]):
        self.limits, self.clip_size = limits, clip_size

    def load_video(self, path) -> tuple[np.ndarray, list[str]]:
        """Decode an uploaded clip to the model's clip size with checks that fail fast; returns its frames
        [F, H, W, 3] (``clip_size``) and notes of what was done."""
        if path is None or (isinstance(path, str) and not path):
            raise UserError("No video: upload a clip (mp4, webm, avi, mov or gif) or pick an example.")
        path = os.fspath(path if not isinstance(path, dict) else path.get("path") or path.get("video", ""))
        name = os.path.basename(path)
        if not os.path.isfile(path):
            raise UserError(f"The uploaded file {name} is gone; upload it again.")
        size_mb = os.path.getsize(path) / 2**20
        if size_mb > self.limits.max_upload_mb:
            raise UserError(
                f"{name} is {size_mb:.0f} MB; the studio takes clips up to {self.limits.max_upload_mb} MB. "
                "Trim or compress it."
            )
        if os.path.getsize(path) == 0:
            raise UserError(f"{name} is empty (0 bytes); upload a video file.")
        ext = os.path.splitext(name)[1].lower()
        if ext not in VIDEO_EXTENSIONS:
            raise UserError(f"{name} is not a video file ({ext or 'no extension'}); use mp4, webm, avi, mov or gif.")
        width, height, est_frames = self._probe(path)
        if width * height > self.limits.max_video_pixels:
            raise UserError(
                f"{name} is {width}x{height}; the studio reads frames of up to "
                f"{self.limits.max_video_pixels / 1e6:.1f} megapixels. Downscale it (the model works at "
                f"{self.clip_size[2]}x{self.clip_size[1]} anyway)."
            )
        by_work = self.limits.max_decoded_bytes // max(1, width * height * 3)  # decoding time, not memory
        max_frames = int(min(self.limits.max_video_frames, by_work))
        if est_frames is not None and est_frames > max_frames * 1.05 + 2:
            raise UserError(self._too_long(name, f"about {est_frames:.0f} frames", max_frames, width, height))
        try:
            clip = read_clip(path, *self.clip_size, max_frames=max_frames)
        except VideoError as err:
            if "more than" in str(err):
                raise UserError(
                    self._too_long(name, f"more than {max_frames} frames", max_frames, width, height)
                ) from err
            raise UserError(f"{err}.") from err
        if clip.source_frames < 2:
            raise UserError(
                f"{name} has only {clip.source_frames} frame; the model describes motion, so upload a clip with "
                f"at least 2 frames (it samples {self.clip_size[0]})."
            )
        (w, h), rate = clip.source_size, f" at {clip.fps:g} fps" if clip.fps else ""
        return clip.frames, [f"decoded {clip.source_frames} frames of {w}x{h}{rate} from {name}", *clip.notes]

    def _too_long(self, name, what, max_frames, width, height) -> str:
        return (
            f"{name} has {what}; at {width}x{height} the studio reads at most {max_frames}. "
            "Trim it to a shorter clip (a few seconds is plenty)."
        )

    @staticmethod
    def _probe(path: str) -> tuple[int, int, float | None]:
        """(width, height, estimated frame count or None) without decoding the whole clip."""
        meta = {}
        try:
            meta = video_meta(path) or {}
        except Exception:  # no metadata: probe the first frame instead
            meta = {}
        size = meta.get("size") if isinstance(meta, dict) else None
        est = None
        duration, fps = meta.get("duration"), meta.get("fps")
        if isinstance(duration, (int, float)) and isinstance(fps, (int, float)) and math.isfinite(duration * fps):
            est = duration * fps
        if size and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            return int(size[0]), int(size[1]), est
        try:
            first = next(iter(iio.imiter(path)))
        except StopIteration:
            raise UserError(f"{os.path.basename(path)} has no frames; upload a clip with some.") from None
        except Exception as err:  # any decoder failure means "not a readable video"
            name = os.path.basename(path)
            if "does not contain any stream" in str(err):
                raise UserError(
                    f"{name} has no video frames (no video stream, or an empty one); upload a clip with some."
                ) from err
            if _looks_like_text(path):
                raise UserError(
                    f"{name} is a text file, not a video; upload an mp4, webm, avi, mov or gif file."
                ) from err
            raise UserError(
                f"Could not decode {name} as a video ({type(err).__name__}): the file is corrupt or "
                "not a video. Upload an mp4, webm, avi, mov or gif file."
            ) from err
        first = np.asarray(first)
        if first.ndim < 2:
            raise UserError(f"{os.path.basename(path)} is not a video; upload an mp4, webm, avi, mov or gif file.")
        return int(first.shape[1]), int(first.shape[0]), est


def _looks_like_text(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(1024)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head
