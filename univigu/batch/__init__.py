"""Datasets in batch: a folder of clips captioned, or a file of prompts turned into clips, by one of two engines.

- :mod:`univigu.batch.work`: the work list, each item's stable id and seed, the jobs (what a batch of items
  becomes: rows, clips, failures), the same for every engine.
- :mod:`univigu.batch.shards`: the output, written exactly once: finished shards renamed into place,
  ``metadata.jsonl`` and ``failures.jsonl`` assembled from them.
- :mod:`univigu.batch.engines`: the local engine (one process) and the summary; :mod:`univigu.batch.ray_engine`
  runs the same job on Ray Data (an optional dependency, imported only there).

A row is a function of its item alone (its seed comes from the run's seed and the item's id), so every engine,
worker count, batch size and order writes the same rows.
"""
