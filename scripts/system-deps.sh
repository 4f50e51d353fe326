#!/bin/sh
# Run by `npm ci` before the native build: the signature matcher links Debian's Vectorscan (libvectorscan-dev).
# As root on Debian it is installed when missing, so that the README's two commands set up a fresh machine; anyone
# else is told what to install. Nothing is installed when it is already there.
set -e
[ -e /usr/include/hs/hs.h ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "blessd: installing libvectorscan-dev (the signature matcher's pattern engine)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvectorscan-dev >/dev/null
  exit 0
fi
echo "blessd: the native build needs Vectorscan's headers (/usr/include/hs/hs.h): install libvectorscan-dev (Debian/Ubuntu) or vectorscan-devel / hyperscan-devel, then run npm ci again" >&2
exit 1
