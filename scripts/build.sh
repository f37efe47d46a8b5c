#!/usr/bin/env bash
# Build libgreenhub (release) and print where the pieces are.
set -euo pipefail
source "$(dirname "$0")/common.sh"

build_lib
echo
echo "header:         $ROOT/include/greenhub.h"
echo "static library: $STATIC_LIB"
echo "shared library: $TARGET_DIR/release/libgreenhub.so"
echo "link a C program with:"
echo "  cc -Iinclude prog.c $STATIC_LIB -lpthread -ldl -lm"
