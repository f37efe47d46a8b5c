//! Greenlet pools (gevent.pool.Pool, and Group as a pool without a size): spawn into a
//! pool (waiting while it is full), wait for a free place, join all, kill all.
//!
//! Owns, per hub (`HubState::net`): the pools (size, how many members run, an event set
//! whenever a member ends) and the members (the pool, the user's function and argument,
//! the greenlet). Invariants:
//! * A member greenlet runs `member_main`, which calls the user's function and then
//!   leaves the pool (`member_done`): the count drops, the pool's event is set.
//! * A member killed before it started never runs `member_main`: every pool call first
//!   reaps such members (`reap`), so the place is freed at the next call.
//! * The greenlets keep no Rust-owned value across a switch (handles and words only).

use crate::error::{Error, Result};
use crate::greenlet::Entry;
use crate::handle::{Kind, Table};
use crate::hub::greenlets::SpawnOpts;
use crate::hub::Hub;
use crate::io::left;
use crate::server::{insert_sub, pack, unpack, ConnRef, Sub, Take};
use crate::sync::{Obj, WaitList};
use std::ffi::c_void;
use std::panic::AssertUnwindSafe;

pub struct Pool {
    /// 0: no limit (a Group).
    size: usize,
    count: usize,
    /// Objects slot of an event set whenever a member ends.
    changed: u32,
}

pub struct Member {
    pool: (u32, u32),
    f: Entry,
    arg: *mut c_void,
    greenlet: Option<(u32, u32)>,
    /// Nobody holds the greenlet's handle: the pool releases it when the member leaves
    /// (members are spawned with a record so that gh_pool_kill can reach them).
    detached: bool,
}

/// A hub's pools and their members.
#[derive(Default)]
pub struct Pools {
    pools: Table<Pool>,
    members: Table<Member>,
}

/// A member's greenlet: runs the user's function, then leaves the pool. Its return
/// value is the function's (gh_join reports it).
unsafe extern "C" fn member_main(arg: *mut c_void) -> *mut c_void {
    let (slot, gen) = unpack(arg);
    let Some(hub) = crate::hub::existing() else {
        return std::ptr::null_mut();
    };
    let found = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let st = hub.st.borrow();
        st.net.pools.members.get(slot, gen).map(|m| (m.f, m.arg))
    }))
    .ok()
    .flatten();
    let Some((f, a)) = found else {
        return std::ptr::null_mut();
    };
    // SAFETY: f/arg were given to gh_pool_spawn by the user, who promised f may be
    // called with arg.
    let r = unsafe { f(a) };
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| hub.member_done(slot, gen)));
    r
}

impl Hub {
    pub fn pool_new(&self, size: usize) -> Result<u64> {
        let raw = self.obj_new(Obj::Event {
            set: false,
            waiters: WaitList::default(),
        })?;
        let changed = self.obj_check(raw, Kind::Event)?;
        let pool = Pool {
            size,
            count: 0,
            changed,
        };
        let r = insert_sub(&mut self.st.borrow_mut().net.pools.pools, pool);
        match r {
            Ok((slot, gen)) => Ok(self.net_handle(Sub::Pool, slot, gen)),
            Err(e) => {
                self.obj_close(changed);
                Err(e)
            }
        }
    }

    pub fn pool_check(&self, raw: u64) -> Result<(u32, u32)> {
        let (slot, gen) = self.net_check(raw, Sub::Pool)?;
        match self.st.borrow().net.pools.pools.get(slot, gen) {
            Some(_) => Ok((slot, gen)),
            None => Err(Error::BADHANDLE),
        }
    }

    /// A member leaves its pool.
    fn member_done(&self, slot: u32, gen: u32) {
        let Some(m) = self.st.borrow_mut().net.pools.members.take(slot, gen) else {
            return;
        };
        if let (true, Some((g, gg))) = (m.detached, m.greenlet) {
            let _ = self.release(g, gg);
        }
        let changed = {
            let mut st = self.st.borrow_mut();
            st.net.pools.pools.get_mut(m.pool.0, m.pool.1).map(|p| {
                p.count -= 1;
                p.changed
            })
        };
        if let Some(e) = changed {
            self.event_set(e);
        }
    }

    /// The members of pool (slot, gen): (member slot, gen, greenlet).
    fn members_of(&self, slot: u32, gen: u32) -> Vec<ConnRef> {
        let st = self.st.borrow();
        let m = &st.net.pools.members;
        m.iter()
            .filter(|(_, x)| x.pool == (slot, gen))
            .map(|(s, x)| (s, m.gen(s), x.greenlet))
            .collect()
    }

    /// Frees the places of members killed before they started (they never run
    /// `member_main`).
    fn reap(&self, slot: u32, gen: u32) {
        for (ms, mg, g) in self.members_of(slot, gen) {
            let gone = g.is_none_or(|(g, gg)| {
                self.st
                    .borrow()
                    .greenlets
                    .get(g, gg)
                    .is_none_or(|r| r.is_dead())
            });
            if gone {
                self.member_done(ms, mg);
            }
        }
    }

    /// Waits until `ready(pool)` holds, re-checking whenever a member ends.
    fn pool_wait(
        &self,
        slot: u32,
        gen: u32,
        timeout: Option<u64>,
        ready: impl Fn(&Pool) -> bool,
    ) -> Result<()> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        loop {
            self.reap(slot, gen);
            let changed = {
                let st = self.st.borrow();
                let p = st.net.pools.pools.get(slot, gen).ok_or(Error::BADHANDLE)?;
                if ready(p) {
                    return Ok(());
                }
                p.changed
            };
            let t = left(deadline);
            if t == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            self.event_clear(changed);
            match self.event_wait(changed, t) {
                Ok(()) => {}
                Err(e) => return Err(e), // ECLOSED: the pool was closed meanwhile
            }
        }
    }

    /// gh_pool_wait_available: until the pool has a free place.
    pub fn pool_wait_available(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<()> {
        self.pool_wait(slot, gen, timeout, |p| p.size == 0 || p.count < p.size)
    }

    /// gh_pool_join: until the pool is empty.
    pub fn pool_join(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<()> {
        self.pool_wait(slot, gen, timeout, |p| p.count == 0)
    }

    /// gh_pool_spawn: waits for a place, then spawns `f(arg)` as a member.
    pub fn pool_spawn(
        &self,
        slot: u32,
        gen: u32,
        f: Entry,
        arg: *mut c_void,
        timeout: Option<u64>,
        mut opts: SpawnOpts,
    ) -> Result<(u32, u32)> {
        self.pool_wait_available(slot, gen, timeout)?;
        let detached = std::mem::replace(&mut opts.detached, false);
        let (ms, mg) = self.st.borrow_mut().net.pools.members.insert(Member {
            pool: (slot, gen),
            f,
            arg,
            greenlet: None,
            detached,
        })?;
        match self.spawn(member_main, pack(ms, mg), opts) {
            Ok(g) => {
                let mut st = self.st.borrow_mut();
                if let Some(m) = st.net.pools.members.get_mut(ms, mg) {
                    m.greenlet = Some(g);
                }
                if let Some(p) = st.net.pools.pools.get_mut(slot, gen) {
                    p.count += 1;
                }
                Ok(g)
            }
            Err(e) => {
                self.st.borrow_mut().net.pools.members.remove(ms);
                Err(e)
            }
        }
    }

    /// gh_pool_kill: kills every member (GreenletExit); `timeout` > 0: then waits up to
    /// it for them to end. The calling greenlet, if a member, is spared.
    pub fn pool_kill(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<()> {
        if timeout != Some(0) && self.in_hub() {
            return Err(Error::PERM);
        }
        let me = self.current_id();
        for (_, _, g) in self.members_of(slot, gen) {
            if let Some((g, gg)) = g.filter(|g| *g != me) {
                let _ = self.kill(g, gg, Some(0));
            }
        }
        self.reap(slot, gen);
        if timeout == Some(0) {
            return Ok(());
        }
        let mine = self.members_of(slot, gen).iter().any(|m| m.2 == Some(me));
        let rest = usize::from(mine);
        self.pool_wait(slot, gen, timeout, move |p| p.count <= rest)
    }

    /// (size, count) of a pool, after reaping.
    pub fn pool_counts(&self, slot: u32, gen: u32) -> Result<(usize, usize)> {
        self.reap(slot, gen);
        let st = self.st.borrow();
        let p = st.net.pools.pools.get(slot, gen).ok_or(Error::BADHANDLE)?;
        Ok((p.size, p.count))
    }

    /// gh_pool_close: frees the pool; its members run on, outside any pool; callers
    /// waiting on it wake with ECLOSED.
    pub fn pool_close(&self, slot: u32, gen: u32) -> Result<()> {
        let p = self
            .st
            .borrow_mut()
            .net
            .pools
            .pools
            .take(slot, gen)
            .ok_or(Error::BADHANDLE)?;
        self.obj_close(p.changed);
        Ok(())
    }
}
