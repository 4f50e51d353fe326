#!/bin/sh
# What the test suite needs from the system, installed with apt-get when missing (as root on Debian; CI is both).
# Run by `npm test` (pretest) and by .ci/run, so that `npm ci && npm test` works on a fresh machine.
set -e
need=""
command -v mkfs.ext4 >/dev/null 2>&1 || need="$need e2fsprogs"
command -v losetup >/dev/null 2>&1 || need="$need mount"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"
# The clamd actor's tests start a private clamd (never the system one, never freshclam).
[ -x /usr/sbin/clamd ] || need="$need clamav-daemon"
# The signature actor's body matcher links Vectorscan (native/match/vectorscan.cc); the engine tests compare with ClamAV.
[ -e /usr/include/hs/hs.h ] || need="$need libvectorscan-dev"
command -v clamscan >/dev/null 2>&1 || need="$need clamav"
# Fleet tests: one network namespace per host (test/helpers/netns.ts) and a private redis-server they start.
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
# redis-cli inspects the store and joins the nodes of the cluster test (redis-tools; redis-server pulls it in on
# Debian, but a machine may have the server alone).
command -v redis-cli >/dev/null 2>&1 || need="$need redis-tools"
# The scan farm's TLS tests make their certificates with openssl.
command -v openssl >/dev/null 2>&1 || need="$need openssl"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "blessd tests need:$need (install them, or run the tests as root on Debian to have them installed)" >&2
  exit 1
fi
echo "installing:$need" >&2
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
