"""The studio's example clips and prompts: the files in ``assets/examples/`` and their ``examples.json`` index.

The index lists ``{"file", "prompt", "caption"}`` per clip; ``python -m training.shapesworld.examples``
writes the ShapesWorld ones shipped here.
"""

import json
import os

from ..bundled import bundled_path

EXAMPLES_DIR = bundled_path("examples")
INDEX = "examples.json"


def load_examples(directory: str = EXAMPLES_DIR) -> list[dict]:
    """Index entries whose clips exist, with absolute ``path``; [] when there are none."""
    try:
        with open(os.path.join(directory, INDEX)) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for entry in entries:
        path = os.path.join(directory, str(entry.get("file", "")))
        if os.path.isfile(path):
            out.append({**entry, "path": path})
    return out
