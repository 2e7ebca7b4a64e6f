#!/usr/bin/env bash
# One short GPU call (an H200 lent for 15 minutes in all): a queue of ordinary `bncr train` runs, P at a time.
#
#   bash benchmarks/gpu_seeds.sh OUT_DIR JOBS_FILE [TRAIN_SECONDS] [P]
#
# JOBS_FILE: one run per line, `NAME ARGS...` (ARGS go to `bncr train`; --out $RUNS/NAME is added, RUNS=runs/gpu by
# default), in order of priority; blank lines and lines starting with # are skipped. Jobs start as slots free up,
# P at a time (default 9), until TRAIN_SECONDS (default 480) after the start; then every job still running is
# stopped (its snapshots stay: the run is resumable with `bncr train --resume auto`). The CUDA step is captured as one graph after the warm-up
# (`cuda_graph=auto`); each run's log.txt says whether the capture held. What comes back (the device tool returns at
# most 8 files) is runs-*.tar (benchmarks/gpu_pack.py): each run's config, log, stats and final picture and its last
# snapshot (no D/optimiser state), then the training state of unfinished runs while room is left; queue.log holds
# each job's start, end and exit status and a GPU reading each minute, logs.tar each job's output.
set -u
OUT=${1:?usage: gpu_seeds.sh OUT_DIR JOBS_FILE [TRAIN_SECONDS] [P]}
JOBS=${2:?usage: gpu_seeds.sh OUT_DIR JOBS_FILE [TRAIN_SECONDS] [P]}
TRAIN_S=${3:-480}
P=${4:-9}
mkdir -p "$OUT/logs"
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
R=${RUNS:-runs/gpu}
LOG=$OUT/queue.log
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
echo "== start $(date -u +%FT%TZ) on $(hostname), $P at a time, stop at +${TRAIN_S}s"; nvidia-smi -L 2>/dev/null
$PY -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'python', platform.python_version())"

PIDS=()   # explicit pids: a bare `wait` would also wait for the tee of the log
start_job() {  # start_job NAME ARGS...
  local name=$1; shift
  local left=$(( T0 + TRAIN_S - $(date +%s) ))
  ( timeout "$left" $PY -m bncr train --no-progress --resume auto "$@" --out "$R/$name" < /dev/null > "$OUT/logs/$name.log" 2>&1
    echo "== $name exit $? at +$(el)s" ) &
  PIDS+=($!)
  echo "== $name started at +$(el)s (stops at the latest in ${left}s)"
}
running() { local n=0 p; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n+1)); done; echo $n; }
gpu_tick() {  # one GPU reading a minute into the log
  if [ $(( $(date +%s) - last_gpu )) -ge 60 ]; then last_gpu=$(date +%s)
    echo "-- +$(el)s gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"; fi
}

last_gpu=0
while read -r name args; do
  [ -z "${name:-}" ] && continue; case $name in \#*) continue;; esac
  while [ "$(running)" -ge "$P" ]; do sleep 2; gpu_tick; done
  [ $(( T0 + TRAIN_S - $(date +%s) )) -ge 30 ] || { echo "== no time left for $name and the jobs after it"; break; }
  # shellcheck disable=SC2086  # ARGS are words on purpose
  start_job "$name" $args
done < "$JOBS"
while [ "$(running)" -gt 0 ]; do sleep 5; gpu_tick; done
echo "== training ended at +$(el)s"
for d in "$R"/*/; do   # how far each run got, and whether the CUDA graph held
  echo "$(basename "$d"): $(tail -n 1 "$d/stats.jsonl" 2>/dev/null | $PY -c 'import json,sys; s=json.loads(sys.stdin.read() or "{}"); print("iteration", s.get("iteration"), "it/s %.1f" % s.get("it_per_s", 0))') | $(grep -i -m 2 "graph" "$d/log.txt" | tr '\n' ' ')"
done

$PY benchmarks/gpu_pack.py "$R" "$OUT" "$JOBS"
tar -cf "$OUT/logs.tar" -C "$OUT" logs && rm -rf "$OUT/logs"
echo "== done at +$(el)s"
