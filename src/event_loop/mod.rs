//! The event loop's parts: the backend seam, timers, the fd registry and watchers.
//!
//! # The backend contract
//!
//! A backend watches fds for readiness, level-triggered, keyed by a `u64` token the
//! loop chooses. `add`/`modify`/`delete` return the raw errno on failure so the loop
//! can apply libev's recovery rules (`EEXIST`, `ENOENT`, `EPERM` for regular files).
//! `poll` waits at most `timeout_ms` (-1 = forever, 0 = don't wait), appends what is
//! ready to `out`, and treats `EINTR` as "nothing ready". A backend never allocates in
//! `poll` once `out` has grown to its working size. The hub's wake-up fd is an ordinary
//! registration with the token `WAKE_TOKEN`.
//!
//! Backends: `epoll` (the Linux default), `polling` (portable), `poll`, `select`
//! (select(2): fds below FD_SETSIZE only) and `plugin` (a C program's backend, behind
//! the same trait; its C-side contract is written at `gh_backend` in the header).
//! `make_backend` in `hub` picks one by name.

pub mod epoll;
pub mod fds;
pub mod plugin;
pub mod poll;
pub mod portable;
pub mod select;
pub mod timers;
pub mod watcher;

/// Readiness bits, as in the C API.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

/// Token of the hub's wake-up eventfd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// One ready registration.
#[derive(Copy, Clone, Debug)]
pub struct Ready {
    pub token: u64,
    /// READ | WRITE; errors and hang-ups are reported as both.
    pub events: u8,
}

/// The seam between the loop and the OS readiness API (mio's `sys`).
pub trait Backend {
    fn name(&self) -> &'static str;
    /// The same name, NUL-terminated (`gh_hub_backend`).
    fn c_name(&self) -> &'static std::ffi::CStr;
    /// The fd a host loop can poll to learn that this backend has events.
    fn fd(&self) -> i32;
    fn add(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32>;
    fn modify(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32>;
    fn delete(&mut self, fd: i32) -> Result<(), i32>;
    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> Result<(), i32>;
    /// True when a poll with timeout 0 is cheaper than one with a positive timeout that
    /// finds something ready at once: the kernel reads the clock for a positive timeout
    /// (epoll_wait, poll, select). Then a busy loop looks without waiting first.
    fn peek_is_cheap(&self) -> bool {
        false
    }
    /// Drops every registration (recreates the kernel object); the loop then registers
    /// what it needs again. Used when a stale registration cannot be removed otherwise.
    fn reset(&mut self) -> Result<(), i32>;
    /// Lets go of the backend in a forked child without touching kernel state the
    /// parent still uses (no epoll_ctl on a shared epoll instance): by default a drop.
    fn abandon(self: Box<Self>) {}
    /// Forgets the backend's fd without closing it: `poll` failed with `err` because the
    /// fd was closed behind greenhub's back (`EBADF`), or its number now holds another
    /// file (which must not be closed). A `reset` follows.
    fn disown(&mut self, err: i32) {
        let _ = err;
    }
    /// A new, empty backend of the same kind (a forked child's loop).
    fn fresh(&self) -> Result<Box<dyn Backend>, i32>;
}

/// The identity of the open file behind `fd` (st_dev, st_ino), or None if it is not
/// open. After fork, an inherited fd of greenhub's is closed only if its number still
/// holds the same file: the child may have closed it and opened its own there (issue
/// 15.6). (Anonymous-inode files — eventfd, epoll — share one inode: a new one of the
/// same kind at the same number cannot be told apart; a socket, pipe or file can.)
pub(crate) fn file_id(fd: i32) -> Option<(u64, u64)> {
    if fd < 0 {
        return None;
    }
    // SAFETY: fstat fills a local, zeroed struct stat.
    let mut sb: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut sb) } < 0 {
        return None;
    }
    Some((sb.st_dev, sb.st_ino))
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC: wall-clock jumps do not move it).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A duration in seconds as the API defines it: negative or +inf = forever,
/// NaN = invalid. Returns None for forever; huge values saturate far in the future.
#[inline]
pub fn duration_ns(seconds: f64) -> Result<Option<u64>, crate::error::Error> {
    // GH_FOREVER first (one compare: NaN compares false and is caught below).
    if seconds < 0.0 {
        return Ok(None);
    }
    if seconds.is_nan() {
        return Err(crate::error::Error::INVAL);
    }
    if seconds == f64::INFINITY {
        return Ok(None);
    }
    Ok(Some(seconds_ns(seconds)))
}

/// `seconds` (finite, >= 0 — or +inf, which saturates) in nanoseconds, rounded up;
/// huge values saturate at 2^62 ns (~146 years: never overflows when added to a
/// monotonic clock reading). `duration_ns` once its checks are done.
#[inline(always)]
pub fn seconds_ns(seconds: f64) -> u64 {
    debug_assert!(seconds >= 0.0);
    const CAP: f64 = (1u64 << 62) as f64;
    let ns = seconds * 1e9;
    if ns >= CAP {
        1u64 << 62
    } else {
        // ceil without libm's software ceil (no SSE4.1 roundsd in baseline x86-64: ~45
        // instructions per call): 0 <= ns < 2^62, so the truncation is exact to the unit.
        // Through i64 (cvttsd2si / cvtsi2sd), where a u64 conversion costs a dozen
        // instructions and branches per direction; the cast's saturation never applies.
        let t = ns as i64;
        (t + i64::from((t as f64) < ns)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns(0.0).unwrap(), Some(0));
        assert_eq!(duration_ns(1.5).unwrap(), Some(1_500_000_000));
        assert_eq!(duration_ns(-1.0).unwrap(), None);
        assert_eq!(duration_ns(f64::INFINITY).unwrap(), None);
        assert!(duration_ns(f64::NAN).is_err());
        // Rounded up to the nanosecond, exactly as f64::ceil would.
        for s in [
            1e-10f64,
            0.3e-9,
            1e-9,
            1.0000000001,
            0.1,
            0.3,
            1e-3 / 3.0,
            4e9,
            9.007e6,
            -0.0,
        ] {
            let want = if s < 0.0 { 0 } else { (s * 1e9).ceil() as u64 };
            assert_eq!(duration_ns(s).unwrap(), Some(want), "{s}");
        }
        let huge = duration_ns(1e300).unwrap().unwrap();
        assert!(now_ns().checked_add(huge).is_some());
    }
}
