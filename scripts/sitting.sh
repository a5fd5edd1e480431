#!/usr/bin/env bash
# One sitting of the runs `reproduce` would train, on whatever machine this is (a lent GPU
# machine included): advance them for BUDGET, stop cleanly, and copy what changed to $OUT.
#
#   scripts/sitting.sh BUDGET [reproduce options]
#   OUT=/some/folder scripts/sitting.sh 7m --profile paper --chapter 03_first_order \
#       --only omniglot/maml-5w1s --only omniglot/fomaml-5w1s
#
# Resumable: each run continues from its checkpoint in the store's in-progress/ folder, so a
# series of short sittings (e.g. one per ten-minute command on a GPU machine) adds up to one
# run. Python: the project's .venv when there is one, else $PYTHON or python3 with torch
# installed (the package is read from src/). Data: $LEARNTOLEARN_DATA, else shared/data or
# ../shared/data when they exist. With $OUT set, the result folders written in this sitting
# and the whole in-progress/ folder are copied there (the store is $LEARNTOLEARN_RESULTS, else
# results/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: scripts/sitting.sh BUDGET [reproduce options], e.g. scripts/sitting.sh 7m --profile paper" >&2
  exit 2
fi
budget=$1
shift
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=.venv/bin/python
for d in shared/data ../shared/data; do
  if [ -z "${LEARNTOLEARN_DATA:-}" ] && [ -d "$d" ]; then
    LEARNTOLEARN_DATA=$(cd "$d" && pwd)
    export LEARNTOLEARN_DATA
  fi
done
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
store=${LEARNTOLEARN_RESULTS:-results}
mkdir -p "$store"
marker=$(mktemp)
# Copy out whatever this sitting wrote, also when it is stopped (a command's time limit):
# the checkpoints in in-progress/ are written atomically, so a copy is never a torn file.
copy_out() {
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/results"
    find "$store" -mindepth 1 -maxdepth 1 -type d -newer "$marker" ! -name in-progress \
      ! -name '.*' -exec cp -r {} "$OUT/results/" \;
    if [ -d "$store/in-progress" ]; then
      mkdir -p "$OUT/results/in-progress"
      find "$store/in-progress" -maxdepth 1 -type f \( -name '*.pt' -o -name '*.json' \) \
        -exec cp {} "$OUT/results/in-progress/" \;
    fi
    echo "copied to $OUT/results: $(ls "$OUT/results" | tr '\n' ' ')"
  fi
  rm -f "$marker"
}
trap copy_out EXIT
trap 'exit 143' TERM
"$python" -m learntolearn reproduce --budget "$budget" --quiet "$@"
