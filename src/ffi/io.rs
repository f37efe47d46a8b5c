//! Header section "Cooperative I/O" (the waits; read/write/... come with the I/O issue).

use super::guard;
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use std::ffi::c_int;

use super::watcher::{GH_READ, GH_WRITE};

/// Waits until `fd` is ready for `events` (GH_READ, GH_WRITE or both) and returns the
/// ready events (> 0). No wake-up is lost whether or not the fd is ready when the call
/// starts. `timeout` 0 checks once without waiting.
///
/// Close a watched fd only when nothing waits on it. If you close() an fd and reuse its
/// number while a `dup` of the old file lives, and wait on the new fd within the same
/// loop iteration, the old file's readiness may wake that wait spuriously — at most 64
/// times (the read then fails with EAGAIN) before greenhub verifies the registration and
/// drops the stale one. Any wait can in principle wake spuriously: handle EAGAIN.
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_EBADF (`fd` negative or not open), GH_EINVAL (bad `events`,
/// NaN timeout), GH_EPERM (hub callback), GH_ECANCELED (the caller was killed), a gh_throw
/// code, GH_ELOOPEXIT (main greenlet, nothing could make it ready — cannot happen for a
/// real fd wait, which keeps the loop alive).
#[no_mangle]
pub extern "C" fn gh_wait_fd(fd: c_int, events: c_int, timeout: f64) -> c_int {
    guard(|| {
        if events == 0 || events & !(GH_READ | GH_WRITE) != 0 {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        if fd < 0 {
            return Err(Error::BADF);
        }
        hub::current()?.wait_fd(fd, events as u8, t)
    })
}

/// gh_wait_fd(fd, GH_READ, timeout), returning GH_OK when readable.
///
/// *Threads*, *Blocking*, *Errors*: as gh_wait_fd.
#[no_mangle]
pub extern "C" fn gh_wait_read(fd: c_int, timeout: f64) -> c_int {
    let r = gh_wait_fd(fd, GH_READ, timeout);
    if r > 0 {
        0
    } else {
        r
    }
}

/// gh_wait_fd(fd, GH_WRITE, timeout), returning GH_OK when writable.
///
/// *Threads*, *Blocking*, *Errors*: as gh_wait_fd.
#[no_mangle]
pub extern "C" fn gh_wait_write(fd: c_int, timeout: f64) -> c_int {
    let r = gh_wait_fd(fd, GH_WRITE, timeout);
    if r > 0 {
        0
    } else {
        r
    }
}
