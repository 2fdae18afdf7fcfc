#!/usr/bin/env bash
# Prepare a GPU run of benchmarks/gpu_check.sh from a CPU machine that has pip access.
#
# The GPU machine has no network. Its Python 3.12 already holds numpy, matplotlib, tqdm, pillow,
# requests, packaging, filelock, threadpoolctl, pytest, torch and cupy-cuda13x, but not
# array-api-compat, array-api-strict, pooch, nor pooch's need platformdirs. This script
#
#   1. downloads those wheels for CPython 3.12 manylinux x86-64 into .whl/ (git-ignored), in the
#      versions installed here (the ones the CPU tests ran with), one version each;
#   2. copies the dataset .gz files into .gpu-data/<name>/ (git-ignored): MNIST by default,
#      more with --datasets mnist fashion-mnist cifar-10;
#   3. checks that both folders together stay under 64 MiB (what travels with the tree).
#
# Usage:
#   bash benchmarks/gpu_prepare.sh [--from DATA_ROOT] [--datasets NAME...]
# DATA_ROOT holds mnist/, fashion-mnist/, cifar-10/ (default $MINIGAN_DATA_ROOT, else
# ../shared/data next to the repository). Then, on the GPU machine (carry .whl and .gpu-data):
#   bash benchmarks/gpu_check.sh --device gpu
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
data_root="${MINIGAN_DATA_ROOT:-$repo/../shared/data}"
datasets=(mnist)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --from) data_root="$2"; shift 2 ;;
        --datasets) shift; datasets=(); while [[ $# -gt 0 && "$1" != --* ]]; do datasets+=("$1"); shift; done ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "gpu_prepare.sh: unknown argument $1 (expected --from DIR, --datasets NAME...)" >&2; exit 2 ;;
    esac
done
PYTHON="${PYTHON:-python3}"
LIMIT_MIB=64

# ---- 1. wheels ------------------------------------------------------------------------------
packages=(array-api-compat array-api-strict pooch platformdirs)
pins=()
for p in "${packages[@]}"; do
    v="$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p" 2>/dev/null)" || {
        echo "gpu_prepare.sh: $p is not installed here; pip install -e '.[dev]' first (its version is the one shipped)" >&2
        exit 1
    }
    pins+=("$p==$v")
done
rm -rf .whl
mkdir -p .whl
echo "downloading ${pins[*]} into .whl/"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${pins[@]}"
ls -1 .whl

# ---- 2. data --------------------------------------------------------------------------------
rm -rf .gpu-data
for name in "${datasets[@]}"; do
    src="$data_root/$name"
    if ! ls "$src"/*.gz >/dev/null 2>&1; then
        echo "gpu_prepare.sh: no .gz files in $src (give --from DATA_ROOT)" >&2
        exit 1
    fi
    mkdir -p ".gpu-data/$name"
    cp "$src"/*.gz ".gpu-data/$name/"
    echo "copied $(ls "$src"/*.gz | wc -l) files of $name into .gpu-data/$name/"
done

# ---- 3. size --------------------------------------------------------------------------------
mib=$(du -sm .whl .gpu-data | awk '{s += $1} END {print s}')
echo ".whl + .gpu-data: ${mib} MiB (limit ${LIMIT_MIB} MiB together with the rest of the tree)"
if (( mib >= LIMIT_MIB )); then
    echo "gpu_prepare.sh: ${mib} MiB is too much to travel; take fewer --datasets" >&2
    exit 1
fi
echo "ready: run 'bash benchmarks/gpu_check.sh --device gpu' on the GPU machine, carrying .whl and .gpu-data"
