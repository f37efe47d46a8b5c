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
  function (from a ctypes.CDLL, or its address); spawn() refuses a Python callable,
  a ctypes CFUNCTYPE wrapping one, or an address outside every loaded library, with
  PythonInGreenletError. Native greenlets must not call back into Python either.
* Python callbacks (watchers, run_callback) run in the hub — in greenhub the hub's
  loop runs on the main thread's own stack, so they run where Python expects — but
  they must never block (switch): blocking functions of this module raise
  BlockingInCallbackError there, and the C library itself answers GH_EPERM.
* An exception raised by a callback is kept and re-raised by the blocking call of
  this module that ran the loop (run, sleep, join, …), after that call returns.

Everything runs on the calling thread's hub (one per OS thread, created on first use);
objects belong to the thread that made them.

The library: $GREENHUB_LIBRARY (a path) if set; else the installed copy next to this
module when it lives in PREFIX/share/greenhub/python (PREFIX/lib*/libgreenhub.so.0);
else the loader's search for libgreenhub.so.0 (ld.so.conf, LD_LIBRARY_PATH).
"""

import ctypes
import ctypes.util
import os
import sys
import threading

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
GH_OK, GH_EPERM, GH_ETIMEDOUT, GH_EBADHANDLE = 0, -1, -110, -1001


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
        self.pending = None       # the first exception a callback raised, re-raised later
        self.watchers = {}        # watcher id -> Watcher (keeps its C callback alive)
        self.callbacks = {}       # run_callback key -> (C callback, Python callable)
        self.next_key = 1


_state = _HubState()


def _blocking(what):
    """Entry of every blocking function: refuse it inside a callback."""
    if _state.in_callback:
        raise BlockingInCallbackError(what)


def _reraise():
    """After a blocking call returns: re-raise what a callback raised while it ran."""
    exc, _state.pending = _state.pending, None
    if exc is not None:
        raise exc


def _call_in_hub(fn, *args):
    """Run a Python callback in the hub: flag it, keep its exception for later."""
    _state.in_callback += 1
    try:
        fn(*args)
    except BaseException as e:  # never let it unwind into C (ctypes would print and drop it)
        if _state.pending is None:
            _state.pending = e
    finally:
        _state.in_callback -= 1


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
    _blocking("sleep()")
    try:
        _check(_lib.gh_sleep(seconds), "gh_sleep")
    finally:
        _reraise()


def run():
    """gh_hub_run: run the loop until nothing referenced is left (gevent's hub.join())."""
    _blocking("run()")
    try:
        _check(_lib.gh_hub_run(), "gh_hub_run")
    finally:
        _reraise()


def wait_read(fd, timeout=FOREVER):
    """Wait until fd is readable (GreenhubError GH_ETIMEDOUT on timeout)."""
    _blocking("wait_read()")
    try:
        _check(_lib.gh_wait_read(fd, timeout), "gh_wait_read")
    finally:
        _reraise()


def wait_write(fd, timeout=FOREVER):
    """Wait until fd is writable (GreenhubError GH_ETIMEDOUT on timeout)."""
    _blocking("wait_write()")
    try:
        _check(_lib.gh_wait_write(fd, timeout), "gh_wait_write")
    finally:
        _reraise()


def hub_destroy():
    """gh_hub_destroy: tear down this thread's hub; every handle of it becomes stale."""
    _blocking("hub_destroy()")
    _check(_lib.gh_hub_destroy(), "gh_hub_destroy")
    for w in list(_state.watchers.values()):
        w._closed()
    _state.watchers.clear()
    _state.callbacks.clear()
    _state.pending = None


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
    return addr


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
        _blocking("Greenlet.join()")
        result = c_void_p()
        try:
            _check(_lib.gh_join(self._g, timeout, ctypes.byref(result)), "gh_join")
        finally:
            _reraise()
        self._result, self._done = result.value, True
        return self._result

    def kill(self, timeout=0.0):
        """GreenletExit: its blocking calls return GH_ECANCELED; timeout > 0 waits for it."""
        if timeout:
            _blocking("Greenlet.kill(timeout)")
        try:
            _check(_lib.gh_kill(self._g, timeout), "gh_kill")
        finally:
            if timeout:
                _reraise()

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
    _blocking("joinall()")
    arr = (gh_greenlet * len(greenlets))(*[g.handle for g in greenlets])
    done = c_size_t()
    try:
        rc = _lib.gh_joinall(arr, len(greenlets), timeout, ctypes.byref(done))
        if rc != GH_ETIMEDOUT:
            _check(rc, "gh_joinall")
    finally:
        _reraise()
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
        """Stop and free the watcher; the handle becomes stale."""
        if self._w.id:
            _state.watchers.pop(self._w.id, None)
            rc = _lib.gh_watcher_close(self._w)
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
