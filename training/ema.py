"""An exponential moving average of the trained weights, for the models a run writes.

diffusers' ``EMAModel`` keeps the average (its decay warm-up ``min(decay, (1 + n) / (10 + n))``); this module gives
the loop what it needs around it: the average saved beside a checkpoint's state by parameter name (safetensors) and
read back on resume, so a resumed run averages as an unbroken one, and ``applied()``, which puts the average into the
live weights while a model folder is written or sampled and then restores them exactly.
"""

import contextlib
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import save_file

FILE = "ema.safetensors"


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names, self.params = [n for n, _ in named], [p for _, p in named]
        self.ema = EMAModel(self.params, decay=decay, foreach=True)

    def step(self) -> None:
        """After each optimizer step."""
        self.ema.step(self.params)

    @contextlib.contextmanager
    def applied(self):
        """The live parameters hold the average inside the block and their own values again after it."""
        self.ema.store(self.params)
        self.ema.copy_to(self.params)
        try:
            yield
        finally:
            self.ema.restore(self.params)

    def save(self, folder: Path) -> None:
        tensors = {n: s.detach().cpu().contiguous() for n, s in zip(self.names, self.ema.shadow_params)}
        save_file(tensors, str(Path(folder) / FILE), metadata={"step": str(self.ema.optimization_step)})

    def load(self, folder: Path, step: int) -> None:
        """The average saved in ``folder``; a checkpoint written without one (``--ema_decay`` added to a resumed
        run) starts the average at its weights, as of ``step``."""
        path = Path(folder) / FILE
        if not path.is_file():
            print(f"note: {folder} holds no weight average; the average starts at its weights (step {step})")
            self.ema.shadow_params = [p.detach().clone() for p in self.params]
            self.ema.optimization_step = step
            return
        with safe_open(str(path), "pt") as f:
            saved_step, tensors = int(f.metadata()["step"]), {k: f.get_tensor(k) for k in f.keys()}
        if sorted(tensors) != sorted(self.names):
            raise SystemExit(f"{path} averages other weights than this model's; start a new --out_dir")
        for shadow, name in zip(self.ema.shadow_params, self.names):
            shadow.copy_(tensors[name])
        self.ema.optimization_step = saved_step
