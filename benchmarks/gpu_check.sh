#!/usr/bin/env bash
# Everything GPU-side in one go, written into ONE results file (issue 14).
#
#   bash benchmarks/gpu_check.sh [--device gpu|cpu] [--out DIR] [--budget SECONDS] [--no-install]
#
# --device gpu (default; an H200 takes about 8 minutes at most):
#   env      versions of Python, NumPy, CuPy, PyTorch and the GPU
#   compare  the first 20 training steps of one seed on NumPy and on CuPy, loss by loss
#            (benchmarks/compare_backends.py --a cpu --b gpu)
#   bench    bench_step.py --device gpu for the presets in $GPU_CHECK_PRESETS (default
#            "classic default"): "classic", the plain MLP, against PyTorch CUDA eager (the
#            target's ratio); "default" (BatchNorm1d in G, Dropout in D) by minigan alone, as
#            the PyTorch copy has no twin for those layers (nor for "dcgan"'s convolutions)
#   epoch    one full MNIST epoch of train_mnist(device="gpu") and of the bare step loop
#            (bench_epoch.py; the MNIST files come from .gpu-data/mnist)
#   tests    the CuPy parametrization of the test suite (pytest -k cupy, lessons excluded)
# --device cpu: the same steps as a dry run that fits in CI time: NumPy against
#   array-api-strict ("device1"), a tiny bench_step, a --limit-ed epoch, and the numpy +
#   array-api-strict parametrization of a quick subset of the tests.
#
# Each step runs under `timeout` (its own limit, cut to what is left of --budget), records
# pass / fail / timeout and the run goes on, so one failure loses nothing else. The results
# file is DIR/gpu_check_<device>.json (and the log DIR/gpu_check_<device>.log), DIR being --out,
# else $OUT when set (the device machine's output folder), else benchmarks/results.
# The wheels in .whl/ (from benchmarks/gpu_prepare.sh) are installed first with
# `pip install --no-index --no-deps --target`, unless --no-install or there are none.
# Exit status: 0 when every step passed, 1 otherwise.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
device=gpu
out="${OUT:-$repo/benchmarks/results}"
budget=""
install=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --budget) budget="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (expected --device gpu|cpu, --out DIR, --budget S, --no-install)" >&2; exit 2 ;;
    esac
done
if [[ "$device" != gpu && "$device" != cpu ]]; then
    echo "gpu_check.sh: --device: expected gpu or cpu, got $device" >&2
    exit 2
fi
budget="${budget:-$([[ $device == gpu ]] && echo 480 || echo 600)}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
log="$out/gpu_check_$device.log"
: >"$log"
: >"$work/steps.jsonl"
start=$(date +%s)
deadline=$((start + budget))
export PYTHONUNBUFFERED=1
if [[ $device == cpu ]]; then
    # A dry run on a (possibly shared) CPU: one BLAS thread each, so that a busy second core
    # cannot stall OpenBLAS's threads. Thread counts only; the kernel is left alone.
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
fi

say() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$log"; }

# step NAME LIMIT_S COMMAND...: run under timeout, log its output, record how it ended.
step() {
    local name="$1" limit="$2"
    shift 2
    local left=$((deadline - $(date +%s)))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        say "$name: skipped, the budget of ${budget} s is spent"
        printf '{"name": "%s", "status": "skipped", "rc": null, "seconds": 0, "timeout_s": %d}\n' \
            "$name" "$limit" >>"$work/steps.jsonl"
        return
    fi
    say "$name: $* (timeout ${limit} s)"
    local t0 rc status
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    case $rc in
        0) status=pass ;;
        124 | 137) status=timeout ;;
        *) status=fail ;;
    esac
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    say "$name: $status (rc $rc, ${secs} s)"
    printf '{"name": "%s", "status": "%s", "rc": %d, "seconds": %s, "timeout_s": %d}\n' \
        "$name" "$status" "$rc" "$secs" "$limit" >>"$work/steps.jsonl"
}

# ---- wheels and data ------------------------------------------------------------------------
site="${TMPDIR:-/tmp}/minigan-gpu-site"
if ((install)) && ls .whl/*.whl >/dev/null 2>&1; then
    step install 120 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH="$site:$repo"
else
    say "install: no wheels installed (--no-install, or none in .whl/): using this Python's packages"
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi
if ls .gpu-data/mnist/*.gz >/dev/null 2>&1; then
    export MINIGAN_DATA_DIR="$repo/.gpu-data/mnist"
fi
say "device $device, budget ${budget} s, MINIGAN_DATA_DIR=${MINIGAN_DATA_DIR:-unset}, results in $out"

# ---- the steps ------------------------------------------------------------------------------
presets="${GPU_CHECK_PRESETS:-classic default}"
step env 60 "$PYTHON" benchmarks/gpu_results.py env "$work/env.json"
if [[ $device == gpu ]]; then
    step compare 120 "$PYTHON" benchmarks/compare_backends.py --a cpu --b gpu --steps 20 \
        --out "$work/compare.json"
    # shellcheck disable=SC2086  # presets is a word list on purpose
    step bench 180 "$PYTHON" benchmarks/bench_step.py --device gpu --presets $presets \
        --out "$work/bench"
    step epoch 120 "$PYTHON" benchmarks/bench_epoch.py --device gpu --out "$work/epoch"
    step tests 360 "$PYTHON" -m pytest -q -m "not lessons" -k cupy -p no:cacheprovider \
        --junitxml="$work/junit.xml" tests
else
    step compare 180 "$PYTHON" benchmarks/compare_backends.py --a cpu --b strict --steps 20 \
        --out "$work/compare.json"
    # shellcheck disable=SC2086
    step bench 180 "$PYTHON" benchmarks/bench_step.py --device cpu --presets $presets \
        --batch-sizes 64 --rounds 1 --steps 2 --warmup 1 --threads 1 --no-torch-frozen \
        --out "$work/bench"
    step epoch 180 "$PYTHON" benchmarks/bench_epoch.py --device cpu --limit 640 \
        --out "$work/epoch"
    step tests 240 "$PYTHON" -m pytest -q -m "not lessons" -k "numpy or array_api_strict" \
        -p no:cacheprovider --junitxml="$work/junit.xml" tests/test_fastpath.py tests/test_losses.py
fi

# ---- one results file -----------------------------------------------------------------------
results="$out/gpu_check_$device.json"
"$PYTHON" benchmarks/gpu_results.py collect "$work" "$results" --device "$device" \
    --budget "$budget" --seconds "$(($(date +%s) - start))" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
rm -rf "$work"
exit "$rc"
