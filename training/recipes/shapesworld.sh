#!/usr/bin/env bash
# The whole Uni-ViGU recipe on ShapesWorld, from nothing to assets/univigu-shapesworld/:
#   data -> tokenizer + UMT5 + VAE -> latent cache -> base generator -> Stage 1 (recall) -> Stage 2 (refine)
#   -> pipeline folder -> evaluation (base, Stage 1, Stage 1+2 on test and compositional) -> model card table.
# Budgeted for a 2-core CPU: within 2 hours (one measured run from nothing took 1 h 44 min: the model card's
# "Time and machine"). Each finished stage is skipped on a re-run (delete RUN to redo); a stage stopped part-way
# (any process may be stopped at any time) continues from its last checkpoint to the same weights.
#   bash training/recipes/shapesworld.sh
#   UNTIL=components bash training/recipes/shapesworld.sh   (stop after the named stage)
#   TRAIN_ARGS="--ckpt_every=100" bash training/recipes/shapesworld.sh   (added to every training stage)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
ACCEL=${ACCEL:-.venv/bin/accelerate}
RUN=${RUN:-runs/shapesworld}
OUT=${OUT:-assets/univigu-shapesworld}
N_TRAIN=${N_TRAIN:-3000}
VAE_STEPS=${VAE_STEPS:-1500}  # single frames, object-centred crops, objects weighted x11
VAE_TEMPORAL_STEPS=${VAE_TEMPORAL_STEPS:-400}  # then temporal compression, whole clips
VAE_TEMPORAL_FACTOR=${VAE_TEMPORAL_FACTOR:-4}  # 4: 17 -> 5 latent frames; 2: 17 -> 9
VAE_SPATIAL_FACTOR=${VAE_SPATIAL_FACTOR:-4}  # 4: 16 x 16 latents; 2: 32 x 32 (with temporal 2, z 4, 1x8x8 patches)
VAE_Z_DIM=${VAE_Z_DIM:-8}  # latent channels
TEXT_STEPS=${TEXT_STEPS:-1500}  # the text encoder's pretraining (masked words, each word's neighbours and place)
EVAL_N=${EVAL_N:-200}
UNTIL=${UNTIL:-}
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"
SHIFT=6.0  # the shipped scheduler's shift: the stages' video_shift (training/configs/*.yaml)
export OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
mkdir -p "$RUN"
TIMES="$RUN/timings.tsv"
# Training runs as NPROC gloo processes of one thread each, every one drawing BATCH / NPROC rows (global batch
# BATCH): on 2 cores two single-thread processes step 1.2x faster than one two-thread process (0.34 vs 0.41 s).
NPROC=${NPROC:-2}
BATCH=8
source training/recipes/lib.sh

stage data "$RUN/data/train/metadata.jsonl" \
  $PY -m training.shapesworld.export --out "$RUN/data/train" --split train --n "$N_TRAIN"
stage components "$RUN/components/report.json" \
  $PY -m training.shapesworld.components --data "$RUN/data/train" --out "$RUN/components" --vae-steps "$VAE_STEPS" \
  --vae-temporal-steps "$VAE_TEMPORAL_STEPS" --vae-temporal-factor "$VAE_TEMPORAL_FACTOR" \
  --vae-spatial-factor "$VAE_SPATIAL_FACTOR" --vae-z-dim "$VAE_Z_DIM" \
  --text-steps "$TEXT_STEPS" --text-context 3
stage precompute "$RUN/cache/train.safetensors" \
  $PY -m training.data --data "$RUN/data/train" --components "$RUN/components" --out "$RUN/cache/train.safetensors"
# The stages are their YAML files (steps, shifts, objective); only the run's folders are given here.
# BASE_STEPS, RECALL_STEPS or REFINE_STEPS, when set, replace a stage's max_steps.
COMMON=(--cache="$RUN/cache/train.safetensors" --components="$RUN/components")
stage base "$RUN/base/final/config.json" \
  launch -m training.train --config training/configs/base.yaml "${COMMON[@]}" --out_dir="$RUN/base" \
  ${BASE_STEPS:+--max_steps=$BASE_STEPS} ${EXTRA[@]+"${EXTRA[@]}"}
stage recall "$RUN/recall/final/config.json" \
  launch -m training.train --config training/configs/recall.yaml "${COMMON[@]}" --out_dir="$RUN/recall" \
  --init="$RUN/base/final" ${RECALL_STEPS:+--max_steps=$RECALL_STEPS} ${EXTRA[@]+"${EXTRA[@]}"}
stage refine "$RUN/refine/final/config.json" \
  launch -m training.train --config training/configs/refine.yaml "${COMMON[@]}" --out_dir="$RUN/refine" \
  --init="$RUN/recall/final" ${REFINE_STEPS:+--max_steps=$REFINE_STEPS} ${EXTRA[@]+"${EXTRA[@]}"}

# The Stage 1+2 pipeline (shipped to OUT once evaluated), and a Stage-1-only pipeline for the comparison
stage assemble "$RUN/pipeline/model_index.json" \
  $PY -m training.shapesworld.assemble --components "$RUN/components" --transformer "$RUN/refine/final" \
  --out "$RUN/pipeline" --shift $SHIFT
stage assemble_recall "$RUN/pipe-recall/model_index.json" \
  $PY -m training.shapesworld.assemble --components "$RUN/components" --transformer "$RUN/recall/final" \
  --out "$RUN/pipe-recall" --shift $SHIFT

for split in test compositional; do
  stage "eval_base_$split" "$RUN/eval/base-$split.json" $PY -m training.shapesworld.evaluate --model "$RUN/pipe-recall" \
    --base-transformer "$RUN/base/final" --name base --split $split --n "$EVAL_N" --out "$RUN/eval/base-$split.json"
  # Stage 1 alone: captioning (detail attributes) and text-to-video (the generator's skill); its joint
  # captions are brief prompts, which the joint scorer reads as captions (0 by construction), so no joint run
  stage "eval_recall_$split" "$RUN/eval/recall-$split.json" $PY -m training.shapesworld.evaluate --model "$RUN/pipe-recall" \
    --name "stage1" --split $split --n "$EVAL_N" --tasks captioning text_to_video --out "$RUN/eval/recall-$split.json"
  stage "eval_refine_$split" "$RUN/eval/refine-$split.json" $PY -m training.shapesworld.evaluate --model "$RUN/pipeline" \
    --name "stage1+2" --split $split --n "$EVAL_N" --out "$RUN/eval/refine-$split.json"
done
$PY -m training.shapesworld.evaluate --table "$RUN"/eval/{base,recall,refine}-{test,compositional}.json > "$RUN/eval/table.md"
# Ship: the pipeline's weights and configs (OUT's model card README.md is kept), the table, timings and VAE report
mkdir -p "$OUT"
cp -r "$RUN"/pipeline/* "$OUT/"
cp "$RUN/eval/table.md" "$TIMES" "$RUN/components/report.json" "$OUT/"
cat "$RUN/eval/table.md"
echo "recipe finished; stage wall times (s):"; cat "$TIMES"
