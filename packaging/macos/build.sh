#!/usr/bin/env bash
# Builds dist/FocusStudio.app on macOS (arm64 or x86_64) and a .dmg if hdiutil is available.
# Not built or tested by the team yet (no Mac): see README "Standalone app".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
# macOS wheels of torch 2.13.0 are CPU/MPS builds; FocusStudio uses MPS automatically when present.
bash packaging/build.sh   # builds dist/FocusStudio and dist/FocusStudio.app, runs --self-test
test -d dist/FocusStudio.app || { echo "dist/FocusStudio.app was not built" >&2; exit 1; }
QT_QPA_PLATFORM=offscreen dist/FocusStudio.app/Contents/MacOS/FocusStudio --self-test
hdiutil create -volname FocusStudio -srcfolder dist/FocusStudio.app -ov -format UDZO dist/FocusStudio-macos.dmg
