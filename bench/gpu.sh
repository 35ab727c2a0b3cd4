#!/usr/bin/env bash
# The engine against raw diffusers on a GPU, SD 1.5- and SDXL-shaped, fp16, previews on and off (#15, #20): one
# device run of ~5 minutes on an H200. How to prepare the wheels it needs and run it: docs/benchmarks.md, "GPU".
#
#   bench/gpu.sh                                   # on the device machine (the repository's root)
#   SIZE_SD15=128 SIZE_SDXL=128 STEPS=1 REPEATS=1 ONLY=overhead bench/gpu.sh    # a dry run on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then  # packages the device's image lacks (diffusers, pydantic), carried as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/opendream-gpu}
mkdir -p "$OUT"
STEPS=${STEPS:-20}
REPEATS=${REPEATS:-9}
ONLY=${ONLY:-overhead,previews}
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else '')" | tee "$OUT/device.txt"
for shape in "sd15 ${SIZE_SD15:-512}" "sdxl ${SIZE_SDXL:-1024}"; do
  set -- $shape
  "$PYTHON" bench/fullsize.py "$1" "/tmp/$1-shaped"
  # previews are timed at the model's own size too (--cancel-size is the previews' size)
  "$PYTHON" bench/engine.py --model "/tmp/$1-shaped" --size "$2" --steps "$STEPS" --repeats "$REPEATS" \
    --only "$ONLY" --cancel-size "$2" --cancel-steps "$STEPS" 2>&1 | tee "$OUT/engine-$1.txt"
done
