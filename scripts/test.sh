#!/usr/bin/env bash
# Install what the tests need on a fresh machine and run the whole suite.
# Used by the README and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser tests drive Debian's Chromium through Playwright (no browser download); the allocator
# tests run the command under tcmalloc, which it uses when installed (cli/allocator.py).
if ! command -v chromium >/dev/null 2>&1 || [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium libtcmalloc-minimal4 >/dev/null
fi

python3 -m venv .venv
# torch==2.13.0 is the CPU wheel; an unpinned torch would pull several GB of CUDA packages.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 -e '.[test]'

export PAINTERLY_REQUIRE_BROWSER=1
[ "$(uname -m)" = x86_64 ] && export PAINTERLY_REQUIRE_ALLOCATOR=1
# -m "": the whole suite (a bare `pytest` runs the fast selection, see tests/conftest.py).
exec .venv/bin/python -m pytest -m "" "$@"
