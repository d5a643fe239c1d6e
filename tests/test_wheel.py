"""The built wheel without extras: its metadata asks only for what the library needs, and in a fresh venv where the
extras' packages cannot be imported it loads the bundled model (package data) and captions a clip."""

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# importable in the dev venv, not in a bare install of the wheel: the extras' packages (and their metadata)
EXTRAS_ONLY = ("gradio", "tensorboard", "ray", "spaces")  # (pyyaml comes with huggingface-hub)


def _extra_only(entry: Path) -> bool:
    name = entry.name.lower().split("-")[0].removesuffix(".py")
    return name in EXTRAS_ONLY or name.startswith(("gradio", "tensorboard"))


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A venv with the wheel installed (no dependencies), seeing the dev venv's packages except the extras'."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # built from a copy: setuptools builds in the tree, and a clone's build/ may be stale
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "univigu", "assets"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        options = {"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}
        copy(ROOT / name, source / name, **options)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = root.glob("univigu-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python*/site-packages")
    with zipfile.ZipFile(wheel) as zf:  # what pip would install, file for file
        zf.extractall(site)
    # the dev venv's packages but the extras', as links: the library's dependencies without installing them again
    dev_site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    deps = root / "deps"
    deps.mkdir()
    for entry in dev_site.iterdir():
        if not _extra_only(entry) and not entry.name.startswith(("univigu", "__editable__", "_univigu")):
            (deps / entry.name).symlink_to(entry)
    (site / "deps.pth").write_text(f"{deps}\n")
    return venv


def test_the_wheel_asks_only_for_the_library_s_needs(bare_venv):
    (wheel,) = bare_venv.parent.glob("univigu-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
        names = zf.namelist()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not [
        r
        for r in unconditional
        if r.split("[")[0].split(">")[0].split("=")[0] in ("gradio", "tensorboard", "pyyaml", "ray")
    ]
    assert any("gradio" in r and 'extra == "studio"' in r for r in requires)
    assert any("tensorboard" in r and 'extra == "train"' in r for r in requires)
    assert "univigu/assets/univigu-shapesworld/transformer/config.json" in names
    assert not any(n.startswith("training/") for n in names)  # the trainer runs from a clone


def test_the_bare_install_captions_a_clip_and_the_studio_says_what_to_install(bare_venv, tmp_path):
    python = bare_venv / "bin" / "python"
    script = textwrap.dedent(
        """
        import numpy as np, univigu
        from univigu.loading import BUNDLED_MODEL, load_pipeline
        assert "/site-packages/univigu/assets/" in BUNDLED_MODEL, BUNDLED_MODEL
        pipe = load_pipeline()
        pipe.set_progress_bar_config(disable=True)
        clip = np.zeros((17, 64, 64, 3), dtype=np.uint8)
        clip[:, 20:40, 20:40] = (220, 40, 40)
        print(univigu.__file__)
        print(pipe.caption(clip, num_inference_steps=8, seed=0).text)
        try:
            import gradio
        except ModuleNotFoundError:
            print("no gradio")
        """
    )
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    where, caption, gradio = run.stdout.strip().splitlines()[-3:]
    assert str(bare_venv) in where and caption.startswith("a ") and gradio == "no gradio"

    app = subprocess.run([str(python), str(ROOT / "app.py")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert app.returncode != 0 and app.stdout == ""
    assert app.stderr.count("\n") == 1 and "univigu[studio]" in app.stderr, app.stderr
