"""The studio in a real headless Chromium (Debian's, driven by Playwright through ``executable_path``).

Runs joint generation from the page, scrubs the denoising with the step slider (the shown text and the
shown frame must change with it, in sync), plays the steps, checks that the clip plays in its <video>
element and that the page fetched nothing from outside. A screenshot goes to ``test-artifacts/``.
Chromium comes from ``scripts/install_browser.sh`` (apt-get, only when /usr/bin/chromium is missing).
"""

import os
import subprocess
import time
from urllib.parse import urlparse

import pytest

from univigu.settings import GENERATION_STEPS

sync_api = pytest.importorskip("playwright.sync_api")

try:  # the harness lives with the API tests
    from test_app_api import REPO
except ImportError:  # pragma: no cover - run as a package
    from tests.test_app_api import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"


def ensure_chromium() -> str:
    if not os.path.exists(CHROMIUM):
        result = subprocess.run(["bash", str(REPO / "scripts" / "install_browser.sh")], capture_output=True, text=True)
        assert os.path.exists(CHROMIUM), (
            f"could not install chromium:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():
    executable = ensure_chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _scrubber_state(page) -> dict:
    return page.evaluate(
        """() => {
            const text = document.querySelector('#uv-text [data-step]');
            const img = document.querySelector('#uv-frame img');
            return {step: text ? Number(text.dataset.step) : null, text: text ? text.innerText : null,
                    src: img ? img.src : null, info: document.querySelector('#uv-step-info')?.innerText};
        }"""
    )


def _wait_for_step(page, k: int, timeout: float = 30_000) -> dict:
    page.wait_for_function(
        """k => {
            const text = document.querySelector('#uv-text [data-step]');
            const img = document.querySelector('#uv-frame img');
            const info = document.querySelector('#uv-step-info');
            const tag = `-step${String(k).padStart(3, '0')}-`;
            return text && Number(text.dataset.step) === k && img && img.complete && img.naturalWidth > 0
                && info && info.innerText.includes(`Step ${k} of`) && img.src.includes(tag);
        }""",
        arg=k,
        timeout=timeout,
    )
    return _scrubber_state(page)


def _wait_for_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        """([sel, text]) => {
            const el = document.querySelector(sel);
            return !!el && el.innerText.includes(text);
        }""",
        arg=[selector, text],
        timeout=timeout,
    )


def _set_step(page, k: int) -> None:
    slider = page.locator("#uv-step input[type=range]")
    slider.fill(str(k))  # sets the value and fires input/change, as dragging does


def test_joint_generation_scrub_and_play(app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    outside = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if urlparse(r.url).scheme in ("http", "https", "ws", "wss") and urlparse(r.url).hostname != "127.0.0.1"
            else None
        ),
    )
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(app.url, wait_until="load")
        page.get_by_role("tab", name="Joint generation").click()
        page.locator("#uv-joint-prompt textarea").fill("a red circle moves left")
        # Record the progress the page streams while the run goes.
        page.evaluate(
            """() => {
                window.__uvSteps = new Set();
                const target = document.querySelector('#uv-joint-status');
                new MutationObserver(() => {
                    const s = target.querySelector('.uv-status[data-step]');
                    if (s) window.__uvSteps.add(Number(s.dataset.step));
                }).observe(target, {subtree: true, childList: true, attributes: true});
            }"""
        )
        page.locator("#uv-joint-run").click()
        page.wait_for_selector("#uv-joint-status [data-done]", timeout=120_000)
        streamed = page.evaluate("() => [...window.__uvSteps]")
        assert len([s for s in streamed if s > 0]) >= 2, f"progress did not stream: {streamed}"

        # The scrubber opens on the last step of the new run (the library's default steps); the caption box shows
        # the final text.
        last = _wait_for_step(page, GENERATION_STEPS)
        caption = page.locator("#uv-joint-text textarea").input_value()
        assert caption in last["text"] or caption == ""

        _set_step(page, 3)
        third = _wait_for_step(page, 3)
        assert third["text"] != last["text"], "the text did not change with the step"
        assert third["src"] != last["src"], "the frame did not change with the step"
        pixels_last = page.request.get(last["src"]).body()
        pixels_third = page.request.get(third["src"]).body()
        assert pixels_last != pixels_third

        _set_step(page, 12)
        twelfth = _wait_for_step(page, 12)
        assert len({third["text"], twelfth["text"], last["text"]}) >= 2 and twelfth["src"] not in (
            third["src"],
            last["src"],
        )
        assert page.locator("#uv-stats svg line").count() == 1  # the plot marks the current step

        # Play animates the steps from the current one; pause stops it.
        page.locator("#uv-play").click()
        _wait_for_step(page, 14, timeout=30_000)
        page.locator("#uv-pause").click()
        time.sleep(1.0)
        paused_at = _scrubber_state(page)["step"]
        time.sleep(1.5)
        assert _scrubber_state(page)["step"] == paused_at, "the steps kept playing after pause"

        # The clip plays in the page.
        video = page.locator("#uv-joint-video video")
        video.wait_for(state="attached", timeout=30_000)
        played = video.evaluate(
            """async v => {
                v.muted = true;
                if (v.readyState < 2)
                    await new Promise(r => v.addEventListener('loadeddata', r, {once: true}));
                await v.play();
                const t0 = v.currentTime;
                await new Promise(r => setTimeout(r, 400));
                return {paused: v.paused, error: v.error && v.error.code, advanced: v.currentTime !== t0,
                        width: v.videoWidth, frames: v.duration};
            }"""
        )
        assert played["error"] is None and not played["paused"] and played["advanced"], played
        assert played["width"] == 16

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "studio-joint.png"), full_page=True)
        assert (ARTIFACTS / "studio-joint.png").stat().st_size > 10_000
        assert not outside, f"the page fetched from outside: {outside}"
        assert not errors, f"page errors: {errors}"
    finally:
        page.close()


def test_cancel_from_the_page_and_preview_settings(app, browser):
    import torch

    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    try:
        page.goto(app.url, wait_until="load")
        page.get_by_role("tab", name="Joint generation").click()
        page.locator("#uv-joint-prompt textarea").fill("a blue square moves up")
        steps = page.locator("#uv-joint-steps input[type=number]")
        steps.fill("100")
        steps.press("Enter")
        page.locator("#uv-joint-run").click()
        page.wait_for_function(
            "() => { const s = document.querySelector('#uv-joint-status .uv-status[data-step]');"
            " return s && Number(s.dataset.step) >= 1 && s.textContent.includes('of 100'); }",
            timeout=60_000,
        )
        assert _cancel_enabled(page, "joint")  # a run is going
        page.locator("#uv-joint-cancel").click()
        page.wait_for_selector("#uv-joint-status [data-cancelled]", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#uv-joint-cancel').disabled", timeout=30_000)
        page.get_by_text("Cancelled (stopped after step").wait_for(timeout=30_000)  # the notice (a toast)
        # The cancelled run keeps the steps it made, ready to scrub.
        page.wait_for_function(
            "() => (document.querySelector('#uv-run-select input')?.value || '').includes('cancelled at step')",
            timeout=30_000,
        )
        label = page.locator("#uv-run-select input").input_value()
        done = int(label.split("cancelled at step ")[1].rstrip(")"))
        assert 1 <= done < 100
        page.wait_for_function(
            "n => document.querySelector('#uv-step input[type=range]')?.max === String(n)",
            arg=done,
            timeout=30_000,
        )

        # Settings: GPU-only choices are left out with a reason; previews switch to the projection.
        settings = page.locator("#uv-settings")
        settings.get_by_text("Settings", exact=True).click()
        reasons = page.locator("#uv-settings-reasons").inner_text()
        if not torch.cuda.is_available():
            assert "offload model:" in reasons and "no GPU" in reasons, reasons
        settings.get_by_label("project", exact=True).check()
        page.get_by_role("button", name="Apply settings").click()
        _wait_for_text(page, "#uv-settings-status", "previews project")

        page.get_by_role("tab", name="Text to video").click()
        page.locator("#uv-t2v-prompt textarea").fill("a red circle moves right")
        page.locator("#uv-t2v-run").click()
        page.wait_for_selector("#uv-t2v-status [data-done]", timeout=120_000)
        page.wait_for_function(
            "() => (document.querySelector('#uv-frame-note')?.innerText || '').includes('fast latent-to-RGB preview')",
            timeout=30_000,
        )
        projected = page.locator("#uv-frame img").get_attribute("src")
        assert "-project.png" in projected
        page.locator("#uv-decode").click()
        page.wait_for_function(
            "() => (document.querySelector('#uv-frame-note')?.innerText || '').includes('decoded by the VAE')",
            timeout=30_000,
        )
        assert "-decode.png" in page.locator("#uv-frame img").get_attribute("src")
        settings.get_by_label("auto", exact=True).check()
        page.get_by_role("button", name="Apply settings").click()
        _wait_for_text(page, "#uv-settings-status", "previews auto")
    finally:
        page.close()


# ------------------------------------------------------------------------------------------------
# The first five minutes: what a user sees on each tab before and after a run
STRIP_INSIDE = """() => {
    // the strip's last frame is the image's right edge: the whole image must lie inside every box that clips it
    const img = document.querySelector('#uv-frame img');
    if (!img || !img.complete || !img.naturalWidth) return {ready: false};
    const box = img.getBoundingClientRect();
    const clipped = [];
    for (let el = img.parentElement; el; el = el.parentElement) {
        const style = getComputedStyle(el);
        if (style.overflow !== 'visible' || style.overflowX !== 'visible' || style.overflowY !== 'visible') {
            const r = el.getBoundingClientRect();
            if (box.left < r.left - 1 || box.right > r.right + 1 || box.top < r.top - 1 || box.bottom > r.bottom + 1)
                clipped.push(el.className || el.tagName);
        }
        if (el.id === 'uv-frame') break;
    }
    const fit = getComputedStyle(img).objectFit;
    const ratio = (box.width / box.height) / (img.naturalWidth / img.naturalHeight);
    // nothing drawn over the strip: the element at each corner of the image is the image itself
    const corners = [[box.left + 2, box.top + 2], [box.right - 2, box.top + 2], [box.right - 2, box.bottom - 2]];
    const covered = corners.filter(([x, y]) => document.elementFromPoint(x, y) !== img).length;
    return {ready: true, clipped, whole: fit === 'contain' || Math.abs(ratio - 1) < 0.02, covered, width: box.width};
}"""


# gradio leaves a hidden column out of the page
PANEL_HIDDEN = "() => { const el = document.querySelector('#uv-denoising'); return !el || el.offsetParent === null; }"


def _shot(page, folder, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _cancel_enabled(page, prefix: str) -> bool:
    return page.locator(f"#uv-{prefix}-cancel").is_enabled()


def _strip_is_whole(page) -> dict:
    page.wait_for_function(f"() => ({STRIP_INSIDE})().ready", timeout=30_000)
    page.locator("#uv-frame img").scroll_into_view_if_needed()
    state = page.evaluate(STRIP_INSIDE)
    assert not state["clipped"] and state["whole"] and state["covered"] == 0, state
    return state


def _latest_label(page) -> str:
    return page.locator("#uv-run-select input").input_value()


def test_each_tab_before_and_after_a_run(app, browser, tmp_path):
    shots = tmp_path / "screens"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(app.url, wait_until="load")
        header = page.locator("#uv-header").inner_text()
        assert "Model tiny-model: clips of 5 frames at 16x16" in header  # the header says what the model is

        # --- Text to video: a real prompt is in the box, Cancel waits for a run, no Denoising panel yet
        _shot(page, shots, "t2v-before")
        prompt = page.locator("#uv-t2v-prompt textarea").input_value()
        assert any(shape in prompt for shape in ("circle", "square", "triangle")), prompt
        assert not _cancel_enabled(page, "t2v") and page.locator("#uv-t2v-run").is_enabled()
        assert page.evaluate(PANEL_HIDDEN)
        steps = page.locator("#uv-t2v-steps input[type=number]")
        steps.fill("3")
        steps.press("Enter")
        page.locator("#uv-t2v-run").click()  # the prompt as it stands: the example is a real one
        page.wait_for_selector("#uv-t2v-status [data-done]", timeout=120_000)
        _wait_for_step(page, 3)
        assert page.locator("#uv-denoising").is_visible() and "Text to video" in _latest_label(page)
        page.wait_for_function("() => document.querySelector('#uv-t2v-cancel').disabled", timeout=10_000)
        _strip_is_whole(page)
        _shot(page, shots, "t2v-after")

        # A new error replaces the last one: two empty prompts leave one notice, not two stacked
        page.locator("#uv-t2v-prompt textarea").fill("")
        for _ in range(2):
            page.locator("#uv-t2v-run").click()
            page.get_by_text("Prompt is empty").first.wait_for(timeout=30_000)
            time.sleep(0.5)
        deadline = time.monotonic() + 30  # the old notice leaves as the new one comes: wait for the one to settle
        while page.get_by_text("Prompt is empty").count() != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert page.get_by_text("Prompt is empty").count() == 1
        assert page.locator(".toast-count").count() == 0  # gradio counts stacked notices "(2)"
        page.wait_for_function("() => document.querySelector('#uv-t2v-cancel').disabled", timeout=10_000)

        # --- Video captioning: opens on its own runs (none yet: no panel), an example clip, a fill-in template
        page.get_by_role("tab", name="Video captioning").click()
        page.wait_for_function(PANEL_HIDDEN, timeout=10_000)
        _shot(page, shots, "caption-before")
        assert not _cancel_enabled(page, "cap")
        page.locator("#uv-cap-examples .gallery-item").first.click()
        page.wait_for_selector("#uv-cap-input video", timeout=30_000)
        page.locator("#uv-cap-template textarea").fill("a _ circle moves _")
        page.locator("#uv-cap-run").click()
        page.wait_for_selector("#uv-cap-status [data-done]", timeout=120_000)
        page.wait_for_function(
            "() => (document.querySelector('#uv-run-select input')?.value || '').includes('Video captioning')",
            timeout=30_000,
        )
        label = _latest_label(page)
        assert "shapesworld-test-" in label and "uploaded clip" not in label, label  # named after the example
        held = page.locator("#uv-text .uv-tok.uv-held")
        assert held.count() >= 3 and page.locator("#uv-text .uv-tok:not(.uv-held)").count() >= 2
        assert held.first.evaluate("el => getComputedStyle(el).borderTopStyle") == "dashed"  # marked apart
        assert "held as the template gave it" in page.locator("#uv-text").inner_text()
        _strip_is_whole(page)
        _shot(page, shots, "caption-after")

        # --- Joint generation: no joint run yet, so no panel; after one, its own run
        page.get_by_role("tab", name="Joint generation").click()
        page.wait_for_function(PANEL_HIDDEN, timeout=10_000)
        _shot(page, shots, "joint-before")
        assert not _cancel_enabled(page, "joint") and page.locator("#uv-joint-prompt textarea").input_value()
        steps = page.locator("#uv-joint-steps input[type=number]")
        steps.fill("3")
        steps.press("Enter")
        page.locator("#uv-joint-run").click()
        page.wait_for_selector("#uv-joint-status [data-done]", timeout=120_000)
        page.wait_for_function(
            "() => (document.querySelector('#uv-run-select input')?.value || '').includes('Joint generation')",
            timeout=30_000,
        )
        _strip_is_whole(page)
        _shot(page, shots, "joint-after")

        # Back on Text to video: its own latest run again
        page.get_by_role("tab", name="Text to video").click()
        page.wait_for_function(
            "() => (document.querySelector('#uv-run-select input')?.value || '').includes('Text to video')",
            timeout=30_000,
        )
        for name in ("t2v", "caption", "joint"):
            for when in ("before", "after"):
                assert (shots / f"{name}-{when}.png").stat().st_size > 10_000
        ARTIFACTS.mkdir(exist_ok=True)
        for png in shots.iterdir():
            (ARTIFACTS / f"studio-{png.name}").write_bytes(png.read_bytes())
        assert not errors, f"page errors: {errors}"
    finally:
        page.close()
