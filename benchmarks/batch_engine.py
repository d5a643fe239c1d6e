"""Clips per minute of folder captioning on this machine's CPU: the local engine against the ray engine (Ray Data)
with 1 and 2 workers, in one run.

The bundled model at its default caption settings; the clips are the studio's four example clips copied to
``--clips`` files (a caption's cost does not depend on what the clip shows). Every process runs torch on one thread
(the local engine's too, so the comparison is per worker). Each engine captions the whole folder into its own
metadata file, and the rows are checked to be the same. A rate is end to end, as a user sees it: the model
loading and, for Ray, the actors starting and the pipeline's tasks.

One JSON line per engine, then the ratios:

    python benchmarks/batch_engine.py               # 64 clips, batches of 4
    python benchmarks/batch_engine.py --clips 8     # a quick look
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from univigu.batch import engines
from univigu.batch.work import CaptionJob, ModelSpec, clip_items, find_clips
from univigu.bundled import bundled_path
from univigu.clip_size import ClipSizes

ENGINES = (("local", "local", 1), ("ray, 1 worker", "ray", 1), ("ray, 2 workers", "ray", 2))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    model = bundled_path("univigu-shapesworld")
    job = CaptionJob(ModelSpec(model), size=ClipSizes.read(model).trained)
    folder = Path(tempfile.mkdtemp(prefix="batch-engine-"))
    try:
        examples = sorted(Path(bundled_path("examples")).glob("*.mp4"))
        (folder / "videos").mkdir()
        for n in range(args.clips):
            shutil.copy(examples[n % len(examples)], folder / "videos" / f"{n:04d}.mp4")
        rates, rows = {}, {}
        for name, engine, workers in ENGINES:
            out = folder / f"{engine}-{workers}.jsonl"
            items = clip_items(find_clips(str(folder / "videos")), out, seed=0)
            options = {"workers": workers} if engine == "ray" else {}
            summary = engines.run(job, items, out, engine, args.batch_size, progress=False, **options)
            rates[name], rows[name] = summary.per_minute, out.read_text()
            line = {"engine": name, "clips": summary.done, "seconds": round(summary.seconds, 1)}
            print(json.dumps({**line, "clips_per_minute": round(summary.per_minute, 1)}), flush=True)
    finally:
        shutil.rmtree(folder)
        ray.shutdown()
    assert len(set(rows.values())) == 1, "the engines wrote different rows"
    local = rates["local"]
    result = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "clips": args.clips,
        "batch_size": args.batch_size,
        "ratio": {name: round(rate / local, 2) for name, rate in rates.items()},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
