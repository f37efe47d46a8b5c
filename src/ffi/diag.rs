//! Header section "Diagnostics" (gevent 1.3's monitoring tools).

use super::{gh_greenlet, guard, guard_ssize, need, put};
use crate::error::Error;
use crate::hub;
use crate::monitor;
use std::ffi::{c_char, c_int, c_void};

/// A blocking report, handed to the gh_monitor_set_callback callback (or written to
/// stderr as `text`). Every pointer in it is valid during the callback only.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct gh_block_report {
    /// Kernel thread id (gettid) of the blocked hub's thread.
    pub thread_id: u64,
    /// The greenlet that kept the thread: a task, or the main greenlet, or the hub
    /// greenlet itself (a slow watcher callback).
    pub greenlet: gh_greenlet,
    /// Its name ("main", "hub (callbacks)", the spawn name, or "").
    pub name: *const c_char,
    /// Where it was spawned (GH_SPAWN's __FILE__); NULL if unknown.
    pub spawn_file: *const c_char,
    /// GH_SPAWN's __LINE__; 0 if unknown.
    pub spawn_line: c_int,
    /// 0: a blockage was detected (blocked_for = how long so far); 1: that blockage
    /// ended (blocked_for = its total, measured to the monitor's sampling period, a
    /// quarter of max_blocking_time).
    pub ended: c_int,
    /// Seconds: how long so far (ended = 0) or in all (ended = 1).
    pub blocked_for: f64,
    /// The full report: for a detection, the greenlet tree of the hub and the native
    /// backtrace of the blocked thread; for an end, one line.
    pub text: *const c_char,
}

/// The token of gh_assert_switches_begin (a value).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_switch_token {
    pub id: u64,
}

/// gh_trace_fn event: control passes from `origin` to `target`.
pub const GH_TRACE_SWITCH: c_int = 1;
/// gh_trace_fn event: `origin` called gh_throw or gh_kill on `target` (the switch that
/// delivers it follows as a GH_TRACE_SWITCH).
pub const GH_TRACE_THROW: c_int = 2;

/// A trace hook (greenlet.settrace): `event` is GH_TRACE_SWITCH or GH_TRACE_THROW.
/// It runs in the hub on the hub's thread, before the switch it reports: it must not
/// block (blocking calls return GH_EPERM), and may call gh_settrace.
pub type gh_trace_fn = Option<
    unsafe extern "C" fn(event: c_int, origin: gh_greenlet, target: gh_greenlet, arg: *mut c_void),
>;

/// A blocking-report callback (see gh_monitor_set_callback).
pub type gh_report_fn =
    Option<unsafe extern "C" fn(report: *const gh_block_report, arg: *mut c_void)>;

fn threshold(seconds: f64) -> crate::error::Result<f64> {
    if seconds.is_nan() || seconds < 0.0 || seconds.is_infinite() || seconds >= 1e9 {
        return Err(Error::INVAL);
    }
    if seconds > 0.0 {
        return Ok(seconds);
    }
    Ok(hub::Config::from_env()?.max_blocking_time)
}

/// Starts the blocking monitor for this thread's hub (gevent's monitor thread): when
/// one greenlet, main or a hub callback keeps the thread for more than
/// `max_blocking_time` seconds without a switch (outside the hub's idle poll), one
/// report goes to stderr (or the gh_monitor_set_callback callback): the time, the
/// thread, the greenlet with its name and spawn site, the hub's greenlet tree and a
/// native backtrace of the blocked thread; then one line when the blockage ends, with
/// its total. One monitor thread serves every hub of the process; the hub pays one
/// relaxed store per switch. Also started by GREENHUB_MONITOR_THREAD_ENABLE=1 or
/// gh_hub_config.monitor. Calling it again changes the threshold.
///
/// To take the backtrace of a thread that runs (a CPU loop), the monitor signals it
/// with SIGRTMIN+7 if no handler is installed for that signal (SA_RESTART); a thread
/// sleeping in a system call is not signalled (its call would be cut short): its call,
/// stack scan and the published greenlet names are reported instead. The /proc files
/// this needs (the thread's stat and syscall, the process's maps: 3 fds) are opened when
/// the hub starts being monitored, so a process out of fds still gets its backtrace.
/// A report lists the whole greenlet tree up to 32 greenlets; beyond, the blocker with
/// its ancestors and a count of the others by state (gh_format_run_info lists all).
///
/// *Threads*: this thread's hub (created if needed). *Blocking*: never.
/// *Errors*: GH_EINVAL (max_blocking_time negative, NaN, infinite or >= 1e9; 0 means
/// GREENHUB_MAX_BLOCKING_TIME or 0.1 s), GH_ENOMEM (the monitor thread could not be
/// started), errors creating the hub.
#[no_mangle]
pub extern "C" fn gh_monitor_start(max_blocking_time: f64) -> c_int {
    guard(|| {
        let t = threshold(max_blocking_time)?;
        monitor::start(hub::current()?, t).map(|_| 0)
    })
}

/// Stops the blocking monitor for this thread's hub (nothing if it was not on; a
/// blockage reported and not ended gets no end line). The monitor thread exits when no
/// hub is monitored.
///
/// *Threads*: this thread's hub (never creates one). *Blocking*: never. *Errors*: none.
#[no_mangle]
pub extern "C" fn gh_monitor_stop() -> c_int {
    guard(|| {
        if let Some(h) = hub::existing() {
            monitor::stop(h);
        }
        Ok(0)
    })
}

/// Sends blocking reports to `cb(report, arg)` instead of stderr, for every hub of the
/// process; NULL restores stderr. `cb` runs on the monitor thread: it must not call
/// hub-bound greenhub functions (they would be another thread's; thread-safe ones such
/// as gh_hub_call_threadsafe are fine) and should return quickly.
///
/// *Threads*: any thread. *Blocking*: never. *Errors*: none.
#[no_mangle]
pub extern "C" fn gh_monitor_set_callback(cb: gh_report_fn, arg: *mut c_void) -> c_int {
    guard(|| {
        let arg = arg as usize; // the callback's own business, handed back as given
        monitor::set_callback(cb.map(|f| -> monitor::ReportSink {
            std::sync::Arc::new(move |r: &monitor::BlockReport| {
                let report = gh_block_report {
                    thread_id: r.thread_id,
                    greenlet: gh_greenlet { id: r.greenlet },
                    name: r.name.as_ptr(),
                    spawn_file: r.spawn_file.map_or(std::ptr::null(), |f| f.as_ptr()),
                    spawn_line: r.spawn_line,
                    ended: r.ended as c_int,
                    blocked_for: r.blocked_for,
                    text: r.text.as_ptr(),
                };
                // SAFETY: the user registered f for arg; the report and its strings live
                // until it returns, as documented.
                unsafe { f(&report, arg as *mut c_void) }
            })
        }));
        Ok(0)
    })
}

const _: () = assert!(
    GH_TRACE_SWITCH == monitor::TraceEvent::Switch as c_int
        && GH_TRACE_THROW == monitor::TraceEvent::Throw as c_int
);

/// The C function a trace hook keeps (`TraceHook::user.0`).
type TraceCFn = unsafe extern "C" fn(c_int, gh_greenlet, gh_greenlet, *mut c_void);

/// `TraceHook::call` for hooks installed from C: calls the user's function.
fn call_c_trace(h: &monitor::TraceHook, event: monitor::TraceEvent, origin: u64, target: u64) {
    // SAFETY: `user.0` was made from a TraceCFn by gh_settrace (a fn pointer cast to a data
    // pointer of the same size and back); the user installed it for `user.1`.
    unsafe {
        let f: TraceCFn = std::mem::transmute::<*const (), TraceCFn>(h.user.0);
        f(
            event as c_int,
            gh_greenlet { id: origin },
            gh_greenlet { id: target },
            h.user.1,
        )
    }
}

/// Installs `hook(event, origin, target, arg)` as this thread's trace hook
/// (greenlet.settrace): it sees every switch main -> hub, hub -> greenlet,
/// greenlet -> hub and hub -> main (GH_TRACE_SWITCH), and every gh_throw / gh_kill
/// (GH_TRACE_THROW). NULL removes it. It replaces the previous hook: read that one
/// first with gh_gettrace to chain to it. Costs one predictable branch per switch when
/// unset.
///
/// *Threads*: this thread's hub (created if needed). *Blocking*: never.
/// *Errors*: errors creating the hub.
#[no_mangle]
pub extern "C" fn gh_settrace(hook: gh_trace_fn, arg: *mut c_void) -> c_int {
    guard(|| {
        let hook = hook.map(|f| monitor::TraceHook {
            call: call_c_trace,
            user: (f as *const (), arg),
        });
        monitor::settrace(hub::current()?, hook);
        Ok(0)
    })
}

/// Reads this thread's trace hook and its argument (NULL, NULL when none).
///
/// *Ownership*: writes into the caller's variables. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`hook` or `arg` NULL), errors creating the hub.
///
/// # Safety
/// `hook` and `arg` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_gettrace(hook: *mut gh_trace_fn, arg: *mut *mut c_void) -> c_int {
    guard(|| {
        need(hook)?;
        need(arg)?;
        let t = hub::current()?.trace.get();
        // SAFETY: both non-null and writable per the contract; `user.0` was made from a
        // TraceCFn by gh_settrace (the only installer of hooks).
        unsafe {
            put(
                hook,
                t.map(|t| std::mem::transmute::<*const (), TraceCFn>(t.user.0)),
            );
            put(arg, t.map_or(std::ptr::null_mut(), |t| t.user.1));
        }
        Ok(0)
    })
}

/// Starts an assert_switches region (gevent.util.assert_switches): the matching
/// gh_assert_switches_end fails with GH_ENOSWITCH if, in between, this thread did not
/// switch at all (`max_blocking_time` 0), or — with `max_blocking_time` > 0 — if some
/// stretch without a switch (including from begin to the first switch and from the last
/// switch to end) was longer than that many seconds (then not switching at all is fine
/// while it is quick). Regions may nest and overlap; each token is ended once.
/// With `max_blocking_time` > 0, every switch reads the clock until the region ends.
///
/// *Ownership*: writes the token. *Threads*: this thread's hub (created if needed).
/// *Blocking*: never. *Errors*: GH_EINVAL (`tok` NULL, `max_blocking_time` negative or
/// NaN; +inf never fails on time), GH_ENOMEM, errors creating the hub.
///
/// # Safety
/// `tok` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_assert_switches_begin(
    tok: *mut gh_switch_token,
    max_blocking_time: f64,
) -> c_int {
    guard(|| {
        need(tok)?;
        let id = monitor::assert_begin(hub::current()?, max_blocking_time)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(tok, gh_switch_token { id }) };
        Ok(0)
    })
}

/// Ends the region `tok` began: 0 if it switched as required, else GH_ENOSWITCH and a
/// report on stderr (why, and this hub's greenlet tree). The token is used up either way.
///
/// *Threads*: the thread of the hub that issued `tok`. *Blocking*: never.
/// *Errors*: GH_ENOSWITCH, GH_EBADHANDLE (zero, forged or already ended token, or its hub
/// destroyed), GH_EWRONGTHREAD (a token of another thread's hub).
#[no_mangle]
pub extern "C" fn gh_assert_switches_end(tok: gh_switch_token) -> c_int {
    guard(|| {
        let h = hub::for_handle(tok.id)?;
        monitor::assert_end(h, tok.id).map(|_| 0)
    })
}

/// Formats the run info of the process (gevent.util.format_run_info) into `buf`: every
/// hub, its greenlet tree (main, the hub, each greenlet with its state, what it waits on
/// — fd and events, timer and due time, event / queue / semaphore, join, thread-pool
/// call —, gh_timeout deadline, spawn site and parent, and its stack use: pages touched
/// of its stack size). This thread's hub is read directly; every other hub is asked to
/// format itself from its loop, and one that does not answer within 0.25 s (blocked, or
/// not running its loop) is listed as such — the call then blocks this thread that long.
/// Writes at most `len` bytes including a terminating NUL (snprintf semantics) and
/// returns the length of the whole text, so a return >= `len` means it was truncated;
/// `buf` NULL with `len` 0 only measures. Also written to stderr, once per signal for
/// the whole process, when it gets the signal named by GREENHUB_RUN_INFO_SIGNAL (e.g.
/// `SIGUSR2`, read at hub creation): the first hub to see the signal asks every hub for
/// its section, each answers from its own loop, and a short-lived thread prints the
/// dump when all have answered or after 0.25 s, so no hub's loop waits for another.
///
/// *Ownership*: writes into the caller's buffer. *Threads*: any thread (with or without a
/// hub). *Blocking*: up to 0.25 s per hub that does not answer.
/// *Errors*: GH_EINVAL (`buf` NULL with `len` > 0, or `len` > SSIZE_MAX).
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_format_run_info(buf: *mut c_char, len: usize) -> libc::ssize_t {
    guard_ssize(|| {
        if (buf.is_null() && len > 0) || len > isize::MAX as usize {
            return Err(Error::INVAL);
        }
        let mut s = String::new();
        monitor::runinfo::format_all(&mut s);
        if len > 0 {
            let n = s.len().min(len - 1);
            // SAFETY: buf is writable for len > n bytes per the contract.
            unsafe {
                std::ptr::copy_nonoverlapping(s.as_ptr() as *const c_char, buf, n);
                *buf.add(n) = 0;
            }
        }
        Ok(s.len().min(isize::MAX as usize) as isize)
    })
}
