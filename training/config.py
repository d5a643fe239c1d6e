"""The training configuration: dataclass defaults < the stage's YAML file < ``--key=value`` overrides.

The resolved config is saved beside every checkpoint (``config.yaml``), so a run can be read back and resumed.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TEXT_TARGETS = ("none", "prompt", "caption")


@dataclass
class Config:
    stage: str = "base"  # the run's name in logs; what it trains is the settings below
    out_dir: str = "runs/base"
    cache: str = "runs/cache/train.safetensors"  # from training.data
    # data scaling (the ablation's rows): train on the cache's first ``rows`` rows only (0: all), and of those use the
    # detailed captions of the first ``caption_rows`` only (-1: all; the others condition on and learn their prompt)
    rows: int = 0
    caption_rows: int = -1
    components: str = "runs/components"  # tokenizer/, text_encoder/, vae/ (validation samples)
    init: str = ""  # the model folder to start from (recall: the base's; refine: recall's); "" or "random": fresh
    # a fresh generator (the base stage; later stages inherit the architecture)
    model: dict = field(
        default_factory=lambda: dict(
            patch_size=[1, 2, 2],
            num_attention_heads=4,
            attention_head_dim=32,
            ffn_dim=384,
            num_layers=4,
            freq_dim=256,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        )
    )
    position_channels: int = 0  # base: coordinate maps beside the latents (univigu.models.append_positions)
    ffn_t_init: str = "copy"  # recall: FFN_t from FFN_v ("copy", the release) or fresh ("random", the paper)
    # recall (or init "random"): the text stream made for the base generator, "discrete" (token ids, the
    # release) or "embedding" (continuous flow over a fixed codebook, the paper's eq. 7-8); later stages inherit
    text_formulation: str = "discrete"
    # objective
    # what the text stream learns to produce: "prompt", "caption", or "none" (no text stream: a plain Wan video
    # generator, the base stage); a Wan given a target gets the text stream (train.build_model)
    text_target: str = "none"
    cond_caption_prob: float = 0.0
    p_drop_prompt: float = 0.0
    p_uncond: float = 0.1
    video_shift: float = 3.0
    # > 0: latent positions unlike the clip's background (and their neighbours) weigh 1 + this in the video loss
    # (training.train.foreground_weight): for clips of small objects on a plain background, whose shapes are a
    # sliver of a plain mean squared error
    video_fg_weight: float = 0.0
    video_clean_prob: float = 0.0  # recall/refine: share of rows whose video is held clean (see UniFlowLoss)
    text_clean_prob: float = 0.0  # recall/refine: share of the other rows whose text is held clean
    lambda_text: str | float = "auto"
    # optimisation
    batch_size: int = 16  # per process and micro-batch
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False
    # > 0: the run's models (checkpoints' model/, final/, validation samples) are an exponential moving average of
    # the trained weights with this decay (training.ema); 0.999 averages about the last thousand steps
    ema_decay: float = 0.0
    seed: int = 0
    num_threads: int = 2
    # bookkeeping
    log_every: int = 10
    val_every: int = 0  # 0: never
    val_steps: int = 20
    val_prompts: list = field(default_factory=lambda: ["a red circle moves right", "a blue square stays still"])
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    # LoRA (training.lora): rank-R adapters on the attention of a trained UniViGU model (init), all else frozen;
    # 0 trains every weight. lora_alpha 0: the rank (scale 1)
    lora_rank: int = 0
    lora_alpha: float = 0.0
    resume: bool = True  # continue from the newest checkpoint in out_dir if there is one


# -------------------------------------------------------------------------------------------------
# Config: dataclass defaults < YAML < --key=value
def load_config(argv: list[str]) -> Config:
    values, overrides = {}, {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--"):
            raise SystemExit(f"unexpected argument {arg!r}; use --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if not args:
                raise SystemExit(f"--{key} needs a value")
            value = args.pop(0)
        if key == "config":
            values.update(yaml.safe_load(Path(value).read_text()) or {})
        else:
            overrides[key] = yaml.safe_load(value)
    names = {f.name for f in dataclasses.fields(Config)}
    for key, value in overrides.items():
        top, _, sub = key.partition(".")
        if top not in names:
            raise SystemExit(f"unknown config key {key!r}; known: {sorted(names)}")
        if sub:  # --model.num_layers=2
            values[top] = {**(values.get(top) or getattr(Config(), top)), sub: value}
        else:
            values[top] = value
    unknown = set(values) - names
    if unknown:
        raise SystemExit(f"unknown config keys {sorted(unknown)}")
    defaults = Config()
    for key, value in values.items():  # YAML reads "1e-3" as a string
        if isinstance(getattr(defaults, key), float) and isinstance(value, (int, str)):
            values[key] = float(value)
    cfg = Config(**values)
    if cfg.text_target not in TEXT_TARGETS:
        raise SystemExit(f"text_target must be one of {TEXT_TARGETS}, got {cfg.text_target!r}")
    if cfg.text_target != "none" and not cfg.init:
        raise SystemExit(f"stage {cfg.stage!r} starts from a trained model: set --init=DIR (or --init=random)")
    if cfg.text_target == "none" and (cfg.video_clean_prob or cfg.text_clean_prob):
        raise SystemExit("video_clean_prob and text_clean_prob need a text stream: set text_target")
    if cfg.rows < 0 or cfg.caption_rows < -1:
        raise SystemExit(
            f"rows must be >= 0 (0: all) and caption_rows >= -1 (-1: all), got {cfg.rows}, {cfg.caption_rows}"
        )
    if not cfg.video_fg_weight >= 0:
        raise SystemExit(f"video_fg_weight must be >= 0 (0: a plain mean), got {cfg.video_fg_weight}")
    if not 0 <= cfg.ema_decay < 1:
        raise SystemExit(f"ema_decay must be in [0, 1) (0: no average), got {cfg.ema_decay}")
    if cfg.lora_rank < 0 or cfg.lora_alpha < 0:
        raise SystemExit(f"lora_rank and lora_alpha must be >= 0, got {cfg.lora_rank} and {cfg.lora_alpha}")
    if cfg.lora_rank and not _is_univigu_folder(cfg.init):
        raise SystemExit(
            f"lora_rank adapts a trained UniViGU model: set --init to its folder (a recall or refine model), got"
            f" {cfg.init!r}; a new text stream (Stage 1 from a Wan) trains in full"
        )
    if cfg.text_formulation not in ("discrete", "embedding"):
        raise SystemExit(f"text_formulation must be 'discrete' or 'embedding', got {cfg.text_formulation!r}")
    return cfg


def _is_univigu_folder(path: str) -> bool:
    config = Path(path) / "config.json" if path not in ("", "random") else None
    return bool(
        config and config.is_file() and json.loads(config.read_text()).get("_class_name") == "UniViGUTransformer"
    )
