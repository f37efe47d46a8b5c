//! The fd registry: which io watchers watch each fd, and what the kernel was told.
//!
//! Rules (libev's `fd_reify`), which keep the steady state free of `epoll_ctl`:
//! * fds stay registered, level-triggered; a watcher that stops and restarts within
//!   one loop iteration changes nothing the kernel sees.
//! * Interest changes are collected (`dirty`) and applied once per iteration, before
//!   polling. When the wanted set drops to empty the registration is left in place
//!   (lazily); if the kernel then reports an event nobody wanted, the registration is
//!   narrowed or deleted at that moment (`settle`), so there is no busy loop.
//! * An fd that goes from no interest (as of the last reify) to some interest is
//!   (re-)added at once with `EPOLL_CTL_ADD`, because the user may have closed and
//!   reopened that number since; `EEXIST` means it is still registered. Doing this at
//!   watcher start lets `EBADF` reach the caller synchronously.
//! * An fd whose interest dropped to nothing and came back within one iteration (the
//!   common "wait again" pattern) costs nothing at once, but its registration is
//!   *unverified*: the user may have closed the fd and reused its number in between,
//!   leaving nothing registered for the new file. It is verified (`EPOLL_CTL_MOD`;
//!   `ENOENT` → `ADD`) once it has been quiet (no event) for `VERIFY_QUIET_NS` — the
//!   poll never sleeps past that, so a wait on a lost registration is repaired within
//!   20-40 ms — and after a bounded number of events (64, doubling up to 65536 each time
//!   the registration proves good), so a busy fd costs a handful of `epoll_ctl`s in all.
//! * Registrations carry a per-fd generation in the token. An event from an older
//!   generation comes from a file the user closed while a `dup` of it lived: the loop
//!   then rebuilds the backend from scratch (libev does the same), so stale
//!   registrations cannot keep firing.
//! * Regular files and other fds epoll refuses (`EPERM`) are always ready.

use super::{Backend, READ, WRITE};

const VERIFY_FIRST: u32 = 64;
/// How long a re-armed (unverified) registration may stay quiet before it is verified
/// with the kernel; also the longest a wait on an fd number closed and reused behind
/// greenhub's back is delayed before its registration is repaired. A busy connection
/// fires well within it, so keep-alive servers verify almost never (it used to be "two
/// quiet polls, and all before the loop blocks": an `epoll_ctl` per request).
pub(crate) const VERIFY_QUIET_NS: u64 = 20_000_000;

/// `FdEntry::parked` value for "no wait parked".
pub(crate) const NO_PARK: (u32, u32, u32) = (u32::MAX, 0, 0);
/// The events of `FdEntry::parked`'s two sides.
pub(crate) const PARK_EVENTS: [u8; 2] = [READ, WRITE];
const VERIFY_MAX: u32 = 65536;

pub struct FdEntry {
    /// Active io watchers on this fd: (watcher slot, events).
    pub watchers: Vec<(u32, u8)>,
    /// Union of the active watchers' events (`watched`) and of the parked waits' sides.
    pub wanted: u8,
    /// Union of the active watchers' events alone.
    watched: u8,
    /// What the kernel was asked for at the last reify (0 = nothing expected).
    reified: u8,
    /// What we believe is registered in the kernel (0 = not registered).
    kernel: u8,
    dirty: bool,
    /// `wanted` dropped to 0 since the last reify.
    lapsed: bool,
    /// Re-armed after a lapse: the registration may belong to a closed file.
    unverified: bool,
    /// When a poll first saw it unverified and quiet (ns; 0: not yet, or it fired since).
    quiet_since: u64,
    /// In `Fds::unverified` (which drops verified fds lazily): never listed twice.
    listed: bool,
    /// Events taken on trust since the last verification, and the bound on them.
    trusted: u32,
    bound: u32,
    /// Generation of the current registration (in the token's high half).
    gen: u32,
    /// epoll refused the fd (regular file): it is always ready.
    pub always_ready: bool,
    /// The greenlets doing gh_read-like / gh_write-like waits (u32::MAX: none).
    pub reader: u32,
    pub writer: u32,
    /// gh_read found out this fd is not a socket (use read(2), not recv(2)).
    pub not_socket: bool,
    /// Readiness hints (tokio's): the last read-like (write-like) call on this fd hit
    /// EAGAIN or a short transfer, so the next one waits for readiness before its
    /// syscall instead of making one that would fail. Level-triggered polling makes a
    /// stale hint cost one poll, never a lost wake-up.
    pub read_drained: bool,
    pub write_full: bool,
    /// A greenlet wait (slot, generation, seq) parked on this fd for READ / WRITE
    /// without a watcher record (`Fds::park`); its side is in `wanted`, not in
    /// `watchers`.
    pub parked: [(u32, u32, u32); 2],
}

impl Default for FdEntry {
    fn default() -> Self {
        FdEntry {
            watchers: Vec::new(),
            wanted: 0,
            watched: 0,
            reified: 0,
            kernel: 0,
            dirty: false,
            lapsed: false,
            unverified: false,
            quiet_since: 0,
            listed: false,
            trusted: 0,
            bound: VERIFY_FIRST,
            gen: 0,
            always_ready: false,
            reader: u32::MAX,
            writer: u32::MAX,
            not_socket: false,
            read_drained: false,
            write_full: false,
            parked: [NO_PARK; 2],
        }
    }
}

/// What to do with an event the kernel reported.
pub enum Verdict {
    /// Dispatch it.
    Dispatch,
    /// Drop it (stale registration; the backend must be rebuilt).
    Stale,
}

#[derive(Default)]
pub struct Fds {
    entries: Vec<FdEntry>,
    dirty: Vec<i32>,
    unverified: Vec<i32>,
    /// No unverified fd falls due before this time (ns): `verify_due` skips its scan
    /// until then (0: scan at the next poll — a newly listed fd needs its clock started).
    next_due: u64,
    /// fds marked always ready (may contain fds whose watchers have since stopped).
    pub always_ready: Vec<i32>,
    /// A stale registration was seen: rebuild the backend after this dispatch.
    pub rebuild: bool,
}

fn token(fd: i32, gen: u32) -> u64 {
    (fd as u32 as u64) | ((gen as u64) << 32)
}

/// Splits a token into (fd, generation).
pub fn split(token: u64) -> (i32, u32) {
    (token as u32 as i32, (token >> 32) as u32)
}

impl Fds {
    pub fn get(&self, fd: i32) -> Option<&FdEntry> {
        self.entries.get(fd as usize)
    }

    /// The entry of `fd`, growing the table for a new, open fd (`EBADF` otherwise, so a
    /// huge bogus fd number never allocates).
    #[inline]
    fn entry(&mut self, fd: i32) -> Result<&mut FdEntry, i32> {
        let i = fd as usize;
        if fd < 0 {
            return Err(libc::EBADF);
        }
        if i >= self.entries.len() {
            self.grow(fd)?;
        }
        Ok(&mut self.entries[i])
    }

    /// Grows the table to hold `fd` if it is open.
    #[cold]
    fn grow(&mut self, fd: i32) -> Result<(), i32> {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(libc::EBADF);
        }
        let len = (fd as usize + 1).next_power_of_two().max(64);
        self.entries.resize_with(len, FdEntry::default);
        Ok(())
    }

    /// The entry of `fd` if the table has one (never grows it).
    #[inline]
    pub fn get_mut(&mut self, fd: i32) -> Option<&mut FdEntry> {
        self.entries.get_mut(fd as usize)
    }

    /// The entry of an open fd (grown if needed), for per-fd flags.
    #[inline]
    pub fn entry_mut(&mut self, fd: i32) -> Option<&mut FdEntry> {
        self.entry(fd).ok()
    }

    /// The reader (or writer) slot of `fd`; None for a bad fd.
    #[inline]
    pub fn owner_mut(&mut self, fd: i32, reader: bool) -> Option<&mut u32> {
        let e = self.entry(fd).ok()?;
        Some(if reader { &mut e.reader } else { &mut e.writer })
    }

    /// Adds an active watcher. Errors are raw errno values (`EBADF`, `ENOMEM`, …).
    pub fn attach(
        &mut self,
        be: &mut dyn Backend,
        fd: i32,
        slot: u32,
        events: u8,
    ) -> Result<(), i32> {
        let e = self.entry(fd)?;
        let was_idle = e.wanted == 0;
        e.watchers.push((slot, events));
        e.watched |= events;
        e.wanted |= events;
        if let Err(err) = self.rearm(be, fd, was_idle) {
            self.detach(fd, slot);
            return Err(err);
        }
        Ok(())
    }

    /// Parks a greenlet wait (slot, generation, seq) on `fd` for side `side` (0: READ,
    /// 1: WRITE) without a watcher record. Ok(false): that side has a wait parked
    /// already. Errors as for `attach`. The steady state — a wait ended by an event and
    /// parked again before the next poll — is a few stores: nothing for the kernel,
    /// and the fd stays marked for `reify` by the unpark.
    #[inline]
    pub fn park(
        &mut self,
        be: &mut dyn Backend,
        fd: i32,
        side: usize,
        w: (u32, u32, u32),
    ) -> Result<bool, i32> {
        let e = self.entry(fd)?;
        if e.parked[side] != NO_PARK {
            return Ok(false);
        }
        let was_idle = e.wanted == 0;
        e.parked[side] = w;
        e.wanted |= PARK_EVENTS[side];
        if let Err(err) = self.rearm(be, fd, was_idle) {
            self.unpark(fd, side, w);
            return Err(err);
        }
        Ok(true)
    }

    /// Ends the wait `w` parked on `fd`'s side `side` if it is still there (gh_close
    /// may have taken it). Returns whether it was.
    #[inline]
    pub fn unpark(&mut self, fd: i32, side: usize, w: (u32, u32, u32)) -> bool {
        match self.entries.get_mut(fd as usize) {
            Some(e) if e.parked[side] == w => {
                e.parked[side] = NO_PARK;
                self.lower(fd);
                true
            }
            _ => false,
        }
    }

    /// Takes the wait parked on `fd`'s side `side`, if any (gh_close).
    pub fn take_parked(&mut self, fd: i32, side: usize) -> Option<(u32, u32, u32)> {
        let e = self.entries.get_mut(fd as usize)?;
        let w = std::mem::replace(&mut e.parked[side], NO_PARK);
        if w == NO_PARK {
            return None;
        }
        self.lower(fd);
        Some(w)
    }

    /// After `wanted` grew by a watcher or a parked wait: registers an fd that had no
    /// interest at once (errors reach the caller), marks a re-arm for verification.
    /// The steady state — re-armed after a lapse in the same iteration, back to what the
    /// kernel was told, the registration already taken on trust (FAULTS 28's case is
    /// counted by `check`) and the fd still marked by the lapse — has nothing to do.
    #[inline]
    fn rearm(&mut self, be: &mut dyn Backend, fd: i32, was_idle: bool) -> Result<(), i32> {
        let e = &self.entries[fd as usize];
        if e.wanted == e.reified && e.unverified && e.lapsed {
            return Ok(());
        }
        self.rearm_changed(be, fd, was_idle)
    }

    /// `rearm` when something may change.
    #[inline(never)]
    fn rearm_changed(&mut self, be: &mut dyn Backend, fd: i32, was_idle: bool) -> Result<(), i32> {
        let e = &mut self.entries[fd as usize];
        if e.reified == 0 && !e.always_ready {
            return self.apply(be, fd);
        }
        // Joining watchers that are still active re-arms nothing either, yet the user
        // may have closed the fd behind their back and reused the number: verify that
        // registration too, or a wait on the new file could never wake (found by
        // fuzz/api_sequence; the single-watcher steady state is unaffected).
        let joined = !was_idle && e.reified != 0;
        if (joined || (was_idle && e.lapsed)) && !e.unverified && !e.always_ready {
            e.unverified = true;
            e.quiet_since = 0;
            if !e.listed {
                e.listed = true;
                self.unverified.push(fd);
                self.next_due = 0;
            }
        }
        self.mark(fd);
        Ok(())
    }

    /// Removes an active watcher (no syscall; the change is applied by `reify`).
    pub fn detach(&mut self, fd: i32, slot: u32) {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return;
        };
        if let Some(i) = e.watchers.iter().position(|w| w.0 == slot) {
            e.watchers.swap_remove(i);
        }
        e.watched = e.watchers.iter().fold(0, |m, w| m | w.1);
        self.lower(fd);
    }

    /// After a watcher or a parked wait went: recomputes `wanted` (no syscall; `reify`
    /// applies the change).
    #[inline]
    fn lower(&mut self, fd: i32) {
        let e = &mut self.entries[fd as usize];
        let mut wanted = e.watched;
        if e.parked[0] != NO_PARK {
            wanted |= READ;
        }
        if e.parked[1] != NO_PARK {
            wanted |= WRITE;
        }
        e.wanted = wanted;
        if wanted == 0 {
            e.lapsed = true;
        }
        self.mark(fd);
    }

    #[inline]
    fn mark(&mut self, fd: i32) {
        let e = &mut self.entries[fd as usize];
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(fd);
        }
    }

    /// Applies collected interest changes; fds whose registration failed go to
    /// `failed` (their watchers are woken so the caller's I/O reports the error).
    pub fn reify(&mut self, be: &mut dyn Backend, failed: &mut Vec<i32>) {
        while let Some(fd) = self.dirty.pop() {
            let e = &mut self.entries[fd as usize];
            e.dirty = false;
            e.lapsed = false;
            if self.apply(be, fd).is_err() {
                failed.push(fd);
            }
        }
    }

    /// Tells the kernel what `fd` wants now.
    fn apply(&mut self, be: &mut dyn Backend, fd: i32) -> Result<(), i32> {
        let e = &mut self.entries[fd as usize];
        let want = e.wanted;
        if want == e.reified {
            return Ok(());
        }
        if want == 0 {
            // Lazy: keep the registration; `settle` removes it if it fires unwanted.
            e.reified = 0;
            e.always_ready = false;
            return Ok(());
        }
        if e.always_ready {
            e.reified = want;
            return Ok(());
        }
        let r = if e.reified == 0 {
            // (Re-)add with a new generation; EEXIST: the same file is still registered.
            match Self::add(be, fd, e, want) {
                Err(libc::EEXIST) => be.modify(fd, token(fd, e.gen), want),
                r => r,
            }
        } else {
            match be.modify(fd, token(fd, e.gen), want) {
                Err(libc::ENOENT) => Self::add(be, fd, e, want),
                r => r,
            }
        };
        self.finish(fd, want, r)
    }

    /// A fresh registration, with a new generation.
    fn add(be: &mut dyn Backend, fd: i32, e: &mut FdEntry, want: u8) -> Result<(), i32> {
        e.gen = e.gen.wrapping_add(1);
        be.add(fd, token(fd, e.gen), want)
    }

    fn finish(&mut self, fd: i32, want: u8, r: Result<(), i32>) -> Result<(), i32> {
        let e = &mut self.entries[fd as usize];
        match r {
            Ok(()) => {
                e.kernel = want;
                e.reified = want;
                Ok(())
            }
            Err(libc::EPERM) => {
                e.always_ready = true;
                e.kernel = 0;
                e.reified = want;
                if !self.always_ready.contains(&fd) {
                    self.always_ready.push(fd);
                }
                Ok(())
            }
            Err(err) => {
                e.kernel = 0;
                e.reified = 0;
                Err(err)
            }
        }
    }

    /// Re-checks an unverified registration with the kernel. Returns false if the
    /// registration had been lost (the fd was closed and its number reused).
    fn verify(&mut self, be: &mut dyn Backend, fd: i32, failed: &mut Vec<i32>) -> bool {
        let e = &mut self.entries[fd as usize];
        e.unverified = false;
        e.quiet_since = 0;
        e.trusted = 0;
        let want = e.wanted;
        if want == 0 || e.always_ready {
            return true;
        }
        let (r, intact) = match be.modify(fd, token(fd, e.gen), want) {
            Err(libc::ENOENT) => (Self::add(be, fd, e, want), false),
            r => (r, true),
        };
        e.bound = if intact {
            (e.bound * 2).min(VERIFY_MAX)
        } else {
            VERIFY_FIRST
        };
        if self.finish(fd, want, r).is_err() {
            failed.push(fd);
        }
        intact
    }

    /// Before polling: verifies the unverified fds that stayed quiet (no event) for
    /// `VERIFY_QUIET_NS`; starts the quiet clock of those seen for the first time.
    /// Returns when the next of the others falls due (the poll sleeps no longer).
    #[inline]
    pub fn verify_due(
        &mut self,
        be: &mut dyn Backend,
        now: u64,
        failed: &mut Vec<i32>,
    ) -> Option<u64> {
        // Nothing can be due yet: an event only restarts an fd's clock (later), and a
        // newly listed fd resets `next_due`. A quiet fd is so verified 20-40 ms after it
        // went quiet, and a busy loop scans the list once per 20 ms, not per poll.
        if now < self.next_due {
            return Some(self.next_due);
        }
        self.verify_scan(be, now, failed)
    }

    /// `verify_due`'s scan of the unverified list (at most once per `VERIFY_QUIET_NS`).
    #[inline(never)]
    fn verify_scan(
        &mut self,
        be: &mut dyn Backend,
        now: u64,
        failed: &mut Vec<i32>,
    ) -> Option<u64> {
        let mut next = u64::MAX;
        let mut i = 0;
        while i < self.unverified.len() {
            let fd = self.unverified[i];
            let e = &mut self.entries[fd as usize];
            if !e.unverified {
                e.listed = false;
                self.unverified.swap_remove(i);
                continue;
            }
            if e.quiet_since == 0 {
                e.quiet_since = now.max(1);
            } else if now.saturating_sub(e.quiet_since) >= VERIFY_QUIET_NS {
                e.listed = false;
                self.unverified.swap_remove(i);
                self.verify(be, fd, failed);
                continue;
            }
            next = next.min(e.quiet_since + VERIFY_QUIET_NS);
            i += 1;
        }
        self.next_due = if next == u64::MAX { 0 } else { next };
        (next != u64::MAX).then_some(next)
    }

    /// Verifies every unverified fd now (a host loop is about to sleep on the backend).
    pub fn verify_all(&mut self, be: &mut dyn Backend, failed: &mut Vec<i32>) {
        self.next_due = 0;
        while let Some(fd) = self.unverified.pop() {
            self.entries[fd as usize].listed = false;
            if self.entries[fd as usize].unverified {
                self.verify(be, fd, failed);
            }
        }
    }

    pub fn has_unverified(&self) -> bool {
        !self.unverified.is_empty()
    }

    /// Judges an event for (fd, gen) before it is dispatched.
    pub fn check(
        &mut self,
        be: &mut dyn Backend,
        fd: i32,
        gen: u32,
        failed: &mut Vec<i32>,
    ) -> Verdict {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            self.rebuild = true;
            return Verdict::Stale;
        };
        if e.gen != gen {
            self.rebuild = true;
            return Verdict::Stale;
        }
        if e.unverified {
            e.quiet_since = 0;
            e.trusted += 1;
            if e.trusted >= e.bound && !self.verify(be, fd, failed) {
                self.rebuild = true;
                return Verdict::Stale;
            }
        }
        Verdict::Dispatch
    }

    /// What `fd`'s watchers want now (0 for an unknown fd).
    pub fn wanted(&self, fd: i32) -> u8 {
        self.entries.get(fd as usize).map_or(0, |e| e.wanted)
    }

    /// After an event on `fd`: if the kernel reported readiness that nobody wanted when
    /// it was polled (`wanted_then`), narrow (or delete) the registration so
    /// level-triggering cannot spin the loop. Readiness that was wanted is not acted on:
    /// its watchers may well re-arm later, and then nothing needs to change.
    pub fn settle(&mut self, be: &mut dyn Backend, fd: i32, got: u8, wanted_then: u8) {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return;
        };
        let unwanted = got & !wanted_then & !e.wanted & (READ | WRITE);
        if unwanted == 0 || e.kernel == 0 || e.dirty {
            return;
        }
        if e.wanted == 0 {
            let _ = be.delete(fd);
            e.kernel = 0;
            e.reified = 0;
        } else if e.kernel != e.wanted && be.modify(fd, token(fd, e.gen), e.wanted).is_ok() {
            e.kernel = e.wanted;
            e.reified = e.wanted;
        }
    }

    /// After the backend was recreated empty: registers every fd that has watchers
    /// again (new generations); forgets the others.
    pub fn rebuild_all(&mut self, be: &mut dyn Backend, failed: &mut Vec<i32>) {
        self.rebuild = false;
        self.unverified.clear();
        self.next_due = 0;
        for fd in 0..self.entries.len() {
            let e = &mut self.entries[fd];
            e.listed = false;
            e.kernel = 0;
            e.reified = 0;
            e.unverified = false;
            e.lapsed = false;
            if e.wanted != 0 && !e.always_ready {
                let want = e.wanted;
                let r = Self::add(be, fd as i32, e, want);
                if self.finish(fd as i32, want, r).is_err() {
                    failed.push(fd as i32);
                }
            }
        }
    }

    /// Forgets `fd` entirely and removes its registration (before the fd is closed).
    pub fn forget(&mut self, be: &mut dyn Backend, fd: i32) {
        if let Some(e) = self.entries.get_mut(fd as usize) {
            if e.kernel != 0 {
                let _ = be.delete(fd);
            }
            e.kernel = 0;
            e.reified = 0;
            e.unverified = false;
            e.always_ready = false;
        }
    }

    /// True when some active watcher is on an always-ready fd.
    pub fn any_always_ready(&self) -> bool {
        self.always_ready.iter().any(|&fd| {
            self.entries[fd as usize].always_ready && self.entries[fd as usize].wanted != 0
        })
    }

    /// Drops fds from the always-ready list that are no longer always ready.
    pub fn prune_always_ready(&mut self) {
        let entries = &self.entries;
        self.always_ready
            .retain(|&fd| entries[fd as usize].always_ready);
    }
}
