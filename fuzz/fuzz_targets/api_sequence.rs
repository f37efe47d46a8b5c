//! Fuzz target: bytes → a sequence of greenhub C API calls, made through the
//! `extern "C"` functions, with invariants checked after every step.
//!
//! Input layout: byte 0 picks the backend (gh_hub_configure before first use), then
//! each step is one opcode byte followed by the argument bytes it reads (missing bytes
//! read as 0). The model below keeps every handle the sequence created (live ones, and
//! stale ones: closed, cancelled, or of a destroyed hub), the pipes it opened, and the
//! fds it closed.
//!
//! Invariants, after every step:
//! * the return code is one the header documents for that function (`Api::allowed`);
//!   a stale or zero handle gives exactly GH_EBADHANDLE, a NaN timeout GH_EINVAL;
//! * greenlet entries and hub callbacks check their own calls the same way (a blocking
//!   call from a callback must be GH_EPERM); what they find is checked by main;
//! * no crash (ASan: no memory error), no hang: every wait of the main greenlet is
//!   bounded by a gh_timeout of 1 ms (libFuzzer's -timeout catches a wait that ignores
//!   it);
//! * after gh_hub_destroy (a step, and always at the end) the process's fd count is the
//!   input's starting count plus the pipe fds the sequence still owns;
//! * data written to a socket wakes the greenlet blocked reading it (`wakes_reader`: a
//!   fresh socketpair, gh_recv in a greenlet, gh_send or write(2) from main), and a
//!   signal raised while its watcher is started fires it (`signal_wakes_watcher`), each
//!   within ~1 s of loop iterations, whatever state the sequence left the hub in.

#![no_main]

use greenhub::ffi::error::*;
use greenhub::ffi::greenlet::*;
use greenhub::ffi::hub::*;
use greenhub::ffi::io::*;
use greenhub::ffi::sync::*;
use greenhub::ffi::watcher::*;
use greenhub::ffi::{gh_greenlet, gh_hub_ref, gh_watcher};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr};
use std::ptr::{null, null_mut};

// ---- codes (values of include/greenhub.h) ---------------------------------------

const OK: i32 = 0;
const EPERM: i32 = -libc::EPERM;
const EBADF: i32 = -libc::EBADF;
const ENOMEM: i32 = -libc::ENOMEM;
const EBUSY: i32 = -libc::EBUSY;
const EINVAL: i32 = -libc::EINVAL;
const EPIPE: i32 = -libc::EPIPE;
const EDEADLK: i32 = -libc::EDEADLK;
const EOVERFLOW: i32 = -libc::EOVERFLOW;
const ENOTSUP: i32 = -libc::ENOTSUP;
const ETIMEDOUT: i32 = -libc::ETIMEDOUT;
const ECANCELED: i32 = -libc::ECANCELED;
const EBADHANDLE: i32 = -1001;
const EWRONGTHREAD: i32 = -1002;
const ELOOPEXIT: i32 = -1003;
const EDEAD: i32 = -1004;
const ECLOSED: i32 = -1006;
/// The code this target throws with gh_throw (any negative code is allowed).
const THROWN: i32 = -7777;

/// Codes every blocking call may return besides its own (the caller was killed, a
/// gh_throw, a gh_timeout expired, a call from a hub callback).
const BLOCKING: &[i32] = &[ECANCELED, THROWN, ETIMEDOUT, EPERM];
const HANDLE: &[i32] = &[EBADHANDLE, EWRONGTHREAD];

/// The functions whose codes are checked, each with the codes its header doc lists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Api {
    Spawn,
    SpawnEx,
    SpawnLater,
    Join,
    Joinall,
    Kill,
    Throw,
    Switch,
    Sleep,
    State,
    Name,
    SetName,
    Release,
    Configure,
    Destroy,
    HubWait,
    CallThreadsafe,
    RunOnce,
    WaitFd,
    Read,
    Write,
    Close,
    TimeoutStart,
    TimeoutCancel,
    ObjNew,
    EventSet,
    EventClear,
    EventWait,
    EventIsSet,
    ObjClose,
    ResultSet,
    ResultSetError,
    ResultGet,
    SemAcquire,
    SemRelease,
    QueuePut,
    QueueGet,
    QueueLen,
    WaiterSwitch,
    WaiterGet,
    IoNew,
    TimerNew,
    WatcherNew,
    WatcherStart,
    WatcherStop,
    WatcherRef,
    WatcherActive,
    AsyncSend,
    RunCallback,
}

impl Api {
    /// Codes (< 0) the header documents for this function, besides success.
    fn allowed(self) -> &'static [i32] {
        use Api::*;
        match self {
            Spawn | SpawnEx | SpawnLater => &[EINVAL, ENOMEM],
            Join => &[
                ETIMEDOUT,
                EDEADLK,
                EINVAL,
                EBADHANDLE,
                EWRONGTHREAD,
                EPERM,
                ECANCELED,
                THROWN,
                ELOOPEXIT,
            ],
            Joinall => &[
                ETIMEDOUT,
                EDEADLK,
                EINVAL,
                EBADHANDLE,
                EWRONGTHREAD,
                EPERM,
                ECANCELED,
                THROWN,
                ELOOPEXIT,
            ],
            Kill => &[
                ETIMEDOUT,
                EINVAL,
                EBADHANDLE,
                EWRONGTHREAD,
                EDEADLK,
                EPERM,
                ECANCELED,
                THROWN,
                ELOOPEXIT,
            ],
            Throw => &[EINVAL, EDEAD, EBADHANDLE, EWRONGTHREAD],
            Switch => &[
                EINVAL,
                EDEAD,
                EBUSY,
                EPERM,
                EBADHANDLE,
                EWRONGTHREAD,
                ECANCELED,
                THROWN,
                ELOOPEXIT,
            ],
            Sleep => &[EINVAL, EPERM, ECANCELED, THROWN, ELOOPEXIT],
            State => HANDLE,
            Name | SetName => &[EINVAL, EBADHANDLE, EWRONGTHREAD, ENOMEM],
            Release => &[EINVAL, EBADHANDLE, EWRONGTHREAD],
            Configure => &[EINVAL, EBUSY, ENOTSUP, ENOMEM],
            Destroy => &[EPERM],
            HubWait => &[
                EBUSY,
                EBADHANDLE,
                EWRONGTHREAD,
                EPERM,
                ECANCELED,
                THROWN,
                ELOOPEXIT,
                EBADF,
                ECLOSED,
            ],
            CallThreadsafe => &[EINVAL, EBADHANDLE],
            RunOnce => &[EPERM, EINVAL],
            WaitFd => &[
                ETIMEDOUT, EBADF, EINVAL, EPERM, ECANCELED, THROWN, ELOOPEXIT, EBUSY, ECLOSED,
            ],
            // Plus any -errno of read(2)/write(2): see `check_io`.
            Read => &[
                ETIMEDOUT, EBUSY, EBADF, EINVAL, ECLOSED, ECANCELED, THROWN, EPERM,
            ],
            Write => &[
                ETIMEDOUT, EBUSY, EBADF, EPIPE, EINVAL, ECLOSED, ECANCELED, THROWN, EPERM,
            ],
            Close => &[EBADF],
            TimeoutStart => &[EINVAL, EPERM, ENOMEM],
            TimeoutCancel => HANDLE,
            ObjNew => &[EINVAL, ENOMEM],
            EventSet | EventClear | EventIsSet | ObjClose | QueueLen => HANDLE,
            SemRelease => &[EOVERFLOW, EBADHANDLE, EWRONGTHREAD],
            EventWait | SemAcquire | QueuePut | ResultGet => &[
                ETIMEDOUT,
                ECLOSED,
                ECANCELED,
                THROWN,
                EPERM,
                ELOOPEXIT,
                EINVAL,
                EBADHANDLE,
                EWRONGTHREAD,
            ],
            ResultSet => &[EBUSY, EBADHANDLE, EWRONGTHREAD],
            ResultSetError => &[EINVAL, EBUSY, EBADHANDLE, EWRONGTHREAD],
            QueueGet => &[
                EINVAL,
                ECLOSED,
                ETIMEDOUT,
                ECANCELED,
                THROWN,
                EPERM,
                ELOOPEXIT,
                EBADHANDLE,
                EWRONGTHREAD,
            ],
            WaiterSwitch => &[EBUSY, EBADHANDLE, EWRONGTHREAD],
            WaiterGet => &[
                EBUSY,
                ETIMEDOUT,
                ECLOSED,
                ECANCELED,
                THROWN,
                EPERM,
                ELOOPEXIT,
                EINVAL,
                EBADHANDLE,
                EWRONGTHREAD,
            ],
            IoNew => &[EINVAL, EBADF, ENOMEM],
            TimerNew => &[EINVAL, ENOMEM],
            WatcherNew => &[EINVAL, ENOMEM],
            WatcherStart => &[EINVAL, EBUSY, EBADF, ENOMEM, EBADHANDLE, EWRONGTHREAD],
            WatcherStop | WatcherRef | WatcherActive => HANDLE,
            AsyncSend => &[EBADHANDLE],
            RunCallback => &[EINVAL, ENOMEM],
        }
    }

    /// Whether the call may block (then a gh_timeout's GH_ETIMEDOUT is documented by
    /// gh_timeout_start for it, and a kill's GH_ECANCELED, and a gh_throw code).
    fn blocks(self) -> bool {
        use Api::*;
        matches!(
            self,
            Join | Joinall
                | Kill
                | Switch
                | Sleep
                | HubWait
                | WaitFd
                | Read
                | Write
                | EventWait
                | ResultGet
                | SemAcquire
                | QueuePut
                | QueueGet
                | WaiterGet
        )
    }
}

/// What the caller knows about the handle or argument it passed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Arg {
    /// A handle the sequence believes live (it may have died or been closed by a
    /// greenlet or callback meanwhile), or a forged value: any documented code.
    Any,
    /// Zero, closed/cancelled/released-and-reaped, or of a destroyed hub: GH_EBADHANDLE.
    Stale,
}

// ---- the model -------------------------------------------------------------

#[derive(Default)]
struct Model {
    greenlets: Vec<u64>,
    watchers: Vec<u64>,
    events: Vec<u64>,
    results: Vec<u64>,
    sems: Vec<u64>,
    queues: Vec<u64>,
    waiters: Vec<u64>,
    timeouts: Vec<u64>,
    /// Handles known stale (any kind; the kind bits make them stale for the others too).
    stale: Vec<u64>,
    pipes: Vec<(c_int, c_int)>,
    /// fds this sequence closed (they may be reused by a later pipe).
    closed: Vec<c_int>,
    /// Violations found inside greenlets and callbacks (checked by main after each step).
    violations: Vec<String>,
    /// The fd count when this input started.
    fd_base: usize,
}

thread_local! {
    static M: RefCell<Model> = RefCell::new(Model::default());
}

fn with<R>(f: impl FnOnce(&mut Model) -> R) -> R {
    M.with(|m| f(&mut m.borrow_mut()))
}

fn violation(msg: String) {
    with(|m| m.violations.push(msg));
}

/// Checks `rc` of `api` against the documented codes; records a violation otherwise.
/// `einval`: the arguments are bad (NaN timeout, NULL callback, bad flags): the call
/// must fail with GH_EINVAL (or, checked first, a handle error or GH_EBADF).
fn check(api: Api, rc: i64, arg: Arg, einval: bool, in_callback: bool) {
    if trace() {
        eprintln!(
            "  {api:?} -> {rc} {} ({arg:?}{}{})",
            name(rc.min(0) as i32),
            if einval { ", bad args" } else { "" },
            if in_callback { ", in a callback" } else { "" }
        );
    }
    let ok = if rc >= 0 {
        (arg != Arg::Stale || api == Api::Destroy) && !einval && !(in_callback && api.blocks())
    } else {
        let rc = rc as i32;
        let documented = api.allowed().contains(&rc)
            || (api.blocks() && BLOCKING.contains(&rc))
            || ((api == Api::Read || api == Api::Write) && rc > -134);
        let stale_ok = arg != Arg::Stale || rc == EBADHANDLE || (einval && rc == EINVAL);
        let einval_ok = !einval || rc == EINVAL || HANDLE.contains(&rc) || rc == EBADF;
        let cb_ok = !(in_callback && api.blocks()) || rc == EPERM || HANDLE.contains(&rc);
        documented && stale_ok && einval_ok && cb_ok
    };
    if !ok {
        violation(format!(
            "{api:?} returned {rc} ({}) arg={arg:?} einval={einval} in_callback={in_callback}",
            name(rc as i32)
        ));
    }
}

/// GH_FUZZ_TRACE=1: print every checked call (to see what an input does).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("GH_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

fn name(code: i32) -> String {
    // SAFETY: gh_err_name returns a static NUL-terminated string for every code.
    unsafe { CStr::from_ptr(gh_err_name(code)) }
        .to_string_lossy()
        .into_owned()
}

// ---- input decoding ----------------------------------------------------------

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn more(&self) -> bool {
        self.pos < self.data.len()
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | self.byte() as u64)
    }
}

/// Timeouts: do-not-wait, short, forever (several spellings), huge, NaN.
const TIMEOUTS: [f64; 10] = [
    0.0,
    0.0,
    0.0002,
    0.001,
    -1.0,
    -5.0,
    f64::INFINITY,
    f64::NAN,
    1e300,
    -0.0,
];

fn timeout(b: u8) -> f64 {
    TIMEOUTS[b as usize % TIMEOUTS.len()]
}

/// Picks a handle of one kind: a live one of `list`, a known stale one, zero, or a
/// forged value (8 more bytes).
fn pick(inp: &mut Input, list: &[u64], stale: &[u64]) -> (u64, Arg) {
    let s = inp.byte();
    match s % 8 {
        0..=4 if !list.is_empty() => (list[(s / 8) as usize % list.len()], Arg::Any),
        5 if !stale.is_empty() => (stale[(s / 8) as usize % stale.len()], Arg::Stale),
        6 => (0, Arg::Stale),
        7 => (inp.u64(), Arg::Any),
        _ => (0, Arg::Stale),
    }
}

// ---- greenlet entries and callbacks ----------------------------------------------

/// A greenlet's behaviour: `arg` = op | k << 8 | timeout << 16.
extern "C" fn entry(arg: *mut c_void) -> *mut c_void {
    let a = arg as usize;
    let (op, k, t) = (a & 0xFF, (a >> 8) & 0xFF, timeout(((a >> 16) & 0xFF) as u8));
    let nan = t.is_nan();
    let get = |f: fn(&Model) -> &Vec<u64>| {
        with(|m| f(m).get(k % f(m).len().max(1)).copied().unwrap_or(0))
    };
    match op % 14 {
        0 => {}
        1 => {
            for _ in 0..(k % 4) {
                let rc = gh_sleep(0.0);
                check(Api::Sleep, rc as i64, Arg::Any, false, false);
            }
        }
        2 => check(Api::Sleep, gh_sleep(t) as i64, Arg::Any, nan, false),
        3 => {
            let e = get(|m| &m.events);
            check(
                Api::EventWait,
                gh_event_wait(gh_event { id: e }, t) as i64,
                Arg::Any,
                nan,
                false,
            );
        }
        4 => {
            let q = get(|m| &m.queues);
            let mut item = null_mut();
            // SAFETY: item is a writable local.
            let rc = unsafe { gh_queue_get(gh_queue { id: q }, &mut item, t) };
            check(Api::QueueGet, rc as i64, Arg::Any, nan, false);
        }
        5 => {
            let q = get(|m| &m.queues);
            let rc = gh_queue_put(gh_queue { id: q }, arg, t);
            check(Api::QueuePut, rc as i64, Arg::Any, nan, false);
        }
        6 => {
            let s = get(|m| &m.sems);
            let rc = gh_sem_acquire(gh_sem { id: s }, t);
            check(Api::SemAcquire, rc as i64, Arg::Any, nan, false);
            if rc == OK {
                check(Api::Sleep, gh_sleep(0.0) as i64, Arg::Any, false, false);
                check(
                    Api::SemRelease,
                    gh_sem_release(gh_sem { id: s }) as i64,
                    Arg::Any,
                    false,
                    false,
                );
            }
        }
        7 => {
            let w = get(|m| &m.waiters);
            let mut v = null_mut();
            // SAFETY: v is a writable local.
            let rc = unsafe { gh_waiter_get(gh_waiter { id: w }, t, &mut v) };
            check(Api::WaiterGet, rc as i64, Arg::Any, nan, false);
        }
        8 => {
            let fd = with(|m| m.pipes.get(k % m.pipes.len().max(1)).map_or(-1, |p| p.0));
            let mut buf = [0u8; 16];
            // SAFETY: buf is writable for its length.
            let rc = unsafe { gh_read(fd, buf.as_mut_ptr().cast(), buf.len(), t) };
            check(Api::Read, rc as i64, Arg::Any, nan, false);
        }
        9 => {
            let mut got = null_mut();
            // SAFETY: got is a writable local.
            let rc = unsafe { gh_switch(gh_main(), arg, &mut got) };
            check(Api::Switch, rc as i64, Arg::Any, false, false);
        }
        10 => {
            let g = get(|m| &m.greenlets);
            let mut r = null_mut();
            // SAFETY: r is a writable local.
            let rc = unsafe { gh_join(gh_greenlet { id: g }, t, &mut r) };
            check(Api::Join, rc as i64, Arg::Any, nan, false);
        }
        11 => {
            // FAULTS 13: ignores GH_ECANCELED and keeps sleeping; every call must still
            // return (a killed greenlet's blocking calls fail at once).
            for _ in 0..3 {
                check(Api::Sleep, gh_sleep(0.0002) as i64, Arg::Any, false, false);
            }
        }
        12 => {
            let mut to = gh_timeout { id: 0 };
            // SAFETY: to is a writable local.
            let rc = unsafe { gh_timeout_start(&mut to, 0.0003) };
            check(Api::TimeoutStart, rc as i64, Arg::Any, false, false);
            let rc2 = gh_sleep(-1.0);
            check(Api::Sleep, rc2 as i64, Arg::Any, false, false);
            if rc == OK {
                if rc2 == OK || rc2 == ELOOPEXIT {
                    violation(format!(
                        "sleep(forever) under a 0.3 ms gh_timeout returned {rc2}"
                    ));
                }
                check(
                    Api::TimeoutCancel,
                    gh_timeout_cancel(to) as i64,
                    Arg::Any,
                    false,
                    false,
                );
            }
        }
        _ => {
            let w = get(|m| &m.watchers);
            check(
                Api::HubWait,
                gh_hub_wait(gh_watcher { id: w }) as i64,
                Arg::Any,
                false,
                false,
            );
        }
    }
    arg
}

/// A watcher callback's behaviour (`arg`): 0 nothing, 1 tries to block (must be
/// GH_EPERM), 2 stops itself, 3 closes itself, 4 spawns, 5 sets the first event.
extern "C" fn watcher_cb(w: gh_watcher, _revents: c_int, arg: *mut c_void) {
    in_callback(w, arg as usize);
}

extern "C" fn plain_cb(arg: *mut c_void) {
    in_callback(gh_watcher { id: 0 }, arg as usize);
}

fn in_callback(w: gh_watcher, what: usize) {
    match what % 7 {
        1 => check(Api::Sleep, gh_sleep(0.0) as i64, Arg::Any, false, true),
        2 if w.id != 0 => check(
            Api::WatcherStop,
            gh_watcher_stop(w) as i64,
            Arg::Any,
            false,
            true,
        ),
        3 if w.id != 0 => {
            let rc = gh_watcher_close(w);
            check(Api::ObjClose, rc as i64, Arg::Any, false, true);
        }
        4 => {
            // SAFETY: a valid entry function; out NULL = detached.
            let rc = unsafe { gh_spawn(null_mut(), Some(entry), null_mut()) };
            check(Api::Spawn, rc as i64, Arg::Any, false, true);
        }
        5 => {
            let e = with(|m| m.events.first().copied().unwrap_or(0));
            check(
                Api::EventSet,
                gh_event_set(gh_event { id: e }) as i64,
                Arg::Any,
                false,
                true,
            );
        }
        6 => {
            let mut to = gh_timeout { id: 0 };
            // SAFETY: to is a writable local.
            let rc = unsafe { gh_timeout_start(&mut to, 1.0) };
            if rc != EPERM {
                violation(format!("gh_timeout_start in a callback returned {rc}"));
            }
        }
        _ => {}
    }
}

// ---- main greenlet steps -----------------------------------------------------------

/// Runs a main-greenlet call that may block under a 1 ms gh_timeout, so that no
/// sequence can hang the target.
fn bounded<R>(f: impl FnOnce() -> R) -> R {
    let mut to = gh_timeout { id: 0 };
    // SAFETY: to is a writable local.
    let rc = unsafe { gh_timeout_start(&mut to, 0.001) };
    check(Api::TimeoutStart, rc as i64, Arg::Any, false, false);
    let r = f();
    if rc == OK {
        check(
            Api::TimeoutCancel,
            gh_timeout_cancel(to) as i64,
            Arg::Any,
            false,
            false,
        );
    }
    r
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map_or(0, |d| d.count())
        .saturating_sub(1)
}

/// gh_hub_destroy, then every handle is stale; the fd count must be the input's start
/// plus the pipe fds still open.
fn destroy() {
    let rc = gh_hub_destroy();
    check(Api::Destroy, rc as i64, Arg::Any, false, false);
    let (base, pipes) = with(|m| {
        let m = &mut *m;
        for list in [
            &mut m.greenlets,
            &mut m.watchers,
            &mut m.events,
            &mut m.results,
            &mut m.sems,
            &mut m.queues,
            &mut m.waiters,
            &mut m.timeouts,
        ] {
            m.stale.append(list);
        }
        (m.fd_base, m.pipes.len())
    });
    let n = fd_count();
    if n != base + 2 * pipes {
        violation(format!(
            "fd count after gh_hub_destroy: {n}, expected {base} + {} pipe fds",
            2 * pipes
        ));
    }
}

fn spawn_arg(inp: &mut Input) -> *mut c_void {
    let (op, k, t) = (inp.byte(), inp.byte(), inp.byte());
    (op as usize | (k as usize) << 8 | (t as usize) << 16) as *mut c_void
}

fn step(inp: &mut Input) {
    let op = inp.byte();
    match op % 32 {
        // spawn / spawn_ex / spawn_later, kept or detached
        0 => {
            let how = inp.byte();
            let arg = spawn_arg(inp);
            let mut g = gh_greenlet { id: 0 };
            let out: *mut gh_greenlet = if how & 0x80 != 0 { null_mut() } else { &mut g };
            let (api, rc, nan) = match how % 3 {
                0 => (
                    Api::Spawn,
                    unsafe { gh_spawn(out, Some(entry), arg) },
                    false,
                ),
                1 => {
                    let sizes = [0usize, 1, 4096, 16 * 1024 + 1, 64 * 1024, 1 << 31];
                    let opts = gh_spawn_options {
                        stack_size: sizes[(how as usize / 3) % sizes.len()],
                        name: c"fuzzed".as_ptr(),
                    };
                    // SAFETY: out NULL or a local; opts a local.
                    (
                        Api::SpawnEx,
                        unsafe { gh_spawn_ex(out, Some(entry), arg, &opts) },
                        false,
                    )
                }
                _ => {
                    let t = timeout(inp.byte());
                    // SAFETY: out NULL or a local.
                    (
                        Api::SpawnLater,
                        unsafe { gh_spawn_later(out, t, Some(entry), arg) },
                        t.is_nan(),
                    )
                }
            };
            check(api, rc as i64, Arg::Any, nan, false);
            if rc == OK && !out.is_null() {
                with(|m| m.greenlets.push(g.id));
            }
        }
        1 => {
            let (g, a) = pick_greenlet(inp);
            let t = timeout(inp.byte());
            let mut r = null_mut();
            // SAFETY: r is a writable local.
            let rc = bounded(|| unsafe { gh_join(gh_greenlet { id: g }, t, &mut r) });
            check(Api::Join, rc as i64, a, t.is_nan(), false);
        }
        2 => {
            let (g, a) = pick_greenlet(inp);
            let t = [0.0, 0.0005, f64::NAN, -1.0][inp.byte() as usize % 4];
            let rc = bounded(|| gh_kill(gh_greenlet { id: g }, t));
            check(Api::Kill, rc as i64, a, t.is_nan(), false);
        }
        3 => {
            let t = timeout(inp.byte());
            let rc = bounded(|| gh_sleep(t));
            check(Api::Sleep, rc as i64, Arg::Any, t.is_nan(), false);
        }
        4 => {
            let (g, a) = pick_greenlet(inp);
            let mut got = null_mut();
            // SAFETY: got is a writable local.
            let rc =
                bounded(|| unsafe { gh_switch(gh_greenlet { id: g }, 7 as *mut c_void, &mut got) });
            check(Api::Switch, rc as i64, a, false, false);
        }
        5 => {
            let (g, a) = pick_greenlet(inp);
            let code = if inp.byte() & 1 == 0 { THROWN } else { 5 };
            let rc = gh_throw(gh_greenlet { id: g }, code);
            check(Api::Throw, rc as i64, a, code >= 0, false);
        }
        6 => {
            let (g, a) = pick_greenlet(inp);
            let rc = gh_release(gh_greenlet { id: g });
            check(Api::Release, rc as i64, a, false, false);
            if rc == OK {
                with(|m| m.greenlets.retain(|&x| x != g));
            }
        }
        7 => {
            let (g, a) = pick_greenlet(inp);
            let g = gh_greenlet { id: g };
            check(Api::State, gh_greenlet_state(g) as i64, a, false, false);
            let mut buf = [0 as std::ffi::c_char; 8];
            // SAFETY: buf writable for its length; the name a static C string.
            unsafe {
                check(
                    Api::Name,
                    gh_greenlet_name(g, buf.as_mut_ptr(), buf.len()) as i64,
                    a,
                    false,
                    false,
                );
                check(
                    Api::SetName,
                    gh_greenlet_set_name(g, c"renamed-greenlet".as_ptr()) as i64,
                    a,
                    false,
                    false,
                );
                check(
                    Api::Name,
                    gh_greenlet_name(g, buf.as_mut_ptr(), buf.len()) as i64,
                    a,
                    false,
                    false,
                );
            }
        }
        8 => {
            let kind = inp.byte();
            let mut w = gh_watcher { id: 0 };
            let (api, rc, nan) = match kind % 7 {
                0 | 1 => {
                    let fd = pick_fd(inp);
                    let ev = [1, 2, 3, 0, 4, -1][inp.byte() as usize % 6];
                    // SAFETY: w is a writable local.
                    (Api::IoNew, unsafe { gh_io_new(&mut w, fd, ev) }, false)
                }
                2 => {
                    let (after, repeat) = (
                        timeout(inp.byte()),
                        [0.0, 0.0005, -1.0, f64::NAN][inp.byte() as usize % 4],
                    );
                    // SAFETY: w is a writable local.
                    (
                        Api::TimerNew,
                        unsafe { gh_timer_new(&mut w, after, repeat) },
                        after.is_nan() || repeat.is_nan(),
                    )
                }
                // SAFETY (all four): w is a writable local.
                3 => (Api::WatcherNew, unsafe { gh_prepare_new(&mut w) }, false),
                4 => (Api::WatcherNew, unsafe { gh_check_new(&mut w) }, false),
                5 => (Api::WatcherNew, unsafe { gh_idle_new(&mut w) }, false),
                _ => (Api::WatcherNew, unsafe { gh_async_new(&mut w) }, false),
            };
            check(api, rc as i64, Arg::Any, nan, false);
            if rc == OK {
                with(|m| m.watchers.push(w.id));
            }
        }
        9 => {
            let (w, a) = pick_watcher(inp);
            let what = inp.byte() as usize;
            let cb: gh_watcher_cb = if what & 0x80 != 0 {
                None
            } else {
                Some(watcher_cb)
            };
            let rc = gh_watcher_start(gh_watcher { id: w }, cb, what as *mut c_void);
            check(Api::WatcherStart, rc as i64, a, cb.is_none(), false);
        }
        10 => {
            let (w, a) = pick_watcher(inp);
            check(
                Api::WatcherStop,
                gh_watcher_stop(gh_watcher { id: w }) as i64,
                a,
                false,
                false,
            );
        }
        11 => {
            let (w, a) = pick_watcher(inp);
            let rc = gh_watcher_close(gh_watcher { id: w });
            check(Api::ObjClose, rc as i64, a, false, false);
            if rc == OK {
                with(|m| {
                    m.watchers.retain(|&x| x != w);
                    m.stale.push(w);
                });
            }
        }
        12 => {
            let (w, a) = pick_watcher(inp);
            let w = gh_watcher { id: w };
            check(
                Api::WatcherRef,
                gh_watcher_ref(w, inp.byte() as c_int & 1) as i64,
                a,
                false,
                false,
            );
            check(
                Api::WatcherActive,
                gh_watcher_active(w) as i64,
                a,
                false,
                false,
            );
            check(Api::AsyncSend, gh_async_send(w) as i64, a, false, false);
        }
        13 => {
            let (w, a) = pick_watcher(inp);
            let rc = bounded(|| gh_hub_wait(gh_watcher { id: w }));
            check(Api::HubWait, rc as i64, a, false, false);
        }
        14 => {
            let sub = inp.byte();
            if sub % 5 == 0 {
                let mut e = gh_event { id: 0 };
                // SAFETY: e is a writable local.
                let rc = unsafe { gh_event_new(&mut e) };
                check(Api::ObjNew, rc as i64, Arg::Any, false, false);
                if rc == OK {
                    with(|m| m.events.push(e.id));
                }
                return;
            }
            let (e, a) = pick_in(inp, |m| &m.events);
            let e = gh_event { id: e };
            match sub % 5 {
                1 => check(Api::EventSet, gh_event_set(e) as i64, a, false, false),
                2 => check(Api::EventClear, gh_event_clear(e) as i64, a, false, false),
                3 => {
                    let rc = gh_event_is_set(e);
                    check(Api::EventIsSet, rc as i64, a, false, false);
                    if rc > 1 {
                        violation(format!("gh_event_is_set returned {rc}"));
                    }
                }
                _ => close_obj(e.id, a, gh_event_close(e)),
            }
        }
        15 => {
            let (e, a) = pick_in(inp, |m| &m.events);
            let t = timeout(inp.byte());
            let rc = bounded(|| gh_event_wait(gh_event { id: e }, t));
            check(Api::EventWait, rc as i64, a, t.is_nan(), false);
        }
        16 => {
            let sub = inp.byte();
            if sub % 7 == 0 {
                let mut q = gh_queue { id: 0 };
                // SAFETY: q is a writable local.
                let rc = unsafe { gh_queue_new(&mut q, (sub / 7 % 3) as usize) };
                check(Api::ObjNew, rc as i64, Arg::Any, false, false);
                if rc == OK {
                    with(|m| m.queues.push(q.id));
                }
                return;
            }
            let (q, a) = pick_in(inp, |m| &m.queues);
            let q = gh_queue { id: q };
            let t = timeout(inp.byte());
            match sub % 7 {
                1 => {
                    let rc = bounded(|| gh_queue_put(q, 9 as *mut c_void, t));
                    check(Api::QueuePut, rc as i64, a, t.is_nan(), false);
                }
                2 => {
                    let mut item = null_mut();
                    // SAFETY: item is a writable local.
                    let rc = bounded(|| unsafe { gh_queue_get(q, &mut item, t) });
                    check(Api::QueueGet, rc as i64, a, t.is_nan(), false);
                }
                3 => {
                    // SAFETY: NULL item pointer: must be GH_EINVAL (or a handle error).
                    let rc = unsafe { gh_queue_get(q, null_mut(), 0.0) };
                    check(Api::QueueGet, rc as i64, a, true, false);
                }
                4 => check(Api::QueueLen, gh_queue_len(q) as i64, a, false, false),
                5 => check(Api::ObjClose, gh_queue_close(q) as i64, a, false, false),
                _ => close_obj(q.id, a, gh_queue_free(q)),
            }
        }
        17 => {
            let sub = inp.byte();
            if sub % 4 == 0 {
                let mut s = gh_sem { id: 0 };
                // SAFETY: s is a writable local.
                let rc = unsafe { gh_sem_new(&mut s, (sub / 4 % 3) as u32) };
                check(Api::ObjNew, rc as i64, Arg::Any, false, false);
                if rc == OK {
                    with(|m| m.sems.push(s.id));
                }
                return;
            }
            let (s, a) = pick_in(inp, |m| &m.sems);
            let s = gh_sem { id: s };
            match sub % 4 {
                1 => {
                    let t = timeout(inp.byte());
                    let rc = bounded(|| gh_sem_acquire(s, t));
                    check(Api::SemAcquire, rc as i64, a, t.is_nan(), false);
                }
                2 => check(Api::SemRelease, gh_sem_release(s) as i64, a, false, false),
                _ => close_obj(s.id, a, gh_sem_close(s)),
            }
        }
        18 => {
            let sub = inp.byte();
            if sub % 4 == 0 {
                let mut w = gh_waiter { id: 0 };
                // SAFETY: w is a writable local.
                let rc = unsafe { gh_waiter_new(&mut w) };
                check(Api::ObjNew, rc as i64, Arg::Any, false, false);
                if rc == OK {
                    with(|m| m.waiters.push(w.id));
                }
                return;
            }
            let (w, a) = pick_in(inp, |m| &m.waiters);
            let w = gh_waiter { id: w };
            match sub % 4 {
                1 => check(
                    Api::WaiterSwitch,
                    gh_waiter_switch(w, 3 as *mut c_void) as i64,
                    a,
                    false,
                    false,
                ),
                2 => {
                    let t = timeout(inp.byte());
                    let mut v = null_mut();
                    // SAFETY: v is a writable local.
                    let rc = bounded(|| unsafe { gh_waiter_get(w, t, &mut v) });
                    check(Api::WaiterGet, rc as i64, a, t.is_nan(), false);
                }
                _ => close_obj(w.id, a, gh_waiter_close(w)),
            }
        }
        19 => {
            let sub = inp.byte();
            if sub % 5 == 0 {
                let mut r = gh_result { id: 0 };
                // SAFETY: r is a writable local.
                let rc = unsafe { gh_result_new(&mut r) };
                check(Api::ObjNew, rc as i64, Arg::Any, false, false);
                if rc == OK {
                    with(|m| m.results.push(r.id));
                }
                return;
            }
            let (r, a) = pick_in(inp, |m| &m.results);
            let r = gh_result { id: r };
            match sub % 5 {
                1 => check(
                    Api::ResultSet,
                    gh_result_set(r, 4 as *mut c_void) as i64,
                    a,
                    false,
                    false,
                ),
                2 => {
                    let code = if sub & 0x80 != 0 { 1 } else { THROWN };
                    let rc = gh_result_set_error(r, code);
                    check(Api::ResultSetError, rc as i64, a, code >= 0, false);
                }
                3 => {
                    let t = timeout(inp.byte());
                    let mut v = null_mut();
                    // SAFETY: v is a writable local.
                    let rc = bounded(|| unsafe { gh_result_get(r, t, &mut v) });
                    check(Api::ResultGet, rc as i64, a, t.is_nan(), false);
                }
                _ => close_obj(r.id, a, gh_result_close(r)),
            }
        }
        20 => {
            if inp.byte() & 1 == 0 {
                let t = timeout(inp.byte());
                let mut to = gh_timeout { id: 0 };
                // SAFETY: to is a writable local.
                let rc = unsafe { gh_timeout_start(&mut to, t) };
                check(Api::TimeoutStart, rc as i64, Arg::Any, t.is_nan(), false);
                if rc == OK {
                    with(|m| m.timeouts.push(to.id));
                }
            } else {
                let (t, a) = pick_in(inp, |m| &m.timeouts);
                let rc = gh_timeout_cancel(gh_timeout { id: t });
                check(Api::TimeoutCancel, rc as i64, a, false, false);
                if rc == OK {
                    with(|m| {
                        m.timeouts.retain(|&x| x != t);
                        m.stale.push(t);
                    });
                }
            }
        }
        21 => {
            let n = with(|m| m.pipes.len());
            if n < 4 {
                let mut p = [0 as c_int; 2];
                // SAFETY: p is writable for two ints.
                if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
                    with(|m| {
                        m.pipes.push((p[0], p[1]));
                        m.closed.retain(|&c| c != p[0] && c != p[1]);
                    });
                }
            }
        }
        22 => {
            let fd = pick_fd(inp);
            let t = timeout(inp.byte());
            let ev = [1, 2, 3, 0, 8][inp.byte() as usize % 5];
            let rc = bounded(|| gh_wait_fd(fd, ev, t));
            check(
                Api::WaitFd,
                rc as i64,
                Arg::Any,
                t.is_nan() || ev == 0 || ev == 8,
                false,
            );
        }
        23 => {
            let fd = pick_fd(inp);
            let t = timeout(inp.byte());
            let len = inp.byte() as usize;
            let buf = [0x5Au8; 256];
            // SAFETY: buf readable for 256 >= len bytes.
            let rc = bounded(|| unsafe { gh_write(fd, buf.as_ptr().cast(), len, t) });
            check(Api::Write, rc as i64, Arg::Any, t.is_nan(), false);
            if rc >= 0 && rc as usize != len {
                violation(format!("gh_write wrote {rc} of {len} bytes"));
            }
        }
        24 => {
            let fd = pick_fd(inp);
            let t = timeout(inp.byte());
            let mut buf = [0u8; 64];
            // SAFETY: buf writable for its length.
            let rc = bounded(|| unsafe { gh_read(fd, buf.as_mut_ptr().cast(), buf.len(), t) });
            check(Api::Read, rc as i64, Arg::Any, t.is_nan(), false);
        }
        25 => {
            // gh_close (greenlets waiting on it wake with GH_ECLOSED) or the user's own
            // close(2) behind greenhub's back (FAULTS 28).
            let how = inp.byte();
            let n = with(|m| m.pipes.len());
            if n == 0 {
                return;
            }
            let (r, w) = with(|m| m.pipes.remove(how as usize / 2 % n));
            for fd in [r, w] {
                if how & 1 == 0 {
                    check(Api::Close, gh_close(fd) as i64, Arg::Any, false, false);
                } else {
                    // SAFETY: an fd this sequence owns.
                    unsafe { libc::close(fd) };
                }
            }
            with(|m| m.closed.extend([r, w]));
        }
        26 => {
            let t = [0.0, 0.0005, f64::NAN][inp.byte() as usize % 3];
            let rc = gh_hub_run_once(t);
            check(Api::RunOnce, rc as i64, Arg::Any, t.is_nan(), false);
            if rc > 1 {
                violation(format!("gh_hub_run_once returned {rc}"));
            }
        }
        27 => {
            let what = inp.byte() as usize;
            let cb: gh_callback_fn = if what == 0xFF { None } else { Some(plain_cb) };
            check(
                Api::RunCallback,
                gh_run_callback(cb, what as *mut c_void) as i64,
                Arg::Any,
                false,
                false,
            );
            let hub = if what & 1 == 0 {
                gh_hub_current()
            } else {
                gh_hub_ref { id: inp.u64() }
            };
            let rc = gh_hub_call_threadsafe(hub, cb, what as *mut c_void);
            check(Api::CallThreadsafe, rc as i64, Arg::Any, false, false);
        }
        28 => {
            let n = (inp.byte() % 4) as usize;
            let mut gs = Vec::with_capacity(n);
            let (mut stale, mut main) = (false, false);
            for _ in 0..n {
                let (g, a) = pick_greenlet(inp);
                stale |= a == Arg::Stale;
                main |= g == gh_main().id;
                gs.push(gh_greenlet { id: g });
            }
            let t = timeout(inp.byte());
            let mut done = usize::MAX;
            // SAFETY: gs readable for n handles; done a writable local.
            let rc = bounded(|| unsafe { gh_joinall(gs.as_ptr(), gs.len(), t, &mut done) });
            let arg = if stale { Arg::Stale } else { Arg::Any };
            check(Api::Joinall, rc as i64, arg, t.is_nan() || main, false);
            if rc == OK && done != n {
                violation(format!("gh_joinall OK with ndone {done} of {n}"));
            }
        }
        30 => wakes_reader(inp.byte()),
        31 => signal_wakes_watcher(inp.byte()),
        _ => destroy(),
    }
}

/// A reader greenlet's result (`wakes_reader`): i64::MIN while it has not returned.
static READ_DONE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);

extern "C" fn reader_entry(arg: *mut c_void) -> *mut c_void {
    let mut b = [0u8; 16];
    // SAFETY: b is writable for its length.
    let rc = unsafe { gh_recv(arg as usize as c_int, b.as_mut_ptr().cast(), b.len(), 0, 5.0) };
    READ_DONE.store(rc as i64, std::sync::atomic::Ordering::SeqCst);
    null_mut()
}

/// Runs the loop (main greenlet) until `done()` or about 1 s has passed; true if done.
fn run_until(done: impl Fn() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while !done() {
        if t0.elapsed() > std::time::Duration::from_secs(1) {
            return false;
        }
        // Its code is not what this checks (a pending gh_throw or gh_timeout of main may
        // end one iteration early): the loop just has to run.
        let _ = gh_hub_run_once(0.001);
    }
    true
}

/// Invariant: data written to a socket wakes the greenlet blocked reading it. A fresh
/// socketpair (nothing else in the sequence knows its fds), a reader greenlet parked in
/// gh_recv, then `how` decides how the data comes: gh_send from main, a plain write(2),
/// or gh_send in a greenlet; the reader must return (with the bytes, or an error it was
/// given) within ~1 s of loop iterations.
fn wakes_reader(how: u8) {
    let mut sv = [0 as c_int; 2];
    // SAFETY: sv is writable for two ints.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) } != 0 {
        return;
    }
    READ_DONE.store(i64::MIN, std::sync::atomic::Ordering::SeqCst);
    let mut g = gh_greenlet { id: 0 };
    // SAFETY: g is a writable local.
    let rc = unsafe { gh_spawn(&mut g, Some(reader_entry), sv[0] as usize as *mut c_void) };
    if rc == OK {
        // Let it start and park in gh_recv (a throw or timeout of main may cut a run short).
        for _ in 0..3 {
            let _ = gh_hub_run_once(0.0);
        }
        let x = [b'x'; 3];
        let n = (how % 3 + 1) as usize;
        let sent = if how & 0x10 != 0 {
            // SAFETY: x readable for n bytes.
            unsafe { libc::write(sv[1], x.as_ptr().cast(), n) as i64 }
        } else {
            // SAFETY: x readable for n bytes.
            unsafe { gh_send(sv[1], x.as_ptr().cast(), n, 0, 0.0) as i64 }
        };
        if sent != n as i64 {
            violation(format!("sending {n} bytes on a fresh socketpair gave {sent}"));
        }
        let done = || READ_DONE.load(std::sync::atomic::Ordering::SeqCst) != i64::MIN;
        if !run_until(done) {
            violation(format!(
                "{n} bytes written ({}) did not wake the greenlet reading them within ~1 s",
                if how & 0x10 != 0 { "write(2)" } else { "gh_send" }
            ));
        } else {
            let got = READ_DONE.load(std::sync::atomic::Ordering::SeqCst);
            if got != n as i64 && got >= 0 {
                violation(format!("the reader got {got} of {n} bytes written at once"));
            }
        }
        let _ = gh_kill(g, 0.0);
        let _ = gh_release(g);
    }
    for fd in sv {
        check(Api::Close, gh_close(fd) as i64, Arg::Any, false, false);
    }
}

static SIGNALLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_signal_cb(_w: gh_watcher, _revents: c_int, _arg: *mut c_void) {
    SIGNALLED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Invariant: a signal raised while its watcher is started fires the watcher (signals
/// reach the hub that watches them, through its wake-up eventfd): SIGUSR1 or SIGUSR2,
/// raised once or twice (coalesced: at least one firing).
fn signal_wakes_watcher(how: u8) {
    let sig = if how & 1 == 0 { libc::SIGUSR1 } else { libc::SIGUSR2 };
    let mut w = gh_watcher { id: 0 };
    // SAFETY: w is a writable local.
    if unsafe { gh_signal_new(&mut w, sig) } != OK {
        return;
    }
    SIGNALLED.store(0, std::sync::atomic::Ordering::SeqCst);
    if gh_watcher_start(w, Some(on_signal_cb), null_mut()) == OK {
        for _ in 0..(1 + (how >> 1) % 2) {
            // SAFETY: raise(3) with a signal whose disposition greenhub now handles.
            unsafe { libc::raise(sig) };
        }
        if !run_until(|| SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) > 0) {
            violation(format!("signal {sig} raised with its watcher started did not fire it within ~1 s"));
        }
    }
    check(Api::ObjClose, gh_watcher_close(w) as i64, Arg::Any, false, false);
}

fn pick_in(inp: &mut Input, f: fn(&Model) -> &Vec<u64>) -> (u64, Arg) {
    let (list, stale) = with(|m| (f(m).clone(), m.stale.clone()));
    pick(inp, &list, &stale)
}

fn pick_greenlet(inp: &mut Input) -> (u64, Arg) {
    match inp.byte() % 6 {
        0 => (gh_main().id, Arg::Any),
        1 => (gh_current().id, Arg::Any),
        _ => pick_in(inp, |m| &m.greenlets),
    }
}

fn pick_watcher(inp: &mut Input) -> (u64, Arg) {
    pick_in(inp, |m| &m.watchers)
}

/// An fd: a pipe end this sequence owns, one it closed (GH_EBADF unless reused), -1, or
/// one above any limit.
fn pick_fd(inp: &mut Input) -> c_int {
    let s = inp.byte();
    with(|m| match s % 6 {
        0..=2 if !m.pipes.is_empty() => {
            let p = m.pipes[(s / 6) as usize % m.pipes.len()];
            if s & 0x80 != 0 {
                p.1
            } else {
                p.0
            }
        }
        3 if !m.closed.is_empty() => m.closed[(s / 6) as usize % m.closed.len()],
        4 => -1,
        5 => 1 << 20,
        _ => -1,
    })
}

fn close_obj(id: u64, a: Arg, rc: c_int) {
    check(Api::ObjClose, rc as i64, a, false, false);
    if rc == OK {
        with(|m| {
            for list in [
                &mut m.events,
                &mut m.results,
                &mut m.sems,
                &mut m.queues,
                &mut m.waiters,
            ] {
                list.retain(|&x| x != id);
            }
            m.stale.push(id);
        });
    }
}

fn configure(b: u8) {
    let mut cfg = std::mem::MaybeUninit::<gh_hub_config>::zeroed();
    // SAFETY: fills the struct.
    unsafe { gh_hub_config_init(cfg.as_mut_ptr()) };
    // SAFETY: initialised by gh_hub_config_init.
    let mut cfg = unsafe { cfg.assume_init() };
    cfg.backend = match b % 4 {
        0 => null(),
        1 => c"epoll".as_ptr(),
        2 => c"polling".as_ptr(),
        _ => c"poll".as_ptr(),
    };
    cfg.stack_size = if b & 0x10 != 0 { 64 * 1024 } else { 0 };
    // SAFETY: cfg is a valid config.
    let rc = unsafe { gh_hub_configure(&cfg) };
    check(Api::Configure, rc as i64, Arg::Any, false, false);
    if rc != OK {
        violation(format!("gh_hub_configure before first use returned {rc}"));
    }
}

fuzz_target!(|data: &[u8]| {
    M.with(|m| *m.borrow_mut() = Model::default());
    let base = fd_count();
    with(|m| m.fd_base = base);
    let mut inp = Input { data, pos: 0 };
    configure(inp.byte());
    let mut steps = 0;
    while inp.more() && steps < 64 {
        if trace() {
            eprintln!("step {} (opcode {})", steps + 1, inp.data[inp.pos] % 30);
        }
        step(&mut inp);
        steps += 1;
        let v = with(|m| std::mem::take(&mut m.violations));
        assert!(v.is_empty(), "step {steps}: {v:#?}");
        if gh_current().id != gh_main().id {
            panic!("step {steps}: main's step returned while another greenlet is current");
        }
    }
    destroy();
    let pipes = with(|m| std::mem::take(&mut m.pipes));
    for (r, w) in pipes {
        // SAFETY: fds this sequence owns.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
    let v = with(|m| std::mem::take(&mut m.violations));
    assert!(v.is_empty(), "at the end: {v:#?}");
    let n = fd_count();
    assert_eq!(
        n, base,
        "fd count after gh_hub_destroy and closing the pipes"
    );
});
