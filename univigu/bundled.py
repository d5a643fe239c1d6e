"""Where the files shipped with the library are: the tiny ShapesWorld model and the studio's example clips.

They live in the repository's ``assets/``; a wheel carries that folder as package data, installed as
``univigu/assets/`` (``pyproject.toml``). :func:`bundled_path` finds a file there after a wheel install and
in the repository otherwise (a clone, plain or installed in editable mode).
"""

from importlib.resources import files
from pathlib import Path


def bundled_path(name: str) -> str:
    """The path of ``assets/<name>`` (a file or folder): the installed package data, else the repository's."""
    package = Path(str(files("univigu")))
    installed = package / "assets" / name
    return str(installed if installed.exists() else package.parent / "assets" / name)
