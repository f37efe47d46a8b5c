#!/usr/bin/env python3
"""test_greenhub.py — the Python binding, driving a real libgreenhub.

Python drives the hub from the main stack: timer and io watchers with Python
callbacks, greenlets running native functions from test_helper.c (compiled here
against the library the binding loaded), joins and results; and the rules: no Python
callable as a greenlet body, no blocking inside a callback.

Also the binding's behaviour around the process: Ctrl-C (a real SIGINT) during run(),
callbacks' exceptions, objects used from another thread, and what spawn() refuses.

Usage: python3 bindings/python/test_greenhub.py [-v] [TEST...]
       python3 -m pytest bindings/python/test_greenhub.py   (the same tests, under pytest)
Env:   GREENHUB_LIBRARY       the libgreenhub.so to load (else the binding's own search:
                              the installed copy next to the module, then the loader)
       GREENHUB_PYTHON_DIR    where greenhub.py is (default: this file's directory)
       GREENHUB_INCLUDE_DIR   where greenhub.h is (default: LIBDIR/../include, then
                              the source tree's include/)
       GREENHUB_EXPECT_LIBRARY  fail unless the loaded library is this file (realpath)
       CC                     the C compiler for the helper (default cc)
Closes with "N passed, N failed, N skipped"; exits 1 on any failure.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("GREENHUB_PYTHON_DIR") or HERE)
import greenhub as gh  # noqa: E402

HELPER = None  # the compiled test_helper.c
TMP = None


def build_helper():
    lib = os.path.realpath(gh.library_path())
    libdir = os.path.dirname(lib)
    inc = os.environ.get("GREENHUB_INCLUDE_DIR")
    if not inc:
        for cand in (os.path.join(libdir, os.pardir, "include"),
                     os.path.join(HERE, os.pardir, os.pardir, "include")):
            if os.path.exists(os.path.join(cand, "greenhub.h")):
                inc = cand
                break
    if not inc:
        raise RuntimeError("greenhub.h not found: set GREENHUB_INCLUDE_DIR")
    out = os.path.join(TMP, "libgh_test_helper.so")
    cmd = [os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O1", "-std=c11", "-Wall", "-Wextra",
           "-Werror", "-I", os.path.abspath(inc), os.path.join(HERE, "test_helper.c"), "-o", out,
           lib, "-Wl,-rpath," + libdir]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(out)


def setUpModule():
    """Compile test_helper.c against the loaded library (unittest and pytest call this)."""
    global HELPER, TMP
    if HELPER is None:
        TMP = tempfile.mkdtemp(prefix="gh-pytest-")
        HELPER = build_helper()


def tearDownModule():
    global HELPER, TMP
    if TMP is not None:
        shutil.rmtree(TMP, ignore_errors=True)
    HELPER = TMP = None


def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


class HubTest(unittest.TestCase):
    """Each test runs on a fresh hub, destroyed afterwards."""

    def setUp(self):
        self.fds = []

    def tearDown(self):
        gh.hub_destroy()
        for fd in self.fds:
            os.close(fd)

    def pipe(self):
        r, w = pipe()
        self.fds += [r, w]
        return r, w


class TestLibrary(HubTest):
    def test_version_matches_header(self):
        v = gh.version()
        self.assertEqual(gh.version_string(), "%d.%d.%d" % v)
        header = os.path.join(os.environ.get("GREENHUB_INCLUDE_DIR") or
                              os.path.join(os.path.dirname(os.path.realpath(gh.library_path())),
                                           os.pardir, "include"), "greenhub.h")
        if os.path.exists(header):
            macros = {}
            with open(header) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[0] == "#define" and p[1].startswith("GH_VERSION_") \
                            and p[2].isdigit():
                        macros[p[1]] = int(p[2])
            self.assertEqual(v, (macros["GH_VERSION_MAJOR"], macros["GH_VERSION_MINOR"],
                                 macros["GH_VERSION_PATCH"]))

    def test_loaded_the_expected_library(self):
        expect = os.environ.get("GREENHUB_EXPECT_LIBRARY")
        loaded = os.path.realpath(gh.library_path())
        if expect:
            self.assertEqual(loaded, os.path.realpath(expect))
        self.assertEqual(gh.backend(), "epoll")

    def test_errors_are_exceptions(self):
        self.assertEqual(gh.err_name(-110), "GH_ETIMEDOUT")
        w = gh.timer(1.0)
        stale = gh.gh_watcher(w.handle.id)
        w.close()
        self.assertEqual(gh.lib.gh_watcher_stop(stale), gh.GH_EBADHANDLE)  # never a crash
        with self.assertRaises(gh.GreenhubError) as cm:
            w.stop()
        self.assertEqual(cm.exception.name, "GH_EBADHANDLE")
        r, _ = self.pipe()
        with self.assertRaises(gh.GreenhubError) as cm:
            gh.wait_read(r, 0.01)
        self.assertEqual(cm.exception.code, -110)
        self.assertEqual(cm.exception.errno, 110)


class TestWatchers(HubTest):
    def test_timer_once_and_repeating(self):
        fired = []
        once = gh.timer(0.01, callback=lambda w, ev: fired.append(("once", ev)))

        def tick(w, ev):
            fired.append(("tick", ev))
            if sum(1 for f in fired if f[0] == "tick") == 3:
                w.stop()

        rep = gh.timer(0.005, 0.005, tick)
        gh.run()  # until nothing referenced is left
        self.assertEqual(fired.count(("once", gh.TIMER)), 1)
        self.assertEqual(fired.count(("tick", gh.TIMER)), 3)
        self.assertFalse(once.active)
        self.assertFalse(rep.active)
        once.close()
        rep.close()

    def test_io_watcher_and_python_callbacks_on_main_stack(self):
        r, w = self.pipe()
        got = []
        threads = []

        def readable(watcher, ev):
            threads.append(threading.current_thread() is threading.main_thread())
            got.append((ev & gh.READ, os.read(r, 100)))
            watcher.stop()

        io = gh.io(r, gh.READ, readable)
        gh.timer(0.01, callback=lambda t, ev: os.write(w, b"ping"))
        gh.run()
        self.assertEqual(got, [(gh.READ, b"ping")])
        self.assertEqual(threads, [True])
        io.close()

    def test_run_callback_fifo(self):
        order = []
        for i in range(5):
            gh.run_callback(order.append, i)
        gh.sleep(0)
        self.assertEqual(order, [0, 1, 2, 3, 4])

    def test_callback_exception_is_reraised_by_the_blocking_call(self):
        def boom(w, ev):
            raise ValueError("from a callback")

        gh.timer(0.001, callback=boom)
        with self.assertRaisesRegex(ValueError, "from a callback"):
            gh.sleep(0.02)
        gh.sleep(0)  # nothing left pending


class TestGreenlets(HubTest):
    def test_spawn_native_join_results(self):
        gs = [gh.spawn(HELPER.helper_double_after_sleep, n, name=f"double-{n}") for n in (1, 2, 21)]
        self.assertEqual(gs[2].name, "double-21")
        self.assertEqual(gh.joinall(gs, 2.0), 3)
        self.assertEqual([g.join() for g in gs], [2, 4, 42])
        self.assertTrue(all(g.dead for g in gs))
        for g in gs:
            g.release()

    def test_interleaving(self):
        counter = ctypes.c_long(0)
        gs = [gh.spawn(HELPER.helper_count, ctypes.byref(counter)) for _ in range(3)]
        results = [g.join(2.0) for g in gs]
        self.assertEqual(counter.value, 15)
        self.assertEqual(results, [13, 14, 15])  # they took turns, in spawn order
        for g in gs:
            g.release()

    def test_greenlet_wakes_on_io_fed_by_a_python_timer(self):
        r, w = self.pipe()
        g = gh.spawn(HELPER.helper_read_byte, r)
        ticks = []

        def feed(t, ev):
            ticks.append(ev)
            os.write(w, b"\x07")

        t = gh.timer(0.02, callback=feed)
        self.assertEqual(g.join(2.0), 1007)
        self.assertEqual(ticks, [gh.TIMER])
        t.close()
        g.release()

    def test_join_timeout_and_kill(self):
        g = gh.spawn(HELPER.helper_sleep_long)
        with self.assertRaises(gh.GreenhubError) as cm:
            g.join(0.01)
        self.assertEqual(cm.exception.name, "GH_ETIMEDOUT")
        g.kill(1.0)
        self.assertEqual(ctypes.c_ssize_t(g.join()).value, -125)  # gh_sleep gave GH_ECANCELED
        stale = gh.gh_greenlet(g.handle.id)
        g.release()
        self.assertEqual(gh.lib.gh_greenlet_state(stale), gh.GH_EBADHANDLE)

    def test_native_address_accepted(self):
        addr = ctypes.cast(HELPER.helper_double_after_sleep, ctypes.c_void_p).value
        g = gh.spawn(addr, 5)
        self.assertEqual(g.join(2.0), 10)
        g.release()


class TestRules(HubTest):
    def test_spawn_refuses_python_callables(self):
        for fn in (lambda arg: None, print, gh.GH_FN(lambda arg: None)):
            with self.assertRaisesRegex(gh.PythonInGreenletError, "cannot run inside a greenlet"):
                gh.spawn(fn)
        thunk = gh.GH_FN(lambda arg: None)
        with self.assertRaises(gh.PythonInGreenletError):  # even as a bare address
            gh.spawn(ctypes.cast(thunk, ctypes.c_void_p).value)
        with self.assertRaises(gh.PythonInGreenletError):  # or cast to another type
            gh.spawn(ctypes.cast(thunk, ctypes.CFUNCTYPE(ctypes.c_int)))
        gh.sleep(0)  # nothing was spawned: the hub has nothing to run

    def test_blocking_inside_a_callback_is_refused(self):
        seen = []

        def cb(w, ev):
            for name, call in (("sleep", lambda: gh.sleep(0)),
                               ("run", gh.run),
                               ("wait_read", lambda: gh.wait_read(0, 0))):
                try:
                    call()
                    seen.append((name, "returned"))
                except gh.BlockingInCallbackError as e:
                    seen.append((name, e.name))
            # Below the binding, greenhub itself refuses: GH_EPERM from the C call.
            seen.append(("gh_sleep", gh.err_name(gh.lib.gh_sleep(0.0))))

        gh.timer(0.001, callback=cb)
        gh.sleep(0.02)
        self.assertEqual(seen, [("sleep", "GH_EPERM"), ("run", "GH_EPERM"),
                                ("wait_read", "GH_EPERM"), ("gh_sleep", "GH_EPERM")])

    def test_each_thread_has_its_own_hub(self):
        out = []

        def worker():
            try:
                g = gh.spawn(HELPER.helper_double_after_sleep, 8)
                out.append(g.join(2.0))
                g.release()
                gh.hub_destroy()
            except Exception as e:  # reported by the assertion below
                out.append(e)

        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
        self.assertEqual(out, [16])


class TestRefusedBodies(HubTest):
    """spawn() refuses what needs the GIL (it would crash in a greenlet): TypeError."""

    def test_python_c_api_functions_are_refused(self):
        by_cdll = ctypes.CDLL(None).PyRun_SimpleString  # the same code, through a CDLL
        candidates = [ctypes.pythonapi.PyRun_SimpleString,      # a PyDLL function
                      by_cdll,
                      ctypes.cast(by_cdll, ctypes.c_void_p).value,  # its bare address
                      ctypes.cast(by_cdll, gh.GH_FN),               # retyped
                      ctypes.PyDLL(None).getpid]                # any PyDLL function
        for fn in candidates:
            with self.assertRaises(TypeError) as cm:
                gh.spawn(fn, ctypes.c_char_p(b"import os; os._exit(3)"))
            self.assertIsInstance(cm.exception, gh.PythonInGreenletError)
            self.assertRegex(str(cm.exception), "GIL")

    def test_extension_module_code_is_refused(self):
        import _ctypes
        ext = ctypes.CDLL(_ctypes.__file__)
        with self.assertRaisesRegex(TypeError, "extension module"):
            gh.spawn(ext.PyInit__ctypes)

    def test_c_library_functions_are_accepted(self):
        getpid = ctypes.CDLL(None).getpid  # libc, through a CDLL: no GIL needed
        g = gh.spawn(getpid)
        self.assertEqual(g.join(2.0), os.getpid())
        g.release()
        g = gh.spawn(gh.GH_FN(ctypes.cast(HELPER.helper_double_after_sleep,
                                          ctypes.c_void_p).value), 4)  # CFUNCTYPE from an address
        self.assertEqual(g.join(2.0), 8)
        g.release()


class TestCallbackErrors(HubTest):
    def test_every_exception_is_reported(self):
        def raiser(exc):
            def cb(w, ev):
                raise exc
            return cb

        errs = [ValueError("first"), KeyError("second"), RuntimeError("third")]
        timers = [gh.timer(0.001 * (i + 1), callback=raiser(e)) for i, e in enumerate(errs)]
        with self.assertRaises(ValueError) as cm:
            gh.sleep(0.05)
        self.assertIs(cm.exception, errs[0])
        self.assertEqual(cm.exception.greenhub_others, errs[1:])
        if hasattr(cm.exception, "__notes__"):
            self.assertIn("2 more exception(s)", cm.exception.__notes__[0])
            self.assertIn("KeyError('second')", cm.exception.__notes__[0])
        gh.sleep(0)  # nothing left pending
        for t in timers:
            t.close()

    def test_keyboard_interrupt_from_a_callback_ends_the_call_at_once(self):
        def bad(w, ev):
            raise ValueError("before")

        def interrupt(w, ev):
            raise KeyboardInterrupt

        gh.timer(0.001, callback=bad)
        gh.timer(0.005, callback=interrupt)
        g = gh.spawn(HELPER.helper_sleep_long)  # would keep run() going for 60 s
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt) as cm:
            gh.run()
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual([type(e) for e in cm.exception.greenhub_others], [ValueError])
        gh.sleep(0.001)  # the interrupt was consumed: this sleep is not cut short
        g.kill(1.0)
        g.release()

    def test_system_exit_in_a_thread_ends_that_threads_run(self):
        out = []

        def worker():
            g = gh.spawn(HELPER.helper_sleep_long)
            gh.timer(0.01, callback=lambda w, ev: sys.exit(7))
            t0 = time.monotonic()
            try:
                gh.run()
                out.append("run returned")
            except SystemExit as e:
                out.append((e.code, time.monotonic() - t0 < 5.0))
            g.kill(1.0)
            g.release()
            gh.hub_destroy()

        t = threading.Thread(target=worker)
        t.start()
        t.join(20)
        self.assertEqual(out, [(7, True)])


class TestThreads(HubTest):
    def test_watcher_close_from_another_thread(self):
        fired = []
        w = gh.timer(0.05, callback=lambda t, ev: fired.append(ev))
        handle = w.handle.id
        seen = []

        def other():
            for name, call in (("close", w.close), ("stop", w.stop)):
                try:
                    call()
                    seen.append((name, "returned"))
                except gh.GreenhubError as e:
                    seen.append((name, e.name))

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        self.assertEqual(seen, [("close", "GH_EWRONGTHREAD"), ("stop", "GH_EWRONGTHREAD")])
        self.assertEqual(w.handle.id, handle)  # left intact for its own thread
        self.assertTrue(w.active)
        w.close()  # the owner can still close it ...
        self.assertEqual(w.handle.id, 0)
        t0 = time.monotonic()
        gh.run()  # ... and then nothing keeps run() going
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(fired, [])

    def test_hubs_of_several_threads_at_once(self):
        out, lock = [], threading.Lock()

        def worker(n):
            ticks = []
            try:
                gs = [gh.spawn(HELPER.helper_double_after_sleep, n + k) for k in range(20)]
                t = gh.timer(0.001, 0.001, lambda w, ev: ticks.append(ev))
                res = [g.join(5.0) for g in gs]
                t.close()
                for g in gs:
                    g.release()
                gh.hub_destroy()
                with lock:
                    out.append((n, res == [2 * (n + k) for k in range(20)], len(ticks) > 0))
            except Exception as e:  # reported by the assertion below
                with lock:
                    out.append((n, e, None))

        ts = [threading.Thread(target=worker, args=(100 * i + 1,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        self.assertEqual(sorted(out), [(100 * i + 1, True, True) for i in range(4)])


def _send_sigint_after(seconds):
    def fire():
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=fire, daemon=True).start()


@unittest.skipUnless(threading.current_thread() is threading.main_thread(),
                     "signals reach Python on the main thread only")
class TestSignals(HubTest):
    """A real SIGINT sent to this process while the loop runs."""

    def setUp(self):
        super().setUp()
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def tearDown(self):
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        self.assertEqual(signal.set_wakeup_fd(-1), -1)  # nothing left behind
        super().tearDown()

    def test_ctrl_c_while_python_callbacks_run(self):
        ticks = []
        t = gh.timer(0.0005, 0.0005, lambda w, ev: ticks.append(ev))  # keeps run() going
        _send_sigint_after(0.1)
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            gh.run()
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertGreater(len(ticks), 0)
        t.close()

    def test_ctrl_c_while_the_loop_sleeps(self):
        g = gh.spawn(HELPER.helper_sleep_long)  # no Python callback at all: epoll sleeps
        _send_sigint_after(0.1)
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            gh.run()
        self.assertLess(time.monotonic() - t0, 5.0)
        with self.assertRaises(KeyboardInterrupt):  # join, sleep, ...: the same
            _send_sigint_after(0.1)
            g.join()
        g.kill(1.0)
        g.release()

    def test_a_handler_that_does_not_raise_lets_the_loop_run_on(self):
        got = []
        signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
        try:
            _send_sigint_after(0.05)
            gh.sleep(0.3)  # not cut short
            self.assertEqual(got, [signal.SIGINT])
            self.assertEqual(signal.getsignal(signal.SIGINT).__name__, "<lambda>")
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def test_ctrl_c_to_a_python_program_in_run(self):
        """The whole program, as a user runs it: Ctrl-C ends run() with KeyboardInterrupt."""
        script = textwrap.dedent(f"""
            import ctypes, sys, time
            sys.path.insert(0, {os.path.dirname(os.path.abspath(gh.__file__))!r})
            import greenhub as gh
            helper = ctypes.CDLL({HELPER._name!r})
            mode = sys.argv[1]
            if mode == "callbacks":
                gh.timer(0.001, 0.001, lambda w, ev: None)
            else:
                gh.spawn(helper.helper_sleep_long)
            gh.run_callback(lambda: print("running", flush=True))
            t0 = time.monotonic()
            try:
                gh.run()
                print("run returned")
            except KeyboardInterrupt:
                print("KeyboardInterrupt from run after %.1f s" % (time.monotonic() - t0))
        """)
        for mode in ("callbacks", "epoll"):
            p = subprocess.Popen([sys.executable, "-c", script, mode], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                self.assertEqual(p.stdout.readline(), "running\n")
                time.sleep(0.05)
                p.send_signal(signal.SIGINT)
                out, err = p.communicate(timeout=10)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertRegex(out, r"^KeyboardInterrupt from run after \d+\.\d s\n$", (mode, err))
            self.assertLess(float(out.split()[-2]), 5.0, mode)
            self.assertEqual(p.returncode, 0, (mode, err))
            self.assertNotIn("Exception ignored", err)


def main():
    print(f"greenhub {gh.version_string()} from {os.path.realpath(gh.library_path())}")
    argv = [a for a in sys.argv[1:] if a != "-v"]
    loader = unittest.TestLoader()
    suite = (loader.loadTestsFromNames(argv, sys.modules[__name__]) if argv
             else loader.loadTestsFromModule(sys.modules[__name__]))
    res = unittest.TextTestRunner(verbosity=2 if "-v" in sys.argv else 1,
                                  stream=sys.stdout).run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    print(f"{res.testsRun - failed - len(res.skipped)} passed, {failed} failed, "
          f"{len(res.skipped)} skipped")
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
