"""Input checks: each turns a request value into what the pipeline takes, or raises :class:`UserError`
with a message saying what to do instead.
"""

import math
import secrets
from dataclasses import dataclass

from ..pipeline_text import PromptError
from ..settings import CAPTION_VIDEO_CACHE_INTERVAL


class UserError(ValueError):
    """Input the studio cannot use; the message says what to do instead."""


@dataclass
class Limits:
    max_steps: int = 100
    min_guidance: float = 1.0
    max_guidance: float = 15.0
    max_seed: int = 2**32 - 1
    max_prompt_chars: int = 1000
    max_upload_mb: int = 200
    max_video_frames: int = 1000
    max_video_pixels: int = 3840 * 2160
    max_decoded_bytes: int = 1 << 30  # RGB bytes an upload may decode to: a bound on decoding time (not memory)


class InputChecks:
    """Checks of prompts, seeds, steps, guidance and clip sizes (a mixin of ``Studio``: uses ``self.pipe``,
    ``self.limits``, ``self.default_size`` and ``self.size_step``)."""

    def vocabulary(self) -> list[str] | None:
        """The words a closed-vocabulary (word-level) model knows; None for subword tokenizers."""
        tok = self.pipe.tokenizer
        if tok.unk_token_id is None:
            return None
        specials = set(tok.all_special_tokens)
        words = sorted(w for w in tok.get_vocab() if w not in specials)
        return words if len(words) <= 2000 else None

    # ---------------------------------------------------------------------------------------------
    # Checks: each raises UserError saying what to do
    def check_prompt(self, prompt, required: bool = True) -> str | None:
        text = "" if prompt is None else str(prompt)
        if not text.strip():
            if required:
                raise UserError(f"The prompt is empty: describe the clip you want, e.g. '{self.example_prompt()}'.")
            return None
        if len(text) > self.limits.max_prompt_chars:
            raise UserError(
                f"The prompt is {len(text)} characters long; keep it under "
                f"{self.limits.max_prompt_chars} (this model reads at most {self.pipe.max_text_len} tokens)."
            )
        unknown = self.pipe.unknown_words(text)
        if unknown:
            words = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
            known = [w for w in self.vocabulary() or [] if any(c.isalnum() for c in w)]
            knows = f" It knows: {', '.join(known)}." if known else ""
            raise UserError(
                f"The model does not know {words}; rephrase without {'it' if len(unknown) == 1 else 'them'}.{knows}"
            )
        try:
            self.pipe.text_ids(text)
        except PromptError as err:
            raise UserError(f"The prompt is too long: {err}") from err
        return text

    def check_steps(self, steps) -> int:
        return int(self._number("steps", steps, 1, self.limits.max_steps, integer=True))

    def check_cache_interval(self, every) -> int:
        """Captioning's ``video_cache_interval``: the clip's keys and values are recomputed every ``every`` steps."""
        if every is None or every == "":
            return CAPTION_VIDEO_CACHE_INTERVAL
        return int(self._number("clip cache interval", every, 1, self.limits.max_steps, integer=True))

    def check_guidance(self, guidance) -> float:
        return float(self._number("guidance", guidance, self.limits.min_guidance, self.limits.max_guidance))

    def check_seed(self, seed) -> int:
        """The run's seed; an empty field (or an API call without one) draws one at random, which the run reports."""
        if seed is None or seed == "":
            return secrets.randbelow(self.limits.max_seed + 1)
        return int(self._number("seed", seed, 0, self.limits.max_seed, integer=True))

    def check_size(self, num_frames, height, width) -> tuple[int, int, int]:
        default_f, default_h, default_w = self.default_size
        f = int(self._number("frames", num_frames or default_f, 1, default_f, integer=True))
        h = int(self._number("height", height or default_h, self.size_step, default_h, integer=True))
        w = int(self._number("width", width or default_w, self.size_step, default_w, integer=True))
        try:
            return self.pipe.check_size(f, h, w)
        except ValueError as err:
            raise UserError(
                f"{err}. This model makes clips of up to {default_f} frames at {default_w}x{default_h}."
            ) from err

    @staticmethod
    def _number(name: str, value, lo: float, hi: float, integer: bool = False) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number < lo or number > hi:
            raise UserError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
        if integer and number != int(number):
            raise UserError(f"{name} must be a whole number, got {value!r}")
        return number

    def example_prompt(self) -> str:
        vocab = set(self.vocabulary() or [])
        for prompt in ("a red circle moves right", "a cat walks on the grass"):
            if not vocab or set(prompt.split()) <= vocab:
                return prompt
        return "a red circle moves right"
