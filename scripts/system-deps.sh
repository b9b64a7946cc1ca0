#!/usr/bin/env bash
# System packages the tests need: Debian's Chromium (browser tests, snapshots), a CJK font (Chinese glyphs) and
# Redis (shared-cache tests). Installed with apt-get when missing and we are root; otherwise we say how.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
