"""One training loop for the three stages of the Uni-ViGU recipe; the stages differ by configuration only.

    accelerate launch -m training.train --config training/configs/base.yaml [--key=value ...]

- ``base`` (``text_target: none``): text-to-video flow matching of a plain diffusers ``WanTransformer3DModel``,
  called through ``univigu.models.WanAdapter`` with the UniViGU transformer's call contract.
- ``recall`` (Stage 1, Knowledge Recall): ``UniViGUTransformer.from_wan(base)``; text target = the prompt.
- ``refine`` (Stage 2, Capability Refinement): from the recall model; text target = the detailed caption.

Every stage runs the same step: draw the conditioning, ``UniFlowLoss.prepare`` (noisy inputs and targets), one
forward of the model, ``UniFlowLoss.loss`` (outputs against targets); without a text target it is plain video flow
matching.

Conditioning per sample, drawn from the step's RNG: with ``p_uncond`` the prompt slot is empty AND the
text stream is dropped (the unconditional row of classifier-free guidance); otherwise the cross-attention
slot holds the detailed caption with ``cond_caption_prob`` or the brief prompt, and that slot is emptied
with ``p_drop_prompt`` while the text target stays (Stage 1's "prompt dropped with probability p").

Exact resume: every random draw (batch rows, noise levels, noise, dropping) comes from a generator seeded
by (seed, step, global micro-batch = micro-batch x processes + rank), the learning rate is a function of the
step, and the checkpoint holds the weights, the optimizer state and (``ema_decay``) the weight average; so a
killed-and-resumed run logs the same losses as an unbroken one, and N processes train as one process with N x
grad_accum. Checkpoints are written to a temporary folder, fsync'd and renamed into place; each metrics row is
fsync'd, and a torn last row (a kill mid-write) is cut on resume. ``--config_file training/configs/fsdp.yaml``
shards the model (FSDP2, ``training/distributed.py``), its checkpoints too.
"""

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import WanTransformer3DModel
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from univigu.durable import append_line, cut_torn_line, fsync_dir, fsync_tree, replace_file
from univigu.flows import UniFlowLoss, UniFlowLossOutput
from univigu.models import UniViGUTransformer, WanAdapter

from . import distributed, lora
from .components import load_transformer, uni_from_base
from .config import Config, load_config
from .data import LatentCache, step_generator
from .ema import WeightAverage


def lr_at(cfg: Config, step: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# -------------------------------------------------------------------------------------------------
# Models
INIT_CLASSES = (WanTransformer3DModel.__name__, UniViGUTransformer.__name__)


class InitError(ValueError):
    """``--init`` names nothing the trainer can start from; :func:`main` prints it as one line, exit status 2."""


def check_init(init: str) -> None:
    """Raise :class:`InitError` unless ``init`` is "", "random" or a model folder :func:`build_model` can load."""
    if init in ("", "random"):
        return
    path = Path(init)
    accepts = (
        "it takes a model folder saved by save_pretrained (config.json and weights; a stage's final/ or a "
        f"checkpoint's model/) of a {' or '.join(INIT_CLASSES)}, or 'random'"
    )
    if (path / "model_index.json").is_file() and (path / "transformer" / "config.json").is_file():
        raise InitError(f"--init {init} is a pipeline folder: pass its transformer/ folder ({accepts})")
    if not path.is_dir():
        raise InitError(f"--init {init} is {'a file' if path.exists() else 'not found'}; {accepts}")
    try:
        class_name = json.loads((path / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        raise InitError(f"--init {init} has no readable config.json; {accepts}") from None
    if class_name not in INIT_CLASSES:
        raise InitError(f"--init {init} holds a {class_name}; {accepts}")


def build_model(cfg: Config, data: LatentCache):
    """The model to train: ``init``'s folder, or (``init`` empty or ``random``) a fresh ``WanTransformer3DModel``
    of ``model`` reading ``position_channels`` coordinate maps; a Wan is given the text stream, as Stage 1 starts
    from the base generator (``UniViGUTransformer.from_wan``), when ``text_target`` asks for one.

    So ``init: random`` with a text target is the UniViGU architecture from random weights (the from-scratch
    ablation), and Stage 2 from a base generator is Stage 2 without Stage 1."""
    tokenizer = None
    if cfg.text_target != "none":
        tokenizer = AutoTokenizer.from_pretrained(Path(cfg.components) / "tokenizer")
    if cfg.init not in ("", "random"):
        if tokenizer is not None:
            return load_transformer(cfg.init, tokenizer, data.prompt_ids.shape[1], cfg.ffn_t_init, cfg.text_formulation)
        if json.loads((Path(cfg.init) / "config.json").read_text())["_class_name"] != WanTransformer3DModel.__name__:
            raise SystemExit(f"{cfg.init} has a text stream: set text_target (prompt or caption)")
        return WanTransformer3DModel.from_pretrained(cfg.init)  # a video generator trained on
    latents = data.latents[data.buckets[0]]
    channels, text_dim = latents.shape[1], data.prompt_embeds.shape[-1]
    patch_values = channels * math.prod(cfg.model["patch_size"])
    hidden = cfg.model["num_attention_heads"] * cfg.model["attention_head_dim"]
    if patch_values > hidden:
        # A token's velocity is a linear read-out of its hidden state: with fewer hidden dimensions than
        # latent values per patch, the noise outside that subspace is never removed by sampling.
        raise SystemExit(
            f"a patch holds {patch_values} latent values ({channels} channels x {cfg.model['patch_size']})"
            f" but the hidden size is {hidden}: lower model.patch_size or raise the heads x head dim"
        )
    wan = WanTransformer3DModel(
        in_channels=channels + cfg.position_channels, out_channels=channels, text_dim=text_dim, **cfg.model
    )
    if tokenizer is None:
        return wan
    return uni_from_base(wan, tokenizer, cfg.ffn_t_init, data.prompt_ids.shape[1], cfg.text_formulation)


FOREGROUND_DISTANCE = 2.0  # normalised latent units (L2 over channels) from the clip's background


def foreground_weight(latents: torch.Tensor, weight: float) -> torch.Tensor:
    """Video loss weights [B, 1, F, H, W]: 1 + ``weight`` at latent positions farther than ``FOREGROUND_DISTANCE``
    from the clip's background (its per-channel median) and at their 8 neighbours in the frame, 1 elsewhere."""
    background = latents.flatten(2).median(dim=2).values[:, :, None, None, None]
    far = ((latents - background).norm(dim=1, keepdim=True) > FOREGROUND_DISTANCE).float()
    near = torch.nn.functional.max_pool3d(far, kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))
    return 1 + weight * near


def compute_loss(
    cfg: Config, model, module, batch: dict, empty: torch.Tensor, gen: torch.Generator, objective: UniFlowLoss
) -> UniFlowLossOutput:
    """The loss on one micro-batch; every random draw comes from ``gen``. ``model`` is called with the UniViGU
    transformer's contract (a DDP / FSDP wrapper, or a ``WanAdapter``); ``module``, the model itself, is read."""
    latents = batch["latents"]
    size = latents.shape[0]
    # 1. Conditioning: which text sits in the cross-attention slot, and which rows are unconditional
    # rows without a detailed caption condition on, and learn, their prompt
    has_caption = batch["has_caption"].cpu()
    use_caption = (torch.rand(size, generator=gen) < cfg.cond_caption_prob) & has_caption
    # drawn on the CPU (the generator's device), used where the batch is
    cond = torch.where(use_caption.to(latents.device)[:, None, None], batch["caption_embeds"], batch["prompt_embeds"])
    uncond = torch.rand(size, generator=gen) < cfg.p_uncond
    drop_prompt = ((torch.rand(size, generator=gen) < cfg.p_drop_prompt) | uncond).to(latents.device)
    uncond = uncond.to(latents.device)
    cond = torch.where(drop_prompt[:, None, None], empty.expand_as(cond), cond)

    # 2. Noisy inputs and targets (the text stream's: the prompt, the detailed caption, or none), 3. the forward,
    # 4. the loss of its outputs
    text_ids = None if cfg.text_target == "none" else batch[f"{cfg.text_target}_ids"]
    if cfg.text_target == "caption":
        text_ids = torch.where(has_caption.to(latents.device)[:, None], text_ids, batch["prompt_ids"])
    weight = foreground_weight(latents, cfg.video_fg_weight) if cfg.video_fg_weight else None
    inputs, targets = objective.prepare(
        module, latents, text_ids, cond, drop_text=uncond, generator=gen, video_weight=weight
    )
    return objective.loss(model(**inputs), targets)


# -------------------------------------------------------------------------------------------------
# Checkpoints
def checkpoints(out_dir: Path) -> list[Path]:
    found = [p for p in out_dir.glob("checkpoint-*") if p.is_dir() and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(
    accelerator: Accelerator, cfg: Config, model, optimizer, step: int, out_dir: Path, average: WeightAverage | None
) -> Path:
    """model/ (save_pretrained; with ``average``, the averaged weights) + state/ (weights, optimizer, RNG, the
    average; FSDP: sharded) + config.yaml, written, renamed."""
    final = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    distributed.save_state(accelerator, model, optimizer, tmp / "state")
    accelerator.wait_for_everyone()  # every process's files (its RNG state the last) are in before the rename
    plain = distributed.full_model(accelerator, model)
    if accelerator.is_main_process:
        if average is not None:
            average.save(tmp / "state")
        with averaged(average):
            (lora.merged(plain) if cfg.lora_rank else plain).save_pretrained(tmp / "model")
        (tmp / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step}))  # written last: marks it complete
        fsync_tree(tmp)  # on disk before the rename publishes it
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(out_dir)
        for old in checkpoints(out_dir)[: -cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def averaged(average: WeightAverage | None):
    """The averaged weights in the live model for a ``with`` block (nothing without ``ema_decay``)."""
    return average.applied() if average is not None else contextlib.nullcontext()


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the rows of steps up to ``step`` (the resumed checkpoint's); a torn last row is cut first."""
    if not path.exists():
        return
    if cut_torn_line(path):
        print(f"warning: dropped a torn last line of {path}", file=sys.stderr)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"{path} line {n} is not a metrics row ({err}); fix or move the file") from None
        if row_step <= step:
            rows.append(line)
    replace_file(path, "".join(f"{r}\n" for r in rows))


# -------------------------------------------------------------------------------------------------
# Validation samples
@torch.no_grad()
def validate(cfg: Config, model, data: LatentCache, step: int, writer) -> None:
    """Text-to-video for ``val_prompts`` (and, with a text stream, captions of two training clips) -> files + TB."""
    import numpy as np
    from diffusers import FlowMatchEulerDiscreteScheduler

    from univigu.latents import decode_frames
    from univigu.pipeline_univigu import UniViGUPipeline
    from univigu.video_io import write_video

    from .components import load_components

    tokenizer, text_encoder, vae = load_components(cfg.components)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=cfg.video_shift)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.eval()
    # a video generator alone is sampled as Stage 1 starts it (converted, its text stream all pads: Wan's video
    # prediction unchanged) and only generates
    generator_only = not isinstance(model, UniViGUTransformer)
    uni = uni_from_base(model, tokenizer, max_text_len=data.prompt_ids.shape[1]).eval() if generator_only else model
    pipe = UniViGUPipeline(tokenizer, text_encoder, vae, uni, scheduler)
    pipe.set_progress_bar_config(disable=True)
    pad_ids = torch.full((len(cfg.val_prompts), uni.config.max_text_len), uni.config.pad_token_id)
    latents = pipe(
        cfg.val_prompts,
        latents=torch.randn((len(cfg.val_prompts), *data.latents[data.buckets[0]].shape[1:]), generator=gen),
        text_ids=pad_ids if generator_only else None,
        num_inference_steps=cfg.val_steps,
        guidance_scale=5.0,
        generator=gen,
        output_type="latent",
    ).frames
    lines = []
    if not generator_only:
        batch = data.batch(2, cfg.seed + 1, 0)
        got = pipe(video_latents=batch["latents"], num_inference_steps=cfg.val_steps, generator=gen).text
        want = [pipe.decode_text(row) for row in batch[f"{cfg.text_target}_ids"]]
        lines = [f"caption: {g!r}  (truth: {w!r})" for g, w in zip(got, want)]
    model.train()
    clips = decode_frames(vae, latents).numpy()
    out = Path(cfg.out_dir) / "samples" / f"step-{step}"
    out.mkdir(parents=True, exist_ok=True)
    for i, (prompt, clip) in enumerate(zip(cfg.val_prompts, clips)):
        write_video(out / f"{i}.mp4", clip, fps=8)
        if writer is not None:
            strip = np.concatenate(list(clip[::4]), axis=1)  # 5 frames side by side [H, 5W, 3]
            writer.add_image(f"val/{prompt}", strip, step, dataformats="HWC")
    (out / "samples.txt").write_text("\n".join([*(f"{i}.mp4: {p}" for i, p in enumerate(cfg.val_prompts)), *lines]))
    if writer is not None and lines:
        writer.add_text("val/captions", "\n\n".join(lines), step)


# -------------------------------------------------------------------------------------------------
def train(cfg: Config) -> dict:
    check_init(cfg.init)
    torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.out_dir)
    # cpu=True without CUDA: under torchrun (`accelerate launch --multi_gpu --num_processes N`) that makes a
    # gloo process group (MULTI_CPU); accelerate's `--cpu` launcher itself starts a single process.
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=not torch.cuda.is_available(),
    )
    set_seed(cfg.seed)  # model initialisation only; the loop draws from step generators
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))

    # 1. Data and model
    data = LatentCache(cfg.cache, cfg.rows, cfg.caption_rows)
    model = build_model(cfg, data)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if cfg.lora_rank:
        model = lora.add_lora(model, cfg.lora_rank, cfg.lora_alpha)
    model = distributed.shard(accelerator, model.train())  # FSDP2 when the launch config asks for it
    if cfg.lora_rank and distributed.is_sharded(model):
        raise SystemExit("lora_rank trains with DDP or one process, not FSDP: LoRA's own memory is small")
    if cfg.ema_decay and distributed.is_sharded(model):
        raise SystemExit("ema_decay keeps whole weights: train with DDP or one process, or set --ema_decay=0 with FSDP")
    # Two groups of the trained weights: matrices decay, vectors and embeddings do not
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and "embedding" not in n else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    model, optimizer = distributed.prepare(accelerator, model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    average = WeightAverage(unwrapped, cfg.ema_decay) if cfg.ema_decay else None
    # One call contract for every stage: a plain Wan (the base generator) is called through WanAdapter
    call = WanAdapter(model, unwrapped.config) if isinstance(unwrapped, WanTransformer3DModel) else model
    objective = UniFlowLoss(
        lambda_text=cfg.lambda_text,
        video_shift=cfg.video_shift,
        video_clean_prob=cfg.video_clean_prob,
        text_clean_prob=cfg.text_clean_prob,
    )
    empty = data.empty_embed.to(accelerator.device)

    # 2. Resume
    start_step = 0
    found = checkpoints(out_dir) if cfg.resume else []
    if found:
        distributed.load_state(accelerator, model, optimizer, found[-1] / "state")
        start_step = json.loads((found[-1] / "trainer_state.json").read_text())["step"]
        if average is not None:
            average.load(found[-1] / "state", start_step)
        accelerator.print(f"resumed from {found[-1]} at step {start_step}")
    metrics_path = out_dir / "metrics.jsonl"
    writer = None
    if accelerator.is_main_process:
        _truncate_metrics(metrics_path, start_step)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_step)

    # 3. Loop
    bar = tqdm(
        range(start_step, cfg.max_steps),
        initial=start_step,
        total=cfg.max_steps,
        disable=not accelerator.is_main_process,
        desc=cfg.stage,
        dynamic_ncols=True,
    )
    started, last = time.time(), {}
    for step in bar:
        lr = lr_at(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        sums = torch.zeros(3, device=accelerator.device)
        for micro in range(cfg.grad_accum):
            index = micro * world + rank  # the global micro-batch: N processes draw what one does with N x grad_accum
            batch = {k: v.to(accelerator.device) for k, v in data.batch(cfg.batch_size, cfg.seed, step, index).items()}
            gen = step_generator(cfg.seed, step, index, 0, stream=1)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    out = compute_loss(cfg, call, unwrapped, batch, empty, gen, objective)
                if not torch.isfinite(out.loss):
                    raise FloatingPointError(
                        f"{cfg.stage}: the loss is {float(out.loss.detach())} at step {step} "
                        f"(video {float(out.video_loss.detach())}, "
                        f"text {float(out.text_loss.detach())}); lower --lr or use --mixed_precision=no"
                    )
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and cfg.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            sums += torch.stack(
                [out.loss.detach().float(), out.video_loss.detach().float(), out.text_loss.detach().float()]
            )
        if average is not None:
            average.step()
        # the mean over micro-batches and processes (a sync point across processes)
        sums = accelerator.reduce(sums / cfg.grad_accum, reduction="mean")
        row = {
            "step": step + 1,
            "loss": float(sums[0]),
            "video_loss": float(sums[1]),
            "text_loss": float(sums[2]),
            "lambda_text": out.lambda_text,
            "lr": lr,
        }
        last = row
        if accelerator.is_main_process:
            append_line(metrics_path, json.dumps(row))
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
                for key in ("loss", "video_loss", "text_loss", "lambda_text", "lr"):
                    writer.add_scalar(f"train/{key}", row[key], step + 1)
                bar.set_postfix(
                    loss=f"{row['loss']:.4f}",
                    video=f"{row['video_loss']:.4f}",
                    text=f"{row['text_loss']:.3f}",
                )
        if cfg.val_every and (step + 1) % cfg.val_every == 0:
            plain = distributed.full_model(accelerator, model)
            if accelerator.is_main_process:
                with averaged(average):
                    validate(cfg, plain, data, step + 1, writer)
            accelerator.wait_for_everyone()
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.max_steps:
            save_checkpoint(accelerator, cfg, model, optimizer, step + 1, out_dir, average)

    # 4. The final model folder (what the next stage's --init and the pipeline take); with LoRA, the adapters too
    plain = distributed.full_model(accelerator, model)
    if accelerator.is_main_process:
        final = out_dir / "final"
        tmp = out_dir / ".tmp-final"
        shutil.rmtree(tmp, ignore_errors=True)
        with averaged(average):
            (lora.merged(plain) if cfg.lora_rank else plain).save_pretrained(tmp)
            if cfg.lora_rank:
                lora.save_adapters(plain, tmp)
        (tmp / "config_train.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(out_dir)
        seconds = time.time() - started
        (out_dir / "timing.json").write_text(
            json.dumps(
                {
                    "steps": cfg.max_steps - start_step,
                    "seconds": round(seconds, 1),
                    "processes": world,
                    "seconds_per_step": round(seconds / max(1, cfg.max_steps - start_step), 3),
                }
            )
        )
        writer.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return last


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(sys.argv[1:] if argv is None else argv)
    try:
        train(cfg)
    except InitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
