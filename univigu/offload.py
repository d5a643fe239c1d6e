"""Memory options for running big models on small machines, all through diffusers' own hooks.

=============  ==============================================================  ================
mode           what it does                                                    needs
=============  ==============================================================  ================
none           every component on ``device``                                   -
model          one whole component on the accelerator at a time                an accelerator
sequential     one leaf module at a time (least memory, slowest)               an accelerator
group          transformer blocks / leaves streamed in groups (CUDA streams)   - (streams: CUDA)
group-leaf     the same at leaf granularity                                    - (streams: CUDA)
fp8            weights stored in float8, computed in ``dtype`` (layerwise)      -
=============  ==============================================================  ================

VAE tiling/slicing and keeping the text encoder on the CPU combine with any mode.
"""

from dataclasses import dataclass

import torch

OFFLOAD_MODES = ("none", "model", "sequential", "group", "group-leaf", "fp8")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def device_requirements(device: str) -> str | None:
    """Why ``device`` cannot run here (``"cuda: this machine has no CUDA GPU"``), or None if it can."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        return f"unknown device {device!r}; use cpu or cuda"
    if kind == "cuda" and not torch.cuda.is_available():
        return "cuda: this machine has no CUDA GPU"
    if kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return "xpu: this machine has no Intel GPU"
    if kind == "mps" and not torch.backends.mps.is_available():
        return "mps: this machine has no Apple GPU"
    return None


def offload_requirements(mode: str, device: str | None = None) -> str | None:
    """Why ``mode`` cannot run on ``device`` (default: the best one here), or None if it can."""
    if mode not in OFFLOAD_MODES:
        return f"unknown offload mode {mode!r}; choose one of {', '.join(OFFLOAD_MODES)}"
    device = device or default_device()
    if mode in ("model", "sequential") and torch.device(device).type == "cpu":
        return f"'{mode}' offload moves weights between the CPU and a GPU; this machine has no GPU"
    return None


def dtype_requirements(dtype: str, device: str | None = None) -> str | None:
    """Why ``dtype`` is a poor or impossible choice on ``device``, or None."""
    if dtype not in DTYPES:
        return f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}"
    device = device or default_device()
    if dtype == "float16" and torch.device(device).type == "cpu":
        return "float16 is slow and unsupported for some ops on the CPU; use float32 or bfloat16"
    return None


def apply_offload(
    pipe,
    mode: str = "none",
    device: str | None = None,
    dtype: torch.dtype | str = torch.float32,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    text_encoder_on_cpu: bool = False,
):
    """Place ``pipe``'s components according to ``mode``; raises ``ValueError`` saying why a mode can't run.

    Load the pipeline with ``torch_dtype`` (so fp32-only modules stay fp32); ``dtype`` here is the compute
    dtype of the ``fp8`` mode.
    """
    device = device or default_device()
    reason = offload_requirements(mode, device)
    if reason:
        raise ValueError(reason)
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    cuda = torch.device(device).type == "cuda"

    if mode in ("none", "fp8"):
        if mode == "fp8":
            pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        pipe.to(device)
    elif mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        offload_type = "block_level" if mode == "group" else "leaf_level"
        kwargs = {"num_blocks_per_group": 1} if offload_type == "block_level" else {}
        pipe.transformer.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type=offload_type,
            use_stream=cuda,
            **kwargs,
        )
        for name in ("text_encoder", "vae"):
            getattr(pipe, name).to(device)

    if text_encoder_on_cpu and mode not in ("model", "sequential"):
        pipe.text_encoder.to("cpu")
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
    return pipe


@dataclass(frozen=True)
class Placement:
    """Where and how a pipeline runs: what the command line's and the studio's model options set.

    ``device`` (``None``: the best one here), ``dtype`` (a key of ``DTYPES``: the weights' dtype, and the compute
    dtype of ``fp8``), ``offload`` (a mode of ``OFFLOAD_MODES``), ``vae_tiling``, ``step_cache`` (a spec of
    :mod:`univigu.caching`, or ``None``).
    """

    device: str | None = None
    dtype: str = "float32"
    offload: str = "none"
    vae_tiling: bool = False
    step_cache: str | None = None

    def problem(self) -> str | None:
        """Why this placement cannot run here, or ``None``: checked before any weights are loaded."""
        device = self.device or default_device()
        return (
            device_requirements(device)
            or offload_requirements(self.offload, device)
            or dtype_requirements(self.dtype, device)
        )

    def apply(self, pipe):
        """Place ``pipe`` (loaded with ``DTYPES[dtype]``) and set its step cache."""
        apply_offload(pipe, self.offload, self.device, DTYPES[self.dtype], vae_tiling=self.vae_tiling)
        pipe.set_step_cache(self.step_cache)
        return pipe
