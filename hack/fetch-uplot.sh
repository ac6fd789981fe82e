#!/usr/bin/env bash
# Re-fetches the dashboard's vendored charting library, uPlot, from the npm
# registry at the pinned version, checks the registry's integrity hash and
# copies its built files and licence into internal/dashboard/assets/vendor.
# Nothing is built: the files are uPlot's own dist/ output, committed so that
# a fresh machine needs neither npm nor a network to build lockstep.
#   bash hack/fetch-uplot.sh           # rewrite the vendored files
#   bash hack/fetch-uplot.sh --verify  # fail if they differ from the pin
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
DEST=internal/dashboard/assets/vendor/uplot

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@${VERSION}" >/dev/null)
tgz="$tmp/uplot-${VERSION}.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "uplot@${VERSION}: integrity $got, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
files=(dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE)
if [ "${1:-}" = "--verify" ]; then
  for f in "${files[@]}"; do
    cmp -s "$tmp/package/$f" "$DEST/$(basename "$f")" || { echo "$DEST/$(basename "$f") differs from uplot@${VERSION}" >&2; exit 1; }
  done
  echo "uplot@${VERSION}: vendored files match"
  exit 0
fi
mkdir -p "$DEST"
for f in "${files[@]}"; do
  cp "$tmp/package/$f" "$DEST/$(basename "$f")"
done
echo "$VERSION" > "$DEST/VERSION"
echo "uplot@${VERSION} -> $DEST"
