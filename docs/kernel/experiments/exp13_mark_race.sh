#!/bin/sh
# Builds exp13_mark_race.c and runs its three variants against a private ext4 image mounted under a fresh temp dir
# (never anything else), then unmounts. Root only. Output: what docs/kernel.md quotes ("Marks are never destroyed").
set -e
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/blessd-exp13-XXXXXX)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
gcc -O2 -Wall -pthread -o "$tmp/exp13_mark_race" "$here/exp13_mark_race.c"
truncate -s 64M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/fs.img" "$tmp/mnt"
rounds=${1:-100}
"$tmp/exp13_mark_race" "$tmp/mnt" "$rounds" 2>/dev/null
REMOVE=1 "$tmp/exp13_mark_race" "$tmp/mnt" "$rounds" 2>/dev/null
REMOVE=1 BASE=1 "$tmp/exp13_mark_race" "$tmp/mnt" "$rounds" 2>/dev/null
