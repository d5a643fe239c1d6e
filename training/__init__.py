"""The Uni-ViGU trainer, for any dataset in its folder format: ``data`` (the dataset and its latent cache),
``components`` (the folders training starts from), ``config`` (a stage's settings), ``train`` (the loop;
``configs/`` the stages, ``recipes/`` the whole recipe), ``distributed`` (fully sharded training) and ``lora``
(LoRA fine-tuning, ``--lora_rank``).

Everything specific to the embedded ShapesWorld lives in ``shapesworld/`` (its world described in
``shapesworld/WORLD.md``): the world, its scorer and benchmark (``shapesworld.evaluate``), its small components,
the benchmark's table and the ablation. Run from a clone (``python -m training.train``); the
wheel holds the library ``univigu`` only.
"""
