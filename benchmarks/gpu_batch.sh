#!/usr/bin/env bash
# One short GPU batch (an H200 lent for 15 minutes in all): many small, independent runs at once.
#
#   bash benchmarks/gpu_batch.sh OUT_DIR [TRAIN_SECONDS]
#
# Fashion-MNIST must be where bncr finds it (/usr/share/datasets/fashion-mnist) or in .gpudata/fashion-mnist
# (copied there first). Every job is an ordinary, resumable `bncr train` / benchmarks/oracle_diagnostic.py run; the
# jobs share the GPU and are cut at TRAIN_SECONDS (default 420) after start; runs keep their last snapshot. What
# comes back is packed into a few tar files under OUT_DIR (the device tool returns at most 8 files).
#   1. smoke: 4 iterations of bncr-gan (setting N) and of an oracle cr-gan on the GPU; stop here if they fail
#   2. train speed at the paper's nets and the CPU width, alone on the GPU (benchmarks/train_speed.py)
#   3. in parallel (six jobs; the seventeen of round 3 time-sliced the GPU to 6-8 it/s each): oracle J with a
#      128-channel D and the finite-difference q-gradient (cr-gan, cr-gan-nomask), br-gan / br-gan-ac (ac 3) / gan
#      on setting B for 20,000 iterations, bncr-gan on Fashion-MNIST N at width 64 (FID is computed on a CPU later)
set -u
OUT=${1:?usage: gpu_batch.sh OUT_DIR [TRAIN_SECONDS]}
TRAIN_S=${2:-420}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
R=runs
LOG=$OUT/batch.log
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
echo "== start $(date -u +%FT%TZ) on $(hostname)"; nvidia-smi -L 2>/dev/null
$PY -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'python', platform.python_version())"
if [ -d .gpudata/fashion-mnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets/fashion-mnist && cp .gpudata/fashion-mnist/* /usr/share/datasets/fashion-mnist/
fi

# 1. smoke
S=/tmp/bncr-smoke; rm -rf $S
timeout 120 $PY -m bncr train --model bncr-gan --setting N --dataset deadleaves --preset cpu --iters 4 \
  --set count=64 --set tick=2 --set snap_every=4 --set image_every=4 --out $S/n --no-progress \
  && timeout 120 $PY -m bncr train --model cr-gan --setting J --dataset deadleaves --preset cpu --iters 4 --oracle-clean \
  --set count=64 --set tick=2 --set snap_every=4 --set image_every=4 --out $S/j --no-progress \
  || { echo "== SMOKE FAILED"; exit 3; }
echo "== smoke ok at +$(( $(date +%s) - T0 ))s"

# 2. speed, alone on the GPU (SPEED=0 skips it)
[ "${SPEED:-1}" = 0 ] || { timeout 100 $PY benchmarks/train_speed.py --configs 128:64,16:16 --models gan,bncr-gan,br-gan,cr-gan --steps 10 \
  | tee $OUT/speed.md; timeout 60 $PY benchmarks/train_speed.py --count-ops --configs 16:16 --models gan,bncr-gan,br-gan,cr-gan \
  | tee -a $OUT/speed.md; }   # the op count is the CPU-side proxy of the GPU time ratio (docs/research/train-speed.md)
echo "== speed done at +$(( $(date +%s) - T0 ))s"

# 3. the parallel jobs
mkdir -p $OUT/jobs
PIDS=()   # explicit pids: a bare `wait` would also wait for the tee of the log
job() {  # job NAME command...
  local name=$1; shift
  local left=$(( T0 + TRAIN_S - $(date +%s) )); [ $left -ge 10 ] || left=10
  ( timeout $left "$@" > $OUT/jobs/$name.log 2>&1; echo "exit $?" >> $OUT/jobs/$name.log ) &
  PIDS+=($!)
}
TR="$PY -m bncr train --resume auto --no-progress"
# Six jobs at most: 17 processes time-sliced one H200 at only 6-8 it/s each (round 3, 2026-11-30).
ORA="$PY benchmarks/oracle_diagnostic.py --iters 40000 --out $R/gpu/oracle --set d_width=128 --set snap_every=500"
job oracle-J-d128-fd $ORA --setting J --name J-d128-fd                        # q_grad=fd, q_param=clamp (defaults)
job oracle-J-d128-fd-nomask $ORA --setting J --name J-d128-fd-nomask --set model=cr-gan-nomask
for v in "br-gan:" "br-gan-ac:--set ac=3" "gan:"; do   # does BR-GAN's explain-away persist at 20k iterations?
  md=${v%%:*}; extra=${v#*:}; tag=$md${extra:+-ac3}; tag=${tag/-ac-ac3/-ac3}
  job "B20k-$tag" $TR --model $md --setting B --dataset deadleaves --preset cpu --iters 20000 --set snap_every=2000 \
    --set image_every=2000 $extra --out $R/gpu/B20k/$tag
done
job fm-N-w64-bncr-gan-fd $TR --model bncr-gan --setting N --dataset fashion-mnist --preset cpu --iters 40000 \
  --set width=64 --set d_width=64 --set batch=32 --set ema=0.999 --set snap_every=1000 --set image_every=1000 \
  --set tick=100 --out $R/gpu/fm-N-w64/bncr-gan-fd
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait "${PIDS[@]}"
echo "== training jobs ended at +$(( $(date +%s) - T0 ))s"
PIDS=()
for d in $R/gpu/oracle/*/; do
  timeout 60 $PY benchmarks/oracle_diagnostic.py --eval-only "$d" > "$d/eval.log" 2>&1 &
  PIDS+=($!)
done
wait "${PIDS[@]}"
echo "== oracle evaluations ended at +$(( $(date +%s) - T0 ))s"

# 4. pack (at most 8 files come back): small files, the final snapshot of each cpu-mini cell, the last snapshot of
#    each other run, and for the width-64 runs the snapshot at the last iteration all three reached
$PY - "$R" "$OUT" <<'EOF'
import sys, tarfile, re
from pathlib import Path
R, OUT = Path(sys.argv[1]), Path(sys.argv[2])
def snaps(run): return sorted(run.glob("snapshot-*.pt"))
def it(p): return int(re.findall(r"\d+", p.name)[0])
def pack(name, runs, keep):
    with tarfile.open(OUT / name, "w") as tf:
        for run in runs:
            for f in sorted(run.rglob("*")):
                if f.is_file() and not f.name.startswith("training-state") and "images" not in f.parts \
                        and (not f.name.startswith("snapshot-") or f in keep):
                    tf.add(f, arcname=str(f.relative_to(R)))
    print(name, round((OUT / name).stat().st_size / 2**20, 1), "MiB")
cells = [p for p in (R / "cpu-mini").glob("*/*/*/seed0") if p.is_dir()]
pack("cpumini.tar", cells, {s for c in cells for s in snaps(c)[-1:]})
other = [p for sub in ("B", "B20k", "oracle") for p in (R / "gpu" / sub).glob("*") if p.is_dir()]
pack("runs.tar", other, {s for c in other for s in snaps(c)[-1:]})
w64 = [p for p in (R / "gpu" / "fm-N-w64").glob("*") if p.is_dir()]
common = min((it(snaps(c)[-1]) for c in w64 if snaps(c)), default=0)
pack("w64.tar", w64, {s for c in w64 for s in snaps(c) if it(s) == common or s == snaps(c)[-1]})
EOF
tar -cf $OUT/logs.tar -C $OUT jobs && rm -rf $OUT/jobs
ls -la $OUT
echo "== done at +$(( $(date +%s) - T0 ))s"
