//! Test-only fault injection (cargo feature `fault-injection`, off by default and in
//! release builds): `gh_debug_fail_nth(what, n)` makes the n-th call from now at one kind
//! of site fail with the errno that call would fail with.
//!
//! Sites (each call below consults `fail` right before the real call):
//! * `Mmap`: reserving a stack region (`stack::Region::reserve`), mapping a thread's
//!   alternate signal stack (`overflow`).
//! * `Madvise`: installing a stack's guard page (`MADV_GUARD_INSTALL`), returning a cold
//!   stack's pages (`MADV_DONTNEED`, whose failure only keeps the pages).
//! * `EpollCtl`: the raw epoll backend's `epoll_ctl` (not the `polling` backend's, which
//!   is inside that crate).
//! * `Eventfd`: the hub's wake-up eventfd (creation and after fork).
//! * `EpollCreate`: the raw epoll backend's `epoll_create1`.
//! * `Thread`: starting a thread-pool worker (`std::thread::Builder::spawn`).
//!
//! There is no `malloc` site: the library never allocates fallibly (Rust's allocation
//! failure aborts the process), so `GH_FAIL_MALLOC` is refused with `GH_ENOTSUP`.
//!
//! The counters are process-wide atomics: without the feature `fail` is a constant `None`
//! the optimizer removes.

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Site {
    Mmap = 0,
    Madvise = 1,
    EpollCtl = 2,
    Eventfd = 3,
    EpollCreate = 4,
    Thread = 5,
}

impl Site {
    /// The errno a real failure of this site gives.
    pub fn errno(self) -> i32 {
        match self {
            Site::Mmap | Site::Madvise | Site::EpollCtl => libc::ENOMEM,
            Site::Eventfd | Site::EpollCreate => libc::EMFILE,
            Site::Thread => libc::EAGAIN,
        }
    }
}

#[cfg(feature = "fault-injection")]
mod imp {
    use super::Site;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Per site: 0 = off, else the countdown (1 = the next call fails).
    static COUNTDOWN: [AtomicU32; 6] = [const { AtomicU32::new(0) }; 6];

    #[inline]
    pub fn fail(site: Site) -> Option<i32> {
        let c = &COUNTDOWN[site as usize];
        let mut v = c.load(Ordering::Relaxed);
        while v != 0 {
            match c.compare_exchange(v, v - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (v == 1).then(|| site.errno()),
                Err(now) => v = now,
            }
        }
        None
    }

    /// Arms `site` (n = 0 disarms); returns the countdown it replaced.
    pub fn arm(site: Site, n: u32) -> u32 {
        COUNTDOWN[site as usize].swap(n, Ordering::Relaxed)
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    use super::Site;

    #[inline(always)]
    pub fn fail(_site: Site) -> Option<i32> {
        None
    }
}

pub use imp::*;

/// `eventfd(0, flags)` (the `Eventfd` site): the fd, or -1 with errno set.
pub fn eventfd(flags: libc::c_int) -> libc::c_int {
    if let Some(e) = fail(Site::Eventfd) {
        // SAFETY: errno is this thread's own variable.
        unsafe { *libc::__errno_location() = e };
        return -1;
    }
    // SAFETY: plain syscall; the caller checks the result.
    unsafe { libc::eventfd(0, flags) }
}

/// Whether this build has the hook.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn nth_call_fails_once() {
        // Thread: no other unit test starts pool workers.
        arm(Site::Thread, 3);
        assert_eq!(fail(Site::Thread), None);
        assert_eq!(fail(Site::Thread), None);
        assert_eq!(fail(Site::Thread), Some(libc::EAGAIN));
        assert_eq!(fail(Site::Thread), None);
        assert_eq!(arm(Site::Thread, 0), 0);
    }
}
