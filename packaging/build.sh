#!/usr/bin/env bash
# Builds the standalone one-folder FocusStudio bundle and a Linux tar.gz, then self-tests it.
#
#   bash packaging/build.sh                       # clean venv, CPU torch → dist/FocusStudio + tar.gz
#   FOCUSSTUDIO_REUSE_VENV=1 bash packaging/build.sh   # keep build/packaging/venv (iterating on the spec)
#   SKIP_VENV=1 bash packaging/build.sh           # use the current Python environment (least clean)
#   FOCUSSTUDIO_SKIP_ARCHIVE=1 bash packaging/build.sh # bundle + self-test only, no tar.gz (CI)
#
# The GPU build is a separate artifact: point the torch switch at a CUDA wheel, e.g.
#   FOCUSSTUDIO_TORCH_SPEC="torch==2.13.0" \
#   FOCUSSTUDIO_TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 bash packaging/build.sh
# which names the archive ...-cuda.tar.gz and keeps torch's CUDA libraries in the bundle.
#
# A clean virtual environment guarantees exactly one Qt binding (PySide6-Essentials), the CPU torch
# wheel and opencv-python-headless: whatever else is installed on the build machine stays out.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build/packaging"
VENV="$BUILD/venv"
PYTHON="${PYTHON:-python3}"
START=$(date +%s)
VENV_DONE="" BUILT="" SELFTEST_START="" SELFTEST_END=""
mkdir -p "$BUILD"
# The phase times, also when a phase fails (they decide whether CI can afford the build).
report_times() {
  local status=$? now
  now=$(date +%s)
  echo "== times: venv $(( ${VENV_DONE:-$now} - START )) s," \
    "pyinstaller $([ -n "$VENV_DONE" ] && echo $(( ${BUILT:-$now} - VENV_DONE )) || echo -) s," \
    "self-test $([ -n "$SELFTEST_START" ] && echo $(( ${SELFTEST_END:-$now} - SELFTEST_START )) || echo -) s," \
    "total $(( now - START )) s (exit $status)"
}
trap report_times EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU wheel carries a "+cpu" local version on Linux (PyPI's plain Linux wheel is the CUDA build);
# Windows and macOS wheels on PyPI are CPU (macOS: CPU + MPS) builds without a local version.
case "$(uname -s)" in
  Linux) DEFAULT_TORCH_SPEC="torch==2.13.0+cpu" ;;
  *) DEFAULT_TORCH_SPEC="torch==2.13.0" ;;
esac
TORCH_SPEC="${FOCUSSTUDIO_TORCH_SPEC:-$DEFAULT_TORCH_SPEC}"
TORCH_INDEX_URL="${FOCUSSTUDIO_TORCH_INDEX_URL:-}"

install_torch() {
  if [ -n "$TORCH_INDEX_URL" ]; then
    python -m pip install -q "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX_URL"
  # The configured indexes/find-links first (a local wheel, a mirror); then PyTorch's CPU index,
  # where the +cpu wheels live.
  elif ! python -m pip install -q "$TORCH_SPEC"; then
    python -m pip install -q "$TORCH_SPEC" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
}

if [ "${SKIP_VENV:-0}" = "1" ]; then
  echo "== using the current Python environment ($(command -v python))"
elif [ "${FOCUSSTUDIO_REUSE_VENV:-0}" = "1" ] && [ -x "$VENV/bin/python" ]; then
  echo "== reusing $VENV"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
else
  echo "== clean virtual environment $VENV ($TORCH_SPEC)"
  "$PYTHON" -m venv --clear "$VENV"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  python -m pip install -q --upgrade pip
  install_torch
  # The dependencies (and a copy of focusstudio, unused: the spec's pathex puts this source tree first).
  python -m pip install -q ".[gui,packaging]"
fi
VENV_DONE=$(date +%s)

# Which torch flavour is installed decides the flavour of the bundle (the spec reads it too).
FLAVOUR=$(python -c "import torch; print('cuda' if torch.version.cuda else 'cpu')")
export FOCUSSTUDIO_BUNDLE_FLAVOUR="$FLAVOUR"
python - <<'PY'
import importlib.metadata as md, importlib.util, os, sys
bindings = [m for m in ("PySide6", "PyQt5", "PyQt6", "PySide2") if importlib.util.find_spec(m)]
if bindings != ["PySide6"]:
    sys.exit(f"expected exactly one Qt binding (PySide6), found {bindings}")
installed = {d.metadata["Name"].lower() for d in md.distributions()}
if "opencv-python" in installed or "opencv-contrib-python" in installed:
    sys.exit("a non-headless OpenCV wheel is installed; use opencv-python-headless only")
import torch
nvidia = sorted(n for n in installed if n.startswith("nvidia-"))
if os.environ["FOCUSSTUDIO_BUNDLE_FLAVOUR"] == "cpu" and nvidia:
    sys.exit(f"CPU build but NVIDIA packages are installed: {nvidia}")
print(f"torch {torch.__version__} ({os.environ['FOCUSSTUDIO_BUNDLE_FLAVOUR']}), "
      f"PySide6 {md.version('PySide6-Essentials')}, opencv-python-headless {md.version('opencv-python-headless')}")
PY

rm -rf "$ROOT/dist/FocusStudio" "$ROOT/dist/FocusStudio.app"
pyinstaller --noconfirm --clean --log-level "${PYINSTALLER_LOG_LEVEL:-WARN}" \
  --distpath "$ROOT/dist" --workpath "$BUILD/work" packaging/focusstudio.spec
BUILT=$(date +%s)

echo "== bundle size per top-level folder"
du -sh "$ROOT/dist/FocusStudio"
( cd "$ROOT/dist/FocusStudio/_internal" && du -s -- * 2>/dev/null | sort -rn | head -15 \
  | awk '{ printf "%8.1f MB  %s\n", $1/1024, $2 }' )

echo "== self-test of the bundle"
SELFTEST_START=$(date +%s)
# Without the FOCUSSTUDIO_*_DIR overrides: the self-test must see the bundled resources and weights.
env -u FOCUSSTUDIO_WEIGHTS_DIR -u FOCUSSTUDIO_RESOURCES_DIR QT_QPA_PLATFORM=offscreen \
  "$ROOT/dist/FocusStudio/FocusStudio" --self-test
SELFTEST_END=$(date +%s)

[ "${FOCUSSTUDIO_SKIP_ARCHIVE:-0}" = "1" ] && exit 0
if [ "$(uname)" = "Darwin" ]; then
  echo "== built dist/FocusStudio.app (macOS: no tar.gz; packaging/macos/build.sh makes the .dmg)"
  exit 0
fi

VERSION=$(python -c "import sys; sys.path.insert(0, '$ROOT'); import focusstudio; print(focusstudio.__version__)")
SUFFIX=""
[ "$FLAVOUR" = "cuda" ] && SUFFIX="-cuda"
STAGE="$BUILD/stage/FocusStudio"
rm -rf "$BUILD/stage" && mkdir -p "$STAGE"
cp -a "$ROOT/dist/FocusStudio/." "$STAGE/"
cp "$ROOT/packaging/linux/focusstudio.desktop" "$STAGE/"
cp "$ROOT/resources/icons/focusstudio.png" "$STAGE/focusstudio.png"
cp "$ROOT/packaging/linux/install.sh" "$STAGE/"
chmod +x "$STAGE/install.sh"
ARCHIVE="$ROOT/dist/FocusStudio-$VERSION-linux-$(uname -m)$SUFFIX.tar.gz"
tar -C "$BUILD/stage" -cf - FocusStudio | gzip "-${FOCUSSTUDIO_GZIP_LEVEL:-6}" > "$ARCHIVE"
rm -rf "$BUILD/stage"
echo "== built $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1), archived in $(( $(date +%s) - SELFTEST_END )) s)"
