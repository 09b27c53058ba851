#!/bin/sh
# Install the Tandem bundle for this user: the program under ~/.local/lib/tandem, the `tandem` command in
# ~/.local/bin, a launcher entry (menu, activities overview) and the icon. No root, nothing outside ~/.local.
#
#   ./install.sh                 install (or update) from the folder this script is in
#   ./install.sh --uninstall     remove what install put there (models, chats and settings are kept)
#   PREFIX=/opt/x ./install.sh   another prefix (default: ~/.local; XDG_DATA_HOME is honoured for data)
#
# This script ships at the top of the tandem-<version>-linux-<arch>.tar.gz bundle, beside `tandem` and
# `_internal/`.
set -eu

APP_ID=io.github.tandem_llm.Tandem
PREFIX=${PREFIX:-"$HOME/.local"}
DATA=${XDG_DATA_HOME:-"$PREFIX/share"}
[ "$PREFIX" = "$HOME/.local" ] || DATA="$PREFIX/share"
LIB="$PREFIX/lib/tandem"
BIN="$PREFIX/bin"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
METAINFO="$DATA/metainfo"
SIZES="16 24 32 48 64 128 256 512"

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

refresh_caches() {
    # Menus pick the entry up without these on most desktops; they make it immediate where they exist.
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

uninstall() {
    rm -rf "$LIB"
    [ -L "$BIN/tandem" ] && rm -f "$BIN/tandem"
    rm -f "$APPS/$APP_ID.desktop" "$METAINFO/$APP_ID.metainfo.xml" "$ICONS/scalable/apps/$APP_ID.svg"
    for size in $SIZES; do rm -f "$ICONS/${size}x${size}/apps/$APP_ID.png"; done
    refresh_caches
    say "Tandem removed. Your models, chats and settings are kept; delete them yourself if you wish:"
    say "  ${XDG_DATA_HOME:-$HOME/.local/share}/Tandem (models, history), ${XDG_CONFIG_HOME:-$HOME/.config}/Tandem (settings),"
    say "  ${XDG_CACHE_HOME:-$HOME/.cache}/Tandem and ${XDG_STATE_HOME:-$HOME/.local/state}/Tandem (logs)"
}

case "${1:-}" in
    --uninstall) uninstall; exit 0 ;;
    "") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (use --uninstall or no option)" ;;
esac

SRC=$(cd "$(dirname "$0")" && pwd)
[ -x "$SRC/tandem" ] && [ -d "$SRC/_internal" ] || die "run this from the unpacked bundle (no tandem/_internal beside it)"
RES="$SRC/_internal/resources"
[ -f "$RES/$APP_ID.desktop" ] || die "the bundle has no launcher entry ($RES/$APP_ID.desktop)"

# The program: copy to a fresh folder, then swap it in, so a failed copy never leaves half an install.
mkdir -p "$PREFIX/lib" "$BIN" "$APPS" "$METAINFO" "$ICONS/scalable/apps"
STAGE="$LIB.new.$$"
rm -rf "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"
cp -R "$SRC/tandem" "$SRC/_internal" "$STAGE/"
[ -f "$SRC/install.sh" ] && cp "$SRC/install.sh" "$STAGE/"
rm -rf "$LIB.old"
[ -d "$LIB" ] && mv "$LIB" "$LIB.old"
mv "$STAGE" "$LIB"
rm -rf "$LIB.old"
trap - EXIT
ln -sfn "$LIB/tandem" "$BIN/tandem"

# The launcher entry runs the installed program by its full path (~/.local/bin is not on every
# desktop session's PATH).
sed -e "s|^Exec=tandem\$|Exec=\"$LIB/tandem\"|" -e "s|^TryExec=tandem\$|TryExec=$LIB/tandem|" \
    "$RES/$APP_ID.desktop" > "$APPS/$APP_ID.desktop"
chmod 644 "$APPS/$APP_ID.desktop"
cp "$RES/$APP_ID.metainfo.xml" "$METAINFO/"
cp "$RES/icons/tandem.svg" "$ICONS/scalable/apps/$APP_ID.svg"
for size in $SIZES; do
    mkdir -p "$ICONS/${size}x${size}/apps"
    cp "$RES/icons/tandem-$size.png" "$ICONS/${size}x${size}/apps/$APP_ID.png"
done
refresh_caches

say "Tandem installed in $LIB"
say "  menu entry: $APPS/$APP_ID.desktop"
say "  command:    $BIN/tandem"
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) say "  note: $BIN is not on your PATH; add it to run 'tandem' from a terminal." ;;
esac
say "Check the install with: $BIN/tandem selftest"
