#!/bin/sh
# Builds exp12_two_groups.c and runs it against a private ext4 image mounted under a fresh temp dir (never anything
# else), then unmounts. Root only. Output: what docs/kernel.md quotes ("Two daemons on one filesystem").
set -e
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/blessd-exp12-XXXXXX)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
gcc -O2 -Wall -pthread -I"$here" -o "$tmp/exp12_two_groups" "$here/exp12_two_groups.c"
truncate -s 32M "$tmp/fs.img"
mkfs.ext4 -q -F -b 4096 "$tmp/fs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/fs.img" "$tmp/mnt"
head -c 16384 /dev/urandom > "$tmp/mnt/data.bin"
head -c 16384 /dev/urandom > "$tmp/mnt/data2.bin"
"$tmp/exp12_two_groups" "$tmp/mnt"
