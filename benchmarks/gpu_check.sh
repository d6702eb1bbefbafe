#!/usr/bin/env bash
# genlab's GPU check in one command, for a GPU machine without network (docs/benchmarks.md).
#
#   benchmarks/gpu_check.sh OUT_DIR [--dry-run]
#
# Installs the wheels that `make gpu-wheels` prepared (GENLAB_GPU_WHEELS, default gpu_wheels/)
# into a folder of their own on PYTHONPATH (the machine's python3 keeps its torch stack), then
# runs benchmarks/gpu_check.py: every step with its own timeout, within ~7 minutes, and one
# table (gpu_check.md, gpu_check.json) plus the step logs in OUT_DIR. Exit 0 when every step
# passed, 1 when one did not (the table says which), 2 when it could not start.
# --dry-run: the same steps on the CPU, tiny; the wheel install is skipped when the packages
# are already importable (this project's .venv). PYTHON picks the interpreter (default python3).
set -euo pipefail

usage="usage: benchmarks/gpu_check.sh OUT_DIR [--dry-run]"
[[ $# -ge 1 && $# -le 2 && $1 != -* ]] || { echo "$usage" >&2; exit 2; }
out=$1
dry_run=()
if [[ $# -eq 2 ]]; then
    [[ $2 == --dry-run ]] || { echo "$usage" >&2; exit 2; }
    dry_run=(--dry-run)
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
wheels=${GENLAB_GPU_WHEELS:-$root/gpu_wheels}

importable() {
    "$python" -c 'import genlab, hydra, omegaconf, torch_fidelity, imwatermark, c2pa, cryptography' \
        2>/dev/null
}

if [[ ${#dry_run[@]} -eq 1 ]] && importable; then
    echo "gpu_check: dry run; the packages are importable, no wheel install"
else
    "$python" "$root/benchmarks/gpu_check.py" check-wheels "$wheels" || exit 2
    site=$(mktemp -d "${TMPDIR:-/tmp}/genlab-gpu-site.XXXXXX")  # fresh: nothing else is removed
    echo "gpu_check: installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $site"
    started=$SECONDS
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --disable-pip-version-check --target "$site" "$wheels"/*.whl || exit 2
    echo "gpu_check: installed in $((SECONDS - started)) s"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
# the working tree's genlab, not the wheel's copy, when the two differ
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/benchmarks/gpu_check.py" run "$out" "${dry_run[@]}"
