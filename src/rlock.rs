//! Re-entrant locks (gevent.lock.RLock): owned by a greenlet, which may acquire it again
//! (each acquire needs its release); other greenlets wait in FIFO order.
//!
//! Owns, per hub (`HubState::net.rlocks`): the owner (greenlet slot and generation), the
//! depth, and an internal one-permit semaphore the waiters park on (so timeouts, kills
//! and FIFO order are the semaphore's). Invariant: the permit is taken exactly while
//! there is an owner.

use crate::error::{Error, Result};
use crate::handle::Kind;
use crate::hub::Hub;
use crate::server::Take;
use crate::sync::{Obj, WaitList};

pub struct RLock {
    owner: Option<(u32, u32)>,
    depth: u32,
    /// Objects slot of the one-permit semaphore.
    sem: u32,
}

impl Hub {
    pub fn rlock_new(&self) -> Result<u64> {
        let raw = self.obj_new(Obj::Sem {
            count: 1,
            waiters: WaitList::default(),
        })?;
        let sem = self.obj_check(raw, Kind::Sem)?;
        let r = self.st.borrow_mut().net.rlocks.insert(RLock {
            owner: None,
            depth: 0,
            sem,
        });
        match r {
            Ok((slot, gen)) => Ok(self.handle(Kind::RLock, slot, gen)),
            Err(e) => {
                self.obj_close(sem);
                Err(e)
            }
        }
    }

    pub fn rlock_check(&self, raw: u64) -> Result<(u32, u32)> {
        let (slot, gen) = self.check(raw, Kind::RLock)?;
        match self.st.borrow().net.rlocks.get(slot, gen) {
            Some(_) => Ok((slot, gen)),
            None => Err(Error::BADHANDLE),
        }
    }

    /// gh_rlock_acquire: a nested acquire by the owner counts; others wait.
    pub fn rlock_acquire(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<()> {
        if self.in_hub() {
            return Err(Error::PERM);
        }
        let me = self.current_id();
        let sem = {
            let mut st = self.st.borrow_mut();
            let l = st.net.rlocks.get_mut(slot, gen).ok_or(Error::BADHANDLE)?;
            if l.owner == Some(me) {
                l.depth = l.depth.checked_add(1).ok_or(Error(-libc::EOVERFLOW))?;
                return Ok(());
            }
            l.sem
        };
        self.sem_acquire(sem, timeout)?; // ECLOSED: the lock was closed meanwhile
        let mut st = self.st.borrow_mut();
        match st.net.rlocks.get_mut(slot, gen) {
            Some(l) => {
                l.owner = Some(me);
                l.depth = 1;
                Ok(())
            }
            None => Err(Error(crate::error::ECLOSED)),
        }
    }

    /// gh_rlock_release: the owner's; the last release lets the next waiter in.
    pub fn rlock_release(&self, slot: u32, gen: u32) -> Result<()> {
        let me = self.current_id();
        let sem = {
            let mut st = self.st.borrow_mut();
            let l = st.net.rlocks.get_mut(slot, gen).ok_or(Error::BADHANDLE)?;
            if l.owner != Some(me) {
                return Err(Error::PERM);
            }
            l.depth -= 1;
            if l.depth > 0 {
                return Ok(());
            }
            l.owner = None;
            l.sem
        };
        self.sem_release(sem)
    }

    /// gh_rlock_owned: the caller's depth (0: not its owner).
    pub fn rlock_depth(&self, slot: u32, gen: u32) -> Result<u32> {
        let me = self.current_id();
        let st = self.st.borrow();
        let l = st.net.rlocks.get(slot, gen).ok_or(Error::BADHANDLE)?;
        Ok(if l.owner == Some(me) { l.depth } else { 0 })
    }

    /// gh_rlock_close: frees the lock; its waiters wake with ECLOSED.
    pub fn rlock_close(&self, slot: u32, gen: u32) -> Result<()> {
        let l = self
            .st
            .borrow_mut()
            .net
            .rlocks
            .take(slot, gen)
            .ok_or(Error::BADHANDLE)?;
        self.obj_close(l.sem);
        Ok(())
    }
}
