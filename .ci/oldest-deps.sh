#!/usr/bin/env bash
# Install minigan with the OLDEST versions pyproject.toml declares (each ">=" floor pinned with
# "==" in a pip constraints file; pip has no lowest-version resolution) into a fresh virtual
# environment, and run a quick subset of the tests there, so a floor can never be wrong again.
# Called from .ci/run; runs offline against the local package index.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
venv="${OLDEST_VENV:-.venv-oldest}"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT

# "numpy>=1.24" -> "numpy==1.24" for the dependencies and the dev extra (pytest).
python3 - "$constraints" <<'PY'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
lines = []
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*", req)
    if m and m.group(1) in {"pytest"} | {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}:
        lines.append(f"{m.group(1)}=={m.group(3)}")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("oldest-deps: " + " ".join(lines))
PY

python3 -m venv --clear "$venv"
. "$venv/bin/activate"
quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
quiet pip install -q -c "$constraints" -e . pytest
python -c "import numpy, matplotlib, PIL; print('oldest-deps: numpy', numpy.__version__, \
'matplotlib', matplotlib.__version__, 'pillow', PIL.__version__)"
# A quick subset: the math, the layers and losses, optimizers, checkpoints, one GAN step.
python -m pytest -q -p no:cacheprovider \
    tests/test_backend.py tests/test_functional.py tests/test_layers.py tests/test_losses.py \
    tests/test_optim.py tests/test_checkpoint.py tests/test_oldest_deps.py
