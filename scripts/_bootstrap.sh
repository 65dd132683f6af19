# Sourced by scripts/demo and scripts/test: creates the virtual environment
# (default .venv, or $KVL_VENV) and installs the package with its test and
# plot extras the first time, and again whenever pyproject.toml changes.
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
STAMP="$VENV/.keras_vae_layers-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[setup] installing keras_vae_layers and its dependencies (first run takes a minute or two)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test,plot]"
    echo "$WANT" > "$STAMP"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
