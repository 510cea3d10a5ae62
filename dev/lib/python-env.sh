# Sourced by dev/* scripts: create .venv with the workspace installed, using uv when it can be had.
# Caches live outside the repository ($XDG_CACHE_HOME or ~/.cache).
VENV="${SETPOINT_VENV:-$PWD/.venv}"
export UV_CACHE_DIR="${UV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv}"
export UV_PROJECT_ENVIRONMENT="$VENV"

ensure_python_env() {
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setpoint needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 2
  fi
  if ! command -v uv >/dev/null 2>&1; then
    local tools="${XDG_CACHE_HOME:-$HOME/.cache}/setpoint/uv-venv"
    if [ ! -x "$tools/bin/uv" ]; then
      "$py" -m venv "$tools" && "$tools/bin/pip" install --quiet "uv>=0.4"
    fi
    export PATH="$tools/bin:$PATH"
  fi
  uv sync --quiet --frozen --python "$py"
}
