//! libgreenhub, found at run time, and the one question every interposer asks first:
//! may this call park its caller?
//!
//! libgreenhub is not linked in: its functions are looked up with
//! `dlsym(RTLD_DEFAULT, "gh_...")`, so whichever copy the program uses (normally
//! libgreenhub.so) is the one the patch talks to, and a program without greenhub gets
//! plain libc. The lookup happens on the first interposed call, and in each library
//! `dlopen` returns while libgreenhub is missing (a program may load it late, even
//! RTLD_LOCAL: the Python binding).
//!
//! # Recursion: why greenhub's own calls never come back through the patch
//! greenhub's core calls `read`, `write`, `close`, `poll`, `epoll_wait`… through the
//! PLT, so with the patch loaded they land here. `gh_hub_context()` (libgreenhub) tells
//! where the caller runs, from the hub's own thread-local state:
//! * the loop, watcher callbacks and `gh_run_callback` functions run as the hub
//!   (`GH_CONTEXT_HUB`): plain libc — this covers the backend's `epoll_wait`/`poll`,
//!   the eventfd reads, the pidfd closes;
//! * threads without a hub (`GH_CONTEXT_NONE`: the thread pool's workers running
//!   getaddrinfo, the monitor thread): plain libc;
//! * greenhub code running on a greenlet's or main's stack only ever does I/O on fds
//!   it made non-blocking itself (`gh_read`, `gh_connect`…) or with a zero timeout
//!   (`poll(…, 0)`): the interposer tries the call without waiting, sees the
//!   program-visible `O_NONBLOCK` on `EAGAIN`, and returns `EAGAIN` as libc would. The
//!   patch never waits on behalf of such a call, so it never re-enters the hub.
//!
//! The patch itself calls only the real libc symbols (`real::*`) and libgreenhub.

use libc::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// A greenhub handle (`gh_watcher`, `gh_event`): `struct { uint64_t id; }` by value.
#[repr(C)]
#[derive(Copy, Clone, Default)]
pub struct Handle {
    pub id: u64,
}

type WatcherCb = unsafe extern "C" fn(Handle, c_int, *mut c_void);
type PoolFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

/// The libgreenhub functions the patch uses.
pub struct Gh {
    pub context: unsafe extern "C" fn() -> c_int,
    pub wait_fd: unsafe extern "C" fn(c_int, c_int, f64) -> c_int,
    pub sleep: unsafe extern "C" fn(f64) -> c_int,
    pub io_new: unsafe extern "C" fn(*mut Handle, c_int, c_int) -> c_int,
    pub watcher_start: unsafe extern "C" fn(Handle, WatcherCb, *mut c_void) -> c_int,
    pub watcher_close: unsafe extern "C" fn(Handle) -> c_int,
    pub event_new: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub event_set: unsafe extern "C" fn(Handle) -> c_int,
    pub event_wait: unsafe extern "C" fn(Handle, f64) -> c_int,
    pub event_close: unsafe extern "C" fn(Handle) -> c_int,
    pub getaddrinfo: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        *const libc::addrinfo,
        *mut *mut libc::addrinfo,
    ) -> c_int,
    pub threadpool_apply: unsafe extern "C" fn(PoolFn, *mut c_void, *mut *mut c_void) -> c_int,
}

// greenhub's codes (include/greenhub.h).
pub const GH_READ: c_int = 1;
pub const GH_WRITE: c_int = 2;
pub const GH_CONTEXT_MAIN: c_int = 1;
pub const GH_CONTEXT_GREENLET: c_int = 2;
pub const GH_EPERM: c_int = -1;
pub const GH_ETIMEDOUT: c_int = -110;
pub const GH_ECLOSED: c_int = -1006;
pub const GH_ELOOPEXIT: c_int = -1003;
pub const GH_EAI_BASE: c_int = -2000;

/// libgreenhub's functions, once found (set once, never freed).
static TABLE: OnceLock<Gh> = OnceLock::new();
static BUSY: AtomicBool = AtomicBool::new(false);

/// `GREENHUB_PATCH=0|off|false|no` turns the patch into plain libc.
fn disabled_by_env() -> bool {
    // SAFETY: getenv with a NUL-terminated name; the result is read before returning.
    let v = unsafe { libc::getenv(c"GREENHUB_PATCH".as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes();
    matches!(
        v,
        b"0" | b"off" | b"OFF" | b"Off" | b"false" | b"FALSE" | b"no" | b"NO"
    )
}

fn sym(from: *mut c_void, name: &std::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: a NUL-terminated name; `from` is RTLD_DEFAULT (the global scope) or a
    // handle dlopen just returned.
    let p = unsafe { libc::dlsym(from, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

// Each transmute's target is the Gh field it initialises (its C prototype).
#[allow(clippy::missing_transmute_annotations)]
fn build(from: *mut c_void) -> Option<Gh> {
    macro_rules! f {
        ($name:literal) => {{
            let p = sym(from, $name)?;
            // SAFETY: p is libgreenhub's exported function of that name; the field's
            // type is its prototype in include/greenhub.h.
            unsafe { std::mem::transmute::<*mut c_void, _>(p) }
        }};
    }
    Some(Gh {
        context: f!(c"gh_hub_context"),
        wait_fd: f!(c"gh_wait_fd"),
        sleep: f!(c"gh_sleep"),
        io_new: f!(c"gh_io_new"),
        watcher_start: f!(c"gh_watcher_start"),
        watcher_close: f!(c"gh_watcher_close"),
        event_new: f!(c"gh_event_new"),
        event_set: f!(c"gh_event_set"),
        event_wait: f!(c"gh_event_wait"),
        event_close: f!(c"gh_event_close"),
        getaddrinfo: f!(c"gh_getaddrinfo"),
        threadpool_apply: f!(c"gh_threadpool_apply"),
    })
}

/// libgreenhub's functions, or None when the patch is off (GREENHUB_PATCH=0, no
/// libgreenhub in the process yet, or a call made while another thread initialises).
#[inline(always)]
pub fn gh() -> Option<&'static Gh> {
    if ON.load(Ordering::Acquire) == ON_YES {
        // SAFETY: ON is ON_YES only after TABLE was set (Release store in init_slow).
        return Some(unsafe { TABLE.get().unwrap_unchecked() });
    }
    init_slow()
}

const ON_UNKNOWN: u8 = 0;
const ON_YES: u8 = 1;
/// libgreenhub not in the process: plain libc until a dlopen (then looked up again).
const ON_ABSENT: u8 = 2;
/// GREENHUB_PATCH=0: plain libc for good.
const ON_DISABLED: u8 = 3;
static ON: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(ON_UNKNOWN);

/// True when the patch is on (libgreenhub found, GREENHUB_PATCH not off).
#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed) == ON_YES || on_slow()
}

#[cold]
fn on_slow() -> bool {
    init_slow().is_some()
}

#[cold]
fn init_slow() -> Option<&'static Gh> {
    match ON.load(Ordering::Acquire) {
        ON_ABSENT | ON_DISABLED => return None,
        // SAFETY: as in gh().
        ON_YES => return Some(unsafe { TABLE.get().unwrap_unchecked() }),
        _ => {}
    }
    // One initialiser; a re-entrant or concurrent first call is plain libc (never a
    // deadlock).
    if BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    let state = if disabled_by_env() {
        ON_DISABLED
    } else if TABLE.get().is_some() {
        ON_YES
    } else if let Some(t) = build(libc::RTLD_DEFAULT) {
        let _ = TABLE.set(t);
        ON_YES
    } else {
        ON_ABSENT
    };
    ON.store(state, Ordering::Release);
    BUSY.store(false, Ordering::Release);
    TABLE.get().filter(|_| state == ON_YES)
}

/// dlopen returned `handle`: if libgreenhub was missing, it may be this one (a program
/// that loads libgreenhub late — the Python binding, with RTLD_LOCAL — gets the patch
/// from then on).
pub fn library_loaded(handle: *mut c_void) {
    if ON.load(Ordering::Acquire) == ON_UNKNOWN {
        init_slow();
    }
    if ON.load(Ordering::Acquire) != ON_ABSENT || BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    if let Some(t) = build(handle).or_else(|| build(libc::RTLD_DEFAULT)) {
        let _ = TABLE.set(t);
        ON.store(ON_YES, Ordering::Release);
    }
    BUSY.store(false, Ordering::Release);
}

/// libgreenhub's functions if the caller may park: this thread has a hub and the caller
/// is its main greenlet or a spawned greenlet (not the hub, not a callback).
#[inline(always)]
pub fn parkable() -> Option<&'static Gh> {
    let g = gh()?;
    // SAFETY: gh_hub_context takes nothing, never blocks, never creates a hub.
    let c = unsafe { (g.context)() };
    if c == GH_CONTEXT_MAIN || c == GH_CONTEXT_GREENLET {
        Some(g)
    } else {
        None
    }
}

/// CLOCK_MONOTONIC in seconds.
pub fn now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `Some(now + t)` for a positive finite t, None (forever) otherwise.
pub fn deadline_after(t: Option<f64>) -> Option<f64> {
    t.filter(|t| t.is_finite() && *t >= 0.0).map(|t| now() + t)
}

pub fn errno() -> c_int {
    // SAFETY: errno's location is valid for this thread.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// Why a wait ended without the fd becoming ready.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The call's own timeout (SO_RCVTIMEO, poll's timeout…) expired.
    Own,
    /// Parking was refused after all (GH_EPERM): do the plain blocking call.
    Plain,
    /// End the call with this errno: ECANCELED (gh_kill), ETIMEDOUT (gh_timeout), a
    /// gh_throw code, EBADF (the fd was gh_close'd).
    Errno(c_int),
}

/// Maps a greenhub code that ended a wait with deadline `deadline`.
pub fn stop_of(code: c_int, deadline: Option<f64>) -> Stop {
    match code {
        GH_ETIMEDOUT => match deadline {
            Some(d) if now() >= d - 1e-6 => Stop::Own,
            _ => Stop::Errno(libc::ETIMEDOUT),
        },
        GH_EPERM => Stop::Plain,
        GH_ECLOSED => Stop::Errno(libc::EBADF),
        GH_ELOOPEXIT => Stop::Errno(libc::EDEADLK),
        c if (-4095..0).contains(&c) => Stop::Errno(-c),
        _ => Stop::Errno(libc::EIO),
    }
}

/// Seconds left until `deadline` for a greenhub call (-1 = forever), or Own if passed.
fn left(deadline: Option<f64>) -> Result<f64, Stop> {
    match deadline {
        None => Ok(-1.0),
        Some(d) => {
            let l = d - now();
            if l <= 0.0 {
                Err(Stop::Own)
            } else {
                Ok(l)
            }
        }
    }
}

/// Parks the caller until `fd` is ready for `events` (GH_READ/GH_WRITE) or the wait stops.
pub fn wait_fd(g: &Gh, fd: c_int, events: c_int, deadline: Option<f64>) -> Result<(), Stop> {
    let t = left(deadline)?;
    // SAFETY: plain values; gh_wait_fd parks only the calling greenlet.
    let r = unsafe { (g.wait_fd)(fd, events, t) };
    if r > 0 {
        Ok(())
    } else {
        Err(stop_of(r, deadline))
    }
}

/// Parks the caller until `deadline` (None: forever).
pub fn sleep_until(g: &Gh, deadline: Option<f64>) -> Result<(), Stop> {
    let t = left(deadline)?;
    // SAFETY: a plain value; gh_sleep parks only the calling greenlet.
    let r = unsafe { (g.sleep)(t) };
    match r {
        0 if deadline.is_some() => Err(Stop::Own),
        0 => Ok(()),
        r => Err(stop_of(r, deadline)),
    }
}

/// A short list kept on the caller's stack, longer ones on the heap. Lists that live
/// across a park use it: if gh_hub_destroy discards the parked greenlet's stack, a
/// stack array leaves nothing behind (a Vec would leak: only past N entries).
pub struct Small<T: Copy + Default, const N: usize> {
    arr: [T; N],
    vec: Vec<T>,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Small<T, N> {
    fn default() -> Self {
        Self {
            arr: [T::default(); N],
            vec: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> Small<T, N> {
    pub fn push(&mut self, v: T) {
        if self.len < N {
            self.arr[self.len] = v;
        } else {
            if self.vec.is_empty() {
                self.vec.extend_from_slice(&self.arr);
            }
            self.vec.push(v);
        }
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[T] {
        if self.len <= N {
            &self.arr[..self.len]
        } else {
            &self.vec
        }
    }
}

unsafe extern "C" fn wake_event(_w: Handle, _revents: c_int, arg: *mut c_void) {
    if let Some(g) = gh() {
        // SAFETY: arg carries the id of the event wait_any created and still owns.
        unsafe { (g.event_set)(Handle { id: arg as u64 }) };
    }
}

/// Parks the caller until one of `fds()` (fd, GH_READ|GH_WRITE; 0 = watch nothing, just
/// re-check every 10 ms; a function, so no list is held across the park) is ready, or the wait stops. Ok also for a spurious wake: the
/// caller re-checks with the real call.
pub fn wait_any<I: Iterator<Item = (c_int, c_int)>>(
    g: &Gh,
    fds: impl Fn() -> I,
    deadline: Option<f64>,
) -> Result<(), Stop> {
    let watched = fds().filter(|(fd, ev)| *fd >= 0 && *ev != 0).count();
    let unwatched = fds().any(|(fd, ev)| fd >= 0 && ev == 0);
    // An entry greenhub cannot watch (POLLPRI only, errors only) is re-checked in slices.
    let slice_deadline = |d: Option<f64>| {
        let s = now() + 0.01;
        Some(d.map_or(s, |d| d.min(s)))
    };
    let eff = if unwatched {
        slice_deadline(deadline)
    } else {
        deadline
    };
    let map_slice = |e: Stop| match e {
        Stop::Own if eff != deadline && deadline.is_none_or(|d| now() < d - 1e-6) => Ok(()),
        e => Err(e),
    };
    if watched == 0 {
        return sleep_until(g, eff).or_else(map_slice);
    }
    if watched == 1 {
        let (fd, ev) = fds().find(|(fd, ev)| *fd >= 0 && *ev != 0).unwrap();
        return wait_fd(g, fd, ev, eff).or_else(map_slice);
    }
    let t = left(eff).or_else(|e| map_slice(e).map(|()| 0.0))?;
    if t == 0.0 {
        return Ok(());
    }
    let mut ev = Handle::default();
    // SAFETY: ev is a valid out-pointer.
    if unsafe { (g.event_new)(&mut ev) } != 0 {
        return Err(Stop::Errno(libc::ENOMEM));
    }
    let mut ws: Small<Handle, 64> = Small::default();
    for (fd, events) in fds() {
        if fd < 0 || events == 0 {
            continue;
        }
        let mut w = Handle::default();
        // SAFETY: w is a valid out-pointer; the callback and its argument (the event's
        // id) stay valid until the watcher is closed below.
        unsafe {
            if (g.io_new)(&mut w, fd, events) == 0 {
                (g.watcher_start)(w, wake_event, ev.id as *mut c_void);
                ws.push(w);
            }
        }
    }
    // SAFETY: ev is ours; the watchers set it from the hub.
    let r = unsafe { (g.event_wait)(ev, t) };
    for &w in ws.as_slice() {
        // SAFETY: w is ours and still open.
        unsafe { (g.watcher_close)(w) };
    }
    // SAFETY: ev is ours and no watcher refers to it any more.
    unsafe { (g.event_close)(ev) };
    if r == 0 {
        Ok(())
    } else {
        map_slice(stop_of(r, eff))
    }
}
