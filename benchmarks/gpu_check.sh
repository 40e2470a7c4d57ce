#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): run it first whenever a GPU is available; about 5 minutes on an H100.
#
#   bash benchmarks/gpu_check.sh                  # full check → benchmarks/results/gpu_<date>.json + a table
#   bash benchmarks/gpu_check.sh --smoke          # tiny sizes on any device (the test suite runs this on CPU)
#   bash benchmarks/gpu_check.sh --fetch-wheels   # on a machine WITH internet: put the wheels in .whl/
#
# JAX with CUDA. On a GPU machine that has it (e.g. an image with jax + jax-cuda12/13-plugin), nothing is
# installed. On one without internet, carry the wheels: run `--fetch-wheels` where pip reaches PyPI (it downloads
# mtpjax's pure-Python dependencies that GPU images usually lack, for Python $WHEEL_PY, into .whl/), copy .whl/
# beside the checkout, and this script installs them into /tmp/mtpjax_site before running. For a machine with
# no JAX at all add the CUDA build: WHEELS_EXTRA='jax[cuda12]==0.6.2' bash benchmarks/gpu_check.sh --fetch-wheels
# (about 1 GB: the nvidia-* runtime wheels), or `pip install "jax[cuda12]"` where PyPI is reachable.
# Variables: PYTHON (default python3), MTPJAX_WHEELS (default .whl), WHEEL_PY (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${MTPJAX_WHEELS:-.whl}

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  get=($PY -m pip download --quiet --only-binary=:all: --python-version "${WHEEL_PY:-3.12}" --implementation cp
       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS")
  "${get[@]}" pydantic                              # with its pinned pydantic-core and small dependencies
  "${get[@]}" --no-deps ase filelock tqdm           # ase's own needs (numpy, scipy, matplotlib) are in GPU images
  # shellcheck disable=SC2086
  [ -z "${WHEELS_EXTRA:-}" ] || "${get[@]}" ${WHEELS_EXTRA}
  ls -la "$WHEELS"
  exit 0
fi

if compgen -G "$WHEELS/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/mtpjax_site \
    "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/mtpjax_site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}  # peak memory as used, not reserved
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec $PY -m benchmarks.gpu_check "$@"
