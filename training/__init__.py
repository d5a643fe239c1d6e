"""The Uni-ViGU trainer, for any dataset in its folder format: ``data`` (the dataset and its latent cache),
``components`` (the folders training starts from), ``train`` (the loop; ``configs/`` the stages), ``sampling``.

Everything specific to the embedded ShapesWorld lives in ``shapesworld/``: the world, its small components,
its analysis tools and experiments. Run from a clone (``python -m training.train``); the wheel holds the
library ``univigu`` only.
"""
