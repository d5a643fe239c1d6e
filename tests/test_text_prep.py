"""Training prepares text as inference does: the dataset cache and the pipeline give the same ids and embeddings."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from univigu.loading import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "assets" / "univigu-shapesworld"
# an HTML entity, a doubled space, a line break and a trailing space: what real datasets hold
MESSY = "a large red circle&nbsp;at the  top\nmoves left on a gray background. "
CLEAN = "a large red circle at the top moves left on a gray background."


def test_a_messy_caption_gives_the_pipelines_ids_and_embeddings_in_the_cache(tmp_path):
    from training.data import precompute
    from training.shapesworld import export_dataset

    export_dataset(tmp_path / "data", "train", 1)
    meta = tmp_path / "data" / "metadata.jsonl"
    row = json.loads(meta.read_text().splitlines()[0])
    meta.write_text(json.dumps(row | {"prompt": "a red  circle\nmoves left", "caption": MESSY}) + "\n")
    cache = load_file(precompute(str(tmp_path / "data"), str(SHIPPED), str(tmp_path / "cache.safetensors")))

    pipe = load_pipeline(str(SHIPPED))
    assert torch.equal(cache["caption_ids"], pipe.text_id_rows([MESSY]))
    assert torch.equal(cache["caption_embeds"], pipe.embed_texts([MESSY], "cpu", torch.float32))
    assert torch.equal(cache["prompt_ids"], pipe.text_id_rows(["a red circle moves left"]))
    # and the messy text is read as the clean one: the cleaning is real, not skipped on both sides
    assert torch.equal(cache["caption_ids"], pipe.text_id_rows([CLEAN]))
    assert torch.equal(cache["caption_embeds"], pipe.embed_texts([CLEAN], "cpu", torch.float32))
