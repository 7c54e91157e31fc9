#!/usr/bin/env bash
# Installs what the UI tests (pytest -m ui) need: Debian's chromium and Playwright for Python.
# Idempotent: each part is skipped when already present. Playwright's own browser download is not used
# (it needs the internet); the tests launch /usr/bin/chromium instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${FORGE_PYTHON:-$ROOT/.venv/bin/python}"
PLAYWRIGHT_VERSION="1.65.2"  # keep equal to pyproject.toml's dev extra
LOG="$ROOT/.cache/setup.log"
. "$ROOT/scripts/step.sh"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    step "apt-get update" $SUDO apt-get update
    step "installing chromium (apt)" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if ! "$PYTHON" -c "import playwright, importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    step "installing playwright $PLAYWRIGHT_VERSION" "$PYTHON" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi
/usr/bin/chromium --version >/dev/null
