#!/usr/bin/env bash
# Build the library, compile examples-c/hello.c against it (static link) and run it.
set -euo pipefail
source "$(dirname "$0")/common.sh"

build_lib
mkdir -p "$OUT"
echo "== $CC -O2 examples-c/hello.c -> $OUT/hello"
"$CC" -O2 -Wall "${EXTRA_CFLAGS[@]}" -Iinclude examples-c/hello.c -o "$OUT/hello" "${LIBS[@]}"
echo "== $OUT/hello"
"$OUT/hello" "$@"
