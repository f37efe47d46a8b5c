#!/usr/bin/env bash
# The C suite under a plug-in backend: examples-c/backend_libev.c (a gh_backend on libev)
# built as a shared object and chosen like a built-in backend, as CI runs the suite under
# each built-in one (issue 17). libev-dev is installed with apt-get when missing (root).
#
# How a program runs on the plug-in unchanged: GREENHUB_BACKEND_PLUGIN names the shared
# object (greenhub dlopen()s it when a hub first needs a backend that is not built in,
# and registers what its gh_backend_plugin() returns) and GREENHUB_BACKEND=libev picks
# it. The object is LD_PRELOADed too, so it is mapped from the start of each program:
# some cases compare memory-mapping counts against a baseline taken before the first
# hub (a dlopen at the first hub would add libev's mappings after it).
#
# Usage: scripts/test_libev.sh [TEST...]   (the arguments of scripts/test.sh --c-only)
set -euo pipefail
source "$(dirname "$0")/common.sh"

build_lib
build_libev_plugin
export GREENHUB_BACKEND=libev GREENHUB_BACKEND_PLUGIN=$LIBEV_PLUGIN
export LD_PRELOAD=$LIBEV_PLUGIN${LD_PRELOAD:+:$LD_PRELOAD}
echo "== GREENHUB_BACKEND=libev GREENHUB_BACKEND_PLUGIN=$LIBEV_PLUGIN (LD_PRELOADed)"
exec ./scripts/test.sh --c-only "$@"
