#!/usr/bin/env bash
# Starts the bundled app on a virtual X server with the given files/folders, waits, screenshots the
# whole screen and closes everything: a check that the real window opens outside any test harness.
#
#   bash packaging/linux/xvfb_screenshot.sh OUT.png [SECONDS] [PATH...]
#
# Needs Xvfb, xwininfo and ImageMagick's import (apt-get install xvfb x11-utils imagemagick).
# FOCUSSTUDIO_EXE overrides the executable (default dist/FocusStudio/FocusStudio).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:?usage: xvfb_screenshot.sh OUT.png [SECONDS] [PATH...]}"
WAIT="${2:-8}"
shift $(( $# >= 2 ? 2 : $# ))
EXE="${FOCUSSTUDIO_EXE:-$ROOT/dist/FocusStudio/FocusStudio}"
DISPLAY_NUMBER="${XVFB_DISPLAY:-97}"
export DISPLAY=":$DISPLAY_NUMBER" QT_QPA_PLATFORM=xcb

Xvfb "$DISPLAY" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
APP_PID=""
cleanup() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  kill "$XVFB_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do [ -S "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] && break; sleep 0.2; done

START=$(date +%s.%N)
"$EXE" "$@" > "${OUT%.png}.log" 2>&1 &
APP_PID=$!
# Wait for the window to be mapped, then give the stack time to load and paint.
for _ in $(seq 240); do
  kill -0 "$APP_PID" 2>/dev/null || { echo "the app exited early, see ${OUT%.png}.log" >&2; exit 1; }
  xwininfo -root -tree 2>/dev/null | grep -q '"FocusStudio' && break
  sleep 0.5
done
SHOWN=$(date +%s.%N)
echo "window mapped after $(echo "$SHOWN - $START" | bc) s"
sleep "$WAIT"
import -display "$DISPLAY" -window root "$OUT"
[ -s "${OUT%.png}.log" ] || rm -f "${OUT%.png}.log"
echo "screenshot: $OUT"
