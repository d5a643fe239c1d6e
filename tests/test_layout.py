"""The layout: the library knows nothing of the trainer, modules import no circle, files stay small enough to read,
and a wheel carries the library with its bundled files (and no top-level ``training`` package)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("univigu", "training", "benchmarks", "scripts")
MAX_LINES = 500
# like diffusers' own Wan files, the model and the pipeline may run longer: the pipeline is one class (its checks,
# text handling, __call__ in phases, the loop and the one-clip task methods), the clearer unit than mixins that
# split it by "part of a class"; its streams are their own module (pipeline_streams.py)
MAX_LINES_EXCEPT = {"univigu/models/transformer_univigu.py": 650, "univigu/pipeline_univigu.py": 720}


def _sources() -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of the project outside tests/."""
    files = [p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py")] + [ROOT / "app.py"]
    modules = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(module: str, path: Path) -> list[str]:
    """Every module ``path`` imports, anywhere in the file (a function's imports too), as absolute names;
    ``from P import name`` gives ``P.name`` where that is a module of the project, else ``P``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out += [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            out.append(node.args[0].value)
    return out


def _project_edges() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from P import name`` of a non-module name: P)."""
    modules = _sources()
    edges = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def test_the_library_never_imports_the_trainer():
    modules = _sources()
    offenders = [
        f"{modules[m].relative_to(ROOT)} imports {name}"
        for m in modules
        if m.startswith("univigu") or m == "app"
        for name in _imports(m, modules[m])
        if name == "training" or name.startswith("training.")
    ]
    assert not offenders, "univigu/ (and app.py) must not import training/:\n" + "\n".join(offenders)


def test_the_import_checker_sees_relative_and_function_imports(tmp_path):
    """The parser the two tests above rely on resolves ``from ..x import y``, imports inside functions and
    ``importlib.import_module``; a checker that saw none of them would pass on anything."""
    path = tmp_path / "mod.py"
    path.write_text(
        "import importlib\nfrom ..data import load_clips\n\ndef f():\n    from . import spec\n"
        "    importlib.import_module('training.train')\n"
    )
    got = set(_imports("training.shapesworld.mod", path))
    assert {"training.data", "training.data.load_clips", "training.shapesworld.spec", "training.train"} <= got
    init = tmp_path / "__init__.py"
    init.write_text("from .render import render\n")
    assert "training.shapesworld.render" in _imports("training.shapesworld", init)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds
    cycles = _cycles(_project_edges())
    assert not cycles, "modules that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_source_files_stay_readable():
    too_long = []
    for path in _sources().values():
        name = path.relative_to(ROOT).as_posix()
        limit = MAX_LINES_EXCEPT.get(name, MAX_LINES)
        lines = len(path.read_text().splitlines())
        if lines > limit:
            too_long.append(f"{name}: {lines} lines (limit {limit})")
    assert not too_long, "split these along a concept:\n" + "\n".join(sorted(too_long))


def test_the_wheel_lists_every_library_package_and_no_trainer():
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "univigu").rglob("__init__.py")}
    listed = set(setuptools["packages"])
    assert listed - {"univigu.assets"} == on_disk  # a new subpackage must be listed, or the wheel lacks it
    assert not any(p == "training" or p.startswith("training.") for p in listed)
    assert setuptools["package-dir"] == {"univigu.assets": "assets"}
    assert setuptools["package-data"]["univigu.assets"] == ["**/*"]


def test_bundled_files_are_found_in_an_installed_layout(tmp_path):
    """Installed from a wheel, the package holds assets/ as ``univigu/assets/``: the default model and the
    example clips are found there, wherever the process runs."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "univigu", site / "univigu", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "univigu" / "assets").mkdir()
    for name in ("univigu-shapesworld", "examples"):
        (site / "univigu" / "assets" / name).symlink_to(ROOT / "assets" / name)
    code = (
        "import univigu.bundled as b, univigu.studio.examples as e; "
        "print(b.bundled_path('univigu-shapesworld')); print(e.EXAMPLES_DIR); print(len(e.load_examples()))"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, examples, count = proc.stdout.split()
    assert model == str(site / "univigu" / "assets" / "univigu-shapesworld")
    assert examples == str(site / "univigu" / "assets" / "examples") and int(count) >= 1
