#!/usr/bin/env bash
# One row of the ShapesWorld ablations: the recipe's stages (training/recipes/shapesworld.sh) with other
# starting points, data and step counts, configs only; every row trains for as many optimizer steps as the shipped
# model's base + Stage 1 + Stage 2, then is evaluated on test and compositional.
#   bash training/shapesworld/ablation.sh ROW        ROW: shipped | no-stage1 | scratch | embedding (equal data)
#   N_SMALL=1000 bash training/shapesworld/ablation.sh ROW   ROW: generator-first | captions-only | unified (thesis)
#   SEED=1 bash training/shapesworld/ablation.sh ROW (the seed rerun of the row's own stages: another folder)
#   PARTIAL=1 bash training/shapesworld/ablation.sh ROW   (evaluate the newest checkpoint of the stage in progress)
# Rows:
#   shipped    base -> Stage 1 -> Stage 2: the bundled model, evaluated as it ships (OUT).
#   no-stage1  base -> Stage 2, Stage 1's steps given to Stage 2 (refine.yaml from the base generator).
#   scratch    the same UniViGU architecture from random weights (base.yaml's model, init=random) trained on Stage 2's
#              data and objective (refine.yaml) for base + Stage 1 + Stage 2 steps.
#   embedding  base -> Stage 1 -> Stage 2 with text_formulation=embedding (the paper's eq. 7-8).
# The thesis rows: N_BIG clips with brief prompts (as most video comes), the first N_SMALL of them also with
# detailed captions; folders ROW-N_SMALL:
#   generator-first  base on the N_BIG clips, prompts only (cond_caption_prob 0) -> Stage 1 on the same -> Stage 2 on
#                    the N_SMALL captioned clips (rows=N_SMALL). The base and Stage 1 are shared by every N_SMALL.
#   captions-only    random UniViGU weights -> Stage 2's data and objective on the N_SMALL captioned clips only.
#   unified          random UniViGU weights -> Stage 2's objective on all N_BIG clips from the start, the N_SMALL
#                    captioned ones learning their caption, the others their prompt (caption_rows=N_SMALL): the
#                    control that separates "pretraining order" from "more data".
# Shared prerequisites under RUN (data, latent cache, base generator) are the recipe's, made once for all rows
# with the shipped tokenizer, text encoder and VAE (COMPONENTS) rather than rebuilt. Every stage is skipped once
# finished and resumes from its newest checkpoint when stopped (training.train), so a re-run loses nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROW=${1:?usage: ablation.sh shipped|no-stage1|scratch|embedding|generator-first|captions-only|unified}
PY=${PY:-.venv/bin/python}
ACCEL=${ACCEL:-.venv/bin/accelerate}
RUN=${RUN:-runs/shapesworld}
OUT=${OUT:-assets/univigu-shapesworld}
COMPONENTS=${COMPONENTS:-$OUT}  # tokenizer/, text_encoder/, vae/: the shipped ones
N_TRAIN=${N_TRAIN:-3000}
BASE_STEPS=${BASE_STEPS:-8000}
RECALL_STEPS=${RECALL_STEPS:-2500}
REFINE_STEPS=${REFINE_STEPS:-8500}
EVAL_N=${EVAL_N:-200}
N_BIG=${N_BIG:-30000}
N_SMALL=${N_SMALL:-1000}
SEED=${SEED:-0}
PARTIAL=${PARTIAL:-0}
SHIFT=6.0
export OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
case "$ROW" in
  generator-first | captions-only | unified) THESIS=1 NAME="$ROW-$N_SMALL" ;;
  shipped | no-stage1 | scratch | embedding) THESIS=0 NAME=$ROW ;;
  *)
    echo "unknown row $ROW: shipped, no-stage1, scratch, embedding, generator-first, captions-only or unified" >&2
    exit 2
    ;;
esac
ROW_DIR="$RUN/ablation/$NAME$([ "$SEED" = 0 ] || echo "-seed$SEED")"
mkdir -p "$ROW_DIR"
TIMES="$ROW_DIR/timings.tsv"
NPROC=${NPROC:-2}
BATCH=8
source training/recipes/lib.sh
newest() {  # newest DIR: its checkpoint-N folder of the highest N (none: empty)
  ls -d "$1"/checkpoint-* 2>/dev/null | awk -F- '{print $NF, $0}' | sort -n | tail -1 | cut -d' ' -f2-
}
evaluate() {  # evaluate PIPELINE NAME SUFFIX: test and compositional, every task (a finished row: also
  # text-to-video from the brief prompt, into eval-brief-SPLIT.json)
  for split in test compositional; do
    stage "eval${3}_$split" "$ROW_DIR/eval$3-$split.json" $PY -m training.shapesworld.evaluate --model "$1" --name "$2" \
      --split $split --n "$EVAL_N" --out "$ROW_DIR/eval$3-$split.json"
    [ -n "$3" ] || stage "eval_brief_$split" "$ROW_DIR/eval-brief-$split.json" $PY -m training.shapesworld.evaluate \
      --model "$1" --name "$2" --split $split --n "$EVAL_N" --tasks text_to_video_brief --out "$ROW_DIR/eval-brief-$split.json"
  done
}

if [ "$ROW" = shipped ]; then
  evaluate "$OUT" shipped ""
  exit 0
fi

TOTAL_STEPS=$((BASE_STEPS + RECALL_STEPS + REFINE_STEPS))
# Shared prerequisites: the recipe's data and latent cache, or the thesis rows' N_BIG clips (RUN/thesis, with the
# prompt-only base and Stage 1 and their wall times)
if [ "$THESIS" = 1 ]; then
  [ "$N_SMALL" -le "$N_BIG" ] || { echo "N_SMALL ($N_SMALL) must be at most N_BIG ($N_BIG)" >&2; exit 2; }
  THESIS_RUN="$RUN/thesis" DATA="$RUN/thesis/data" N_CLIPS=$N_BIG CACHE="$RUN/thesis/cache.safetensors"
  TIMES="$THESIS_RUN/timings.tsv" && mkdir -p "$THESIS_RUN"
else
  DATA="$RUN/data/train" N_CLIPS=$N_TRAIN CACHE="$RUN/cache/train.safetensors"
fi
stage data "$DATA/metadata.jsonl" $PY -m training.shapesworld.export --out "$DATA" --split train --n "$N_CLIPS"
stage precompute "$CACHE" $PY -m training.data --data "$DATA" --components "$COMPONENTS" --out "$CACHE"
COMMON=(--cache="$CACHE" --components="$COMPONENTS" --video_shift=$SHIFT)
if [ "$ROW" = generator-first ]; then
  BASE="$THESIS_RUN/base/final"
  if [ "$PARTIAL" = 1 ] && [ ! -e "$THESIS_RUN/recall/final/config.json" ]; then
    echo "the prompt-only base and Stage 1 are still training (under $THESIS_RUN); no $NAME checkpoint yet" >&2
    exit 1
  fi
  stage base "$BASE/config.json" \
    launch -m training.train --config training/configs/base.yaml "${COMMON[@]}" --out_dir="$THESIS_RUN/base" \
    --max_steps="$BASE_STEPS" --cond_caption_prob=0
  stage recall "$THESIS_RUN/recall/final/config.json" \
    launch -m training.train --config training/configs/recall.yaml "${COMMON[@]}" --out_dir="$THESIS_RUN/recall" \
    --init="$BASE" --max_steps="$RECALL_STEPS" --cond_caption_prob=0
elif [ "$THESIS" = 0 ] && [ "$ROW" != scratch ]; then
  BASE="$RUN/base/final"
  if [ "$PARTIAL" = 1 ] && [ ! -e "$BASE/config.json" ]; then
    echo "the base generator is still training (newest: $(newest "$RUN/base")); no $ROW checkpoint yet" >&2
    exit 1
  fi
  stage base "$BASE/config.json" \
    launch -m training.train --config training/configs/base.yaml "${COMMON[@]}" --out_dir="$RUN/base" \
    --max_steps="$BASE_STEPS"
fi
TIMES="$ROW_DIR/timings.tsv"

# The row's stages: NAME CONFIG INIT STEPS [EXTRA...] each
case "$ROW" in
  no-stage1) STAGES=("refine training/configs/refine.yaml $BASE $((RECALL_STEPS + REFINE_STEPS))") ;;
  scratch | captions-only | unified)
    case "$ROW" in
      scratch) rows="" ;;
      captions-only) rows="--rows=$N_SMALL" ;;
      unified) rows="--caption_rows=$N_SMALL" ;;
    esac
    STAGES=("refine training/configs/refine.yaml random $TOTAL_STEPS $rows")
    MODEL_CONFIG=(--config training/configs/base.yaml)  # its model architecture; refine.yaml's objective after it
    ;;
  generator-first) STAGES=("refine training/configs/refine.yaml $THESIS_RUN/recall/final $REFINE_STEPS --rows=$N_SMALL") ;;
  embedding)
    STAGES=("recall training/configs/recall.yaml $BASE $RECALL_STEPS --text_formulation=embedding"
      "refine training/configs/refine.yaml $ROW_DIR/recall/final $REFINE_STEPS")
    ;;
esac

for spec in "${STAGES[@]}"; do
  read -r name config init steps extra <<< "$spec"
  dir="$ROW_DIR/$name"
  if [ "$PARTIAL" = 1 ] && [ ! -e "$dir/final/config.json" ]; then
    # the stage in progress: its newest checkpoint, evaluated as a pipeline
    ckpt=$(newest "$dir")
    [ -n "$ckpt" ] || { echo "no checkpoint of $name in $dir yet" >&2; exit 1; }
    at=${ckpt##*-}
    stage "assemble_${name}_$at" "$ROW_DIR/pipe-$name-$at/model_index.json" \
      $PY -m training.shapesworld.assemble --components "$COMPONENTS" --transformer "$ckpt/model" \
      --out "$ROW_DIR/pipe-$name-$at" --shift $SHIFT
    evaluate "$ROW_DIR/pipe-$name-$at" "$NAME ($name step $at of $steps, partial)" "-$name-$at"
    exit 0
  fi
  stage "$name" "$dir/final/config.json" \
    launch -m training.train ${MODEL_CONFIG[@]+"${MODEL_CONFIG[@]}"} --config "$config" "${COMMON[@]}" \
    --out_dir="$dir" --init="$init" --max_steps="$steps" --seed="$SEED" $extra
done
stage assemble "$ROW_DIR/pipeline/model_index.json" \
  $PY -m training.shapesworld.assemble --components "$COMPONENTS" --transformer "$ROW_DIR/${name}/final" \
  --out "$ROW_DIR/pipeline" --shift $SHIFT
evaluate "$ROW_DIR/pipeline" "$NAME$([ "$SEED" = 0 ] || echo " seed $SEED")" ""
echo "row $NAME finished: $ROW_DIR; stage wall times (s):"; cat "$TIMES"
