#!/bin/sh
# Try the preload library without root: a scratch directory with a must-pass scanner that flags the EICAR test
# string, a clean file and an EICAR file, then cat of both with the library loaded. Run from the repository after
# `npm ci`:  sh examples/preload/try.sh
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
lib="$repo/build/Release/libblessd-preload.so"
[ -f "$lib" ] || { echo "$lib is missing: run npm ci first" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/blessd-preload-try.XXXXXX")
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/must-pass.d" "$dir/files" "$dir/state"
cat > "$dir/eicar-scanner" <<'SCANNER'
#!/bin/sh
# The exec actor's contract: content on stdin; exit 0 = ok, 1 = deny (reason on stdout), 10 = allow.
if grep -q 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE'; then echo Eicar-Test-Signature; exit 1; fi
exit 0
SCANNER
chmod +x "$dir/eicar-scanner"
ln -s "$dir/eicar-scanner" "$dir/must-pass.d/eicar"
printf 'mustPass: %s\npaths: [%s]\n' "$dir/must-pass.d" "$dir/files" > "$dir/preload.yaml"
echo 'Hello from a file the library has passed.' > "$dir/files/hello.txt"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$dir/files/eicar.com"
run() { echo "\$ $*"; LD_PRELOAD="$lib" BLESSD_PRELOAD_CONFIG="$dir/preload.yaml" XDG_STATE_HOME="$dir/state" "$@" || true; }
run cat "$dir/files/hello.txt"
run cat "$dir/files/eicar.com"
run python3 -c "import os; print(os.listxattr('$dir/files/hello.txt'))"
