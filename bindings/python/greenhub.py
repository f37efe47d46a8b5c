"""greenhub for Python — a ctypes binding of libgreenhub's C API.

Python drives the hub from the main stack: it registers watchers with Python
callbacks, spawns greenlets that run *native* functions, and blocks (sleep, join,
run, wait_read) from its own code — which is the hub's main greenlet. ::

    import greenhub as gh
    helper = ctypes.CDLL("./libwork.so")         # void *work(void *arg), written in C
    g = gh.spawn(helper.work, 21)
    t = gh.timer(0.1, callback=lambda w, revents: print("tick"))
    print(g.join(timeout=2.0))                    # the native function's return value
    gh.hub_destroy()

The rules (CPython's thread state cannot follow a stack switch):

* Python code never runs inside a greenlet. A greenlet's body must be a native
  function that does not need the GIL: a function of a ctypes.CDLL (not a PyDLL), or
  its address. spawn() refuses, with PythonInGreenletError (a TypeError): a Python
  callable, a ctypes CFUNCTYPE wrapping one, a function of a ctypes.PyDLL (such as
  ctypes.pythonapi.PyRun_SimpleString), code of the Python interpreter or of a loaded
  extension module however it is reached (a CDLL, a bare address), and an address
  outside every loaded library. Native greenlets must not call back into Python either.
* Python callbacks (watchers, run_callback) run in the hub — in greenhub the hub's
  loop runs on the main thread's own stack, so they run where Python expects — but
  they must never block (switch): blocking functions of this module raise
  BlockingInCallbackError there, and the C library itself answers GH_EPERM.
* An exception raised by a callback is kept and re-raised by the blocking call of
  this module that ran the loop (run, sleep, join, …), after that call returns. When
  several callbacks raised, the first is raised and the others are attached to it
  (its `greenhub_others` list, and a note in its traceback). A KeyboardInterrupt or
  SystemExit (anything not an Exception) ends that blocking call at once, and is the
  one raised.
* Signals: Ctrl-C during run() (or any blocking call) raises KeyboardInterrupt from
  that call, whether the loop was running Python callbacks or sleeping in epoll. While
  a blocking call runs on the main thread, the Python handlers of SIGINT, SIGTERM,
  SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM are wrapped so that what they raise
  ends the call, and the signal wake-up fd (signal.set_wakeup_fd) is the binding's
  pipe, which the hub watches; both are put back when the call returns (a wake-up fd
  set before, e.g. asyncio's, still gets the signal bytes).

Everything runs on the calling thread's hub (one per OS thread, created on first use);
objects belong to the thread that made them: from another thread their methods raise
GreenhubError GH_EWRONGTHREAD and leave them as they were.

The library: $GREENHUB_LIBRARY (a path) if set; else the installed copy next to this
module when it lives in PREFIX/share/greenhub/python (PREFIX/lib*/libgreenhub.so.0);
else the loader's search for libgreenhub.so.0 (ld.so.conf, LD_LIBRARY_PATH).
"""

import ctypes
import ctypes.util
import importlib.machinery
import os
import signal
import sys
import threading

try:
    import _signal  # signal's C half: no Handlers enum conversion (µs per call)
except ImportError:  # another Python implementation
    _signal = signal

__all__ = [
    "GreenhubError", "BlockingInCallbackError", "PythonInGreenletError",
    "Greenlet", "Watcher", "library_path", "version", "version_string", "backend",
    "strerror", "err_name", "spawn", "joinall", "sleep", "run", "hub_destroy",
    "wait_read", "wait_write", "timer", "io", "run_callback", "lib",
    "READ", "WRITE", "TIMER", "FOREVER",
]

SONAME = "libgreenhub.so.0"
FOREVER = -1.0
READ, WRITE, TIMER = 1, 2, 256
GH_OK, GH_EPERM, GH_EINTR, GH_ETIMEDOUT, GH_EBADHANDLE = 0, -1, -4, -110, -1001


# ---- loading -----------------------------------------------------------------

def _candidates():
    env = os.environ.get("GREENHUB_LIBRARY")
    if env:
        return [env]  # an explicit choice: no fallback that would hide a wrong path
    here = os.path.dirname(os.path.abspath(__file__))
    paths = []
    if os.path.basename(here) == "python" and os.path.basename(os.path.dirname(here)) == "greenhub":
        prefix = os.path.dirname(os.path.dirname(os.path.dirname(here)))  # PREFIX/share/greenhub/python
        libdirs = ["lib", "lib64"]
        multiarch = getattr(sys.implementation, "_multiarch", None)
        if multiarch:
            libdirs.append(os.path.join("lib", multiarch))
        paths += [os.path.join(prefix, d, SONAME) for d in libdirs]
    paths.append(SONAME)  # the dynamic loader's search
    found = ctypes.util.find_library("greenhub")
    if found:
        paths.append(found)
    return paths


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("greenhub: cannot load libgreenhub (set GREENHUB_LIBRARY to its path): "
                      + "; ".join(errors))


_lib, _lib_path = _load()


def library_path():
    """The path of the shared library this module loaded (as resolved by the loader)."""
    info = _DlInfo()
    if _libc.dladdr(ctypes.cast(_lib.gh_version, ctypes.c_void_p), ctypes.byref(info)) and info.dli_fname:
        return os.fsdecode(info.dli_fname)
    return _lib_path


# ---- the C declarations this module uses ------------------------------------

class _Handle(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64)]

    def __repr__(self):
        return f"{type(self).__name__}(id={self.id:#x})"


class gh_greenlet(_Handle):
    pass


class gh_watcher(_Handle):
    pass


class gh_spawn_options(ctypes.Structure):
    _fields_ = [("stack_size", ctypes.c_size_t), ("name", ctypes.c_char_p)]


c_int, c_uint, c_double, c_void_p, c_size_t = (ctypes.c_int, ctypes.c_uint, ctypes.c_double,
                                               ctypes.c_void_p, ctypes.c_size_t)
GH_FN = ctypes.CFUNCTYPE(c_void_p, c_void_p)
GH_WATCHER_CB = ctypes.CFUNCTYPE(None, gh_watcher, c_int, c_void_p)
GH_CALLBACK_FN = ctypes.CFUNCTYPE(None, c_void_p)


def _declare(name, restype, *argtypes):
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn


_declare("gh_strerror", ctypes.c_char_p, c_int)
_declare("gh_err_name", ctypes.c_char_p, c_int)
_declare("gh_version", c_uint)
_declare("gh_version_string", ctypes.c_char_p)
_declare("gh_spawn_ex", c_int, ctypes.POINTER(gh_greenlet), c_void_p, c_void_p,
         ctypes.POINTER(gh_spawn_options))
_declare("gh_current", gh_greenlet)
_declare("gh_main", gh_greenlet)
_declare("gh_join", c_int, gh_greenlet, c_double, ctypes.POINTER(c_void_p))
_declare("gh_joinall", c_int, ctypes.POINTER(gh_greenlet), c_size_t, c_double, ctypes.POINTER(c_size_t))
_declare("gh_kill", c_int, gh_greenlet, c_double)
_declare("gh_throw", c_int, gh_greenlet, c_int)
_declare("gh_sleep", c_int, c_double)
_declare("gh_greenlet_state", c_int, gh_greenlet)
_declare("gh_greenlet_name", c_int, gh_greenlet, ctypes.c_char_p, c_size_t)
_declare("gh_release", c_int, gh_greenlet)
_declare("gh_hub_run", c_int)
_declare("gh_hub_destroy", c_int)
_declare("gh_hub_backend", ctypes.c_char_p)
_declare("gh_wait_read", c_int, c_int, c_double)
_declare("gh_wait_write", c_int, c_int, c_double)
_declare("gh_io_new", c_int, ctypes.POINTER(gh_watcher), c_int, c_int)
_declare("gh_timer_new", c_int, ctypes.POINTER(gh_watcher), c_double, c_double)
_declare("gh_watcher_start", c_int, gh_watcher, GH_WATCHER_CB, c_void_p)
_declare("gh_watcher_stop", c_int, gh_watcher)
_declare("gh_watcher_close", c_int, gh_watcher)
_declare("gh_watcher_ref", c_int, gh_watcher, c_int)
_declare("gh_watcher_active", c_int, gh_watcher)
_declare("gh_run_callback", c_int, GH_CALLBACK_FN, c_void_p)

#: The raw ctypes library, for calls this module does not wrap (declare argtypes first).
lib = _lib


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", c_void_p)]


_libc = ctypes.CDLL(None)
_libc.dladdr.restype = c_int
_libc.dladdr.argtypes = [c_void_p, ctypes.POINTER(_DlInfo)]


# ---- errors ------------------------------------------------------------------

def strerror(code):
    """gh_strerror: a sentence describing a greenhub code."""
    return _lib.gh_strerror(code).decode()


def err_name(code):
    """gh_err_name: the code's name, e.g. "GH_ETIMEDOUT"."""
    return _lib.gh_err_name(code).decode()


class GreenhubError(OSError):
    """A negative greenhub return code: .code (e.g. -110) and .name ("GH_ETIMEDOUT")."""

    def __init__(self, code, what=""):
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}{err_name(code)} ({strerror(code)})")
        self.code, self.name = code, err_name(code)
        self.errno = -code if -1000 < code < 0 else None  # OS errors are -errno


class BlockingInCallbackError(GreenhubError):
    """A blocking call (one that would switch) made inside a hub callback: never allowed."""

    def __init__(self, what):
        super().__init__(GH_EPERM, f"{what} inside a hub callback: callbacks run in the hub and "
                                   "must never block (switch); do the work in the main code or a "
                                   "native greenlet")


class PythonInGreenletError(TypeError):
    """spawn() was given something that would run Python code inside a greenlet."""


def _check(rc, what):
    if rc < 0:
        raise GreenhubError(rc, what)
    return rc


# ---- the hub: per-thread state of this module --------------------------------

class _HubState(threading.local):
    def __init__(self):
        self.in_callback = 0      # > 0 while a Python callback runs (in the hub)
        self.looping = False      # a blocking C call of this module is running the loop
        self.errors = []          # what callbacks raised during it, re-raised after it
        self.watchers = {}        # watcher id -> Watcher (keeps its C callback alive)
        self.callbacks = {}       # run_callback key -> (C callback, Python callable)
        self.next_key = 1
        self.wake = None          # the signal wake-up pipe's watcher (main thread)
        self.wake_prev = None     # the wake-up fd set before ours, during a blocking call


_state = _HubState()


def _in_hub():
    """Whether Python runs in the hub now (a callback, while main waits in the loop)."""
    return _state.looping and _lib.gh_current().id != _lib.gh_main().id


def _keep(exc):
    """A callback (or a signal handler run inside one) raised exc: keep it for the
    blocking call that runs the loop; an exception that is not an Exception
    (KeyboardInterrupt, SystemExit) also ends that call now, as gevent's hub throws it
    into the main greenlet."""
    _state.errors.append(exc)
    if not isinstance(exc, Exception) and _in_hub():
        _lib.gh_throw(_lib.gh_main(), GH_EINTR)  # main's wait returns GH_EINTR once


def _raise_kept():
    """After a blocking call: raise what callbacks raised during it, if anything. The
    first KeyboardInterrupt/SystemExit, else the first exception, is raised; every other
    one is attached to it (`greenhub_others`, and a note in its traceback)."""
    errors, _state.errors = _state.errors, []
    if not errors:
        return
    first = next((e for e in errors if not isinstance(e, Exception)), errors[0])
    others = [e for e in errors if e is not first]
    if others:
        first.greenhub_others = others
        if hasattr(first, "add_note"):  # Python 3.11+
            first.add_note(f"greenhub: {len(others)} more exception(s) raised by callbacks "
                           "in the same call: " + "; ".join(repr(e) for e in others))
    raise first


def _call_in_hub(fn, *args):
    """Run a Python callback in the hub: flag it, keep its exception for later."""
    _state.in_callback += 1
    try:
        fn(*args)
    except BaseException as e:  # never let it unwind into C (ctypes would print and drop it)
        _keep(e)
    finally:
        _state.in_callback -= 1


# ---- signals while the loop runs (main thread) --------------------------------
#
# CPython runs a Python signal handler in the main thread at its next bytecode: while
# the loop runs that is inside some callback, where an exception it raises (Ctrl-C's
# KeyboardInterrupt) could land before the callback's `try` and be dropped by ctypes —
# and while the loop sleeps in epoll no Python code runs at all. So during a blocking
# call the main thread's Python handlers of these signals are wrapped (an exception
# they raise in the hub is kept, and ends the call), and the signal wake-up fd points
# at a pipe the hub watches (an unreferenced io watcher), so a signal wakes the loop.
# Both are put back when the call returns.

_RELAYED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT",
                                              "SIGUSR1", "SIGUSR2", "SIGALRM")
                 if hasattr(signal, n))
_wake_pipe = None  # (read fd, write fd), both non-blocking: made once


class _SignalRelay:
    """Stands for a Python signal handler while the loop runs."""

    __slots__ = ("handler",)

    def __init__(self, handler):
        self.handler = handler

    def __call__(self, signum, frame):
        try:
            return self.handler(signum, frame)
        except BaseException as e:
            if not _in_hub():
                raise  # main's own code: the exception goes where Python raised it
            _keep(e)


def _drain_wake(_w, _revents):
    """The wake-up pipe is readable: a signal came (its Python handler runs now)."""
    try:
        data = os.read(_wake_pipe[0], 512)
    except OSError:
        return
    prev = _state.wake_prev
    if prev is not None and prev >= 0:  # the wake-up fd someone else had set (asyncio)
        try:
            os.write(prev, data)
        except OSError:
            pass


def _arm_signals():
    """Before a blocking call on the main thread: wrap the handlers, point the wake-up
    fd at the watched pipe. Returns what _disarm_signals puts back (None: nothing)."""
    global _wake_pipe
    if threading.current_thread() is not threading.main_thread():
        return None
    wrapped = []
    for sig in _RELAYED:
        h = _signal.getsignal(sig)
        if callable(h) and not isinstance(h, _SignalRelay):
            _signal.signal(sig, _SignalRelay(h))
            wrapped.append(sig)
    if _wake_pipe is None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _wake_pipe = (r, w)
    wake = _state.wake
    if wake is None or not wake._w.id or _lib.gh_watcher_active(wake._w) != 1:
        handle = gh_watcher()
        _check(_lib.gh_io_new(ctypes.byref(handle), _wake_pipe[0], READ), "gh_io_new")
        wake = _state.wake = Watcher(handle, _drain_wake)
        wake.ref(False)  # the pipe alone does not keep run() going
    try:
        prev = _signal.set_wakeup_fd(_wake_pipe[1], warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        prev = None
    _state.wake_prev = prev
    return wrapped, prev


def _disarm_signals(armed):
    if armed is None:
        return
    wrapped, prev = armed
    if prev is not None:
        _signal.set_wakeup_fd(prev)
    for sig in wrapped:
        h = _signal.getsignal(sig)
        if isinstance(h, _SignalRelay):  # not replaced meanwhile by a callback
            _signal.signal(sig, h.handler)


def _loop(what, fn, *args):
    """Run the blocking C call fn(*args), which runs the loop: refused inside a callback;
    signals relayed meanwhile; afterwards what callbacks raised is raised (before the
    return code is looked at). Returns the return code."""
    if _state.in_callback:
        raise BlockingInCallbackError(what)
    armed = _arm_signals()
    try:
        _state.looping = True
        try:
            rc = fn(*args)
        finally:
            _state.looping = False
    finally:
        _disarm_signals(armed)
    _raise_kept()
    return rc


def version():
    """The library's version as (major, minor, patch), from gh_version()."""
    v = _lib.gh_version()
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


def version_string():
    return _lib.gh_version_string().decode()


def backend():
    """The event-loop backend of this thread's hub ("epoll")."""
    return _lib.gh_hub_backend().decode()


def sleep(seconds=0.0):
    """Cooperative sleep of the main greenlet: the hub runs (callbacks, greenlets) meanwhile."""
    _check(_loop("sleep()", _lib.gh_sleep, seconds), "gh_sleep")


def run():
    """gh_hub_run: run the loop until nothing referenced is left (gevent's hub.join())."""
    _check(_loop("run()", _lib.gh_hub_run), "gh_hub_run")


def wait_read(fd, timeout=FOREVER):
    """Wait until fd is readable (GreenhubError GH_ETIMEDOUT on timeout)."""
    _check(_loop("wait_read()", _lib.gh_wait_read, fd, timeout), "gh_wait_read")


def wait_write(fd, timeout=FOREVER):
    """Wait until fd is writable (GreenhubError GH_ETIMEDOUT on timeout)."""
    _check(_loop("wait_write()", _lib.gh_wait_write, fd, timeout), "gh_wait_write")


def hub_destroy():
    """gh_hub_destroy: tear down this thread's hub; every handle of it becomes stale."""
    if _state.in_callback:
        raise BlockingInCallbackError("hub_destroy()")
    _check(_lib.gh_hub_destroy(), "gh_hub_destroy")
    for w in list(_state.watchers.values()):
        w._closed()
    _state.watchers.clear()
    _state.callbacks.clear()
    _state.errors = []
    _state.wake = None


def run_callback(fn, *args):
    """loop.run_callback: fn(*args) runs in the hub in its next iteration (must not block)."""
    key = _state.next_key
    _state.next_key += 1

    def trampoline(_arg):
        _state.callbacks.pop(key, None)
        _call_in_hub(fn, *args)

    c_cb = GH_CALLBACK_FN(trampoline)
    _state.callbacks[key] = c_cb
    rc = _lib.gh_run_callback(c_cb, None)
    if rc < 0:
        _state.callbacks.pop(key, None)
        _check(rc, "gh_run_callback")


# ---- greenlets: native bodies only --------------------------------------------

def _holds_python_thunk(objs):
    """Whether a ctypes object's keep-alive tree holds a CThunkObject (a Python callback)."""
    stack, seen = [objs], set()
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if type(o).__name__ == "CThunkObject":
            return True
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, ctypes._CFuncPtr):
            stack.append(o._objects)
    return False


def _native_address(fn):
    """The address of a native function, or PythonInGreenletError."""
    rule = ("Python code cannot run inside a greenlet (CPython's thread state cannot follow a "
            "stack switch): spawn a native function — from a ctypes.CDLL, or its address — and "
            "drive it from Python with watchers, join() and callbacks")
    if isinstance(fn, ctypes._CFuncPtr):
        if _holds_python_thunk(fn._objects):
            raise PythonInGreenletError(f"{fn!r} wraps a Python callable. {rule}")
        if type(fn)._flags_ & ctypes._FUNCFLAG_PYTHONAPI:
            raise PythonInGreenletError(f"{fn!r} is a function of a ctypes.PyDLL (such as "
                                        "ctypes.pythonapi): it holds the GIL and uses Python's "
                                        f"thread state. {rule}")
        addr = ctypes.cast(fn, c_void_p).value
    elif isinstance(fn, int) and not isinstance(fn, bool):
        addr = fn
    elif isinstance(fn, ctypes.c_void_p):
        addr = fn.value
    elif callable(fn):
        raise PythonInGreenletError(f"{fn!r} is a Python callable. {rule}")
    else:
        raise TypeError(f"spawn() needs a native function, got {type(fn).__name__}")
    if not addr:
        raise ValueError("spawn(): NULL function")
    info = _DlInfo()
    if not _libc.dladdr(c_void_p(addr), ctypes.byref(info)):
        raise PythonInGreenletError(f"{addr:#x} is not code of any loaded library or program "
                                    f"(a Python callback's thunk?). {rule}")
    if _is_python_image(info.dli_fbase, info.dli_fname):
        where = os.fsdecode(info.dli_fname or b"?")
        raise PythonInGreenletError(f"{fn!r} is code of the Python interpreter or of an extension "
                                    f"module ({where}): it needs the GIL and Python's thread "
                                    f"state. {rule}")
    return addr


_python_images = {}  # dli_fbase -> whether that loaded image is Python's own code


def _is_python_image(base, fname):
    """Whether the image loaded at `base` is the interpreter (libpython, or the python
    executable it is linked into) or a loaded extension module."""
    verdict = _python_images.get(base)
    if verdict is None:
        info = _DlInfo()
        _libc.dladdr(ctypes.cast(ctypes.pythonapi.Py_IsInitialized, c_void_p), ctypes.byref(info))
        verdict = base == info.dli_fbase
        if not verdict and fname:
            path = os.path.realpath(os.fsdecode(fname))
            suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
            verdict = any(isinstance(f, str) and f.endswith(suffixes) and os.path.realpath(f) == path
                          for f in (getattr(m, "__file__", None) for m in list(sys.modules.values())))
        _python_images[base] = verdict
    return verdict


def _void_p(arg):
    if arg is None:
        return None
    if isinstance(arg, int):
        return arg
    if isinstance(arg, ctypes.c_void_p):
        return arg.value
    return ctypes.cast(arg, c_void_p).value  # pointers, arrays, byref-able buffers


class Greenlet:
    """A greenlet running a native `void *fn(void *arg)`; owns its handle (release())."""

    __slots__ = ("_g", "_fn", "_arg", "_result", "_done")

    def __init__(self, fn, arg=None, name=None, stack_size=0):
        addr = _native_address(fn)
        self._fn, self._arg = fn, arg  # keep the library and arg buffers alive
        self._result, self._done = None, False
        self._g = gh_greenlet()
        opts = gh_spawn_options(stack_size, name.encode() if name else None)
        _check(_lib.gh_spawn_ex(ctypes.byref(self._g), addr, _void_p(arg), ctypes.byref(opts)),
               "gh_spawn_ex")

    @property
    def handle(self):
        return self._g

    @property
    def state(self):
        """GH_STATE_NEW (0), _READY (1), _RUNNING (2), _WAITING (3) or _DEAD (4)."""
        return _check(_lib.gh_greenlet_state(self._g), "gh_greenlet_state")

    @property
    def dead(self):
        return self._done or self.state == 4

    @property
    def name(self):
        buf = ctypes.create_string_buffer(128)
        _check(_lib.gh_greenlet_name(self._g, buf, len(buf)), "gh_greenlet_name")
        return buf.value.decode()

    def join(self, timeout=FOREVER):
        """Wait until dead; the function's return value as an int address (None for NULL)."""
        if self._done:
            return self._result
        result = c_void_p()
        _check(_loop("Greenlet.join()", _lib.gh_join, self._g, timeout, ctypes.byref(result)),
               "gh_join")
        self._result, self._done = result.value, True
        return self._result

    def kill(self, timeout=0.0):
        """GreenletExit: its blocking calls return GH_ECANCELED; timeout > 0 waits for it."""
        if timeout:
            _check(_loop("Greenlet.kill(timeout)", _lib.gh_kill, self._g, timeout), "gh_kill")
        else:
            _check(_lib.gh_kill(self._g, timeout), "gh_kill")

    def release(self):
        """Give the handle back (gh_release); the greenlet itself runs on."""
        if self._g.id:
            _check(_lib.gh_release(self._g), "gh_release")
            self._g = gh_greenlet()

    def __repr__(self):
        return f"<Greenlet {self._g.id:#x}>"


def spawn(fn, arg=None, name=None, stack_size=0):
    """Spawn a greenlet running the native function fn(arg); see Greenlet."""
    return Greenlet(fn, arg, name=name, stack_size=stack_size)


def joinall(greenlets, timeout=FOREVER):
    """gevent.joinall: wait for all (or the timeout); the number that are done."""
    arr = (gh_greenlet * len(greenlets))(*[g.handle for g in greenlets])
    done = c_size_t()
    rc = _loop("joinall()", _lib.gh_joinall, arr, len(greenlets), timeout, ctypes.byref(done))
    if rc != GH_ETIMEDOUT:
        _check(rc, "gh_joinall")
    return done.value


# ---- watchers with Python callbacks ------------------------------------------

class Watcher:
    """A watcher whose callback — callback(watcher, revents) — runs in the hub."""

    def __init__(self, handle, callback=None):
        self._w = handle
        self._callback = None
        self._c_cb = GH_WATCHER_CB(self._dispatch)
        _state.watchers[handle.id] = self
        if callback is not None:
            self.start(callback)

    def _dispatch(self, _w, revents, _arg):
        if self._callback is not None:
            _call_in_hub(self._callback, self, revents)

    def _closed(self):
        self._w = gh_watcher()

    @property
    def handle(self):
        return self._w

    def start(self, callback):
        """Start watching; callback(watcher, revents) must not block."""
        self._callback = callback
        _check(_lib.gh_watcher_start(self._w, self._c_cb, None), "gh_watcher_start")

    def stop(self):
        _check(_lib.gh_watcher_stop(self._w), "gh_watcher_stop")

    def ref(self, ref):
        """ref(False): this watcher alone does not keep run() going."""
        _check(_lib.gh_watcher_ref(self._w, 1 if ref else 0), "gh_watcher_ref")

    @property
    def active(self):
        return _check(_lib.gh_watcher_active(self._w), "gh_watcher_active") == 1

    def close(self):
        """Stop and free the watcher; the handle becomes stale. From a thread other than
        its own: GreenhubError GH_EWRONGTHREAD, and the watcher is left as it was (its
        own thread can still close it)."""
        if self._w.id:
            rc = _lib.gh_watcher_close(self._w)
            if rc in (GH_OK, GH_EBADHANDLE):  # freed now, or already gone with its hub
                _state.watchers.pop(self._w.id, None)
                self._w = gh_watcher()
            _check(rc, "gh_watcher_close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Watcher {self._w.id:#x}>"


def timer(after, repeat=0.0, callback=None):
    """A timer watcher: fires after `after` s, then every `repeat` s (0 = once)."""
    w = gh_watcher()
    _check(_lib.gh_timer_new(ctypes.byref(w), after, repeat), "gh_timer_new")
    return Watcher(w, callback)


def io(fd, events, callback=None):
    """An io watcher on fd for READ and/or WRITE; revents tells which are ready."""
    w = gh_watcher()
    _check(_lib.gh_io_new(ctypes.byref(w), fd, events), "gh_io_new")
    return Watcher(w, callback)
