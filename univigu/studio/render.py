"""HTML for the studio: tokens coloured by confidence, the per-step plot, progress and run summaries."""

import html

import numpy as np

from ..trajectory import TrajectoryStep

MAX_SHOWN_TOKENS = 160
LEGEND = (
    '<div class="uv-legend">background: model confidence '
    '<span class="uv-tok" style="background:hsl(0,75%,82%)">low</span>'
    '<span class="uv-tok" style="background:hsl(60,75%,82%)">mid</span>'
    '<span class="uv-tok" style="background:hsl(120,75%,82%)">high</span> · '
    '<span class="uv-tok uv-chg">outlined</span> changed at this step · '
    '<span class="uv-tok uv-mask">_</span> still masked</div>'
)
HELD_LEGEND = (
    '<div class="uv-legend"><span class="uv-tok uv-held">word</span> held as the template gave it '
    "(not denoised; its colour is not a confidence)</div>"
)
CSS = """
.uv-tokens { line-height: 2.1; font-family: ui-monospace, monospace; font-size: 14px; }
.uv-tok { display: inline-block; padding: 0 4px; margin: 1px 2px; border-radius: 4px; color: #111;
          border: 2px solid transparent; }
.uv-tok.uv-chg { border-color: #1d4ed8; font-weight: 700; }
.uv-tok.uv-mask { color: #555; }
.uv-tok.uv-pad { color: #999; background: #f3f3f3 !important; font-size: 11px; }
.uv-tok.uv-after { opacity: 0.45; }
.uv-tok.uv-held { background: repeating-linear-gradient(135deg, #f1f5f9 0 6px, #e2e8f0 6px 12px) !important;
                  border: 2px dashed #64748b; color: #334155; font-style: italic; }
.uv-legend { font-size: 12px; color: #555; margin-top: 4px; }
.uv-note { font-size: 13px; color: #555; }
.uv-status progress { width: 100%; height: 10px; }
.uv-status img { image-rendering: pixelated; max-width: 100%; }
#uv-frame img { image-rendering: pixelated; object-fit: contain; max-width: 100%; height: auto; }
#uv-frame .image-frame, #uv-frame .image-container { overflow: visible; }
"""


def confidence_colour(confidence: float | None) -> str:
    if confidence is None:
        return "#eeeeee"
    return f"hsl({120 * max(0.0, min(1.0, confidence)):.0f},75%,82%)"


def tokens_html(step: TrajectoryStep, eos: str = "</s>", pad: str = "<pad>") -> str:
    """The text state at ``step``: one span per position, coloured by confidence, changed ones outlined; positions a
    fill-in template held (``step.held``) are marked apart, hatched and dashed."""
    if step.text_tokens is None:
        return ""
    spans, after_end = [], False
    confidence = step.text_confidence or [None] * len(step.text_tokens)
    changed = step.changed or [False] * len(step.text_tokens)
    held = step.held or [False] * len(step.text_tokens)
    shown = step.text_tokens[:MAX_SHOWN_TOKENS]
    for pos, (tok, conf, chg, kept) in enumerate(zip(shown, confidence, changed, held)):
        classes = ["uv-tok"]
        label = tok
        if tok == "<mask>":
            classes.append("uv-mask")
            label = "_"
        elif tok in (eos, pad):
            classes.append("uv-pad")
            label = "⏎" if tok == eos else "·"
        if after_end:
            classes.append("uv-after")
        if chg:
            classes.append("uv-chg")
        if kept:
            classes.append("uv-held")
        title = f"position {pos}: {tok}"
        if kept:
            title += ", held as the template gave it"
        elif conf is not None:
            title += f", confidence {conf:.2f}"
        title += ", changed at this step" if chg else ""
        spans.append(
            f'<span class="{" ".join(classes)}" data-changed="{int(chg)}" data-held="{int(kept)}" '
            f'title="{html.escape(title)}" style="background:{confidence_colour(conf)}">{html.escape(label)}</span>'
        )
        after_end = after_end or tok == eos
    more = len(step.text_tokens) - len(shown)
    if more > 0:
        spans.append(f'<span class="uv-note">… {more} more positions</span>')
    return f'<div class="uv-tokens" data-step="{step.step}">{"".join(spans)}</div>'


def text_panel_html(step: TrajectoryStep | None, held_prompt: str | None = None) -> str:
    """The text side of the scrubber at one step (or the clean prompt for text-to-video)."""
    if step is None:
        return '<div class="uv-note">Run a task to see its denoising here.</div>'
    if step.text_tokens is None:
        prompt = html.escape(held_prompt or "")
        return (
            f'<div class="uv-tokens" data-step="{step.step}">'
            '<span class="uv-note">The prompt is held clean in '
            f"the text stream for text-to-video:</span><br><b>{prompt}</b></div>"
        )
    sentence = html.escape(step.text or "")
    return (
        f'<div class="uv-sentence" data-step="{step.step}"><b>Step {step.step}/{step.num_steps}:</b> '
        f'<span class="uv-sentence-text">{sentence or "(empty)"}</span></div>{tokens_html(step)}{LEGEND}'
        f"{HELD_LEGEND if step.held and any(step.held) else ''}"
    )


def _series(trajectory: list[TrajectoryStep]) -> list[tuple[str, str, list[float | None]]]:
    return [
        (
            "tokens changed",
            "#1d4ed8",
            [float(s.num_changed) if s.changed is not None else None for s in trajectory],
        ),
        ("mean confidence", "#16a34a", [s.mean_confidence for s in trajectory]),
        ("video latent moved (RMS)", "#dc2626", [s.video_delta for s in trajectory]),
    ]


def stats_svg(trajectory: list[TrajectoryStep], current: int | None = None, width: int = 420, height: int = 130) -> str:
    """A small plot per step: tokens changed, mean confidence and video latent movement, each scaled alone."""
    if not trajectory:
        return ""
    n = len(trajectory)
    left, right, top, bottom = 8, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(i: int) -> float:
        return left + (plot_w * (i / (n - 1)) if n > 1 else plot_w / 2)

    parts = [
        (
            f'<svg class="uv-plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="per-step statistics">'
        ),
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    legend = []
    for name, colour, values in _series(trajectory):
        present = [v for v in values if v is not None]
        if not present:
            continue
        top_value = max(present) or 1.0
        points = " ".join(
            f"{x_at(i):.1f},{top + plot_h * (1 - v / top_value):.1f}" for i, v in enumerate(values) if v is not None
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        now = values[current - 1] if current and 0 < current <= n else None
        shown = f"{now:.3g}" if now is not None else "–"
        legend.append(f'<span style="color:{colour}">■</span> {html.escape(name)}: {shown} (max {top_value:.3g})')
    if current and 0 < current <= n:
        x = x_at(current - 1)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#111" stroke-dasharray="3,2"/>'
        )
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="11" fill="#555">step 1</text>')
    parts.append(
        f'<text x="{width - right}" y="{height - 6}" font-size="11" fill="#555" text-anchor="end">step {n}</text>'
    )
    parts.append("</svg>")
    return f'<div class="uv-stats">{"".join(parts)}<div class="uv-legend">{" · ".join(legend)}</div></div>'


def step_info(step: TrajectoryStep) -> str:
    bits = [f"**Step {step.step} of {step.num_steps}**"]
    if step.video_sigma is not None:
        bits.append(f"video σ {step.video_sigma:.3f}, latent moved {step.video_delta:.3g}")
    if step.text_sigma is not None:
        plural = "" if step.num_changed == 1 else "s"
        bits.append(
            f"text σ {step.text_sigma:.3f}, {step.num_changed} token{plural} changed, "
            f"mean confidence {step.mean_confidence:.2f}"
        )
    return " · ".join(bits)


def progress_html(
    task: str, step: TrajectoryStep | None, num_steps: int, thumbnail_uri: str | None = None, note: str = ""
) -> str:
    """What the page shows while a run streams."""
    done = step.step if step else 0
    parts = [
        (
            f'<div class="uv-status" data-step="{done}"><b>{html.escape(task)}</b>: '
            f"step {done} of {num_steps}"
            f'<progress value="{done}" max="{num_steps}"></progress>'
        ),
    ]
    if note:
        parts.append(f'<div class="uv-note">{html.escape(note)}</div>')
    if thumbnail_uri:
        parts.append(f'<div><img alt="predicted clip at step {done}" src="{thumbnail_uri}"></div>')
    if step is not None and step.text_tokens is not None:
        parts.append(tokens_html(step))
    parts.append("</div>")
    return "".join(parts)


def done_html(task: str, summary: str) -> str:
    return f'<div class="uv-status" data-done="1"><b>{html.escape(task)}</b>: {html.escape(summary)}</div>'


def trajectory_json(trajectory: list[TrajectoryStep], extra: dict | None = None) -> dict:
    """The trajectory as plain data for the API (no latents)."""

    def rounded(values):
        return None if values is None else [round(float(v), 4) for v in values]

    steps = []
    for s in trajectory:
        steps.append(
            {
                "step": s.step,
                "video_sigma": s.video_sigma,
                "video_delta": s.video_delta,
                "text_sigma": s.text_sigma,
                "text": s.text,
                "tokens": s.text_tokens,
                "confidence": rounded(s.text_confidence),
                "changed": s.changed,
                "held": s.held,
                "num_changed": s.num_changed if s.changed is not None else None,
                "mean_confidence": s.mean_confidence,
            }
        )
    return {**(extra or {}), "num_steps": len(trajectory), "steps": steps}


def png_data_uri(image: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
