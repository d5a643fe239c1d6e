"""The settings panel: device, dtype, offload, VAE tiling and step previews, with what is unavailable here and
why."""

import gradio as gr

from ..offload import DTYPES, OFFLOAD_MODES, dtype_requirements, offload_requirements
from .engine import Settings, Studio, available_devices, device_requirements
from .errors import guarded


def unavailable_reasons(device: str) -> list[str]:
    reasons = []
    for dev in ("cuda", "mps"):
        if dev not in available_devices():
            reasons.append(f"device {dev}: {device_requirements(dev).split(': ', 1)[-1]}")
    reasons += [f"dtype {d}: {r}" for d in DTYPES if (r := dtype_requirements(d, device))]
    reasons += [f"offload {m}: {r}" for m in OFFLOAD_MODES if (r := offload_requirements(m, device))]
    return reasons


def _choices(device: str) -> tuple[list[str], list[str]]:
    dtypes = [d for d in DTYPES if not dtype_requirements(d, device)]
    modes = [m for m in OFFLOAD_MODES if not offload_requirements(m, device)]
    return dtypes, modes


def _reasons_md(device: str) -> str:
    reasons = unavailable_reasons(device)
    return ("**Not available here:**\n" + "\n".join(f"- {r}" for r in reasons)) if reasons else ""


def make_settings_handlers(studio: Studio) -> dict:
    @guarded
    def on_device(device):
        dtypes, modes = _choices(device)
        current = studio.settings
        return (
            gr.Dropdown(choices=dtypes, value=current.dtype if current.dtype in dtypes else dtypes[0]),
            gr.Dropdown(choices=modes, value=current.offload if current.offload in modes else "none"),
            _reasons_md(device),
        )

    @guarded
    def apply(device, dtype, offload, vae_tiling, preview):
        settings = Settings(
            device=device, dtype=dtype, offload=offload, vae_tiling=bool(vae_tiling), preview=preview
        )
        return f"Applied: {studio.apply_settings(settings)}."

    return {"on_device": on_device, "apply": apply}
