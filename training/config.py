"""The training configuration: dataclass defaults < the stage's YAML file < ``--key=value`` overrides.

The resolved config is saved beside every checkpoint (``config.yaml``), so a run can be read back and resumed.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STAGES = ("base", "recall", "refine")


@dataclass
class Config:
    stage: str = "base"  # base | recall | refine
    out_dir: str = "runs/base"
    cache: str = "runs/cache/train.safetensors"  # from training.data
    components: str = "runs/components"  # tokenizer/, text_encoder/, vae/ (validation samples)
    init: str = ""  # recall: the base model folder; refine: the recall model folder; "random": see build_model
    # the generator (base stage only; later stages inherit the architecture)
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
    text_warmup_steps: int = 0  # recall/refine: first steps in which only the text stream's own weights learn
    shared_lr_scale: float = 1.0  # recall/refine: the shared (Wan) weights' learning rate, relative to lr
    # objective
    text_target: str = "prompt"  # prompt | caption
    cond_caption_prob: float = 0.0
    # recall/refine: which rows may hold the caption in the prompt slot: "any", or "clean_text" (only rows
    # generating video from clean text, cond_caption_prob of them; elsewhere it would be the text's answer)
    caption_slot: str = "any"
    p_drop_prompt: float = 0.0
    p_uncond: float = 0.1
    video_shift: float = 3.0
    text_shift: float = 1.0
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
    seed: int = 0
    num_threads: int = 2
    # bookkeeping
    log_every: int = 10
    val_every: int = 0  # 0: never
    val_steps: int = 20
    val_prompts: list = field(default_factory=lambda: ["a red circle moves right", "a blue square stays still"])
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True  # continue from the newest checkpoint in out_dir if there is one
    stop_at: int = 0  # stop after this step as if killed (the schedule still ends at max_steps); 0: never


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
    if cfg.stage not in STAGES:
        raise SystemExit(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    if cfg.caption_slot not in ("any", "clean_text"):
        raise SystemExit(f"caption_slot must be 'any' or 'clean_text', got {cfg.caption_slot!r}")
    if cfg.stage != "base" and not cfg.init:
        raise SystemExit(f"stage {cfg.stage!r} starts from a trained model: set --init=DIR (or --init=random)")
    if cfg.text_formulation not in ("discrete", "embedding"):
        raise SystemExit(f"text_formulation must be 'discrete' or 'embedding', got {cfg.text_formulation!r}")
    if cfg.stage == "base" and (cfg.text_warmup_steps or cfg.shared_lr_scale != 1.0):
        raise SystemExit(
            "text_warmup_steps and shared_lr_scale apply to recall/refine: the base generator has no text stream"
        )
    return cfg
