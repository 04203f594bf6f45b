#!/usr/bin/env bash
# Issue 15's GPU check, one run on a lent GPU machine (about 9 minutes):
#   1. every model's training throughput on the GPU (scripts.bench_gpu);
#   2. three trainings side by side on real mixtures, MINUTES each (wall clock), the data being
#      this machine's training split (scripts.gpu_data): recipes/lite-v2-gpu.toml (batch 64), the
#      same at batch 16, and lite-v2-low-latency at batch 64 (the 12 ms model at equal budget);
#   3. while they train, the built `lite` notebook executed on the GPU (fp16 autocast,
#      synthetic data) through the smoke runner, rendered and checked as `make smoke` does.
# Everything it keeps lands in $OUT (at most 8 files): log, throughput, checkpoints, notebook.
#
# Prepared here, once (.devdata and .whl listed in .git/info/exclude; together about 57 MB of the
# 64 MiB a device call may carry):
#   python -m scripts.gpu_data pack --data ../shared/data --out .devdata
#   pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
#     papermill ipykernel nbconvert jupytext python-slugify soundfile soxr pystoi py7zr
#   then delete from .whl what the image already has (numpy, scipy, torch's neighbours, debugpy)
#   and add pesq's sdist with `setup_requires` emptied (it has no wheel, and nothing can be
#   fetched there to build it).
# On the machine:       bash scripts/gpu_check.sh   (carry .whl and .devdata)
# A dry run here:       SKIP_INSTALL=1 PY=.venv/bin/python MINUTES=0.5 OUT=/tmp/out \
#                       BENCH_ARGS="--steps 1 --batch-size 2" bash scripts/gpu_check.sh
set -u
PY=${PY:-python3}
MINUTES=${MINUTES:-7}
OUT=${OUT:?set OUT to the folder that comes back}
WORK=${WORK:-/tmp/gpu-check}
LOG=$OUT/log.txt
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$LOG") 2>&1
stamp() { echo "== $(date +%T) $*"; }

stamp "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
nproc
if [ -z "${SKIP_INSTALL:-}" ]; then
  stamp "install the wheels the image lacks (and build pesq)"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
  # pesq ships no wheel: its sdist (setup_requires emptied, so nothing is fetched) is built here
  # with the image's Cython and numpy.
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir .whl/pesq-*.tar.gz
fi
$PY -c "import pesq, soundfile, soxr, jupytext, papermill; print('imports ok')"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

stamp "unpack the training split"
$PY -m scripts.gpu_data unpack --src .devdata --out "$WORK/data" --jobs "$(nproc)"

stamp "training throughput of every model"
$PY -m scripts.bench_gpu --json "$OUT/bench_gpu.json" ${BENCH_ARGS:-}

stamp "3 trainings for $MINUTES minutes"
workers=$(( $(nproc) > 8 ? 6 : 1 ))
train() {  # NAME RECIPE [options that differ from the recipe]
  local name=$1 recipe=$2
  shift 2
  $PY -m common train --recipe "$recipe" --data-root "$WORK/data" --out "$WORK/$name" \
    --work-dir "$WORK/work-$name" --max-minutes "$MINUTES" --workers "$workers" \
    --set train.budget_clock=wall --no-progress "$@" > "$WORK/$name.log" 2>&1
  echo "$name: exit $?"
}
# recipes/lite-v2-gpu.toml is the batch-64 run; the others change what their names say.
train gpu-b64 lite-v2-gpu &
b64=$!
train gpu-b16 lite-v2-gpu --batch-size 16 --lr 3e-3 --mix-items 8000 &
b16=$!
train gpu-ll-b64 lite-v2-low-latency --batch-size 64 --lr 4e-3 --mix-items 32000 &
ll=$!

stamp "the lite notebook on the GPU"
$PY -m builders.smoke lite --device auto
tar -czf "$OUT/smoke-lite.tar.gz" -C build/smoke lite

wait "$b16" "$b64" "$ll"  # not a bare `wait`: it would also wait for the `tee` above, forever
stamp "collect"
for run in gpu-b16 gpu-b64 gpu-ll-b64; do
  tail -n 4 "$WORK/$run.log"
  cp "$WORK/$run/last.pt" "$OUT/$run.pt" 2>/dev/null
done
(cd "$WORK" && tar -czf "$OUT/runs.tar.gz" ./*.log ./*/history.json)
stamp "done"
