#!/usr/bin/env bash
# CI's bundle step (called by .ci/run after the test suite; runs alone too): builds the one-folder
# bundle from the Python environment that CI has already installed (no second virtual environment,
# no tar.gz), runs its --self-test (inside packaging/build.sh) and then tests/packaging: --version,
# `methods`, the self-test offline, train + fuse offline, and the window under Xvfb when available.
#
# Measured on the 2-core development machine (shared with other jobs, load 15-18): a clean build
# from a fresh venv took 17 min wall for 5.5 min of CPU; this step skips the venv. See README.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
START=$(date +%s)

python -m pip install -q "pyinstaller>=6.0"
# A virtual X server and a screenshot tool for the window test (skipped without them).
if ! command -v Xvfb >/dev/null 2>&1 || ! command -v import >/dev/null 2>&1 || ! command -v xwininfo >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb x11-utils imagemagick >/dev/null 2>&1 \
      || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          xvfb x11-utils imagemagick >/dev/null)) \
      || echo "warning: could not install Xvfb/ImageMagick: the window test will be skipped" >&2
  fi
fi

SKIP_VENV=1 FOCUSSTUDIO_SKIP_ARCHIVE=1 bash packaging/build.sh
python -m pytest -q tests/packaging
echo "== bundle step: $(( $(date +%s) - START )) s"
