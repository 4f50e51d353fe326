#!/bin/sh
# Builds exp14_flush_race.c and runs it without and with the flushing thread against a private ext4 image mounted
# under a fresh temp dir (never anything else), then unmounts. Root only. Output: what docs/kernel.md quotes.
set -e
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/blessd-exp14-XXXXXX)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
gcc -O2 -Wall -pthread -o "$tmp/exp14_flush_race" "$here/exp14_flush_race.c"
truncate -s 32M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/fs.img" "$tmp/mnt"
"$tmp/exp14_flush_race" "$tmp/mnt" 100000
"$tmp/exp14_flush_race" "$tmp/mnt" 100000 flush
