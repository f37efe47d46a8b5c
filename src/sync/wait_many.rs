//! gh_wait_many / gh_wait_any (gevent.wait, gevent.iwait): one greenlet waits until
//! `count` of a list of greenlets, events, results, semaphores, queues and fds are ready.
//!
//! Ready means "the matching call would not block now": a greenlet is dead, an event
//! set, a result set, a semaphore acquire would get a permit (FIFO with its waiters), a
//! queue get would get an item (GH_READ) or a put would find room (GH_WRITE) — or the
//! queue is closed —, an fd is readable / writable. Nothing is taken.
//!
//! One wait, many sources: the current greenlet parks once (`Hub::wait_for`) with its
//! wait registered as a *watch* on every object not ready (`WaitList::2`: woken all at
//! once, no permit or item held for it), as a joiner of every greenlet alive, and on every
//! fd (parked on the fd's entry, or an io watcher when that side is taken). Whatever wakes
//! it, it takes every registration off, looks at the whole list again (a level check:
//! readiness is what the objects say now) and waits again while fewer than `count` are
//! ready. No Rust-owned memory lives across the wait (a discarded stack leaks nothing):
//! the registrations are found again from the caller's array.

use super::{list, Obj, Outcome, Queue, Side};
use crate::error::{Error, Result, ECLOSED};
use crate::event_loop::watcher::{Action, WatchKind};
use crate::event_loop::{READ, WRITE};
use crate::greenlet::{Role, WaitOn};
use crate::handle::Kind;
use crate::hub::wait::WaitId;
use crate::hub::{Hub, HubState};

/// `revents` bit of an entry that made the call fail (poll's POLLNVAL).
pub(crate) const NVAL: i16 = 0x20;

/// What one entry of the caller's list names.
#[derive(Copy, Clone, Debug)]
pub enum Target {
    Greenlet(u64),
    Event(u64),
    Result(u64),
    Sem(u64),
    /// A queue and the events wanted (READ: get would not block, WRITE: put would not).
    Queue(u64, i16),
    Fd(i32, i16),
    /// An unknown kind.
    Invalid,
}

/// An entry of the caller's list (the C struct, seen by the core through this).
pub trait Waitable {
    fn target(&self) -> Target;
    fn revents(&self) -> i16;
    fn set_revents(&mut self, revents: i16);
}

/// Where a not-ready entry's wait is registered.
#[derive(Copy, Clone)]
enum Reg {
    Watch(u32, u32, Side),
    Join(u32, u32),
    Fd(i32, u8),
}

/// An entry, checked: ready with these revents, or where to wait for it.
enum Check {
    Ready(i16),
    Wait(Reg),
}

/// Events of an fd or queue entry: a non-empty subset of READ | WRITE (0 for a queue:
/// READ).
fn events(ev: i16, queue: bool) -> Result<u8> {
    let all = (READ | WRITE) as i16;
    match ev {
        0 if queue => Ok(READ),
        e if e & !all == 0 && e != 0 => Ok(e as u8),
        _ => Err(Error::INVAL),
    }
}

impl Hub {
    /// Waits until `count` entries of `items` are ready (`count` 1..=len); returns how
    /// many are ready (every entry's revents says which). `ETIMEDOUT` with fewer (their
    /// revents still set); the first bad entry's error (its revents `NVAL`) before any
    /// wait; `ECLOSED` when an object or fd of the list was closed meanwhile.
    pub fn wait_many<T: Waitable>(
        &self,
        items: &mut [T],
        count: usize,
        timeout: Option<u64>,
    ) -> Result<usize> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        let mut first = true;
        loop {
            let (ready, err, on) = self.scan_all(items);
            if let Some(e) = err {
                // Valid when the wait began: closed while it waited.
                return Err(if first { e } else { Error(ECLOSED) });
            }
            first = false;
            if ready >= count {
                return Ok(ready);
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            let mut me = None;
            let r = self.wait_for(on, Self::deadline_left(deadline), |st, w| {
                me = Some(w);
                // The entries the scan found not ready (nothing ran since).
                for it in items.iter().filter(|it| it.revents() == 0) {
                    let reg = match it.target() {
                        Target::Fd(fd, ev) => Reg::Fd(fd, events(ev, false)?),
                        t => match self.check_entry(st, t)? {
                            Check::Wait(reg) => reg,
                            Check::Ready(_) => continue,
                        },
                    };
                    register(st, reg, w)?;
                }
                Ok(())
            });
            if let Some(w) = me {
                let mut st = self.st.borrow_mut();
                for it in items.iter() {
                    unregister(&mut st, it.target(), w);
                }
            }
            if let Err(e) = r {
                let (ready, _, _) = self.scan_all(items);
                return if e == Error::TIMEDOUT && ready >= count {
                    Ok(ready)
                } else {
                    Err(e)
                };
            }
        }
    }

    /// Sets every entry's revents from what is ready now; returns how many are, the first
    /// entry's error, and what to show the wait as (the first entry not ready).
    fn scan_all<T: Waitable>(&self, items: &mut [T]) -> (usize, Option<Error>, WaitOn) {
        let mut ready = 0;
        let mut err = None;
        let mut on = WaitOn::Nothing;
        // The fds in one poll(2) (dropped before any wait).
        let mut fds: Vec<libc::pollfd> = Vec::new();
        for it in items.iter_mut() {
            let r = match it.target() {
                Target::Fd(fd, ev) => match (fd, events(ev, false)) {
                    (_, Err(e)) => Err(e),
                    (fd, _) if fd < 0 => Err(Error::BADF),
                    (fd, Ok(ev)) => {
                        fds.push(pollfd(fd, ev));
                        Ok(Check::Ready(0))
                    }
                },
                t => self.check_entry(&self.st.borrow(), t),
            };
            match r {
                Ok(Check::Ready(rev)) => {
                    it.set_revents(rev);
                    ready += (rev != 0) as usize;
                }
                Ok(Check::Wait(reg)) => {
                    it.set_revents(0);
                    if on == WaitOn::Nothing {
                        on = match reg {
                            Reg::Watch(slot, ..) => WaitOn::Object(slot),
                            Reg::Join(slot, _) => WaitOn::Join(slot),
                            Reg::Fd(fd, events) => WaitOn::Fd { fd, events },
                        };
                    }
                }
                Err(e) => {
                    it.set_revents(NVAL);
                    err = err.or(Some(e));
                }
            }
        }
        if fds.is_empty() {
            return (ready, err, on);
        }
        if let Err(e) = crate::io_ext::poll_now(&mut fds) {
            return (ready, err.or(Some(e)), on);
        }
        let mut next = fds.iter();
        for it in items.iter_mut() {
            let Target::Fd(fd, ev) = it.target() else {
                continue;
            };
            let (true, Ok(ev)) = (fd >= 0, events(ev, false)) else {
                continue;
            };
            let Some(p) = next.next() else { break };
            if p.revents & libc::POLLNVAL != 0 {
                it.set_revents(NVAL);
                err = err.or(Some(Error::BADF));
                continue;
            }
            let rev = fd_revents(p.revents) & ev as i16;
            it.set_revents(rev);
            if rev != 0 {
                ready += 1;
            } else if on == WaitOn::Nothing {
                on = WaitOn::Fd { fd, events: ev };
            }
        }
        (ready, err, on)
    }

    /// Checks an object or greenlet entry (not an fd: scan_all polls those together).
    fn check_entry(&self, st: &HubState, t: Target) -> Result<Check> {
        let obj = |raw: u64, kind: Kind| -> Result<(u32, u32, &Obj)> {
            let (slot, gen) = Hub::check(self, raw, kind)?;
            match st.objects.get(slot, gen) {
                Some(o) if o.kind() == kind => Ok((slot, gen, o)),
                _ => Err(Error::BADHANDLE),
            }
        };
        let ready = |yes: bool, reg: Reg| {
            if yes {
                Check::Ready(READ as i16)
            } else {
                Check::Wait(reg)
            }
        };
        Ok(match t {
            Target::Invalid => return Err(Error::INVAL),
            Target::Greenlet(raw) => {
                let (slot, gen) = Hub::check(self, raw, Kind::Greenlet)?;
                let g = match st.greenlets.get(slot, gen) {
                    Some(g) if !g.released => g,
                    _ => return Err(Error::BADHANDLE),
                };
                if slot == self.current.get() {
                    return Err(Error::DEADLK);
                }
                if g.role != Role::Task {
                    return Err(Error::INVAL);
                }
                ready(g.is_dead(), Reg::Join(slot, gen))
            }
            Target::Event(raw) => {
                let (slot, gen, o) = obj(raw, Kind::Event)?;
                let set = matches!(o, Obj::Event { set: true, .. });
                ready(set, Reg::Watch(slot, gen, Side::Main))
            }
            Target::Result(raw) => {
                let (slot, gen, o) = obj(raw, Kind::Result)?;
                let set = !matches!(
                    o,
                    Obj::Result {
                        outcome: Outcome::Pending,
                        ..
                    }
                );
                ready(set, Reg::Watch(slot, gen, Side::Main))
            }
            Target::Sem(raw) => {
                let (slot, gen, o) = obj(raw, Kind::Sem)?;
                // A released permit goes straight to a parked waiter: one in the count is
                // free for a newcomer when nobody is parked.
                let free = matches!(o, Obj::Sem { count, waiters, .. } if *count > 0 && waiters.none_parked(&st.greenlets));
                ready(free, Reg::Watch(slot, gen, Side::Main))
            }
            Target::Queue(raw, ev) => {
                let ev = events(ev, true)?;
                let (slot, gen, o) = obj(raw, Kind::Queue)?;
                let Some(Queue {
                    items,
                    capacity,
                    closed,
                    getters,
                    putters,
                    ..
                }) = o.queue()
                else {
                    return Err(Error::BADHANDLE);
                };
                let room = match *capacity {
                    0 => u64::MAX,
                    c => c.saturating_sub(items.len()) as u64,
                };
                let mut rev = 0;
                if ev & READ != 0
                    && (*closed || getters.would_take(items.len() as u64, &st.greenlets))
                {
                    rev |= READ as i16;
                }
                if ev & WRITE != 0 && (*closed || putters.would_take(room, &st.greenlets)) {
                    rev |= WRITE as i16;
                }
                if rev != 0 {
                    Check::Ready(rev)
                } else if ev & READ != 0 {
                    Check::Wait(Reg::Watch(slot, gen, Side::Main))
                } else {
                    Check::Wait(Reg::Watch(slot, gen, Side::Putters))
                }
            }
            Target::Fd(..) => unreachable!("fds are polled together"),
        })
    }
}

fn pollfd(fd: i32, ev: u8) -> libc::pollfd {
    let mut events = 0;
    if ev & READ != 0 {
        events |= libc::POLLIN;
    }
    if ev & WRITE != 0 {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2) revents as GH_READ / GH_WRITE (hang-up and error count as both).
fn fd_revents(r: i16) -> i16 {
    let mut rev = 0;
    if r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        rev |= READ as i16;
    }
    if r & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
        rev |= WRITE as i16;
    }
    rev
}

/// Registers wait `w` where `reg` says (wait_for's setup: no switch in between).
fn register(st: &mut HubState, reg: Reg, w: WaitId) -> Result<()> {
    match reg {
        Reg::Watch(slot, gen, side) => {
            if let Some(o) = st.objects.get_mut(slot, gen) {
                list(o, side).2.push(w);
            }
        }
        Reg::Join(slot, gen) => {
            if let Some(g) = st.greenlets.get_mut(slot, gen) {
                g.joiners.push((w.slot, w.gen, w.seq));
            }
        }
        Reg::Fd(fd, events) => {
            for side in [READ, WRITE] {
                if events & side == 0 || st.park_fd(fd, side, w)? {
                    continue;
                }
                // That side has a wait parked already: an io watcher of our own, found
                // again by its action when the wait ends.
                let (t, _) = st.new_watcher(WatchKind::Io { fd, events: side }, true)?;
                if let Err(e) = st.start_watcher(t, w.action(0)) {
                    st.close_watcher(t);
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Takes wait `w` off wherever `t` may have registered it (a no-op where it is not).
fn unregister(st: &mut HubState, t: Target, w: WaitId) {
    // Only an object of the kind named (the entry was checked before the wait; this
    // keeps a changed entry from reaching another kind's lists).
    let watch = |st: &mut HubState, raw: u64, kind: Kind, sides: &[Side]| {
        let id = crate::handle::Id::decode(raw);
        match st.objects.get_mut(id.slot, id.gen) {
            Some(o) if id.kind == kind as u8 && o.kind() == kind => {
                for &side in sides {
                    list(o, side).unwatch(w);
                }
            }
            _ => {}
        }
    };
    match t {
        Target::Event(raw) => watch(st, raw, Kind::Event, &[Side::Main]),
        Target::Result(raw) => watch(st, raw, Kind::Result, &[Side::Main]),
        Target::Sem(raw) => watch(st, raw, Kind::Sem, &[Side::Main]),
        Target::Queue(raw, _) => watch(st, raw, Kind::Queue, &[Side::Main, Side::Putters]),
        Target::Greenlet(raw) => {
            let id = crate::handle::Id::decode(raw);
            match st.greenlets.get_mut(id.slot, id.gen) {
                Some(g) if id.kind == Kind::Greenlet as u8 => g.joiners.remove(w.slot),
                _ => {}
            }
        }
        Target::Fd(fd, ev) if fd >= 0 => {
            let Ok(ev) = events(ev, false) else { return };
            for side in [READ, WRITE] {
                if ev & side != 0 {
                    st.unpark_fd(fd, side, w);
                }
            }
            let mine: Vec<u32> = st
                .fds
                .get(fd)
                .map(|e| {
                    e.watchers
                        .iter()
                        .map(|&(s, _)| s)
                        .filter(|&s| {
                            st.watchers.at(s).is_some_and(|x| {
                                matches!(x.action(), Action::Resume { slot, gen, seq, .. }
                                    if slot == w.slot && gen == w.gen && seq == w.seq)
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            for s in mine {
                st.close_watcher(s);
            }
        }
        Target::Fd(..) | Target::Invalid => {}
    }
}
