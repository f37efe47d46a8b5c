"""test_patch_python.py — the cooperative libc with a program that loads libgreenhub
late and RTLD_LOCAL: Python's ctypes binding (bindings/python/greenhub.py).

Run with libgreenhub_patch.so in LD_PRELOAD (scripts/test_patch.sh does):
the patch starts without libgreenhub, finds it when the binding dlopens it, and then
five greenlets running libc's own usleep(200 ms) overlap. Closes with
"N passed, N failed, N skipped".
"""
import ctypes
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL", name, detail)


glob = ctypes.CDLL(None)  # the global scope: the preloaded patch
glob.gh_patch_active.restype = ctypes.c_int
glob.gh_patch_info.restype = ctypes.c_char_p
time.sleep(0.001)  # an interposed call before libgreenhub is there
check("inactive before libgreenhub is loaded", glob.gh_patch_active() == 0,
      glob.gh_patch_info().decode())

import greenhub as gh  # noqa: E402  (dlopens libgreenhub, RTLD_LOCAL)

check("active once the binding loaded libgreenhub", glob.gh_patch_active() == 1,
      glob.gh_patch_info().decode())

libc = ctypes.CDLL(None)
t0 = time.monotonic()
gs = [gh.spawn(libc.usleep, 200000) for _ in range(5)]
gh.joinall(gs, timeout=5.0)
dt = time.monotonic() - t0
check("5 greenlets x usleep(200 ms) overlap", dt < 0.6, "took %.2f s" % dt)
gh.hub_destroy()

print("%d passed, %d failed, 0 skipped" % (passed, failed))
sys.exit(1 if failed else 0)
