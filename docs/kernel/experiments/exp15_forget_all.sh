#!/bin/sh
# Builds exp15_forget_all.c and runs it with each way of forgetting (flush, naive, nofence, swap, bare, inplace) against a private ext4 image
# mounted under a fresh temp dir (never anything else), then unmounts. Root only. Output: what docs/kernel.md quotes.
set -e
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/blessd-exp15-XXXXXX)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
gcc -O2 -Wall -pthread -o "$tmp/exp15_forget_all" "$here/exp15_forget_all.c"
truncate -s 32M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/fs.img" "$tmp/mnt"
for how in flush naive nofence swap bare inplace; do "$tmp/exp15_forget_all" "$tmp/mnt" 100000 "$how"; done
