# Sourced by scripts/demo and scripts/test: creates the virtual environment
# (default .venv, or $KVL_VENV) and installs the package with the extras in
# $KVL_EXTRAS (default: test,plot) the first time, and again whenever
# pyproject.toml or the extras change. With the torch extra, torch is pinned
# first ($KVL_TORCH_PIN, default torch==2.13.0: a CPU build; an unpinned
# torch may pull several GB of CUDA packages).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KVL_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"

if ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: keras_vae_layers needs Python >= 3.10; '$PYTHON_BIN' is $("$PYTHON_BIN" --version 2>&1 || echo missing)." >&2
    echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV" >&2
    "$PYTHON_BIN" -m venv "$VENV"
fi
EXTRAS="${KVL_EXTRAS:-test,plot}"
STAMP="$VENV/.keras_vae_layers-installed-${EXTRAS//,/-}"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[setup] installing keras_vae_layers[$EXTRAS] and its dependencies (first run takes a few minutes)" >&2
    setup_start=$(date +%s)
    PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${PIP[@]}" --upgrade pip
    case ",$EXTRAS," in
        *,torch,*) "${PIP[@]}" "${KVL_TORCH_PIN:-torch==2.13.0}" ;;
    esac
    "${PIP[@]}" -e "$ROOT[$EXTRAS]"
    echo "$WANT" > "$STAMP"
    echo "[setup] installed in $(( $(date +%s) - setup_start ))s" >&2
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
