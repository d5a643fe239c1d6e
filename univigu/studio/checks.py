"""The studio's input checks: each turns a request value into what the pipeline takes, or raises :class:`UserError`
naming the field the user sees ("Steps", "Seed", ...).

The rules are the library's (``univigu.settings``, ``univigu.pipeline_text``, :class:`~univigu.clip_size.ClipSizes`);
what the studio adds are its own limits (``Limits``: what one visitor may ask of a shared server).
"""

from dataclasses import dataclass

from ..clip_size import ClipSizes
from ..pipeline_text import (
    BLANK,
    PromptError,
    check_words,
    closed_vocabulary,
    require_prompt,
    stream_ids,
    template_ids,
    unknown_words,
)
from ..settings import (
    CAPTION_VIDEO_CACHE_INTERVAL,
    check_guidance,
    check_seed,
    check_steps,
    check_video_cache_interval,
    draw_seed,
)


class UserError(ValueError):
    """Input the studio cannot use; the message says what to do instead."""


@dataclass
class Limits:
    """What one request may ask of the server (the library's own ranges are wider)."""

    max_steps: int = 100
    max_guidance: float = 15.0
    max_prompt_chars: int = 1000
    max_upload_mb: int = 200
    max_video_frames: int = 1000
    max_video_pixels: int = 3840 * 2160
    max_decoded_bytes: int = 1 << 30  # RGB bytes an upload may decode to: a bound on decoding time (not memory)


def _whole(value):
    """A number as the page or the API sends it (``4.0``, ``"4"``) as an int when it is a whole one; else as it
    came, for the library's check to refuse by name."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def _named(name: str, check, value):
    try:
        return check(value, name)
    except ValueError as err:
        raise UserError(str(err)) from None


class InputChecks:
    """Checks of one model's prompts, templates, seeds, steps, guidance and clip sizes.

    Built from a pipeline by :meth:`of` (its tokenizer, text-stream length and :class:`ClipSizes`: what a reload
    onto another device keeps), so it holds no pipeline itself.
    """

    def __init__(self, tokenizer, text_len: int, pad_id: int, sizes: ClipSizes, limits: Limits):
        self.tokenizer, self.text_len, self.pad_id = tokenizer, text_len, pad_id
        self.sizes, self.limits = sizes, limits

    @classmethod
    def of(cls, pipe, limits: Limits) -> "InputChecks":
        return cls(pipe.tokenizer, pipe.max_text_len, pipe.transformer.config.pad_token_id, ClipSizes.of(pipe), limits)

    # ---------------------------------------------------------------------------------------------
    # Text
    def prompt(self, prompt, name: str = "Prompt", required: bool = True) -> str | None:
        """The prompt, or None when it is optional and blank."""
        if not required and (prompt is None or not str(prompt).strip()):
            return None
        try:
            text = require_prompt(prompt, name)
            if len(text) > self.limits.max_prompt_chars:
                raise UserError(
                    f"{name} is {len(text)} characters long; keep it under {self.limits.max_prompt_chars} "
                    f"(this model reads at most {self.text_len} tokens)."
                )
            check_words(self.tokenizer, text, name)
            stream_ids(self.tokenizer, text, self.text_len)
        except PromptError as err:
            message = str(err)
            raise UserError(message if message.startswith(name) else f"{name} is too long: {message}") from None
        return text

    def template(self, template, name: str = "Fill in") -> str | None:
        """A fill-in template (``_`` one position, ``_*N`` N of them), or None when blank: free captioning."""
        if template is None or not str(template).strip():
            return None
        text = str(template)
        try:
            check_words(self.tokenizer, BLANK.sub(" ", text), name)
            template_ids(self.tokenizer, text, self.text_len, self.pad_id)
        except PromptError as err:
            message = str(err)
            raise UserError(message if message.startswith(name) else f"{name}: {message}") from None
        return text

    def vocabulary(self) -> list[str] | None:
        """The words a closed-vocabulary (word-level) model knows; None for subword tokenizers."""
        return closed_vocabulary(self.tokenizer)

    def knows(self, prompt: str) -> bool:
        return not unknown_words(self.tokenizer, prompt)

    def example_prompt(self) -> str:
        for prompt in ("a red circle moves right", "a cat walks on the grass"):
            if self.knows(prompt):
                return prompt
        return "a red circle moves right"

    # ---------------------------------------------------------------------------------------------
    # Numbers: the library's rules under the studio's field names, then the studio's limits
    def steps(self, steps, name: str = "Steps") -> int:
        steps = _named(name, check_steps, _whole(steps))
        if steps > self.limits.max_steps:
            raise UserError(f"{name} must be at most {self.limits.max_steps} on this server, got {steps}")
        return steps

    def seed(self, seed, name: str = "Seed") -> int:
        """The run's seed; an empty field (or an API call without one) draws one, which the run reports."""
        if seed is None or seed == "":
            return draw_seed()
        return _named(name, check_seed, _whole(seed))

    def guidance(self, guidance, name: str = "Guidance") -> float:
        scale = _named(name, check_guidance, _whole(guidance))
        if scale > self.limits.max_guidance:
            raise UserError(f"{name} must be at most {self.limits.max_guidance:g}, got {guidance!r}")
        return scale

    def cache_interval(self, every, name: str = "Clip cache interval") -> int:
        """Captioning's ``video_cache_interval``: the clip's keys and values are recomputed every ``every`` steps."""
        if every is None or every == "":
            return CAPTION_VIDEO_CACHE_INTERVAL
        return _named(name, check_video_cache_interval, _whole(every))

    def size(self, num_frames, height, width) -> tuple[int, int, int]:
        """The clip size asked (the trained one for a blank), on the model's grid and no larger than trained."""
        given = [None if v in (None, "", 0) else _whole(v) for v in (num_frames, height, width)]
        for name, value in zip(("Frames", "Height", "Width"), given):
            if value is not None and not isinstance(value, int):
                raise UserError(f"{name} must be a whole number, got {value!r}")
        try:
            size = self.sizes.check(*given, names=("Frames", "Height", "Width"))
        except ValueError as err:
            raise UserError(str(err)) from None
        if self.sizes.larger_than_trained(*size):
            raise UserError(
                f"{self.sizes.describe(size)} is larger than this model makes: it makes clips of up to "
                f"{self.sizes.describe()}."
            )
        return size
