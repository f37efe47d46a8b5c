//! The fd registry: which io watchers watch each fd, and what the kernel was told.
//!
//! Rules (libev's `fd_reify`), which keep the steady state free of `epoll_ctl`:
//! * fds stay registered, level-triggered; a watcher that stops and restarts within
//!   one loop iteration changes nothing the kernel sees.
//! * Interest changes are collected (`dirty`) and applied once per iteration, before
//!   polling. When the wanted set drops to empty the registration is left in place
//!   (lazily); if the kernel then reports an event nobody wants, the registration is
//!   narrowed or deleted at that moment (`settle`), so there is no busy loop.
//! * An fd that goes from no interest (as of the last reify) to some interest is
//!   (re-)added at once with `EPOLL_CTL_ADD`, because the user may have closed and
//!   reopened that number since; `EEXIST` means it is still registered.
//!   Doing this at watcher start lets `EBADF` reach the caller synchronously.
//! * Regular files and other fds epoll refuses (`EPERM`) are always ready.

use super::{Backend, READ, WRITE};

#[derive(Default)]
pub struct FdEntry {
    /// Active io watchers on this fd: (watcher slot, events).
    pub watchers: Vec<(u32, u8)>,
    /// Union of the active watchers' events.
    pub wanted: u8,
    /// What the kernel was asked for at the last reify (0 = nothing expected).
    reified: u8,
    /// What we believe is registered in the kernel (0 = not registered).
    kernel: u8,
    dirty: bool,
    /// epoll refused the fd (regular file): it is always ready.
    pub always_ready: bool,
}

#[derive(Default)]
pub struct Fds {
    entries: Vec<FdEntry>,
    dirty: Vec<i32>,
    /// fds marked always ready (may contain fds whose watchers have since stopped).
    pub always_ready: Vec<i32>,
}

impl Fds {
    pub fn get(&self, fd: i32) -> Option<&FdEntry> {
        self.entries.get(fd as usize)
    }

    fn entry(&mut self, fd: i32) -> &mut FdEntry {
        let i = fd as usize;
        if i >= self.entries.len() {
            self.entries.resize_with(i + 1, FdEntry::default);
        }
        &mut self.entries[i]
    }

    /// Adds an active watcher. Errors are raw errno values (`EBADF`, `ENOMEM`, …).
    pub fn attach(
        &mut self,
        be: &mut dyn Backend,
        fd: i32,
        slot: u32,
        events: u8,
    ) -> Result<(), i32> {
        let e = self.entry(fd);
        e.watchers.push((slot, events));
        e.wanted |= events;
        if e.reified == 0 && !e.always_ready {
            if let Err(err) = self.apply(be, fd) {
                self.detach(fd, slot);
                return Err(err);
            }
        } else {
            self.mark(fd);
        }
        Ok(())
    }

    /// Removes an active watcher (no syscall; the change is applied by `reify`).
    pub fn detach(&mut self, fd: i32, slot: u32) {
        let e = self.entry(fd);
        if let Some(i) = e.watchers.iter().position(|w| w.0 == slot) {
            e.watchers.swap_remove(i);
        }
        e.wanted = e.watchers.iter().fold(0, |m, w| m | w.1);
        self.mark(fd);
    }

    fn mark(&mut self, fd: i32) {
        let e = self.entry(fd);
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(fd);
        }
    }

    /// Applies collected interest changes; returns fds whose registration failed
    /// (their watchers should be woken so the caller's I/O reports the error).
    pub fn reify(&mut self, be: &mut dyn Backend, failed: &mut Vec<i32>) {
        while let Some(fd) = self.dirty.pop() {
            self.entries[fd as usize].dirty = false;
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
        let token = fd as u64;
        let r = if e.reified == 0 {
            match be.add(fd, token, want) {
                Err(libc::EEXIST) if e.kernel == want => Ok(()),
                Err(libc::EEXIST) => be.modify(fd, token, want),
                r => r,
            }
        } else {
            match be.modify(fd, token, want) {
                Err(libc::ENOENT) => be.add(fd, token, want),
                r => r,
            }
        };
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
            let _ = be.delete(fd);
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
        } else if e.kernel != e.wanted && be.modify(fd, fd as u64, e.wanted).is_ok() {
            e.kernel = e.wanted;
            e.reified = e.wanted;
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
