#!/usr/bin/env bash
# Build Tandem's one-folder bundle with PyInstaller (packaging/tandem.spec), then optionally check it and
# pack it for release.
#
#   scripts/build_bundle.sh [--dist DIR] [--work DIR] [--selftest] [--archive]
#
#   --dist DIR    where the bundle goes (default: dist/, ignored by git)
#   --work DIR    PyInstaller's scratch folder (default: build/pyinstaller)
#   --selftest    run `<bundle>/tandem selftest` in a clean environment (no venv, no PYTHON* variables)
#   --archive     Linux: tandem-<version>-linux-<arch>.tar.gz with install.sh; macOS: Tandem-<version>-macos-
#                 <arch>.zip of Tandem.app. (Windows installers are made by packaging/windows/tandem.iss.)
#
# Python: $PYTHON, else .venv/bin/python. llama-cpp-python and pyinstaller must be installed in it; for a
# bundle that runs on other CPUs build llama-cpp-python with CMAKE_ARGS="-DGGML_NATIVE=OFF" (see
# packaging/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=.venv/Scripts/python.exe; fi
fi
DIST=dist
WORK=build/pyinstaller
SELFTEST=0
ARCHIVE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) DIST=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --selftest) SELFTEST=1; shift ;;
    --archive) ARCHIVE=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build_bundle.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIST" "$WORK"
DIST=$(cd "$DIST" && pwd)
WORK=$(cd "$WORK" && pwd)

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' desktop/__init__.py)
ARCH=$(uname -m)
case "$(uname -s)" in
  Linux) OS=linux ;;
  Darwin) OS=macos ;;
  MINGW*|MSYS*|CYGWIN*) OS=windows ;;
  *) OS=$(uname -s | tr '[:upper:]' '[:lower:]') ;;
esac

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" \
  packaging/tandem.spec
BUNDLE="$DIST/tandem"
if [ "$OS" = macos ]; then
  APP="$DIST/Tandem.app"
  EXE="$APP/Contents/MacOS/tandem"
elif [ "$OS" = windows ]; then
  EXE="$BUNDLE/tandem.exe"
else
  EXE="$BUNDLE/tandem"
  cp packaging/linux/install.sh "$BUNDLE/install.sh"
  chmod 755 "$BUNDLE/install.sh"
fi
echo "built $EXE in $(( $(date +%s) - start )) s"
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) on disk"

if [ "$SELFTEST" = 1 ]; then
  if [ "$OS" = windows ]; then
    # Windows programs need SystemRoot and friends: drop only what points at a Python installation.
    env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV "$EXE" selftest
  else
    home=$(mktemp -d)
    # A clean environment, as on a machine without Python: no venv on PATH, no PYTHONPATH, a fresh HOME.
    env -i HOME="$home" PATH=/usr/bin:/bin TMPDIR="${TMPDIR:-/tmp}" LANG=C.UTF-8 "$EXE" selftest
    rm -rf "$home"
  fi
fi

if [ "$ARCHIVE" = 1 ]; then
  case "$OS" in
    linux)
      name="tandem-$VERSION-linux-$ARCH"
      tar -C "$DIST" --transform "s,^tandem,$name," -czf "$DIST/$name.tar.gz" tandem
      echo "archive: $DIST/$name.tar.gz ($(du -h "$DIST/$name.tar.gz" | cut -f1))" ;;
    macos)
      name="Tandem-$VERSION-macos-$ARCH"
      ditto -c -k --sequesterRsrc --keepParent "$APP" "$DIST/$name.zip"
      echo "archive: $DIST/$name.zip ($(du -h "$DIST/$name.zip" | cut -f1))" ;;
    *) echo "no archive step for $OS here (Windows: packaging/windows/tandem.iss)" ;;
  esac
fi
