//! Header section "Watchers".

use super::{gh_watcher, guard, need, put};
use crate::error::{Error, Result};
use crate::event_loop::seconds_ns;
use crate::event_loop::watcher::{UserFn, WatchKind};
use crate::handle::{Id, Kind};
use crate::hub::{self, Hub};
use std::ffi::{c_int, c_void};

/// io readiness: readable (also reported on hang-up and error).
pub const GH_READ: c_int = 1;
/// io readiness: writable (also reported on hang-up and error).
pub const GH_WRITE: c_int = 2;
/// `revents` of a timer watcher's callback.
pub const GH_TIMER: c_int = 0x100;
/// `revents` of a prepare watcher's callback.
pub const GH_PREPARE: c_int = 0x200;
/// `revents` of a check watcher's callback.
pub const GH_CHECK: c_int = 0x400;
/// `revents` of an idle watcher's callback.
pub const GH_IDLE: c_int = 0x800;
/// `revents` of an async watcher's callback.
pub const GH_ASYNC: c_int = 0x1000;
/// `revents` of a signal watcher's callback.
pub const GH_SIGNAL: c_int = 0x2000;
/// `revents` of a child watcher's callback.
pub const GH_CHILD: c_int = 0x4000;

/// A watcher callback. It runs in the hub (gh_current() is the hub): it must not block —
/// blocking calls return GH_EPERM there — but it may spawn, start/stop/close watchers
/// (itself included) and queue callbacks. `revents`: GH_READ/GH_WRITE for io watchers,
/// GH_TIMER, GH_PREPARE, GH_CHECK, GH_IDLE, GH_ASYNC, GH_SIGNAL or GH_CHILD for the others.
/// It must not unwind (C++ exceptions, longjmp) out of itself.
pub type gh_watcher_cb =
    Option<unsafe extern "C" fn(w: gh_watcher, revents: c_int, arg: *mut c_void)>;

/// A function queued with gh_run_callback.
pub type gh_callback_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// Inlined into each constructor, so the record is built straight into its slot from the
/// arguments (no copies of it through the stack).
#[inline(always)]
fn new_watcher(out: *mut gh_watcher, kind: WatchKind) -> Result<c_int> {
    need(out)?;
    let hub = hub::current()?;
    let (slot, gen) = hub.st.borrow_mut().new_watcher_inline(kind, false)?;
    // SAFETY: out is non-null; callers promise it is writable.
    unsafe {
        put(
            out,
            gh_watcher {
                id: hub.handle(Kind::Watcher, slot, gen),
            },
        )
    };
    Ok(0)
}

/// The hub, slot and generation a watcher handle names (decoded, the record unchecked).
fn decode(w: gh_watcher) -> Result<(&'static Hub, u32, u32)> {
    let hub = hub::for_handle(w.id)?;
    let (slot, gen) = hub.check(w.id, Kind::Watcher)?;
    Ok((hub, slot, gen))
}

/// A user watcher of this thread: (hub, slot, gen). Internal watchers are not reachable.
fn lookup(w: gh_watcher) -> Result<(&'static Hub, u32, u32)> {
    let (hub, slot, gen) = decode(w)?;
    match hub.st.borrow().watchers.get(slot, gen) {
        Some(x) if !x.internal() => Ok((hub, slot, gen)),
        _ => Err(Error::BADHANDLE),
    }
}

/// Creates an io watcher for `fd` and `events` (GH_READ, GH_WRITE or both), stopped.
/// Several watchers (and greenlets) may watch one fd: the loop multiplexes them.
///
/// *Ownership*: `*out` is the caller's: gh_watcher_close it. The fd stays the caller's;
/// stop or close its watchers before closing the fd.
/// *Threads*: this thread's hub (created if needed). *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL, `events` 0 or with unknown bits), GH_EBADF (`fd`
/// negative or not open), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_io_new(out: *mut gh_watcher, fd: c_int, events: c_int) -> c_int {
    guard(|| {
        need(out)?;
        if events == 0 || events & !(GH_READ | GH_WRITE) != 0 {
            return Err(Error::INVAL);
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::BADF);
        }
        new_watcher(
            out,
            WatchKind::Io {
                fd,
                events: events as u8,
            },
        )
    })
}

/// Creates a timer watcher, stopped: once started it fires `after` seconds later, then
/// every `repeat` seconds if `repeat` > 0 (a one-shot timer stops itself before its
/// callback runs; restart it from there if you like). Timers use CLOCK_MONOTONIC:
/// wall-clock jumps do not move them. Equal deadlines fire in start order. A repeating
/// timer keeps time: each period is counted from when the last one was due, not from
/// when the loop got to it, so a late loop does not make it drift; periods the loop
/// missed entirely (blocked longer than `repeat`) are skipped, not fired in a burst.
///
/// *Ownership*: as gh_io_new. *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL; `after` negative or NaN; `repeat` negative, NaN or
/// infinite). `after` = +inf makes a timer that never fires.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_timer_new(out: *mut gh_watcher, after: f64, repeat: f64) -> c_int {
    guard(|| {
        // NaN fails every comparison: one condition covers the five rules (`after`
        // negative or NaN; `repeat` negative, NaN or infinite).
        if !(after >= 0.0 && (0.0..f64::INFINITY).contains(&repeat)) {
            return Err(Error::INVAL);
        }
        // As duration_ns (never None nor Err here but for `after` = +inf: never fires).
        let after = if after == f64::INFINITY {
            u64::MAX / 4
        } else {
            seconds_ns(after)
        };
        let repeat = seconds_ns(repeat);
        new_watcher(out, WatchKind::Timer { after, repeat })
    })
}

/// Creates a prepare watcher (fires in every loop iteration, before the loop polls for IO).
///
/// *Ownership*: as gh_io_new. *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_prepare_new(out: *mut gh_watcher) -> c_int {
    guard(|| new_watcher(out, WatchKind::Prepare))
}

/// Creates a check watcher (fires in every loop iteration, after the loop polled for IO).
///
/// *Ownership*: as gh_io_new. *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_check_new(out: *mut gh_watcher) -> c_int {
    guard(|| new_watcher(out, WatchKind::Check))
}

/// Creates an idle watcher: fires in iterations where nothing else happened (no IO,
/// timer or queued callback); while one is active the loop never sleeps in its poll.
///
/// *Ownership*: as gh_io_new. *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_idle_new(out: *mut gh_watcher) -> c_int {
    guard(|| new_watcher(out, WatchKind::Idle))
}

/// Creates an async watcher: any thread may gh_async_send it; its callback then runs
/// in this hub's thread. Sends coalesce: several sends before the callback runs give one
/// callback. A send while it is stopped is delivered when it is started.
///
/// *Ownership*: as gh_io_new. *Threads*: created for this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_async_new(out: *mut gh_watcher) -> c_int {
    guard(|| new_watcher(out, WatchKind::Async))
}

/// Creates a signal watcher for `signum`, stopped. Once started, its callback runs in
/// this hub's thread after `signum` arrives, whichever thread the kernel delivered it
/// to; several watchers of one signal (in one or several hubs) all fire; arrivals
/// between two iterations coalesce into one callback. The first started watcher of a
/// signal (process-wide) installs greenhub's handler; when the last one stops, the
/// previous disposition is restored. Up to 64 hubs may watch signals at once.
///
/// *Ownership*: as gh_io_new. *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL; `signum` outside 1..64, SIGKILL, SIGSTOP, or a
/// synchronous fault signal — SIGSEGV, SIGBUS, SIGFPE, SIGILL), GH_ENOMEM.
/// Starting it: GH_ENOMEM (64 hubs already watch signals), -errno of sigaction.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_signal_new(out: *mut gh_watcher, signum: c_int) -> c_int {
    guard(|| {
        crate::signals::check(signum)?;
        new_watcher(out, WatchKind::Signal { signum })
    })
}

/// Creates a child watcher for child process `pid`, stopped. Once started, its callback
/// runs once when the child exits (it is reaped then: read its status with
/// gh_child_status); the watcher stops itself. Uses a pidfd where the kernel has them
/// (Linux >= 5.3), else SIGCHLD (the SIGCHLD disposition is then greenhub's while the
/// watcher is active). A child that already exited fires at once.
///
/// *Ownership*: as gh_io_new (the pidfd is the watcher's, closed with it).
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL, `pid` <= 0), GH_ECHILD (not a child of this process),
/// GH_EMFILE, GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_child_new(out: *mut gh_watcher, pid: c_int) -> c_int {
    guard(|| {
        need(out)?;
        if pid <= 0 {
            return Err(Error::INVAL);
        }
        // SAFETY: waitid with WNOWAIT only queries; info is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: as above.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } < 0 {
            return Err(Error::last_os());
        }
        // SAFETY: plain syscall; -1 (e.g. ENOSYS) selects the SIGCHLD fallback.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int;
        let r = new_watcher(
            out,
            WatchKind::Child {
                pid,
                pidfd: pidfd.max(-1),
                status: None,
            },
        );
        if r.is_err() && pidfd >= 0 {
            // SAFETY: the pidfd we just opened.
            unsafe { libc::close(pidfd) };
        }
        r
    })
}

/// The wait status (as waitpid(2) gives it: use WIFEXITED/WEXITSTATUS) of the child of
/// child watcher `w`, once it has fired; -1 if someone else reaped the child first.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EAGAIN (the child has not exited yet), GH_EINVAL (`status` NULL, or `w` is
/// not a child watcher), GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `status` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_child_status(w: gh_watcher, status: *mut c_int) -> c_int {
    guard(|| {
        need(status)?;
        let (hub, slot, gen) = lookup(w)?;
        let st = hub.st.borrow();
        let x = st.watchers.get(slot, gen).ok_or(Error::BADHANDLE)?;
        if !matches!(x.kind(), WatchKind::Child { .. }) {
            return Err(Error::INVAL);
        }
        let s = x.status().ok_or(Error(-libc::EAGAIN))?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(status, s) };
        Ok(0)
    })
}

/// Starts `w`: from now on `cb(w, revents, arg)` runs in the hub whenever it fires.
/// An active watcher keeps the loop alive unless gh_watcher_ref(w, 0) was called.
///
/// *Ownership*: `arg` is passed through untouched. *Threads*: `w` of this thread's hub.
/// *Blocking*: never; allowed from callbacks (a watcher may restart itself).
/// *Errors*: GH_EINVAL (`cb` NULL), GH_EBUSY (already active), GH_EBADF (io watcher whose
/// fd was closed), GH_ENOMEM and other OS errors of epoll_ctl (of the backend's
/// registration: GH_ERANGE for an fd at or past FD_SETSIZE under "select", a plug-in's
/// -errno from add, GH_EBACKEND once a plug-in broke), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_watcher_start(w: gh_watcher, cb: gh_watcher_cb, arg: *mut c_void) -> c_int {
    guard(|| {
        let cb = cb.ok_or(Error::INVAL)?;
        let (hub, slot, gen) = decode(w)?;
        // SAFETY: gh_watcher and RawHandle are both #[repr(C)] structs of one u64, so the
        // two function pointer types have the same ABI.
        let f: UserFn = unsafe {
            std::mem::transmute::<unsafe extern "C" fn(gh_watcher, c_int, *mut c_void), UserFn>(cb)
        };
        // The handle is checked there, with the same record lookup as the start.
        hub.st
            .borrow_mut()
            .start_user_watcher(slot, gen, f, arg)
            .map(|_| 0)
    })
}

/// Stops `w` (no-op if it is not active). Its callback will not run again until it is
/// restarted, even if it was already due in the current iteration.
///
/// *Threads*: `w` of this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_watcher_stop(w: gh_watcher) -> c_int {
    guard(|| {
        let (hub, slot, _) = lookup(w)?;
        hub.st.borrow_mut().stop_watcher(slot);
        Ok(0)
    })
}

/// Stops and frees `w`; the handle becomes stale. A greenlet in gh_hub_wait(w) wakes
/// with GH_ECLOSED.
///
/// *Threads*: `w` of this thread's hub. *Blocking*: never; allowed from callbacks,
/// including `w`'s own. *Errors*: GH_EBADHANDLE (also on a second close), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_watcher_close(w: gh_watcher) -> c_int {
    guard(|| {
        let (hub, slot, gen) = decode(w)?;
        // The handle is checked there, with the same record lookup as the close.
        hub.close_user_watcher(slot, gen).map(|_| 0)
    })
}

/// `ref` 0: `w` no longer keeps the loop alive (gh_hub_run returns and the main
/// greenlet's waits end with GH_ELOOPEXIT even while it is active); non-zero: it does again.
///
/// *Threads*: `w` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_watcher_ref(w: gh_watcher, r#ref: c_int) -> c_int {
    guard(|| {
        let (hub, slot, _) = lookup(w)?;
        hub.st.borrow_mut().set_ref(slot, r#ref != 0);
        Ok(0)
    })
}

/// 1 if `w` is started, 0 if not, or a negative code.
///
/// *Threads*: `w` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_watcher_active(w: gh_watcher) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(w)?;
        Ok(hub
            .st
            .borrow()
            .watchers
            .get(slot, gen)
            .is_some_and(|x| x.active) as c_int)
    })
}

/// Wakes async watcher `w` from any thread: its callback runs once in its hub's next
/// iteration, however many sends arrive before then (coalescing).
///
/// *Threads*: thread-safe (the one watcher function that is); safe to race with the
/// watcher's close or its hub's destruction (then GH_EBADHANDLE). Async-signal-safe
/// (as libev's ev_async_send): it may be called from a signal handler, in any thread —
/// it takes no lock and allocates nothing (atomics and one write(2)).
/// *Blocking*: never (one eventfd write at most per iteration of the target hub).
/// *Errors*: GH_EBADHANDLE (not a live async watcher).
#[no_mangle]
pub extern "C" fn gh_async_send(w: gh_watcher) -> c_int {
    guard(|| {
        let id = Id::decode(w.id);
        if id.kind != Kind::Watcher as u8 {
            return Err(Error::BADHANDLE);
        }
        crate::asyncs::send(id.hub, id.slot, id.gen).map(|_| 0)
    })
}

/// Queues `cb(arg)` to run in the hub after the work already queued, in FIFO order
/// (gevent's loop.run_callback). Callbacks queued while the queue is being run go to a
/// later pass; like gevent, the loop may run several passes before it polls again, but
/// it polls for IO (and runs timers, prepare and check watchers) at least every 1024
/// callbacks, so a callback that keeps re-queuing itself never starves IO.
/// The callback runs in the hub: it must not block (blocking calls return GH_EPERM).
///
/// *Ownership*: `arg` is passed through untouched. *Threads*: this thread's hub.
/// *Blocking*: never; allowed from greenlets, main and callbacks.
/// *Errors*: GH_EINVAL (`cb` NULL), errors creating the hub.
#[no_mangle]
pub extern "C" fn gh_run_callback(cb: gh_callback_fn, arg: *mut c_void) -> c_int {
    guard(|| {
        let f = cb.ok_or(Error::INVAL)?;
        hub::current()?.run_callback(f, arg);
        Ok(0)
    })
}
