#!/usr/bin/env bash
# Builds the standalone one-folder FocusStudio bundle (CPU) and a Linux tar.gz, then self-tests it.
#
#   bash packaging/build.sh            # build into dist/FocusStudio, archive dist/FocusStudio-<ver>-linux-x86_64.tar.gz
#   SKIP_VENV=1 bash packaging/build.sh  # reuse the current Python environment (faster, less clean)
#
# A clean virtual environment guarantees exactly one Qt binding (PySide6-Essentials), the CPU torch
# wheel and opencv-python-headless: whatever else is installed on the build machine stays out.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build/packaging"
VENV="$BUILD/venv"
START=$(date +%s)
mkdir -p "$BUILD"

if [ "${SKIP_VENV:-0}" != "1" ]; then
  python3 -m venv --clear "$VENV"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0          # the CPU wheel; never the CUDA build here
  python -m pip install -q ".[gui]" pyinstaller
fi
python - <<'PY'
import importlib.util, sys
bindings = [m for m in ("PySide6", "PyQt5", "PyQt6", "PySide2") if importlib.util.find_spec(m)]
if bindings != ["PySide6"]:
    sys.exit(f"expected exactly one Qt binding (PySide6), found {bindings}")
import cv2
if "headless" not in (cv2.__file__ or "") and importlib.util.find_spec("cv2.qt"):
    sys.exit("the plain opencv-python wheel is installed; use opencv-python-headless")
PY

rm -rf "$ROOT/dist/FocusStudio"
pyinstaller --noconfirm --clean --log-level WARN \
  --distpath "$ROOT/dist" --workpath "$BUILD/work" packaging/focusstudio.spec
BUILT=$(date +%s)

echo "== bundle size per top-level folder"
du -sh "$ROOT/dist/FocusStudio"
( cd "$ROOT/dist/FocusStudio/_internal" && du -s -- * 2>/dev/null | sort -rn | head -15 \
  | awk '{ printf "%8.1f MB  %s\n", $1/1024, $2 }' )

echo "== self-test of the bundle"
QT_QPA_PLATFORM=offscreen "$ROOT/dist/FocusStudio/FocusStudio" --self-test

if [ "$(uname)" = "Darwin" ]; then
  echo "== built dist/FocusStudio.app (macOS: no tar.gz; packaging/macos/build.sh makes the .dmg)"
  exit 0
fi

VERSION=$(python -c "import focusstudio; print(focusstudio.__version__)")
STAGE="$BUILD/stage/FocusStudio"
rm -rf "$BUILD/stage" && mkdir -p "$STAGE"
cp -a "$ROOT/dist/FocusStudio/." "$STAGE/"
cp "$ROOT/packaging/linux/focusstudio.desktop" "$STAGE/"
cp "$ROOT/resources/icons/focusstudio.png" "$STAGE/focusstudio.png"
cp "$ROOT/packaging/linux/install.sh" "$STAGE/"
ARCHIVE="$ROOT/dist/FocusStudio-$VERSION-linux-$(uname -m).tar.gz"
tar -C "$BUILD/stage" -czf "$ARCHIVE" FocusStudio
END=$(date +%s)
echo "== built $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)); pyinstaller $((BUILT-START)) s, total $((END-START)) s"
