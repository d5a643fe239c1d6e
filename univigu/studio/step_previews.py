"""Per-step previews of a finished run for the scrubber: VAE decodes when the model is free, else the
fitted latent-to-RGB projection (``preview.py``); PNG filmstrips cached per run and step.
"""

import logging
import os
import threading

import numpy as np
from PIL import Image

from ..trajectory import TrajectoryStep
from .checks import UserError
from .preview import cached_projection, filmstrip, is_full_size
from .runs import RunRecord

log = logging.getLogger("univigu.studio")


PREVIEW_MODES = ("auto", "decode", "project")


class StepPreviews:
    """Filmstrips of a run's steps, written to ``output_dir``.

    ``mode`` (one of ``PREVIEW_MODES``): ``decode`` runs the VAE, holding ``lock`` (the pipeline's: one user of
    its modules at a time), ``project`` the fitted projection; ``auto`` picks by the VAE's size. Each method is
    given the pipeline it previews.
    """

    def __init__(self, output_dir: str, lock: threading.Lock, mode: str = "auto"):
        self.output_dir, self.lock, self.mode = output_dir, lock, mode

    def kind(self, pipe) -> str:
        """``decode`` or ``project`` for ``pipe``'s per-step previews under ``mode``."""
        if self.mode != "auto":
            return self.mode
        return "project" if is_full_size(pipe) else "decode"

    def live(self, pipe, step: TrajectoryStep) -> np.ndarray | None:
        """A fast filmstrip of the clip predicted at ``step`` (projection: no VAE, no lock)."""
        projection = cached_projection(pipe)
        if step.video_x0 is None or projection is None:
            return None
        return filmstrip(projection(step.video_x0), max_frames=6, height=64)

    def step(self, pipe, record: RunRecord, k: int, full: bool = False, wait: float = 0.5) -> tuple[str | None, str]:
        """PNG path of a filmstrip of the clip at step ``k`` and a line saying how it was made.

        ``decode`` previews wait ``wait`` seconds for the model (busy with a run?) and fall back to the
        projection; ``full`` asks for a decode and waits for it.
        """
        if record.task == "caption":
            if record.input_frames is None:
                return None, ""
            return self._save_preview(
                record,
                0,
                "input",
                record.input_frames,
                "the clip the model was given, held clean while the caption is denoised",
            )
        want = "decode" if full else self.kind(pipe)
        if (k, want) in record.previews:
            return record.previews[(k, want)]
        x0 = record.trajectory[k - 1].video_x0
        if x0 is None:
            return None, ""
        if want == "decode":
            if self.lock.acquire(timeout=60 if full else wait):
                try:
                    frames = pipe.decode_latents(x0)
                except Exception as err:  # e.g. no device outside a borrowed GPU: fall back to the projection
                    log.warning("could not decode step %d of run #%d: %s", k, record.run_id, err)
                    if full:
                        raise UserError(f"Could not decode this step ({type(err).__name__}); try again.") from err
                    frames = None
                finally:
                    self.lock.release()
                if frames is not None:
                    note = f"clip predicted at step {k}, decoded by the VAE"
                    return self._save_preview(record, k, "decode", frames, note)
            elif full:
                raise UserError("The model is busy with another run; decode this step when it finishes.")
        if (k, "project") in record.previews:
            return record.previews[(k, "project")]
        projection = record.projection or cached_projection(pipe)
        if projection is None:
            return None, "no preview for this step"
        return self._save_preview(
            record,
            k,
            "project",
            projection(x0),
            f"clip predicted at step {k}, fast latent-to-RGB preview (press 'Decode this step' for the VAE's)",
        )

    def _save_preview(self, record: RunRecord, k: int, kind: str, frames: np.ndarray, note: str):
        if (k, kind) not in record.previews:
            path = os.path.join(self.output_dir, f"run{record.run_id:04d}-step{k:03d}-{kind}.png")
            Image.fromarray(filmstrip(frames)).save(path)
            record.previews[(k, kind)] = (path, note)
        return record.previews[(k, kind)]
