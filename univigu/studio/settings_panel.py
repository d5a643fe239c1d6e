"""The settings panel: device, dtype, offload, VAE tiling, step previews and the step cache; what this machine
cannot offer is left out of the choices and listed with the reason."""

from dataclasses import replace

import gradio as gr

from ..caching import CACHE_NAMES
from ..offload import DTYPES, OFFLOAD_MODES, Placement, device_requirements, dtype_requirements, offload_requirements
from .engine import Settings, Studio, available_devices
from .errors import guarded, named_range_errors
from .step_previews import PREVIEW_MODES


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
        current = studio.settings.placement
        return (
            gr.Dropdown(choices=dtypes, value=current.dtype if current.dtype in dtypes else dtypes[0]),
            gr.Dropdown(choices=modes, value=current.offload if current.offload in modes else "none"),
            _reasons_md(device),
        )

    @guarded
    def apply(device, dtype, offload, vae_tiling, preview):
        step_cache = studio.settings.placement.step_cache
        placement = Placement(device, dtype, offload, bool(vae_tiling), step_cache)
        return f"Applied: {studio.apply_settings(Settings(placement, preview))}."

    @guarded
    def apply_step_cache(spec):
        placement = replace(studio.settings.placement, step_cache=spec or "none")
        return f"Applied: {studio.apply_settings(replace(studio.settings, placement=placement))}."

    return {"on_device": on_device, "apply": apply, "apply_step_cache": apply_step_cache}


def build_settings(studio: Studio) -> None:
    """Lay out the settings panel in the current ``gr.Blocks`` and wire its events."""
    settings_fns = make_settings_handlers(studio)
    private = {"api_visibility": "private"}
    with gr.Accordion("Settings", open=False, elem_id="uv-settings"):
        s, preview_mode = studio.settings.placement, studio.settings.preview
        dtypes, modes = _choices(s.device)
        with gr.Row():
            device = named_range_errors(
                gr.Dropdown(label="Device", choices=available_devices(), value=s.device),
                reason=device_requirements,
            )
            dtype = named_range_errors(
                gr.Dropdown(label="Dtype", choices=dtypes, value=s.dtype),
                reason=lambda d: dtype_requirements(str(d), studio.settings.placement.device),
            )
            offload = named_range_errors(
                gr.Dropdown(label="Offload", choices=modes, value=s.offload, elem_id="uv-offload"),
                reason=lambda m: offload_requirements(str(m), studio.settings.placement.device),
            )
        with gr.Row():
            vae_tiling = gr.Checkbox(label="VAE tiling (less memory for big clips)", value=s.vae_tiling)
            preview = gr.Radio(
                label="Step previews",
                choices=list(PREVIEW_MODES),
                value=preview_mode,
                info="auto: VAE decode for small models, a fast projection for full-size ones",
            )
            step_cache = gr.Dropdown(
                label="Step cache",
                choices=list(dict.fromkeys([*CACHE_NAMES, s.step_cache])),
                value=s.step_cache,
                allow_custom_value=True,
                info="text-to-video and joint skip work between steps (approximate): NAME or NAME:VALUE, "
                "e.g. first_block:0.1 (see univigu.caching)",
                elem_id="uv-step-cache",
            )
        reasons = gr.Markdown(_reasons_md(s.device), elem_id="uv-settings-reasons")
        apply_btn = gr.Button("Apply settings")
        settings_status = gr.Markdown(elem_id="uv-settings-status")

    device.change(settings_fns["on_device"], device, [dtype, offload, reasons], **private)
    # Two endpoints, one concern each (the API's /apply_settings keeps its five inputs); the second runs after
    # the first succeeds.
    apply_btn.click(
        settings_fns["apply"],
        [device, dtype, offload, vae_tiling, preview],
        settings_status,
        concurrency_id="pipeline",
        api_name="apply_settings",
        api_visibility="undocumented",
    ).success(
        settings_fns["apply_step_cache"],
        step_cache,
        settings_status,
        concurrency_id="pipeline",
        api_name="apply_step_cache",
        api_visibility="undocumented",
    )
