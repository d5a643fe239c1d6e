"""Caches across denoising steps: the exact prompt cache every task gets, and diffusers' approximate step caches.

The prompt cache (:func:`apply_prompt_cache`, exact): within a run the prompt never changes, so its projection by
the condition embedder and every block's cross-attention keys and values are computed at the first step and
reused. diffusers 0.42.1's ``TextKVCacheConfig`` is this idea, but ``apply_text_kv_cache`` hooks only
``NucleusMoEImageTransformerBlock`` (it reads that block's ``encoder_proj`` / ``add_k_proj``), so on this model it
would hook nothing; the same reuse is built here on diffusers' ``ModelHook`` and ``StateManager``, keyed by the
pipeline's ``cache_context`` and reset at the start of every run. The pipeline applies it to its transformer.

Step caches (:func:`parse_cache`, approximate), for text-to-video and joint generation: the diffusers configs
that work on :class:`~univigu.models.UniViGUTransformer` through ``enable_cache`` (its block registered with
diffusers' block registry: :mod:`univigu.models.block_registry`), chosen by a spec ``NAME[:VALUE]`` (the
defaults are diffusers' own):

- ``first_block[:threshold]`` (0.05; 0 < t <= 1), ``FirstBlockCacheConfig``: every block after the first is
  skipped while the first block's video residual changed by less than the threshold (relative).
- ``taylorseer[:interval]`` (5; 2..10), ``TaylorSeerCacheConfig`` in its lite layout: between full steps every
  block is skipped and both heads' outputs are extrapolated by a Taylor series.
- ``sea[:threshold]`` (0.25; 0 < t <= 2), ``SeaCacheConfig``: every block is skipped (its residual reused) while
  the spectrally filtered video latents changed by less than the threshold, summed since the last full step.
- ``pab[:N]`` (2; 2..8), ``PyramidAttentionBroadcastConfig``: self- and cross-attention outputs reused for N - 1
  of every N steps at video timesteps 100..800.

Not offered: ``MagCacheConfig`` needs magnitude ratios calibrated per checkpoint and hands the text stream on
unchanged through skipped blocks (a joint caption would see no block); ``FasterCacheConfig`` splits the batch
as [uncond; cond] and reads the output's first field as the whole prediction, neither of which holds here.
"""

import math

import torch
from diffusers.hooks import (
    FirstBlockCacheConfig,
    HookRegistry,
    ModelHook,
    PyramidAttentionBroadcastConfig,
    SeaCacheConfig,
    TaylorSeerCacheConfig,
)
from diffusers.hooks.hooks import BaseState, StateManager

from .models import UniViGUTransformer
from .models.block_registry import register_block
from .models.transformer_univigu import UniViGUBlock

StepCacheConfig = FirstBlockCacheConfig | TaylorSeerCacheConfig | SeaCacheConfig | PyramidAttentionBroadcastConfig

# name -> (knob, type, default, low, high, low inclusive)
_KNOBS = {
    "first_block": ("threshold", float, 0.05, 0.0, 1.0, False),
    "taylorseer": ("interval", int, 5, 2, 10, True),
    "sea": ("threshold", float, 0.25, 0.0, 2.0, False),
    "pab": ("N", int, 2, 2, 8, True),
}
CACHE_NAMES = ("none", *_KNOBS)


def _valid() -> str:
    def one(name):
        knob, kind, default, low, high, closed = _KNOBS[name]
        bound = f"{low} <= {knob}" if closed else f"{low} < {knob}"
        return f"{name}[:{knob}] ({bound} <= {high}, default {default})"

    return "none, " + ", ".join(one(name) for name in _KNOBS)


def describe_cache(spec: str | None) -> str:
    """The canonical spec ``NAME[:VALUE]`` (the default value filled in), e.g. ``"first_block:0.05"``;
    raises ``ValueError`` like :func:`parse_cache`."""
    name, value = _parse(spec)
    return name if value is None else f"{name}:{value:g}"


def _parse(spec: str | None) -> tuple[str, float | int | None]:
    text = "none" if spec is None else str(spec).strip().lower()
    name, _, raw = text.partition(":")
    name = name.strip() or "none"
    if name not in CACHE_NAMES:
        raise ValueError(f"unknown step cache {name!r}; valid: {_valid()}")
    if name == "none":
        if raw.strip():
            raise ValueError(f"the step cache 'none' takes no value, got {spec!r}; valid: {_valid()}")
        return name, None
    knob, kind, default, low, high, closed = _KNOBS[name]
    if not raw.strip():
        return name, default
    try:
        value = kind(raw) if kind is int else float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not (low <= value if closed else low < value) or value > high:
        bound = f"{low} <= {knob}" if closed else f"{low} < {knob}"
        kind_name = "an integer" if kind is int else "a number"
        raise ValueError(f"{name}'s {knob} must be {kind_name} with {bound} <= {high}, got {raw.strip()!r}")
    return name, value


def parse_cache(spec: str | None) -> StepCacheConfig | None:
    """The diffusers step-cache config for ``spec`` = ``NAME[:VALUE]`` (names: :data:`CACHE_NAMES`), or ``None``
    for ``"none"`` / ``None``. Raises a one-line ``ValueError`` naming the valid names and ranges.

    ``pab``'s config still needs ``current_timestep_callback`` (the pipeline's :meth:`set_step_cache` sets it).
    """
    name, value = _parse(spec)
    if name == "first_block":
        return FirstBlockCacheConfig(threshold=value)
    if name == "taylorseer":
        # The lite layout: blocks skipped between full steps, the two heads' outputs predicted, so both streams
        # come out of a skipped step (diffusers' own lite patterns name only the video head, ``proj_out``).
        return TaylorSeerCacheConfig(
            cache_interval=value,
            disable_cache_before_step=3,
            max_order=1,
            taylor_factors_dtype=torch.float32,
            skip_predict_identifiers=[r"blocks\.\d+"],
            cache_identifiers=["proj_out", "text_proj_out"],
        )
    if name == "sea":
        return SeaCacheConfig(threshold=value, raw_vision_callback=video_latents_of)
    if name == "pab":
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=value, cross_attention_block_skip_range=value
        )
    return None


def video_latents_of(module, args, kwargs) -> list[torch.Tensor] | None:
    """SeaCache's view of a forward: the noisy video latents, one [C, F, H, W] per row (``None`` on a
    text-only forward, which SeaCache then runs in full)."""
    latents = kwargs.get("video_latents", args[0] if args else None)
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5:
        return None
    return list(latents.unbind(0))


# -------------------------------------------------------------------------------------------------
# The prompt cache
PROMPT_CACHE_HOOK = "univigu_prompt_cache"


class _PromptState(BaseState):
    def __init__(self):
        self.input = None
        self.output = None

    def reset(self):
        self.input = self.output = None


class PromptCacheHook(ModelHook):
    """Reuses a module's output while its input is the prompt it was computed from: compared by value at the
    condition embedder (``by_value``), by identity in the blocks, whose input is that embedder's cached output.

    Active only inside a ``cache_context`` and without autograd (training and direct calls compute as usual)."""

    _is_stateful = True

    def __init__(self, by_value: bool):
        super().__init__()
        self.by_value = by_value
        self.state_manager = StateManager(_PromptState)

    def _same(self, cached, x) -> bool:
        if cached is x:
            return True
        return (
            self.by_value
            and cached.shape == x.shape
            and cached.dtype == x.dtype
            and cached.device == x.device
            and bool(torch.equal(cached, x))
        )

    def new_forward(self, module, *args, **kwargs):
        try:
            state = self.state_manager.get_state()
        except ValueError:  # no cache context: not a pipeline's run
            return self.fn_ref.original_forward(*args, **kwargs)
        if torch.is_grad_enabled() or kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            return self.fn_ref.original_forward(*args, **kwargs)
        x = args[0]
        if state.input is None or not self._same(state.input, x):
            state.input, state.output = x, self.fn_ref.original_forward(x)
        return state.output

    def reset_state(self, module):
        self.state_manager.reset()
        return module


def prompt_cache_modules(transformer) -> list[tuple[torch.nn.Module, bool]]:
    """(module, by_value) for every module the prompt cache hooks: the condition embedder's prompt projection,
    then each block's cross-attention key and value projections."""
    modules = [(transformer.condition_embedder.text_embedder, True)]
    for block in transformer.blocks:
        modules += [(block.attn2.to_k, False), (block.attn2.to_v, False)]
    return modules


def apply_prompt_cache(transformer) -> None:
    """Hook the prompt cache onto ``transformer`` (idempotent). Apply before group offloading, so an offload
    hook still sees every call."""
    for module, by_value in prompt_cache_modules(transformer):
        registry = HookRegistry.check_if_exists_or_initialize(module)
        if registry.get_hook(PROMPT_CACHE_HOOK) is None:
            registry.register_hook(PromptCacheHook(by_value), PROMPT_CACHE_HOOK)
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()


def reset_caches(transformer) -> None:
    """Forget every cache hook's state (a new run: new prompt, maybe new weights)."""
    HookRegistry.check_if_exists_or_initialize(transformer).reset_stateful_hooks()


class StepCaches:
    """A pipeline's step caches: which one generation uses, switched off for captioning, fresh every run.

    ``current_timestep``: reads the run's current video timestep (what ``PyramidAttentionBroadcastConfig``
    needs); the exact prompt cache is applied at construction and always on.
    """

    def __init__(self, transformer, current_timestep):
        self.transformer, self.current_timestep = transformer, current_timestep
        if isinstance(transformer, UniViGUTransformer):
            apply_prompt_cache(transformer)  # before any offloading hooks, which must see every call
        self.spec, self.config, self.on = "none", None, False

    def set(self, spec: str | None) -> None:
        """Use step cache ``spec`` = ``NAME[:VALUE]`` for generation from the next run on; ``None`` or ``"none"``
        turns it off. Idempotent; a bad spec raises a one-line ``ValueError`` and changes nothing."""
        config, canonical = parse_cache(spec), describe_cache(spec)
        if config is not None:
            register_block(UniViGUBlock)  # before any change: without diffusers' block registry nothing changes
        if canonical == self.spec:
            return
        if self.on:
            self.transformer.disable_cache()
        if isinstance(config, PyramidAttentionBroadcastConfig) and config.current_timestep_callback is None:
            config.current_timestep_callback = self.current_timestep
        self.spec, self.config, self.on = canonical, config, False
        self._use(True)

    def start_run(self, generating: bool) -> None:
        """Every cache starts a run empty (new prompt, maybe new weights); the step cache serves generation only."""
        self._use(generating)
        reset_caches(self.transformer)

    def _use(self, on: bool) -> None:
        on = on and self.config is not None
        if on and not self.on:
            self.transformer.enable_cache(self.config)
        elif self.on and not on:
            self.transformer.disable_cache()
        self.on = on
