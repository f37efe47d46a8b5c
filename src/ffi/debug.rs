//! Header section "Testing hooks".

use super::guard;
use crate::error::Error;
use std::ffi::{c_int, c_uint};

/// gh_debug_fail_nth `what`: mmap — reserving greenlet stack regions, mapping a thread's
/// alternate signal stack (fails with ENOMEM).
pub const GH_FAIL_MMAP: c_int = 1;
/// gh_debug_fail_nth `what`: madvise — installing a stack's guard page (ENOMEM), returning
/// a free stack's pages (its failure only keeps the pages).
pub const GH_FAIL_MADVISE: c_int = 2;
/// gh_debug_fail_nth `what`: malloc. Refused (GH_ENOTSUP): the library never allocates
/// fallibly — an allocation failure aborts the process, as in any Rust program.
pub const GH_FAIL_MALLOC: c_int = 3;
/// gh_debug_fail_nth `what`: epoll_ctl of the epoll backend (ENOMEM); the "polling"
/// backend's calls are inside that crate and are not covered.
pub const GH_FAIL_EPOLL_CTL: c_int = 4;
/// gh_debug_fail_nth `what`: eventfd — the hub's wake-up fd (EMFILE).
pub const GH_FAIL_EVENTFD: c_int = 5;
/// gh_debug_fail_nth `what`: epoll_create1 of the epoll backend (EMFILE).
pub const GH_FAIL_EPOLL_CREATE: c_int = 6;
/// gh_debug_fail_nth `what`: starting a thread-pool worker thread (EAGAIN).
pub const GH_FAIL_THREAD: c_int = 7;

/// Test hook: makes the `n`-th call from now at the sites of kind `what` (a GH_FAIL_*
/// value) fail with the errno that call would fail with; `n` 0 disarms. Only in a
/// library built with the cargo feature `fault-injection` (never in a release build);
/// otherwise it returns GH_ENOTSUP, so programs link against either build.
///
/// Returns the countdown it replaced: 0 when `what` was disarmed or its armed failure has
/// happened, N > 0 when N more calls were still to come (so `gh_debug_fail_nth(what, 0)`
/// after an operation tells whether the failure fired).
///
/// *Threads*: any thread; the counters are process-wide. *Blocking*: never.
/// *Errors*: GH_ENOTSUP (built without `fault-injection`, or `what` is GH_FAIL_MALLOC),
/// GH_EINVAL (`what` unknown).
#[no_mangle]
pub extern "C" fn gh_debug_fail_nth(what: c_int, n: c_uint) -> c_int {
    guard(|| {
        use crate::fault::Site;
        let site = match what {
            GH_FAIL_MMAP => Site::Mmap,
            GH_FAIL_MADVISE => Site::Madvise,
            GH_FAIL_MALLOC => return Err(Error::NOTSUP),
            GH_FAIL_EPOLL_CTL => Site::EpollCtl,
            GH_FAIL_EVENTFD => Site::Eventfd,
            GH_FAIL_EPOLL_CREATE => Site::EpollCreate,
            GH_FAIL_THREAD => Site::Thread,
            _ => return Err(Error::INVAL),
        };
        arm(site, n)
    })
}

#[cfg(feature = "fault-injection")]
fn arm(site: crate::fault::Site, n: c_uint) -> crate::error::Result<c_int> {
    Ok(crate::fault::arm(site, n).min(c_int::MAX as u32) as c_int)
}

#[cfg(not(feature = "fault-injection"))]
fn arm(_site: crate::fault::Site, _n: c_uint) -> crate::error::Result<c_int> {
    Err(Error::NOTSUP)
}
