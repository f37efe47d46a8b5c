//! Watcher lifecycle on the hub's tables: new, start, stop, close, ref.
//!
//! Invariant: a watcher is linked into exactly one structure (fd registry, timer
//! heap, prepare/check/idle/async list) while `active`, and into none otherwise;
//! `alive` counts the active referenced ones.

use super::HubState;
use crate::error::{Error, Result};
use crate::event_loop::now_ns;
use crate::event_loop::watcher::{Action, WatchKind, Watcher};

impl HubState {
    pub fn new_watcher(&mut self, kind: WatchKind, internal: bool) -> Result<(u32, u32)> {
        self.new_watcher_inline(kind, internal)
    }

    /// `new_watcher`, always inlined (the gh_*_new constructors: the record is then built
    /// straight into its slot from the arguments); the wait paths call `new_watcher`.
    #[inline(always)]
    pub fn new_watcher_inline(&mut self, kind: WatchKind, internal: bool) -> Result<(u32, u32)> {
        let (slot, gen) = self.watchers.insert(Watcher::new(kind, internal))?;
        if kind == WatchKind::Async {
            crate::asyncs::arm(self.shared.id, slot, gen, self.wake_fd);
        }
        Ok((slot, gen))
    }

    pub fn start_watcher(&mut self, slot: u32, action: Action) -> Result<()> {
        self.start(slot, action, None)
    }

    /// gh_watcher_start: starts user watcher (slot, gen), the handle checked with the
    /// same lookup of the record as the start. `EBADHANDLE` for a stale handle or an
    /// internal watcher.
    #[inline]
    pub fn start_user_watcher(
        &mut self,
        slot: u32,
        gen: u32,
        f: crate::event_loop::watcher::UserFn,
        arg: *mut std::ffi::c_void,
    ) -> Result<()> {
        self.start_in::<true>(slot, gen, Action::User { f, arg }, None)
    }

    /// Starts timer watcher `slot` due at the absolute monotonic time `at` (ns), for
    /// callers that already read the clock.
    pub fn start_timer_at(&mut self, slot: u32, action: Action, at: u64) -> Result<()> {
        self.start(slot, action, Some(at))
    }

    fn start(&mut self, slot: u32, action: Action, at: Option<u64>) -> Result<()> {
        self.start_in::<false>(slot, 0, action, at)
    }

    /// `start`; with `USER`, for gh_watcher_start: (slot, `gen`) must be a user watcher,
    /// and a timer's heap insert is inlined (the user-timer path of the 1M-timers
    /// workload; the wait paths keep it out of line).
    #[inline(always)]
    fn start_in<const USER: bool>(
        &mut self,
        slot: u32,
        gen: u32,
        action: Action,
        at: Option<u64>,
    ) -> Result<()> {
        let w = if USER {
            match self.watchers.get_mut(slot, gen) {
                Some(w) if !w.internal() => w,
                _ => return Err(Error::BADHANDLE),
            }
        } else {
            self.watchers.at_mut(slot).ok_or(Error::BADHANDLE)?
        };
        if w.active {
            return Err(Error::BUSY);
        }
        if let Some(after) = w.timer_after() {
            // The common case in one lookup of the record (a timer start cannot fail).
            w.active = true;
            w.set_action(action);
            self.alive += w.referenced() as usize;
            let at = at.unwrap_or_else(|| now_ns().saturating_add(after));
            if w.lazy() {
                // A wait's timer whose entry from an earlier wait is still in the heap,
                // due no later than `at`: no heap operation now (a request's timeout is
                // restarted per request and almost never fires); the old entry fires
                // first and run_timers moves it to `at` then.
                if self.timers.due(slot).is_some_and(|cur| cur <= at) {
                    w.set_timer_after(at);
                    w.set_deferred(true);
                    return Ok(());
                }
                w.set_deferred(false);
            }
            if USER {
                // Not lazy (internal timers only): not scheduled while inactive.
                self.timers.insert_new_inline(slot, at);
            } else {
                self.timers.insert(slot, at);
            }
            return Ok(());
        }
        match w.kind() {
            WatchKind::Io { fd, events } => {
                self.fds
                    .attach(&mut *self.backend, fd, slot, events)
                    .map_err(|e| Error(-e))?;
            }
            WatchKind::Timer { .. } => unreachable!("started above"),
            WatchKind::Prepare => self.prepare.push(slot),
            WatchKind::Check => self.check.push(slot),
            WatchKind::Idle => self.idle.push(slot),
            WatchKind::Signal { signum } => {
                self.watch_signal(signum)?;
                self.signals.push(slot);
            }
            WatchKind::Child { pid, pidfd, .. } => {
                if pidfd >= 0 {
                    self.fds
                        .attach(&mut *self.backend, pidfd, slot, crate::event_loop::READ)
                        .map_err(|e| Error(-e))?;
                } else {
                    self.watch_signal(libc::SIGCHLD)?;
                    self.children.push(slot);
                    self.child_recheck = true;
                }
                let _ = pid;
            }
            WatchKind::Async => {
                self.asyncs.push(slot);
                let gen = self.watchers.gen(slot);
                if crate::asyncs::pending(self.shared.id, slot, gen, false) {
                    self.async_recheck = true;
                }
            }
        }
        let w = self.watchers.at_mut(slot).expect("checked above");
        w.active = true;
        w.set_action(action);
        if w.referenced() {
            self.alive += 1;
        }
        Ok(())
    }

    /// Stops a watcher; stopping an inactive one is a no-op.
    pub fn stop_watcher(&mut self, slot: u32) {
        let Some(w) = self.watchers.at_mut(slot) else {
            return;
        };
        if !w.active {
            return;
        }
        w.active = false;
        w.set_action(Action::None);
        let referenced = w.referenced();
        match w.kind() {
            WatchKind::Io { fd, .. } => self.fds.detach(fd, slot),
            // A lazy timer's entry stays (see `start`); run_timers drops it if it fires
            // while the timer is stopped.
            WatchKind::Timer { .. } if w.lazy() => w.set_deferred(false),
            WatchKind::Timer { .. } => {
                self.timers.remove(slot);
            }
            WatchKind::Prepare => remove(&mut self.prepare, slot),
            WatchKind::Check => remove(&mut self.check, slot),
            WatchKind::Idle => remove(&mut self.idle, slot),
            WatchKind::Async => remove(&mut self.asyncs, slot),
            WatchKind::Signal { signum } => {
                remove(&mut self.signals, slot);
                self.unwatch_signal(signum);
            }
            WatchKind::Child { pidfd, .. } => {
                if pidfd >= 0 {
                    self.fds.detach(pidfd, slot);
                } else {
                    remove(&mut self.children, slot);
                    self.unwatch_signal(libc::SIGCHLD);
                }
            }
        }
        if referenced {
            self.alive -= 1;
        }
    }

    /// Stops and frees a watcher; its handle goes stale.
    pub fn close_watcher(&mut self, slot: u32) {
        self.stop_watcher(slot);
        if let Some(w) = self.watchers.remove(slot) {
            match w.kind() {
                WatchKind::Timer { .. } if w.lazy() => {
                    self.timers.remove(slot);
                }
                WatchKind::Async => crate::asyncs::disarm(self.shared.id, slot),
                WatchKind::Child { pidfd, .. } if pidfd >= 0 => {
                    self.fds.forget(&mut *self.backend, pidfd);
                    // SAFETY: the pidfd belongs to this watcher, which is gone.
                    unsafe { libc::close(pidfd) };
                }
                _ => {}
            }
        }
    }

    /// Stops a watcher from `take_kept_timer` (and frees it unless it is kept).
    pub fn put_kept_timer(&mut self, slot: u32, kept: bool) {
        if kept {
            self.stop_watcher(slot);
        } else {
            self.close_watcher(slot);
        }
    }

    /// Parks wait `w` on `fd`'s entry for READ or WRITE alone, without a watcher record.
    /// Ok(false): not possible (both events, or that side has a wait parked already):
    /// use a watcher. Errors as for starting an io watcher (`EBADF`, …).
    #[inline]
    pub fn park_fd(&mut self, fd: i32, events: u8, w: crate::hub::wait::WaitId) -> Result<bool> {
        let Some(side) = park_side(events) else {
            return Ok(false);
        };
        match self
            .fds
            .park(&mut *self.backend, fd, side, (w.slot, w.gen, w.seq))
        {
            Ok(true) => {
                self.alive += 1;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(err) => Err(Error(-err)),
        }
    }

    /// Ends a wait parked by `park_fd` if it is still there (gh_close may have taken it).
    #[inline]
    pub fn unpark_fd(&mut self, fd: i32, events: u8, w: crate::hub::wait::WaitId) {
        let Some(side) = park_side(events) else {
            return;
        };
        if self.fds.unpark(fd, side, (w.slot, w.gen, w.seq)) {
            self.alive -= 1;
        }
    }

    /// Takes the wait parked on `fd`'s side `side` (0: READ, 1: WRITE), if any (gh_close).
    pub fn take_parked(&mut self, fd: i32, side: usize) -> Option<crate::hub::wait::WaitId> {
        let (slot, gen, seq) = self.fds.take_parked(fd, side)?;
        self.alive -= 1;
        Some(crate::hub::wait::WaitId { slot, gen, seq })
    }

    /// An internal timer for greenlet `slot`'s wait: its kept timer `which` when free
    /// (created on first use), else a new one. Returns (watcher slot, kept); give it
    /// back with `put_kept_timer`.
    /// When timer watcher `slot` is due (None: stopped, or not a timer in the heap).
    pub fn timer_due(&self, slot: u32) -> Option<u64> {
        match self.watchers.at(slot)? {
            w if !w.active => None,
            w if w.deferred() => w.timer_after().or_else(|| self.timers.due(slot)),
            _ => self.timers.due(slot),
        }
    }

    /// Moves active timer `slot` to the absolute time `at`.
    pub fn retime_timer(&mut self, slot: u32, at: u64) {
        if let Some(w) = self.watchers.at_mut(slot) {
            w.set_deferred(false);
        }
        self.timers.insert(slot, at);
    }

    /// A new internal lazy timer (take_kept_timer's rare case: out of line, so the wait
    /// paths that call take_kept_timer stay small).
    #[cold]
    #[inline(never)]
    fn new_lazy_timer(&mut self) -> Result<u32> {
        let (t, _) = self.new_watcher(
            WatchKind::Timer {
                after: 0,
                repeat: 0,
            },
            true,
        )?;
        if let Some(w) = self.watchers.at_mut(t) {
            w.set_lazy(true);
        }
        Ok(t)
    }

    pub fn take_kept_timer(&mut self, slot: u32, which: usize) -> Result<(u32, bool)> {
        let kept = self
            .greenlets
            .at(slot)
            .map_or(u32::MAX, |g| g.kept_timers[which]);
        if kept != u32::MAX {
            if let Some(w) = self.watchers.at(kept) {
                if !w.active {
                    return Ok((kept, true));
                }
            }
        }
        let t = self.new_lazy_timer()?;
        if kept == u32::MAX {
            if let Some(g) = self.greenlets.at_mut(slot) {
                g.kept_timers[which] = t;
                return Ok((t, true));
            }
        }
        Ok((t, false))
    }

    /// Frees the timers greenlet `slot` kept (it died).
    pub fn drop_kept_timers(&mut self, slot: u32) {
        let kept = match self.greenlets.at_mut(slot) {
            Some(g) => std::mem::replace(&mut g.kept_timers, [u32::MAX; 2]),
            None => return,
        };
        for t in kept {
            if t != u32::MAX {
                self.close_watcher(t);
            }
        }
    }

    /// One more watcher of `signum` in this hub (installs the handler for the first).
    fn watch_signal(&mut self, signum: i32) -> Result<()> {
        let slot = match self.sig_slot {
            Some(s) => s,
            None => {
                let s = crate::signals::attach_hub(self.wake_fd)?;
                self.sig_slot = Some(s);
                s
            }
        };
        if self.sig_counts[signum as usize] == 0 {
            crate::signals::watch(slot, signum)?;
        }
        self.sig_counts[signum as usize] += 1;
        Ok(())
    }

    fn unwatch_signal(&mut self, signum: i32) {
        let n = &mut self.sig_counts[signum as usize];
        *n = n.saturating_sub(1);
        if *n == 0 {
            if let Some(slot) = self.sig_slot {
                crate::signals::unwatch(slot, signum);
            }
        }
    }

    pub fn set_ref(&mut self, slot: u32, referenced: bool) {
        let Some(w) = self.watchers.at_mut(slot) else {
            return;
        };
        if w.referenced() == referenced {
            return;
        }
        w.set_referenced(referenced);
        if w.active {
            if referenced {
                self.alive += 1;
            } else {
                self.alive -= 1;
            }
        }
    }
}

/// The `FdEntry::parked` side for a wait on `events` (READ or WRITE alone).
#[inline]
fn park_side(events: u8) -> Option<usize> {
    match events {
        crate::event_loop::READ => Some(0),
        crate::event_loop::WRITE => Some(1),
        _ => None,
    }
}

fn remove(list: &mut Vec<u32>, slot: u32) {
    if let Some(i) = list.iter().position(|&s| s == slot) {
        list.remove(i);
    }
}

impl super::Hub {
    /// gh_watcher_close of user watcher (slot, gen), the handle checked here
    /// (`EBADHANDLE` for a stale handle or an internal watcher): a greenlet parked in
    /// gh_hub_wait on it wakes with `ECLOSED`.
    #[inline]
    pub fn close_user_watcher(&self, slot: u32, gen: u32) -> Result<()> {
        let action = {
            let mut st = self.st.borrow_mut();
            let action = match st.watchers.get(slot, gen) {
                Some(w) if !w.internal() => w.action(),
                _ => return Err(Error::BADHANDLE),
            };
            st.close_watcher(slot);
            action
        };
        if let Action::Resume { slot, gen, seq, .. } = action {
            self.wake(
                slot,
                gen,
                seq,
                crate::greenlet::Msg::code(crate::error::ECLOSED),
                false,
            );
        }
        Ok(())
    }
}
