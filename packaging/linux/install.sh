#!/usr/bin/env bash
# Installs the unpacked FocusStudio folder for the current user: a launcher on PATH and a menu entry.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${PREFIX:-$HOME/.local}"
mkdir -p "$PREFIX/bin" "$PREFIX/share/applications" "$PREFIX/share/icons/hicolor/256x256/apps"
ln -sf "$HERE/FocusStudio" "$PREFIX/bin/FocusStudio"
cp "$HERE/focusstudio.png" "$PREFIX/share/icons/hicolor/256x256/apps/focusstudio.png"
sed "s#^Exec=FocusStudio#Exec=$HERE/FocusStudio#" "$HERE/focusstudio.desktop" \
  > "$PREFIX/share/applications/focusstudio.desktop"
echo "FocusStudio installed: run 'FocusStudio' or find it in your applications menu."
