#!/bin/sh
# Starts `callosum coordinator "$@"` for a run directory on a persistent volume, the way a Kubernetes
# Job needs it: a restarted coordinator (container crash, OOM kill, SIGTERM on preemption or drain,
# node loss) finds the checkpoints of the run it was doing and continues it with --resume instead of
# starting it again from step 0 in the same directory.
#
#   CALLOSUM_OUT     the run directory (required; on the volume, e.g. /data/run)
#   CALLOSUM_RESUME  set it yourself to resume a specific directory; otherwise this script sets it to
#                    CALLOSUM_OUT when that directory holds a checkpoint (step-NNNNNNNNN.ckpt)
#
# A coordinator that died before its first checkpoint leaves only its run marker and metrics log, which
# the coordinator refuses to mix with a new run; this script then starts over with --overwrite, which
# moves those files aside (to replaced-<time>/) rather than deleting them.
#
# A run directory that already holds a finished model is refused: use a new CALLOSUM_OUT for a new run.
set -eu

run_dir="${CALLOSUM_OUT:?CALLOSUM_OUT must name the run directory on the persistent volume}"

if [ -f "$run_dir/model/model.json" ]; then
  echo "start-coordinator: the run in $run_dir has finished (its model is in $run_dir/model);" \
    "set CALLOSUM_OUT to a new directory to start another run" >&2
  exit 1
fi

if [ -z "${CALLOSUM_RESUME:-}" ]; then
  # Set but empty (a template's blank): unset, or the command refuses an empty path.
  unset CALLOSUM_RESUME
  for checkpoint in "$run_dir"/checkpoints/step-*.ckpt; do
    if [ -f "$checkpoint" ]; then
      echo "start-coordinator: $run_dir has checkpoints; resuming the run from the newest intact one" >&2
      CALLOSUM_RESUME="$run_dir"
      export CALLOSUM_RESUME
    elif [ -f "$run_dir/callosum-run.json" ]; then
      echo "start-coordinator: no checkpoint in $run_dir; starting the run again (the earlier attempt's" \
        "files move aside)" >&2
      CALLOSUM_OVERWRITE=true
      export CALLOSUM_OVERWRITE
    else
      echo "start-coordinator: no checkpoint in $run_dir; starting a new run" >&2
    fi
    break
  done
fi

exec node /app/dist/bin.js coordinator "$@"
