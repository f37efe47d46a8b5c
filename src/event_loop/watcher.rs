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

/// A watcher's record in the hub's table: 36 bytes, 4-byte aligned, so that with its
/// generation the table's slot is 40 bytes — a timer's whole record (libev's `ev_timer`
/// is 48): 1M timers cost 40 MB here, plus 19 bytes each in the timer heap and `pos`.
///
/// The kind and the action are stored as two 16-byte payloads and two tag bytes beside
/// the flags (as `WatchKind` and `Action` each would take 24 bytes, 8 of them for a tag
/// and padding): read them with `kind()` and `action()`, write them with `set_kind` and
/// `set_action`. The flags but `active` are bits of one byte, behind accessors
/// (`referenced()`, `internal()`, `lazy()`, `deferred()`).
pub struct Watcher {
    kind_data: KindData,
    action_data: ActionData,
    kind_tag: KindTag,
    action_tag: ActionTag,
    pub active: bool,
    /// REFERENCED | INTERNAL | LAZY | DEFERRED.
    flags: u8,
}

/// Keeps the loop alive while active (`gh_watcher_ref`).
const REFERENCED: u8 = 1;
/// Created by greenhub itself (sleep, io waits, timeouts), not by the user.
const INTERNAL: u8 = 2;
/// A wait's timer (`HubState::take_kept_timer`): always started at an absolute time,
/// and stopped lazily — its heap entry stays when its wait ends early, the usual end of
/// a timeout (see `HubState::start`).
const LAZY: u8 = 4;
/// (`LAZY` timers) `WatchKind::Timer::after` holds the deadline the timer was started
/// with, later than the heap entry left from an earlier start, which fires first and is
/// moved to that deadline then (`run::run_timers`).
const DEFERRED: u8 = 8;

/// `WatchKind`'s fields, by variant (the tag is `Watcher::kind_tag`). 4-byte aligned
/// (packed): the record's fields then leave no padding.
#[derive(Copy, Clone)]
#[repr(C, packed(4))]
union KindData {
    /// Timer: after, repeat.
    timer: [u64; 2],
    /// Io: fd, events; Signal: signum; Child: pid, pidfd, has status, status.
    words: [i32; 4],
}

/// `Action`'s fields, by variant (the tag is `Watcher::action_tag`). Packed as KindData.
#[derive(Copy, Clone)]
#[repr(C, packed(4))]
union ActionData {
    /// User: the callback and its argument.
    user: (UserFn, *mut c_void),
    /// Resume: slot, gen, seq, code; Start: slot, gen; None: unused.
    words: [u32; 4],
}

/// Which `WatchKind` a record holds.
#[derive(Copy, Clone, PartialEq, Eq)]
#[repr(u8)]
enum KindTag {
    Io,
    Timer,
    Prepare,
    Check,
    Idle,
    Async,
    Signal,
    Child,
}

/// Which `Action` a record holds.
#[derive(Copy, Clone, PartialEq, Eq)]
#[repr(u8)]
enum ActionTag {
    None,
    User,
    Resume,
    Start,
}

impl Watcher {
    #[inline(always)]
    pub fn new(kind: WatchKind, internal: bool) -> Watcher {
        let (kind_tag, kind_data) = pack_kind(kind);
        Watcher {
            kind_data,
            action_data: ActionData { words: [0; 4] },
            kind_tag,
            action_tag: ActionTag::None,
            active: false,
            flags: REFERENCED | if internal { INTERNAL } else { 0 },
        }
    }

    #[inline(always)]
    fn set_flag(&mut self, flag: u8, on: bool) {
        self.flags = if on {
            self.flags | flag
        } else {
            self.flags & !flag
        };
    }

    /// Keeps the loop alive while active (`gh_watcher_ref`).
    #[inline(always)]
    pub fn referenced(&self) -> bool {
        self.flags & REFERENCED != 0
    }

    #[inline(always)]
    pub fn set_referenced(&mut self, on: bool) {
        self.set_flag(REFERENCED, on);
    }

    /// Created by greenhub itself (sleep, io waits, timeouts), not by the user.
    #[inline(always)]
    pub fn internal(&self) -> bool {
        self.flags & INTERNAL != 0
    }

    /// A wait's timer, stopped lazily (`LAZY`).
    #[inline(always)]
    pub fn lazy(&self) -> bool {
        self.flags & LAZY != 0
    }

    #[inline(always)]
    pub fn set_lazy(&mut self, on: bool) {
        self.set_flag(LAZY, on);
    }

    /// A lazy timer restarted for a later deadline than its heap entry's (`DEFERRED`).
    #[inline(always)]
    pub fn deferred(&self) -> bool {
        self.flags & DEFERRED != 0
    }

    #[inline(always)]
    pub fn set_deferred(&mut self, on: bool) {
        self.set_flag(DEFERRED, on);
    }

    /// What the watcher watches.
    #[inline(always)]
    pub fn kind(&self) -> WatchKind {
        let d = self.kind_data;
        // SAFETY: the union field read is the one `pack_kind` wrote for this tag (both
        // fields are plain integers, valid for any bits).
        unsafe {
            match self.kind_tag {
                KindTag::Timer => WatchKind::Timer {
                    after: d.timer[0],
                    repeat: d.timer[1],
                },
                KindTag::Io => WatchKind::Io {
                    fd: d.words[0],
                    events: d.words[1] as u8,
                },
                KindTag::Prepare => WatchKind::Prepare,
                KindTag::Check => WatchKind::Check,
                KindTag::Idle => WatchKind::Idle,
                KindTag::Async => WatchKind::Async,
                KindTag::Signal => WatchKind::Signal { signum: d.words[0] },
                KindTag::Child => WatchKind::Child {
                    pid: d.words[0],
                    pidfd: d.words[1],
                    status: (d.words[2] != 0).then_some(d.words[3]),
                },
            }
        }
    }

    /// A timer's `after` (`WatchKind::Timer`), None for other kinds: `kind()` without
    /// building the whole value.
    #[inline(always)]
    pub fn timer_after(&self) -> Option<u64> {
        // SAFETY: `timer` is the field pack_kind wrote for KindTag::Timer.
        (self.kind_tag == KindTag::Timer).then(|| unsafe { self.kind_data.timer[0] })
    }

    /// Sets a timer's `after` (no-op for other kinds).
    #[inline(always)]
    pub fn set_timer_after(&mut self, after: u64) {
        if self.kind_tag == KindTag::Timer {
            // SAFETY: writing a plain-integer field of the union for a KindTag::Timer record,
            // whose payload is that field.
            unsafe { self.kind_data.timer[0] = after };
        }
    }

    #[inline(always)]
    pub fn set_kind(&mut self, kind: WatchKind) {
        (self.kind_tag, self.kind_data) = pack_kind(kind);
    }

    /// What firing does.
    #[inline(always)]
    pub fn action(&self) -> Action {
        // SAFETY: read for Resume and Start only, whose payload set_action wrote as
        // `words` (plain integers).
        let word = |i: usize| unsafe { self.action_data.words[i] };
        match self.action_tag {
            ActionTag::User => {
                // SAFETY: set_action wrote `user` for this tag (the callback was a valid
                // function pointer when stored, and stays one).
                let (f, arg) = unsafe { self.action_data.user };
                Action::User { f, arg }
            }
            ActionTag::Resume => Action::Resume {
                slot: word(0),
                gen: word(1),
                seq: word(2),
                code: word(3) as i32,
            },
            ActionTag::Start => Action::Start {
                slot: word(0),
                gen: word(1),
            },
            ActionTag::None => Action::None,
        }
    }

    #[inline(always)]
    pub fn set_action(&mut self, action: Action) {
        let (tag, data) = match action {
            // The payload of None is never read: only the tag is written.
            Action::None => {
                self.action_tag = ActionTag::None;
                return;
            }
            Action::User { f, arg } => (ActionTag::User, ActionData { user: (f, arg) }),
            Action::Resume {
                slot,
                gen,
                seq,
                code,
            } => (
                ActionTag::Resume,
                ActionData {
                    words: [slot, gen, seq, code as u32],
                },
            ),
            Action::Start { slot, gen } => (
                ActionTag::Start,
                ActionData {
                    words: [slot, gen, 0, 0],
                },
            ),
        };
        self.action_tag = tag;
        self.action_data = data;
    }

    /// A child watcher's wait status once the child was reaped.
    pub fn status(&self) -> Option<i32> {
        match self.kind() {
            WatchKind::Child { status, .. } => status,
            _ => None,
        }
    }

    /// Records a child watcher's wait status (no-op for other kinds).
    pub fn set_status(&mut self, status: i32) {
        if let WatchKind::Child { pid, pidfd, .. } = self.kind() {
            self.set_kind(WatchKind::Child {
                pid,
                pidfd,
                status: Some(status),
            });
        }
    }
}

#[inline(always)]
fn pack_kind(kind: WatchKind) -> (KindTag, KindData) {
    let words = |w: [i32; 4]| KindData { words: w };
    match kind {
        WatchKind::Timer { after, repeat } => (
            KindTag::Timer,
            KindData {
                timer: [after, repeat],
            },
        ),
        WatchKind::Io { fd, events } => (KindTag::Io, words([fd, events as i32, 0, 0])),
        WatchKind::Prepare => (KindTag::Prepare, words([0; 4])),
        WatchKind::Check => (KindTag::Check, words([0; 4])),
        WatchKind::Idle => (KindTag::Idle, words([0; 4])),
        WatchKind::Async => (KindTag::Async, words([0; 4])),
        WatchKind::Signal { signum } => (KindTag::Signal, words([signum, 0, 0, 0])),
        WatchKind::Child { pid, pidfd, status } => (
            KindTag::Child,
            words([pid, pidfd, status.is_some() as i32, status.unwrap_or(0)]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-timer memory is mostly this record (in a table slot, with its generation:
    /// 40 bytes, handle::tests::watcher_slot_size): keep it at 36.
    #[test]
    fn record_sizes() {
        assert_eq!(std::mem::size_of::<WatchKind>(), 24);
        assert_eq!(std::mem::size_of::<Action>(), 24);
        assert_eq!(std::mem::size_of::<Watcher>(), 36);
        assert_eq!(std::mem::align_of::<Watcher>(), 4);
        assert_eq!(std::mem::size_of::<Option<Watcher>>(), 36);
    }

    /// Every kind and action reads back as it was written.
    #[test]
    fn kinds_and_actions_round_trip() {
        let kinds = [
            WatchKind::Io {
                fd: 7,
                events: crate::event_loop::READ | crate::event_loop::WRITE,
            },
            WatchKind::Io { fd: -1, events: 0 },
            WatchKind::Timer {
                after: u64::MAX / 4,
                repeat: 1,
            },
            WatchKind::Timer {
                after: 0,
                repeat: u64::MAX,
            },
            WatchKind::Prepare,
            WatchKind::Check,
            WatchKind::Idle,
            WatchKind::Async,
            WatchKind::Signal { signum: 64 },
            WatchKind::Child {
                pid: 123,
                pidfd: -1,
                status: None,
            },
            WatchKind::Child {
                pid: i32::MAX,
                pidfd: 9,
                status: Some(0),
            },
            WatchKind::Child {
                pid: 1,
                pidfd: 3,
                status: Some(-1),
            },
        ];
        unsafe extern "C" fn cb(_: RawHandle, _: i32, _: *mut c_void) {}
        let mut x = 5u8;
        let actions = [
            Action::None,
            Action::User {
                f: cb,
                arg: &mut x as *mut u8 as *mut c_void,
            },
            Action::User {
                f: cb,
                arg: std::ptr::null_mut(),
            },
            Action::Resume {
                slot: u32::MAX,
                gen: 1,
                seq: 2,
                code: -3,
            },
            Action::Resume {
                slot: 0,
                gen: 0,
                seq: 0,
                code: 0,
            },
            Action::Start { slot: 4, gen: 5 },
        ];
        for k in kinds {
            let mut w = Watcher::new(k, true);
            assert_eq!(w.kind(), k);
            assert!(matches!(w.action(), Action::None));
            for a in actions {
                w.set_action(a);
                assert_eq!(format!("{:?}", w.action()), format!("{a:?}"));
                assert_eq!(w.kind(), k);
            }
            w.set_kind(WatchKind::Timer {
                after: 1,
                repeat: 2,
            });
            assert_eq!(
                w.kind(),
                WatchKind::Timer {
                    after: 1,
                    repeat: 2
                }
            );
            assert_eq!(format!("{:?}", w.action()), format!("{:?}", actions[5]));
            assert_eq!(w.timer_after(), Some(1));
            w.set_timer_after(9);
            assert_eq!(
                w.kind(),
                WatchKind::Timer {
                    after: 9,
                    repeat: 2
                }
            );
            let mut other = Watcher::new(k, false);
            other.set_timer_after(9);
            if let WatchKind::Timer { after, .. } = k {
                assert_eq!(other.timer_after(), Some(9));
                assert_ne!(after, 9);
            } else {
                assert_eq!(other.timer_after(), None);
                assert_eq!(other.kind(), k);
            }
        }
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
