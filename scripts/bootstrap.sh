# Sourced by the README's commands: builds .venv from the committed lock file when it is missing
# or the lock changed since it was built, so a fresh clone needs nothing but python3 (>= 3.11).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "libral-gateway needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
STAMP=.venv/.lock-stamp
WANT="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/libral-gateway ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "Setting up .venv from requirements.lock ..." >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  pipi() {
    # Some machines' pip config names local mirrors that may be absent: drop only those warnings.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    return "${PIPESTATUS[0]}"
  }
  pipi --require-hashes --no-deps -r requirements.lock
  pipi --no-deps --no-build-isolation -e .
  echo "$WANT" > "$STAMP"
fi
