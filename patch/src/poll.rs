//! The readiness interposers: poll, ppoll, select, pselect, epoll_wait, epoll_pwait.
//!
//! Each checks once without waiting (the real call with a zero timeout: its answer is
//! libc's, revents and fd sets included); if nothing is ready and the caller may park,
//! it parks on the hub watching every fd asked for (one greenhub io watcher each) until
//! one is ready or the call's timeout expires (then 0, as libc), and checks again.
//! A zero timeout, a signal mask (ppoll/pselect/epoll_pwait with a mask: its atomic
//! mask swap cannot be kept while other greenlets run), or nfds > FD_SETSIZE for
//! select: plain libc.

use crate::gh::{self, set_errno, Gh, Stop, GH_READ, GH_WRITE};
use crate::real;
use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};

/// greenhub events for poll events (0: nothing greenhub can watch, re-checked in slices).
fn gh_events(ev: libc::c_short) -> c_int {
    let mut e = 0;
    if ev & (libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLRDHUP) != 0 {
        e |= GH_READ;
    }
    if ev & (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND) != 0 {
        e |= GH_WRITE;
    }
    e
}

fn ms_deadline(timeout: c_int) -> Option<f64> {
    (timeout >= 0).then(|| gh::now() + timeout as f64 * 1e-3)
}

fn ts_secs(ts: &timespec) -> f64 {
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Milliseconds left until `deadline` for a plain poll (-1 forever).
fn ms_left(deadline: Option<f64>) -> c_int {
    deadline.map_or(-1, |d| ((d - gh::now()).max(0.0) * 1e3).ceil() as c_int)
}

/// The cooperative loop shared by every interposer here: `check()` is the real call with
/// a zero timeout; `fds` what to watch while nothing is ready; `plain(ms)` the real
/// call when parking is refused. The own timeout's expiry returns 0.
fn coop<I: Iterator<Item = (c_int, c_int)>>(
    g: &Gh,
    deadline: Option<f64>,
    fds: impl Fn() -> I,
    mut check: impl FnMut() -> c_int,
    plain: impl FnOnce(c_int) -> c_int,
) -> c_int {
    loop {
        let r = check();
        if r != 0 {
            return r;
        }
        match gh::wait_any(g, &fds, deadline) {
            Ok(()) => {}
            Err(Stop::Own) => return 0,
            Err(Stop::Errno(e)) => {
                set_errno(e);
                return -1;
            }
            Err(Stop::Plain) => return plain(ms_left(deadline)),
        }
    }
}

fn may_park() -> Option<&'static Gh> {
    gh::parkable().filter(|_| !crate::signal::in_handler())
}

/// poll(2), cooperative.
///
/// # Safety
/// As poll(2).
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if timeout != 0 && (nfds == 0 || !fds.is_null()) {
        if let Some(g) = may_park() {
            // SAFETY: the caller's array of nfds entries.
            return unsafe { poll_coop(g, fds, nfds, ms_deadline(timeout)) };
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::poll()(fds, nfds, timeout) }
}

/// # Safety
/// `fds` valid for `nfds` entries.
unsafe fn poll_coop(g: &Gh, fds: *mut pollfd, nfds: nfds_t, deadline: Option<f64>) -> c_int {
    // Read through the pointer each time: the real poll writes revents into the same
    // array between two looks.
    let list = || {
        (0..nfds as usize).map(move |i| {
            // SAFETY: i < nfds: inside the caller's array (valid per the contract).
            let p = unsafe { fds.add(i).read() };
            (p.fd, gh_events(p.events))
        })
    };
    coop(
        g,
        deadline,
        list,
        // SAFETY: the caller's array.
        || unsafe { real::poll()(fds, nfds, 0) },
        // SAFETY: the caller's array.
        |ms| unsafe { real::poll()(fds, nfds, ms) },
    )
}

/// ppoll(2), cooperative when `sigmask` is NULL.
///
/// # Safety
/// As ppoll(2).
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    if sigmask.is_null() && (nfds == 0 || !fds.is_null()) {
        // SAFETY: tmo is NULL or the caller's timespec.
        let t = unsafe { tmo.as_ref() }.map(ts_secs);
        if t != Some(0.0) && t.is_none_or(|t| t > 0.0) {
            if let Some(g) = may_park() {
                // SAFETY: the caller's array of nfds entries.
                return unsafe { poll_coop(g, fds, nfds, gh::deadline_after(t)) };
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::ppoll()(fds, nfds, tmo, sigmask) }
}

/// The select interposers' core; `t` the timeout in seconds (None: forever).
///
/// # Safety
/// The sets NULL or valid.
unsafe fn select_coop(
    g: &Gh,
    nfds: c_int,
    rd: *mut fd_set,
    wr: *mut fd_set,
    ex: *mut fd_set,
    t: Option<f64>,
) -> c_int {
    let deadline = gh::deadline_after(t);
    // SAFETY: each set NULL or the caller's.
    let (r0, w0, e0) = unsafe {
        (
            rd.as_ref().copied(),
            wr.as_ref().copied(),
            ex.as_ref().copied(),
        )
    };
    let isset = |s: &Option<fd_set>, fd: c_int| {
        // SAFETY: fd < nfds <= FD_SETSIZE.
        s.as_ref().is_some_and(|s| unsafe { libc::FD_ISSET(fd, s) })
    };
    let list = || {
        (0..nfds).filter_map(|fd| {
            let (r, w, e) = (isset(&r0, fd), isset(&w0, fd), isset(&e0, fd));
            let ev = if r { GH_READ } else { 0 } | if w { GH_WRITE } else { 0 };
            (r || w || e).then_some((fd, ev))
        })
    };
    let opt = |s: &mut Option<fd_set>| {
        s.as_mut()
            .map_or(std::ptr::null_mut(), |s| s as *mut fd_set)
    };
    let put = |dst: *mut fd_set, src: Option<fd_set>| {
        if let (false, Some(s)) = (dst.is_null(), src) {
            // SAFETY: dst is the caller's set.
            unsafe { *dst = s };
        }
    };
    let r = coop(
        g,
        deadline,
        list,
        || {
            let (mut a, mut b, mut c) = (r0, w0, e0);
            let mut zero = timeval {
                tv_sec: 0,
                tv_usec: 0,
            };
            // SAFETY: copies of the caller's sets and a zero timeout.
            let n =
                unsafe { real::select()(nfds, opt(&mut a), opt(&mut b), opt(&mut c), &mut zero) };
            if n > 0 {
                put(rd, a);
                put(wr, b);
                put(ex, c);
            }
            n
        },
        |ms| {
            let mut tv = timeval {
                tv_sec: (ms.max(0) / 1000) as _,
                tv_usec: ((ms.max(0) % 1000) * 1000) as _,
            };
            let tvp = if ms < 0 {
                std::ptr::null_mut()
            } else {
                &mut tv as *mut timeval
            };
            // SAFETY: the caller's sets.
            unsafe { real::select()(nfds, rd, wr, ex, tvp) }
        },
    );
    if r == 0 {
        for s in [rd, wr, ex] {
            if !s.is_null() {
                // SAFETY: the caller's set.
                unsafe { libc::FD_ZERO(s) };
            }
        }
    }
    r
}

/// select(2), cooperative (Linux: the timeout is updated to the time not slept).
///
/// # Safety
/// As select(2).
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    rd: *mut fd_set,
    wr: *mut fd_set,
    ex: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    // SAFETY: tv is NULL or the caller's timeval.
    let t = unsafe { tv.as_ref() }.map(|t| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6);
    if (0..=libc::FD_SETSIZE as c_int).contains(&nfds) && t.is_none_or(|t| t > 0.0) {
        if let Some(g) = may_park() {
            let start = gh::now();
            // SAFETY: the caller's sets.
            let r = unsafe { select_coop(g, nfds, rd, wr, ex, t) };
            // SAFETY: tv is NULL or the caller's timeval.
            let tvm = unsafe { tv.as_mut() };
            if let (Some(t), Some(tv)) = (t, tvm) {
                let left = (t - (gh::now() - start)).max(0.0);
                tv.tv_sec = left.trunc() as _;
                tv.tv_usec = ((left.fract() * 1e6) as i64).min(999_999) as _;
            }
            return r;
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::select()(nfds, rd, wr, ex, tv) }
}

/// pselect(2), cooperative when `sigmask` is NULL.
///
/// # Safety
/// As pselect(2).
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    rd: *mut fd_set,
    wr: *mut fd_set,
    ex: *mut fd_set,
    ts: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: ts is NULL or the caller's timespec.
    let t = unsafe { ts.as_ref() }.map(ts_secs);
    if sigmask.is_null()
        && (0..=libc::FD_SETSIZE as c_int).contains(&nfds)
        && t.is_none_or(|t| t > 0.0)
    {
        if let Some(g) = may_park() {
            // SAFETY: the caller's sets.
            return unsafe { select_coop(g, nfds, rd, wr, ex, t) };
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::pselect()(nfds, rd, wr, ex, ts, sigmask) }
}

/// epoll_wait(2) on an epoll fd the program owns, cooperative (the epoll fd itself is
/// watched: it is readable when one of its events is ready). greenhub's own backend
/// calls it from the hub: plain libc there.
///
/// # Safety
/// As epoll_wait(2).
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    if timeout != 0 {
        if let Some(g) = may_park() {
            return coop(
                g,
                ms_deadline(timeout),
                || std::iter::once((epfd, GH_READ)),
                // SAFETY: the caller's arguments with a zero timeout.
                || unsafe { real::epoll_wait()(epfd, events, max, 0) },
                // SAFETY: the caller's arguments.
                |ms| unsafe { real::epoll_wait()(epfd, events, max, ms) },
            );
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::epoll_wait()(epfd, events, max, timeout) }
}

/// epoll_pwait(2): as epoll_wait when `sigmask` is NULL, plain libc otherwise.
///
/// # Safety
/// As epoll_pwait(2).
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    if sigmask.is_null() {
        // SAFETY: the caller's arguments.
        return unsafe { epoll_wait(epfd, events, max, timeout) };
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::epoll_pwait()(epfd, events, max, timeout, sigmask) }
}

/// The fortified poll (`_FORTIFY_SOURCE`).
///
/// # Safety
/// As poll(2); `fdslen` is the size of the array in bytes.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    fdslen: libc::size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < nfds as usize {
        // SAFETY: libc's check reports the overflow.
        return unsafe { real::__poll_chk()(fds, nfds, timeout, fdslen) };
    }
    // SAFETY: the array holds nfds entries.
    unsafe { poll(fds, nfds, timeout) }
}

/// The fortified ppoll (`_FORTIFY_SOURCE`).
///
/// # Safety
/// As ppoll(2); `fdslen` is the size of the array in bytes.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const timespec,
    sigmask: *const sigset_t,
    fdslen: libc::size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < nfds as usize {
        // SAFETY: libc's check reports the overflow.
        return unsafe { real::__ppoll_chk()(fds, nfds, tmo, sigmask, fdslen) };
    }
    // SAFETY: the array holds nfds entries.
    unsafe { ppoll(fds, nfds, tmo, sigmask) }
}
