# Shared by the ShapesWorld recipe and its ablation rows (sourced): stage skipping with wall times, and the
# training launch. Needs TIMES, ACCEL, NPROC and BATCH set by the caller.
stage() {  # stage NAME DONE_FILE COMMAND...: run unless DONE_FILE exists; log the wall time; exit after UNTIL
  local name=$1 done_file=$2; shift 2
  if [ -e "$done_file" ]; then
    echo "== $name: done already ($done_file)"
    if [ "$name" = "${UNTIL:-}" ]; then exit 0; fi
    return
  fi
  echo "== $name: $*"
  local t0=$(date +%s)
  "$@"
  echo -e "$name\t$(( $(date +%s) - t0 ))" >> "$TIMES"
  if [ "$name" = "${UNTIL:-}" ]; then echo "== stopping after $name (UNTIL)"; exit 0; fi
}
launch() {  # NPROC single-thread gloo processes drawing BATCH / NPROC rows each, or one process at BATCH
  if [ "$NPROC" -gt 1 ]; then
    OMP_NUM_THREADS=1 "$ACCEL" launch --multi_gpu --num_processes "$NPROC" --num_machines 1 --mixed_precision no \
      --dynamo_backend no "$@" --num_threads=1 --batch_size=$((BATCH / NPROC))
  else
    "$ACCEL" launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no "$@" \
      --batch_size=$BATCH
  fi
}
