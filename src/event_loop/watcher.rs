//! Watchers: what the loop watches, and what it does when that happens.
//!
//! A watcher is a record in the hub's watcher table. It is either started (active)
//! or not; only active watchers are linked into the fd registry, the timer heap or
//! the prepare/check/idle/async lists. What happens when it fires is its `Action`:
//! a user's C callback, or resuming the greenlet that `hub_wait`s on it.

use std::ffi::c_void;

/// A watcher handle as passed to C callbacks (same layout as the C `gh_watcher`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RawHandle {
    pub id: u64,
}

/// A C watcher callback: `void cb(gh_watcher w, int revents, void *arg)`.
pub type UserFn = unsafe extern "C" fn(RawHandle, i32, *mut c_void);

/// Bits of `revents` for watchers that are not io (io uses READ/WRITE).
pub(crate) const EV_TIMER: i32 = 0x100;
pub(crate) const EV_PREPARE: i32 = 0x200;
pub(crate) const EV_CHECK: i32 = 0x400;
pub(crate) const EV_IDLE: i32 = 0x800;
pub(crate) const EV_ASYNC: i32 = 0x1000;
pub(crate) const EV_SIGNAL: i32 = 0x2000;
pub(crate) const EV_CHILD: i32 = 0x4000;

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum WatchKind {
    Io {
        fd: i32,
        events: u8,
    },
    Timer {
        after: u64,
        repeat: u64,
    },
    Prepare,
    Check,
    Idle,
    Async,
    Signal {
        signum: i32,
    },
    /// A child process; `pidfd` -1 when the kernel has no pidfds (SIGCHLD is used);
    /// `status` its wait status once it was reaped (kept here, not in `Watcher`, so
    /// that every watcher record is 8 bytes smaller).
    Child {
        pid: i32,
        pidfd: i32,
        status: Option<i32>,
    },
}

impl WatchKind {
    pub fn revents_bit(&self) -> i32 {
        match self {
            WatchKind::Io { .. } => 0,
            WatchKind::Timer { .. } => EV_TIMER,
            WatchKind::Prepare => EV_PREPARE,
            WatchKind::Check => EV_CHECK,
            WatchKind::Idle => EV_IDLE,
            WatchKind::Async => EV_ASYNC,
            WatchKind::Signal { .. } => EV_SIGNAL,
            WatchKind::Child { .. } => EV_CHILD,
        }
    }
}

/// What firing does.
#[derive(Copy, Clone, Debug)]
pub enum Action {
    None,
    /// Call a C callback in the hub.
    User {
        f: UserFn,
        arg: *mut c_void,
    },
    /// Wake greenlet `slot` if it is still in the wait numbered `seq`; the wait's
    /// result is `code`, or the revents when `code` is 0.
    Resume {
        slot: u32,
        gen: u32,
        seq: u32,
        code: i32,
    },
    /// Start greenlet (slot, gen) (`gh_spawn_later`).
    Start {
        slot: u32,
        gen: u32,
    },
}

/// 56 bytes (a timer's whole record in the hub's table: keep it small).
pub struct Watcher {
    pub kind: WatchKind,
    pub active: bool,
    /// Keeps the loop alive while active (`gh_watcher_ref`).
    pub referenced: bool,
    /// Created by greenhub itself (sleep, io waits, timeouts), not by the user.
    pub internal: bool,
    /// A wait's timer (`HubState::take_kept_timer`): always started at an absolute time,
    /// and stopped lazily — its heap entry stays when its wait ends early, the usual
    /// end of a timeout (see `HubState::start`).
    pub lazy: bool,
    /// (`lazy` timers) `WatchKind::Timer::after` holds the deadline the timer was
    /// started with, later than the heap entry left from an earlier start, which fires
    /// first and is moved to that deadline then (`run::run_timers`).
    pub deferred: bool,
    pub action: Action,
}

impl Watcher {
    #[inline(always)]
    pub fn new(kind: WatchKind, internal: bool) -> Watcher {
        Watcher {
            kind,
            active: false,
            referenced: true,
            internal,
            lazy: false,
            deferred: false,
            action: Action::None,
        }
    }

    /// A child watcher's wait status once the child was reaped.
    pub fn status(&self) -> Option<i32> {
        match self.kind {
            WatchKind::Child { status, .. } => status,
            _ => None,
        }
    }

    /// Records a child watcher's wait status (no-op for other kinds).
    pub fn set_status(&mut self, status: i32) {
        if let WatchKind::Child { status: s, .. } = &mut self.kind {
            *s = Some(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-timer memory is mostly this record (in a slab entry): keep it at 56 bytes.
    #[test]
    fn record_sizes() {
        assert_eq!(std::mem::size_of::<WatchKind>(), 24);
        assert_eq!(std::mem::size_of::<Action>(), 24);
        assert_eq!(std::mem::size_of::<Watcher>(), 56);
        assert_eq!(std::mem::size_of::<Option<Watcher>>(), 56);
        // slab's entry type is private; this is its shape.
        #[allow(dead_code)]
        enum SlabEntry<T> {
            Vacant(usize),
            Occupied(T),
        }
        assert_eq!(std::mem::size_of::<SlabEntry<Option<Watcher>>>(), 56);
    }

    #[test]
    fn child_status() {
        let mut w = Watcher::new(
            WatchKind::Child {
                pid: 1,
                pidfd: -1,
                status: None,
            },
            false,
        );
        assert_eq!(w.status(), None);
        w.set_status(7);
        assert_eq!(w.status(), Some(7));
        let mut t = Watcher::new(
            WatchKind::Timer {
                after: 1,
                repeat: 0,
            },
            false,
        );
        t.set_status(7);
        assert_eq!(t.status(), None);
    }
}
