//! Header section "Hub".

use super::{gh_hub_ref, gh_watcher, guard, need};
use crate::error::Error;
use crate::handle::Kind;
use crate::hub::{self, Config};
use std::ffi::{c_char, c_int, c_void, CStr};

/// Settings of a thread's hub, applied by gh_hub_configure before the hub's first use.
/// Fill it with gh_hub_config_init first, then change what you need.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct gh_hub_config {
    /// "epoll" (the Linux default: epoll through libc), "polling" (the polling crate: the
    /// portable backend), "poll" (poll(2)), "select" (select(2): fds below FD_SETSIZE
    /// only) or the name of a registered plug-in (gh_backend_register,
    /// GREENHUB_BACKEND_PLUGIN); NULL = GREENHUB_BACKEND or the default.
    /// Unknown names are GH_EINVAL (with one line on stderr), never a silent fallback.
    pub backend: *const c_char,
    /// Default greenlet stack size in bytes; 0 = GREENHUB_STACK_SIZE or 256 KiB.
    /// Rounded up to whole pages, at least 16 KiB; above 1 GiB is GH_EINVAL.
    pub stack_size: usize,
    /// 1 = start the blocking monitor for this hub (see gh_monitor_start); 0 = only if
    /// GREENHUB_MONITOR_THREAD_ENABLE is `1` or `true`.
    pub monitor: c_int,
    /// Monitor threshold in seconds; 0 = GREENHUB_MAX_BLOCKING_TIME or 0.1.
    pub max_blocking_time: f64,
    /// A C backend to use for this hub without registering it (see gh_backend; the
    /// table is copied by gh_hub_configure); NULL = by name (`backend`). Setting both
    /// this and `backend` is GH_EINVAL. Added after the first four fields: a struct
    /// zero-filled or set with gh_hub_config_init leaves it NULL.
    pub backend_plugin: *const super::backend::gh_backend,
}

/// Fills `cfg` with the defaults (all "use the environment or the built-in default").
///
/// *Ownership*: writes into the caller's struct. *Threads*: any thread.
/// *Blocking*: never. *Errors*: none (NULL is ignored).
///
/// # Safety
/// `cfg` must be NULL or point to a writable gh_hub_config.
#[no_mangle]
pub unsafe extern "C" fn gh_hub_config_init(cfg: *mut gh_hub_config) {
    let d = gh_hub_config {
        backend: std::ptr::null(),
        stack_size: 0,
        monitor: 0,
        max_blocking_time: 0.0,
        backend_plugin: std::ptr::null(),
    };
    // SAFETY: cfg is NULL or writable per the contract.
    unsafe { super::put(cfg, d) };
}

/// Creates this thread's hub with `cfg` (fields left at their gh_hub_config_init
/// values fall back to the environment, then to the defaults).
///
/// *Ownership*: `cfg` and its strings are read during the call only.
/// *Threads*: configures the calling thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (NULL cfg, unknown backend name — also one line on stderr —,
/// both `backend` and `backend_plugin` set, a `backend_plugin` table without a name or a
/// mandatory function, stack_size above 1 GiB, negative or NaN max_blocking_time, bad
/// GREENHUB_* value, a GREENHUB_BACKEND_PLUGIN object that cannot be loaded),
/// GH_ENOTSUP (`backend_plugin->version` is not GH_BACKEND_VERSION), GH_EBUSY (this
/// thread's hub already exists — it has done I/O: configure before any other greenhub
/// call; its backend never changes), GH_ENOMEM and OS errors from creating the epoll fd
/// or eventfd, the code a plug-in's `create` or `add` (of the wake-up fd) returned,
/// GH_ERANGE (select backend: the wake-up eventfd is at or past FD_SETSIZE).
///
/// # Safety
/// `cfg` must be NULL or point to a readable gh_hub_config whose `backend` is NULL or a
/// NUL-terminated string and whose `backend_plugin` is NULL or a readable gh_backend.
#[no_mangle]
pub unsafe extern "C" fn gh_hub_configure(cfg: *const gh_hub_config) -> c_int {
    guard(|| {
        need(cfg)?;
        // SAFETY: non-null and readable per the contract.
        let c = unsafe { *cfg };
        if hub::existing().is_some() {
            return Err(Error::BUSY);
        }
        let mut conf = Config::from_env()?;
        if !c.backend_plugin.is_null() {
            if !c.backend.is_null() {
                return Err(Error::INVAL);
            }
            // SAFETY: readable per the contract.
            conf.plugin = Some(unsafe { super::backend::to_plugin(c.backend_plugin) }?);
        }
        if !c.backend.is_null() {
            // SAFETY: NUL-terminated per the contract.
            let b = unsafe { CStr::from_ptr(c.backend) };
            conf.backend = Some(b.to_string_lossy().into_owned());
        }
        if c.stack_size != 0 {
            conf.stack_size = c.stack_size;
        }
        if c.monitor != 0 {
            conf.monitor = true;
        }
        if c.max_blocking_time.is_nan() || c.max_blocking_time < 0.0 {
            return Err(Error::INVAL);
        }
        if c.max_blocking_time > 0.0 {
            conf.max_blocking_time = c.max_blocking_time;
        }
        hub::configure(conf).map(|_| 0)
    })
}

/// Runs this thread's loop until nothing referenced is left: no active referenced
/// watcher, no queued callback, no runnable greenlet (gevent's hub.join()/gevent.wait()).
///
/// *Threads*: this thread's hub. *Blocking*: yes — the main greenlet only.
/// *Errors*: GH_EPERM (called from a spawned greenlet or a hub callback),
/// GH_ECANCELED (main was killed), errors creating the hub.
#[no_mangle]
pub extern "C" fn gh_hub_run() -> c_int {
    guard(|| hub::current()?.run().map(|_| 0))
}

/// Tears down this thread's hub: live greenlets are discarded without running more
/// of their code (their C frames are abandoned, not unwound: memory they malloc'd and
/// did not free is lost — kill and join them first to let them clean up), watchers
/// are closed, the epoll fd and eventfd are closed. Every handle of the hub becomes
/// stale (GH_EBADHANDLE). The next greenhub call in this thread creates a new hub.
/// gh_hub_call_threadsafe calls the hub accepted and has not run yet run first, in order,
/// as hub callbacks (their blocking calls get GH_EPERM); gh_run_callback callbacks not
/// run yet are dropped.
/// A thread that exits without calling this has its hub destroyed the same way.
/// The hub's greenlet stacks (reserved regions) are unmapped, and the alternate signal
/// stack the hub gave this thread, if it did, is removed.
///
/// Creating a thread's hub gives the thread an alternate signal stack (64 KiB) unless
/// it has one; the first hub of the process installs greenhub's SIGSEGV/SIGBUS handler,
/// which reports a greenlet stack overflow (greenlet name, id, stack size) on stderr and
/// re-raises, and passes every other fault to the handler installed before it.
///
/// Thread-pool jobs that have not started are discarded; running ones finish on their
/// threads (their results are dropped); idle workers are joined (at most 0.1 s).
///
/// *Threads*: this thread's hub. *Blocking*: never switches; may wait up to 0.1 s for
/// thread-pool workers to end.
/// *Errors*: GH_EPERM (not called from the main greenlet, e.g. from a spawned greenlet
/// or a hub callback). Returns GH_OK when the thread has no hub.
#[no_mangle]
pub extern "C" fn gh_hub_destroy() -> c_int {
    guard(|| hub::destroy().map(|_| 0))
}

/// THE primitive (gevent's Hub.wait): starts `w` with a callback that switches back
/// to the current greenlet, switches to the hub, and stops `w` when switched back.
///
/// *Ownership*: `w` stays the caller's; it is stopped on return whatever happened.
/// *Threads*: `w` must belong to this thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_OK when `w` fired; GH_EBUSY (`w` already started), GH_EBADHANDLE,
/// GH_EWRONGTHREAD, GH_EPERM (inside a hub callback), GH_ECANCELED (the caller was
/// killed), GH_ETIMEDOUT (a gh_timeout of the caller expired), a gh_throw code, GH_ELOOPEXIT (main greenlet: nothing left that could fire
/// `w`, e.g. it is unreferenced and nothing else is active), GH_EBADF (an io watcher's fd
/// was closed), GH_ECLOSED (`w` was closed by another greenlet meanwhile).
#[no_mangle]
pub extern "C" fn gh_hub_wait(w: gh_watcher) -> c_int {
    guard(|| {
        let hub = hub::for_handle(w.id)?;
        let (slot, gen) = hub.check(w.id, Kind::Watcher)?;
        hub.hub_wait(slot, gen).map(|_| 0)
    })
}

/// This thread's hub (created if needed). `{0}` if it cannot be created.
///
/// *Threads*: the calling thread. *Blocking*: never. *Errors*: none (a zero id).
#[no_mangle]
pub extern "C" fn gh_hub_current() -> gh_hub_ref {
    match std::panic::catch_unwind(|| {
        hub::current().map(|h| h.handle(Kind::HubRef, 0, h.shared.base))
    }) {
        Ok(Ok(raw)) => gh_hub_ref { id: raw },
        _ => gh_hub_ref { id: 0 },
    }
}

/// The name of this thread's hub backend ("epoll", "polling", "poll", "select" or a
/// plug-in's name), creating the hub if needed; NULL if the hub cannot be created.
///
/// *Ownership*: a string that lives as long as the process (do not free it).
/// *Threads*: the calling thread. *Blocking*: never.
/// *Errors*: none (NULL).
#[no_mangle]
pub extern "C" fn gh_hub_backend() -> *const c_char {
    match std::panic::catch_unwind(|| hub::current().map(|h| h.backend_c_name())) {
        Ok(Ok(name)) => name.as_ptr(),
        _ => std::ptr::null(),
    }
}

/// Queues `fn(arg)` to run in the thread of `hub`, in that hub's next iteration (as
/// gh_run_callback there: it must not block). The way to hand work to another
/// thread's hub; the only hub function callable with another thread's handle.
/// GH_OK means `fn` will run, exactly once, in `hub`'s thread: in its loop, or at the
/// latest when the hub is destroyed (gh_hub_destroy or the thread's exit runs the calls
/// it accepted and has not run yet, in order, before the hub goes); from the start of
/// that teardown on, calls are refused with GH_EBADHANDLE.
///
/// *Ownership*: `arg` is passed through untouched.
/// *Threads*: thread-safe: any thread, including `hub`'s own.
/// *Blocking*: never (one eventfd write at most per iteration of the target hub).
/// *Errors*: GH_EINVAL (`fn` NULL), GH_EBADHANDLE (zero, forged, the hub was destroyed,
/// or — in a forked child — its thread did not survive the fork: then `fn` never runs).
#[no_mangle]
pub extern "C" fn gh_hub_call_threadsafe(
    hub: gh_hub_ref,
    r#fn: super::watcher::gh_callback_fn,
    arg: *mut c_void,
) -> c_int {
    guard(|| {
        let f = r#fn.ok_or(Error::INVAL)?;
        let id = crate::handle::Id::decode(hub.id);
        if id.kind != Kind::HubRef as u8 || id.slot != 0 {
            return Err(Error::BADHANDLE);
        }
        hub::embed::call_threadsafe(id.hub, Some(id.gen), f, arg).map(|_| 0)
    })
}

/// Runs one loop iteration from the main greenlet — queued callbacks and the greenlets
/// they wake, prepare, poll (waiting at most `timeout` seconds; 0 = don't wait), io,
/// timers, check, idle — then returns. For programs whose main loop belongs to someone
/// else: poll gh_hub_backend_fd() there, with gh_hub_backend_timeout(), and call this
/// when it is readable or the timeout expires. Returns 1 if anything referenced is left
/// in the loop, 0 if not (like uv_run with UV_RUN_NOWAIT/ONCE).
///
/// *Threads*: this thread's hub. *Blocking*: up to `timeout`; main greenlet only.
/// *Errors*: GH_EPERM (from a spawned greenlet or a hub callback), GH_EINVAL (NaN).
/// Negative or +inf `timeout`: wait as the loop needs (for the next timer or IO).
#[no_mangle]
pub extern "C" fn gh_hub_run_once(timeout: f64) -> c_int {
    guard(|| {
        let cap = crate::event_loop::duration_ns(timeout)?
            .map(|ns| ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32);
        let hub = hub::current()?;
        hub.run_once(cap.unwrap_or(-1)).map(|alive| alive as c_int)
    })
}

/// The hub's backend fd: it becomes readable when the hub has IO to handle. Poll it
/// (for reading) from a host loop, together with gh_hub_backend_timeout(). It stays
/// the hub's: gh_close refuses it (GH_EBUSY); if it is closed behind greenhub's back,
/// the hub says so once on stderr and recreates its backend (a new fd: ask again).
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_ENOTSUP for the "poll" and "select" backends (no fd to wait on) and for
/// a plug-in without `backend_fd` or broken (see gh_backend).
#[no_mangle]
pub extern "C" fn gh_hub_backend_fd() -> c_int {
    guard(|| {
        let fd = hub::current()?.backend_fd();
        if fd < 0 {
            return Err(Error::NOTSUP);
        }
        Ok(fd)
    })
}

/// Seconds until the hub next needs to run (0 when work is pending, e.g. a queued
/// callback or a ready greenlet), or GH_FOREVER when only IO can wake it. Call it right
/// before the host loop polls gh_hub_backend_fd(): it also applies pending changes of
/// interest, so the backend fd reflects every started watcher.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: none (GH_FOREVER if the hub cannot be created).
#[no_mangle]
pub extern "C" fn gh_hub_backend_timeout() -> f64 {
    let r = std::panic::catch_unwind(|| hub::current().map(|h| h.backend_timeout()));
    match r {
        Ok(Ok(Some(ns))) => ns as f64 / 1e9,
        _ => -1.0,
    }
}
