"""The studio as MCP tools (``python app.py --mcp``), driven by the ``mcp`` client package over gradio's streamable HTTP
endpoint (``/gradio_api/mcp/``) against a real server on the tiny model.

Proves: the three tasks and nothing else are tools, each described with its parameters; a clip goes in as a data: URL
(a public http(s) URL would do too) and comes back as a URL the server serves; a bad input is a tool error with the
studio's one-line message, and the server keeps serving.
"""

import asyncio
import base64
import json
import urllib.request
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

try:  # the harness lives with the API tests
    from test_app_api import EXAMPLES, _until
except ImportError:  # pragma: no cover - run as a package
    from tests.test_app_api import EXAMPLES, _until


async def _session_run(url: str, work):
    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def _texts(result) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


def test_the_studio_as_mcp_tools(app):
    _until(lambda: f"MCP tools for agents: {app.url}gradio_api/mcp/" in app.log(), what="the MCP line")
    clip = EXAMPLES / json.loads((EXAMPLES / "examples.json").read_text())[0]["file"]
    # A file goes in as an http(s) URL the server may fetch (gradio refuses private addresses, this one included)
    # or as a data: URL
    clip_url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()

    progress = []

    async def on_progress(done, total, message):
        progress.append(message)

    async def work(session):
        async def call(tool, arguments):  # as agents that follow progress call: one content item per output
            return await session.call_tool(tool, arguments, progress_callback=on_progress)

        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        caption = await call("caption", {"video": clip_url, "seed": 0, "steps": 3, "template": ""})
        filled = await call("caption", {"video": clip_url, "seed": 0, "steps": 3, "template": "a _ circle"})
        made = await call("text_to_video", {"prompt": "a red circle moves left", "seed": 1, "steps": 2})
        empty = await call("text_to_video", {"prompt": "", "seed": 1, "steps": 2})
        bare = await session.call_tool("text_to_video", {"prompt": "", "seed": 1, "steps": 2})  # no progress asked
        after = await call("joint", {"prompt": "a blue square moves up", "seed": 2, "steps": 2})
        return tools, caption, filled, made, (empty, bare), after

    tools, caption, filled, made, errors, after = asyncio.run(_session_run(app.url + "gradio_api/mcp/", work))

    # Only the three tasks; each described, with typed parameters (the handlers' docstrings and hints)
    assert set(tools) == {"text_to_video", "caption", "joint"}, set(tools)
    params = {name: tool.inputSchema["properties"] for name, tool in tools.items()}
    assert {"prompt", "seed", "steps", "guidance", "num_frames", "height", "width"} <= set(params["text_to_video"])
    assert {"video", "seed", "steps", "prompt", "video_cache_interval", "template"} <= set(params["caption"])
    assert (
        params["caption"]["template"]["type"] == "string" and "blanks" in params["caption"]["template"]["description"]
    )
    assert params["text_to_video"]["steps"]["type"] == "number" and params["joint"]["prompt"]["description"]
    assert "video" in tools["caption"].inputSchema["required"]
    assert tools["caption"].description.startswith("Describe a video clip in words")

    # A caption of an example clip, free and filled in
    assert not caption.isError, _texts(caption)
    text, notes = _texts(caption)[:2]
    assert text and "decoded 17 frames of 64x64" in notes
    assert not filled.isError and _texts(filled)[0].startswith("a ")

    # A generated clip comes back as a URL the server serves
    assert not made.isError, _texts(made)
    video_url = next(t for t in _texts(made) if t.endswith(".mp4"))
    with urllib.request.urlopen(video_url, timeout=10) as response:
        assert response.status == 200 and len(response.read()) > 100
    assert Path(video_url.split("file=")[-1]).name.startswith("run")

    # A bad input is a tool error with the studio's one line; the next call succeeds
    for error in errors:
        (message,) = _texts(error)
        assert error.isError and message.endswith("Prompt is empty; describe the clip you want"), message
        assert "\n" not in message and "Traceback" not in message
    assert not after.isError and any(t.endswith(".mp4") for t in _texts(after))
    assert app.alive
