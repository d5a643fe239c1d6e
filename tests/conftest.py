import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

# The official forward pass on a tiny model, recorded with the authors' code (its README says how).
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "official_tiny")


def pytest_configure(config):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def official_fixture() -> str:
    path = os.path.abspath(os.environ.get("UNIVIGU_OFFICIAL_FIXTURE", FIXTURE))
    if not os.path.isdir(path):
        pytest.fail(f"reference fixture missing at {path}: restore tests/fixtures/ or set UNIVIGU_OFFICIAL_FIXTURE")
    return path


@pytest.fixture(scope="session")
def tiny_pipe_dir(tmp_path_factory) -> str:
    """A tiny random pipeline saved to disk (discrete text, mask source)."""
    from univigu.tiny import tiny_pipeline

    path = str(tmp_path_factory.mktemp("tiny") / "pipe")
    tiny_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """``python app.py --model TINY --mcp`` on a free port, shared by the API, browser and MCP tests (each start
    costs seconds): one studio with the MCP tools on, which add routes and leave the app's API as it is."""
    from test_app_api import AppServer, build_tiny_model

    workdir = tmp_path_factory.mktemp("studio")
    server = AppServer(["--model", str(build_tiny_model(workdir / "tiny-model")), "--mcp"], workdir)
    yield server
    server.stop()
