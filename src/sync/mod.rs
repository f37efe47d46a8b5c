//! Synchronisation on one hub (gevent.event, gevent.lock, gevent.queue, Waiter, Timeout).
//!
//! Every primitive is built on `Hub::wait_for` and a FIFO list of parked waits.
//! Rules that keep values and permits from being lost:
//! * A notified waiter is *popped* from the list and woken; it then retries the
//!   operation (an item or room stays in the object until someone takes it). The
//!   semaphore is the exception: a released permit is handed to the first waiter, which
//!   is woken holding it and needs no second look at the semaphore (`release_permit`);
//!   a bounded semaphore counts such permits (`WaitList::1`) until their waiters run.
//! * A waiter whose wait ends with an error (timeout, kill, throw) removes itself from
//!   the list; if it was already popped (notified) it passes the notification on to the
//!   next waiter, so a wake-up meant for it is never lost.
//! * A notified waiter that finds nothing when it runs (another greenlet took it first)
//!   waits again at the front of the list.
//! * Watches (`WaitList::2`: gh_wait_many, gh_queue_peek) take nothing: they are woken
//!   all at once on every change that may make the object ready, are never counted as
//!   woken-not-run, and never hold up or receive a permit or an item (so two watchers
//!   cannot pass a wake-up back and forth). A woken watch looks again and may re-park.

use crate::error::{Error, Result, ECLOSED};
use crate::greenlet::{Msg, WaitOn};
use crate::handle::{Kind, Table};
use crate::hub::wait::wake_split;
use crate::hub::wait::WaitId;
use crate::hub::Hub;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::ffi::c_void;

pub mod wait_many;

/// A FIFO of parked waits, and how many waiters were woken and have not run yet
/// (`.1`): what they were woken for is theirs, so a newcomer does not take it (for a
/// semaphore: the permits handed to waiters not run yet, counted for a bounded one
/// only, by its bound check); and the
/// watches parked on the object (`.2`: gh_wait_many, gh_queue_peek), woken all together.
#[derive(Default)]
pub struct WaitList(VecDeque<WaitId>, usize, Vec<WaitId>);

impl WaitList {
    fn remove(&mut self, w: WaitId) -> bool {
        match self
            .0
            .iter()
            .position(|x| x.slot == w.slot && x.seq == w.seq)
        {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nobody parked and nobody woken-but-not-run: a newcomer may go first.
    fn idle(&self) -> bool {
        self.0.is_empty() && self.1 == 0
    }

    /// No wait listed is still a wait: the list is empty, or every entry's wait has
    /// ended: main's, which `wake_first` keeps listed until main runs (a task's ended
    /// wait leaves the list when it ends: its timeout resumes it at once; one woken
    /// through the queue stays `blocked` until it runs, so it counts as waiting here
    /// as in `wake_first`). A newcomer that finds this and a free thing overtakes nobody.
    #[inline]
    fn none_parked(&self, greenlets: &Table<crate::greenlet::Greenlet>) -> bool {
        self.0.is_empty() || all_ended(&self.0, greenlets)
    }

    /// `avail` things (permits, items, room) are free: would a newcomer get one now,
    /// FIFO with the waiters parked and the ones woken and not yet run?
    fn would_take(&self, avail: u64, greenlets: &Table<crate::greenlet::Greenlet>) -> bool {
        avail > self.1 as u64 && self.none_parked(greenlets)
    }

    fn unwatch(&mut self, w: WaitId) {
        self.2.retain(|x| x.slot != w.slot || x.seq != w.seq);
    }
}

/// The items of a queue, in the order gets take them.
pub enum Items {
    /// gh_queue_new: first in, first out.
    Fifo(VecDeque<*mut c_void>),
    /// gh_queue_new_lifo: last in, first out.
    Lifo(Vec<*mut c_void>),
    /// gh_queue_new_priority: lowest priority first, FIFO among equals (the second
    /// field numbers puts).
    Prio(BinaryHeap<PrioItem>, u64),
}

/// An item of a priority queue; the heap's greatest is the lowest (priority, put number).
pub struct PrioItem {
    prio: i32,
    seq: u64,
    item: *mut c_void,
}

impl PartialEq for PrioItem {
    fn eq(&self, o: &Self) -> bool {
        (self.prio, self.seq) == (o.prio, o.seq)
    }
}
impl Eq for PrioItem {}
impl PartialOrd for PrioItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for PrioItem {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.prio, o.seq).cmp(&(self.prio, self.seq))
    }
}

impl Items {
    pub fn len(&self) -> usize {
        match self {
            Items::Fifo(q) => q.len(),
            Items::Lifo(v) => v.len(),
            Items::Prio(h, _) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, prio: i32, item: *mut c_void) {
        match self {
            Items::Fifo(q) => q.push_back(item),
            Items::Lifo(v) => v.push(item),
            Items::Prio(h, n) => {
                *n += 1;
                h.push(PrioItem {
                    prio,
                    seq: *n,
                    item,
                });
            }
        }
    }

    fn pop(&mut self) -> Option<*mut c_void> {
        match self {
            Items::Fifo(q) => q.pop_front(),
            Items::Lifo(v) => v.pop(),
            Items::Prio(h, _) => h.pop().map(|p| p.item),
        }
    }

    /// The item the next get takes.
    fn peek(&self) -> Option<*mut c_void> {
        match self {
            Items::Fifo(q) => q.front().copied(),
            Items::Lifo(v) => v.last().copied(),
            Items::Prio(h, _) => h.peek().map(|p| p.item),
        }
    }
}

/// gevent.event.AsyncResult's state.
#[derive(Copy, Clone, Debug)]
pub enum Outcome {
    Pending,
    Value(*mut c_void),
    Error(i32),
}

pub enum Obj {
    Event {
        set: bool,
        waiters: WaitList,
    },
    Result {
        outcome: Outcome,
        waiters: WaitList,
    },
    Sem {
        count: u64,
        /// gh_sem_new_bounded's initial value (u64::MAX: unbounded): releasing past it
        /// is an error.
        bound: u64,
        waiters: WaitList,
    },
    /// gh_rlock: owned by greenlet (slot, gen), `depth` times.
    RLock {
        owner: Option<(u32, u32)>,
        depth: u32,
        waiters: WaitList,
    },
    /// gh_cond: greenlets waiting to be notified.
    Cond {
        waiters: WaitList,
    },
    /// Boxed: the largest object, kept out of the others' size.
    Queue(Box<Queue>),
    Waiter {
        value: Option<*mut c_void>,
        waiter: WaitList,
    },
    /// gh_timeout: a deadline of greenlet `slot`.
    Timeout {
        slot: u32,
        gen: u32,
        at: u64,
    },
}

impl Obj {
    pub fn kind(&self) -> Kind {
        match self {
            Obj::Event { .. } => Kind::Event,
            Obj::Result { .. } => Kind::Result,
            Obj::Sem { .. } => Kind::Sem,
            Obj::RLock { .. } => Kind::RLock,
            Obj::Cond { .. } => Kind::Cond,
            Obj::Queue(_) => Kind::Queue,
            Obj::Waiter { .. } => Kind::Waiter,
            Obj::Timeout { .. } => Kind::Timeout,
        }
    }
}

// Every object's table slot is as large as the largest variant: keep the queue boxed and
// the rest small (88 bytes on 64-bit targets).
const _: () = assert!(std::mem::size_of::<Obj>() <= 96);

/// gevent.queue.Queue / LifoQueue / PriorityQueue (a JoinableQueue: task_done, join).
pub struct Queue {
    pub items: Items,
    pub capacity: usize,
    pub closed: bool,
    pub getters: WaitList,
    pub putters: WaitList,
    /// Items put and not yet gh_queue_task_done'd; gh_queue_join waits for 0.
    pub unfinished: u64,
    pub joiners: WaitList,
}

impl Obj {
    pub fn queue(&self) -> Option<&Queue> {
        match self {
            Obj::Queue(q) => Some(q),
            _ => None,
        }
    }

    fn queue_mut(&mut self) -> Option<&mut Queue> {
        match self {
            Obj::Queue(q) => Some(q),
            _ => None,
        }
    }
}

/// Which list of an object a waiter parks on.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    Main,
    Putters,
    /// gh_queue_join's waiters.
    Joiners,
}

fn list(o: &mut Obj, side: Side) -> &mut WaitList {
    match (o, side) {
        (Obj::Event { waiters, .. }, _) => waiters,
        (Obj::Result { waiters, .. }, _) => waiters,
        (Obj::Sem { waiters, .. }, _) => waiters,
        (Obj::RLock { waiters, .. }, _) => waiters,
        (Obj::Cond { waiters }, _) => waiters,
        (Obj::Queue(q), Side::Putters) => &mut q.putters,
        (Obj::Queue(q), Side::Joiners) => &mut q.joiners,
        (Obj::Queue(q), Side::Main) => &mut q.getters,
        (Obj::Waiter { waiter, .. }, _) => waiter,
        (Obj::Timeout { .. }, _) => unreachable!("nobody waits on a timeout"),
    }
}

impl Hub {
    pub fn obj_new(&self, obj: Obj) -> Result<u64> {
        let kind = obj.kind();
        let (slot, gen) = self.st.borrow_mut().objects.insert(obj)?;
        Ok(self.handle(kind, slot, gen))
    }

    /// Checks a handle of `kind`; returns its slot.
    pub fn obj_check(&self, raw: u64, kind: Kind) -> Result<u32> {
        let (slot, gen) = self.check(raw, kind)?;
        self.obj_live(slot, gen, kind)
    }

    /// `slot` if (slot, gen) is a live object of `kind` (the handle's hub and kind bits
    /// checked already).
    #[inline]
    pub fn obj_live(&self, slot: u32, gen: u32, kind: Kind) -> Result<u32> {
        match self.st.borrow().objects.get(slot, gen) {
            Some(o) if o.kind() == kind => Ok(slot),
            _ => Err(Error::BADHANDLE),
        }
    }

    /// Wakes the first waiter of `side` of object `slot` (popping it).
    fn notify(&self, slot: u32, side: Side) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(o) = st.objects.at_mut(slot) else {
            return false;
        };
        let l = list(o, side);
        // The waiter first in line runs before the watches (gevent's order: a peeker
        // behind a getter finds the item taken).
        let woke = notify_list(
            l,
            &mut st.greenlets,
            &mut st.queue,
            &mut st.main_wake,
            st.main_slot,
        );
        wake_watches(
            l,
            &mut st.greenlets,
            &mut st.queue,
            &mut st.main_wake,
            st.main_slot,
            Msg::OK,
        );
        woke
    }

    /// Wakes every waiter of `side` with `msg`.
    fn notify_all(&self, slot: u32, side: Side, msg: Msg) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(o) = st.objects.at_mut(slot) else {
            return;
        };
        let l = list(o, side);
        wake_watches(
            l,
            &mut st.greenlets,
            &mut st.queue,
            &mut st.main_wake,
            st.main_slot,
            msg,
        );
        for w in std::mem::take(&mut l.0) {
            if wake_split(
                &mut st.greenlets,
                &mut st.queue,
                &mut st.main_wake,
                st.main_slot,
                w,
                msg,
            ) {
                l.1 += 1;
            }
        }
    }

    /// Parks the current greenlet on `side` of object `slot` until notified.
    /// On an error, leaves the list, passing on a notification it had received.
    fn park_on(&self, slot: u32, side: Side, front: bool, timeout: Option<u64>) -> Result<Msg> {
        self.park_then(slot, side, front, timeout, |_| false)
            .map(|(m, _)| m)
    }

    /// `park_on`, and once notified (woken Ok, popped from the list), `take` runs on the
    /// object under the same borrow: it returns true when it took what the notification
    /// was for (a semaphore's permit), so the caller need not retry. Returns the message
    /// and whether `take` took it.
    fn park_then(
        &self,
        slot: u32,
        side: Side,
        front: bool,
        timeout: Option<u64>,
        take: impl FnOnce(&mut Obj) -> bool,
    ) -> Result<(Msg, bool)> {
        let mut me = None;
        let mut gen = 0;
        let mut took = false;
        let r = self.wait_for(WaitOn::Object(slot), timeout, |st, w| {
            me = Some(w);
            let (g, o) = st.objects.at_mut_gen(slot).ok_or(Error::BADHANDLE)?;
            gen = g;
            let l = list(o, side);
            if front {
                l.0.push_front(w);
            } else {
                l.0.push_back(w);
            }
            Ok(())
        });
        if let Some(w) = me {
            // Woken waiters were popped (and counted in `.1`); others leave the list.
            // Only the object parked on: if it was closed meanwhile, its slot may already
            // hold a new object (of any kind) whose lists and counts are not ours
            // (found by fuzz/api_sequence: a timeout reusing a closed event's slot).
            let (notified, broadcast) = {
                let mut st = self.st.borrow_mut();
                match st.objects.get_mut(slot, gen) {
                    Some(o) => {
                        // An event's, a result's or a join's wake-up is everybody's.
                        let broadcast = side == Side::Joiners
                            || matches!(o, Obj::Event { .. } | Obj::Result { .. });
                        let l = list(o, side);
                        // Woken Ok only by a notification, which popped us: no search.
                        debug_assert!(
                            r.is_err() || !l.0.iter().any(|x| x.slot == w.slot && x.seq == w.seq),
                            "a waiter woken Ok is no longer listed"
                        );
                        let notified = r.is_ok() || !l.remove(w);
                        if notified {
                            l.1 = l.1.saturating_sub(1);
                            if r.is_ok() {
                                took = take(o);
                            }
                        }
                        (notified, broadcast)
                    }
                    None => (false, false),
                }
            };
            // A wake-up meant for a waiter that gives up goes to the next one — if it
            // was meant for this one alone (passing on a broadcast's would wake a later
            // waiter with nothing to wake it for).
            if notified && !broadcast && matches!(r, Err(e) if e.0 != ECLOSED) {
                self.notify(slot, side);
            }
        }
        r.map(|m| (m, took))
    }

    fn deadline_left(deadline: Option<u64>) -> Option<u64> {
        deadline.map(|d| d.saturating_sub(crate::event_loop::now_ns()).max(1))
    }

    // ---- Event -------------------------------------------------------------

    pub fn event_set(&self, slot: u32) {
        if let Some(Obj::Event { set, .. }) = self.st.borrow_mut().objects.at_mut(slot) {
            *set = true;
        }
        self.notify_all(slot, Side::Main, Msg::OK);
    }

    pub fn event_clear(&self, slot: u32) {
        if let Some(Obj::Event { set, .. }) = self.st.borrow_mut().objects.at_mut(slot) {
            *set = false;
        }
    }

    pub fn event_is_set(&self, slot: u32) -> bool {
        matches!(
            self.st.borrow().objects.at(slot),
            Some(Obj::Event { set: true, .. })
        )
    }

    /// Returns once the event is set (at once if it is).
    pub fn event_wait(&self, slot: u32, timeout: Option<u64>) -> Result<()> {
        if self.event_is_set(slot) {
            return Ok(());
        }
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        self.park_on(slot, Side::Main, false, timeout).map(|_| ())
    }

    // ---- AsyncResult -------------------------------------------------------

    pub fn result_set(&self, slot: u32, outcome: Outcome) -> Result<()> {
        {
            let mut st = self.st.borrow_mut();
            let Some(Obj::Result { outcome: o, .. }) = st.objects.at_mut(slot) else {
                return Err(Error::BADHANDLE);
            };
            if !matches!(o, Outcome::Pending) {
                return Err(Error::BUSY);
            }
            *o = outcome;
        }
        self.notify_all(slot, Side::Main, Msg::OK);
        Ok(())
    }

    pub fn result_get(&self, slot: u32, timeout: Option<u64>) -> Result<*mut c_void> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        loop {
            let o = match self.st.borrow().objects.at(slot) {
                Some(Obj::Result { outcome, .. }) => *outcome,
                _ => return Err(Error::BADHANDLE),
            };
            match o {
                Outcome::Value(v) => return Ok(v),
                Outcome::Error(code) => return Err(Error(code)),
                Outcome::Pending if timeout == Some(0) => return Err(Error::TIMEDOUT),
                Outcome::Pending => {
                    self.park_on(slot, Side::Main, false, Self::deadline_left(deadline))?;
                }
            }
        }
    }

    // ---- Semaphore ---------------------------------------------------------

    /// Takes a permit: at once if one is free and nobody is parked before us (FIFO), else
    /// parks until a release hands us one (`timeout` 0: tries once).
    pub fn sem_acquire(&self, slot: u32, timeout: Option<u64>) -> Result<()> {
        let bounded = {
            let mut guard = self.st.borrow_mut();
            let st = &mut *guard;
            let Some(Obj::Sem {
                count,
                bound,
                waiters,
            }) = st.objects.at_mut(slot)
            else {
                return Err(Error::BADHANDLE);
            };
            // Released permits go straight to parked waiters, so a free one means
            // nobody is parked (but maybe an ended wait listed); the check keeps FIFO
            // whatever.
            if *count > 0 && waiters.none_parked(&st.greenlets) {
                *count -= 1;
                return Ok(());
            }
            *bound != u64::MAX
        };
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        self.sem_park(slot, timeout, bounded)
    }

    /// Parks on semaphore `slot` until a release hands this greenlet a permit: woken Ok,
    /// the permit is ours and, for an unbounded semaphore, nothing is left to do (no
    /// second look at the object: the hand-off's fast path); a bounded one counts it
    /// off its handed-and-not-run permits (`WaitList::1`, which its bound check counts).
    /// On an error, leaves the list, and a permit handed to it meanwhile goes back (to
    /// the next waiter, or the count).
    fn sem_park(&self, slot: u32, timeout: Option<u64>, bounded: bool) -> Result<()> {
        let mut me = None;
        let mut gen = 0;
        let r = self.wait_for(WaitOn::Object(slot), timeout, |st, w| {
            let (g, o) = st.objects.at_mut_gen(slot).ok_or(Error::BADHANDLE)?;
            list(o, Side::Main).0.push_back(w);
            me = Some(w);
            gen = g;
            Ok(())
        });
        if r.is_ok() && !bounded {
            return Ok(());
        }
        let Some(w) = me else {
            return r.map(|_| ());
        };
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        // Only the semaphore parked on: closed meanwhile, its slot may hold a new object.
        if let Some(Obj::Sem { count, waiters, .. }) = st.objects.get_mut(slot, gen) {
            // Woken Ok only by a release, which popped us: no search.
            let handed = r.is_ok() || !waiters.remove(w);
            if handed && bounded {
                waiters.1 = waiters.1.saturating_sub(1);
            }
            // No permit is free while a live wait is listed: a newcomer that finds one
            // free overtakes only ended waits (none_parked), and a release hands it on.
            debug_assert!(
                handed || *count == 0 || waiters.none_parked(&st.greenlets),
                "a free permit with a live wait listed"
            );
            // A permit handed to us goes back.
            if handed && r.is_err() {
                release_permit(
                    count,
                    bounded,
                    waiters,
                    &mut st.greenlets,
                    &mut st.queue,
                    &mut st.main_wake,
                    st.main_slot,
                );
            }
        }
        r.map(|_| ())
    }

    /// The FIFO acquire of re-entrant locks (a semaphore hands its permits over instead:
    /// `sem_park`): `now(obj, retried)` takes at once when it may (`Some(result)`;
    /// `retried`: this caller was notified before and may go ahead of the waiters still
    /// listed), else the caller parks at the end of the waiters (at the front once
    /// notified and retrying), and once notified `woken(obj)` takes under the wake-up's
    /// borrow (true: taken, no retry needed). `timeout` 0 tries once.
    fn acquire_fifo(
        &self,
        slot: u32,
        timeout: Option<u64>,
        mut now: impl FnMut(&mut Obj, bool, &Table<crate::greenlet::Greenlet>) -> Option<Result<()>>,
        mut woken: impl FnMut(&mut Obj) -> bool,
    ) -> Result<()> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        let mut retried = false;
        loop {
            {
                let mut guard = self.st.borrow_mut();
                let st = &mut *guard;
                let Some(o) = st.objects.at_mut(slot) else {
                    return Err(Error::BADHANDLE);
                };
                if let Some(r) = now(o, retried, &st.greenlets) {
                    return r;
                }
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            let (_, took) = self.park_then(
                slot,
                Side::Main,
                retried,
                Self::deadline_left(deadline),
                &mut woken,
            )?;
            if took {
                return Ok(());
            }
            retried = true;
        }
    }

    /// Releases a permit: to the first parked waiter if there is one, else into the count.
    pub fn sem_release(&self, slot: u32) -> Result<()> {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(Obj::Sem {
            count,
            bound,
            waiters,
        }) = st.objects.at_mut(slot)
        else {
            return Err(Error::BADHANDLE);
        };
        let bounded = *bound != u64::MAX;
        // A bounded semaphore's permits handed to waiters that have not run yet are out
        // of the count but still its own.
        if count.saturating_add(waiters.1 as u64) >= *bound {
            return Err(Error(-libc::EOVERFLOW));
        }
        release_permit(
            count,
            bounded,
            waiters,
            &mut st.greenlets,
            &mut st.queue,
            &mut st.main_wake,
            st.main_slot,
        );
        Ok(())
    }

    // ---- RLock (gevent.lock.RLock) ------------------------------------------

    /// Takes the re-entrant lock for the running greenlet (again, if it owns it).
    pub fn rlock_acquire(&self, slot: u32, timeout: Option<u64>) -> Result<()> {
        let me = self.current.get();
        if me == self.hub_slot {
            return Err(Error::PERM);
        }
        let me = (me, self.st.borrow().greenlets.gen(me));
        self.acquire_fifo(
            slot,
            timeout,
            |o, retried, greenlets| match o {
                Obj::RLock {
                    owner,
                    depth,
                    waiters,
                } => {
                    if *owner == Some(me) {
                        return Some(
                            depth
                                .checked_add(1)
                                .map(|d| *depth = d)
                                .ok_or(Error(-libc::EOVERFLOW)),
                        );
                    }
                    // FIFO, as the semaphore: a newcomer overtakes no waiter, notified or
                    // not.
                    (owner.is_none()
                        && waiters.1 == 0
                        && (retried || waiters.none_parked(greenlets)))
                    .then(|| {
                        *owner = Some(me);
                        *depth = 1;
                        Ok(())
                    })
                }
                _ => Some(Err(Error::BADHANDLE)),
            },
            |o| match o {
                Obj::RLock { owner, depth, .. } if owner.is_none() => {
                    *owner = Some(me);
                    *depth = 1;
                    true
                }
                _ => false,
            },
        )
    }

    /// Releases one level of the lock; the last one frees it and wakes the first waiter.
    /// `EPERM` if the running greenlet does not own it.
    pub fn rlock_release(&self, slot: u32) -> Result<()> {
        let me = self.current.get();
        let free = {
            let mut st = self.st.borrow_mut();
            let me = (me, st.greenlets.gen(me));
            let Some(Obj::RLock { owner, depth, .. }) = st.objects.at_mut(slot) else {
                return Err(Error::BADHANDLE);
            };
            if *owner != Some(me) {
                return Err(Error::PERM);
            }
            *depth -= 1;
            if *depth == 0 {
                *owner = None;
            }
            *depth == 0
        };
        if free {
            self.notify(slot, Side::Main);
        }
        Ok(())
    }

    // ---- Cond (a condition variable over a gh_sem lock) ----------------------

    /// Releases `lock` (a semaphore the caller holds), waits to be notified, then takes
    /// `lock` again whatever the wait ended with (as pthread_cond_timedwait); returns the
    /// wait's result, or the re-acquisition's error.
    pub fn cond_wait(&self, slot: u32, lock: u32, timeout: Option<u64>) -> Result<()> {
        if self.in_hub() {
            return Err(Error::PERM);
        }
        self.sem_release(lock)?;
        let r = self.park_on(slot, Side::Main, false, timeout).map(|_| ());
        // Back in the lock whatever the wait ended with.
        self.sem_acquire_uninterruptible(lock).and(r)
    }

    /// cond_wait's re-lock: waits for `lock`; a thrown code (delivered once) is kept and
    /// the wait goes on; killed, no more waiting: the lock only if it is free at once.
    fn sem_acquire_uninterruptible(&self, lock: u32) -> Result<()> {
        let mut thrown = None;
        loop {
            match self.sem_acquire(lock, None) {
                Ok(()) => return thrown.map_or(Ok(()), Err),
                Err(e) if e == Error::CANCELED => {
                    return self.sem_acquire(lock, Some(0)).and(Err(e));
                }
                Err(e)
                    if thrown.is_none()
                        && ![
                            Error(ECLOSED),
                            Error::BADHANDLE,
                            Error::LOOPEXIT,
                            Error::PERM,
                        ]
                        .contains(&e) =>
                {
                    thrown = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Wakes up to `n` waiters of the condition (`usize::MAX`: all); returns how many.
    pub fn cond_notify(&self, slot: u32, n: usize) -> Result<usize> {
        let mut woken = 0;
        while woken < n && self.notify(slot, Side::Main) {
            woken += 1;
        }
        Ok(woken)
    }

    // ---- Queue -------------------------------------------------------------

    /// Puts `item` (with `prio` on a priority queue: `None` = 0; `Some` on another
    /// queue is `EINVAL`), waiting while a bounded queue is full.
    pub fn queue_put(
        &self,
        slot: u32,
        item: *mut c_void,
        prio: Option<i32>,
        timeout: Option<u64>,
    ) -> Result<()> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        let mut retried = false;
        loop {
            {
                let mut guard = self.st.borrow_mut();
                let st = &mut *guard;
                let Some(Queue {
                    items,
                    capacity,
                    closed,
                    putters,
                    unfinished,
                    ..
                }) = st.objects.at_mut(slot).and_then(Obj::queue_mut)
                else {
                    return Err(Error::BADHANDLE);
                };
                if prio.is_some() && !matches!(items, Items::Prio(..)) {
                    return Err(Error::INVAL);
                }
                if *closed {
                    return Err(Error(ECLOSED));
                }
                let room = if *capacity == 0 {
                    usize::MAX
                } else {
                    capacity.saturating_sub(items.len())
                };
                if room > putters.1 && (retried || putters.none_parked(&st.greenlets)) {
                    items.push(prio.unwrap_or(0), item);
                    *unfinished += 1;
                    drop(guard);
                    self.notify(slot, Side::Main);
                    return Ok(());
                }
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            self.park_on(slot, Side::Putters, retried, Self::deadline_left(deadline))?;
            retried = true;
        }
    }

    pub fn queue_get(&self, slot: u32, timeout: Option<u64>) -> Result<*mut c_void> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        let mut retried = false;
        loop {
            {
                let mut guard = self.st.borrow_mut();
                let st = &mut *guard;
                let Some(Queue {
                    items,
                    closed,
                    getters,
                    ..
                }) = st.objects.at_mut(slot).and_then(Obj::queue_mut)
                else {
                    return Err(Error::BADHANDLE);
                };
                let mine = if *closed {
                    !items.is_empty()
                } else {
                    items.len() > getters.1
                };
                if mine && (retried || getters.none_parked(&st.greenlets) || *closed) {
                    let item = items.pop().expect("not empty");
                    drop(guard);
                    self.notify(slot, Side::Putters);
                    return Ok(item);
                }
                if *closed && items.is_empty() {
                    return Err(Error(ECLOSED));
                }
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            self.park_on(slot, Side::Main, retried, Self::deadline_left(deadline))?;
            retried = true;
        }
    }

    /// gh_queue_peek: the item the next get would take, without taking it; waits while
    /// the queue is empty (as a watch: it holds up no getter and takes no wake-up).
    pub fn queue_peek(&self, slot: u32, timeout: Option<u64>) -> Result<*mut c_void> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        loop {
            {
                let st = self.st.borrow();
                let Some(Queue { items, closed, .. }) = st.objects.at(slot).and_then(Obj::queue)
                else {
                    return Err(Error::BADHANDLE);
                };
                if let Some(item) = items.peek() {
                    return Ok(item);
                }
                if *closed {
                    return Err(Error(ECLOSED));
                }
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            self.watch_on(slot, Side::Main, Self::deadline_left(deadline))?;
        }
    }

    /// Parks the current greenlet as a watch of `side` of object `slot` until the next
    /// change there (or the timeout, a kill, ...).
    fn watch_on(&self, slot: u32, side: Side, timeout: Option<u64>) -> Result<Msg> {
        let mut me = None;
        let gen = self.st.borrow().objects.gen(slot);
        let r = self.wait_for(WaitOn::Object(slot), timeout, |st, w| {
            me = Some(w);
            let o = st.objects.at_mut(slot).ok_or(Error::BADHANDLE)?;
            list(o, side).2.push(w);
            Ok(())
        });
        if let Some(w) = me {
            if let Some(o) = self.st.borrow_mut().objects.get_mut(slot, gen) {
                list(o, side).unwatch(w);
            }
        }
        r
    }

    /// gh_queue_task_done: one item put earlier is dealt with; the last wakes the
    /// joiners. `EINVAL` when every item put was already marked done.
    pub fn queue_task_done(&self, slot: u32) -> Result<()> {
        {
            let mut st = self.st.borrow_mut();
            let Some(Queue { unfinished, .. }) = st.objects.at_mut(slot).and_then(Obj::queue_mut)
            else {
                return Err(Error::BADHANDLE);
            };
            if *unfinished == 0 {
                return Err(Error::INVAL);
            }
            *unfinished -= 1;
            if *unfinished > 0 {
                return Ok(());
            }
        }
        self.notify_all(slot, Side::Joiners, Msg::OK);
        Ok(())
    }

    /// gh_queue_join: returns once every item put has been marked done (at once if so
    /// now); woken by the last task_done, it returns even if more was put since (as
    /// gevent's JoinableQueue.join).
    pub fn queue_join(&self, slot: u32, timeout: Option<u64>) -> Result<()> {
        if self.queue_unfinished(slot) == 0 {
            return Ok(());
        }
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        self.park_on(slot, Side::Joiners, false, timeout)
            .map(|_| ())
    }

    pub fn queue_unfinished(&self, slot: u32) -> u64 {
        match self.st.borrow().objects.at(slot).and_then(Obj::queue) {
            Some(Queue { unfinished, .. }) => *unfinished,
            _ => 0,
        }
    }

    /// Closes the queue for puts; getters drain what is left, then get `ECLOSED`.
    pub fn queue_close(&self, slot: u32) -> Result<()> {
        {
            let mut st = self.st.borrow_mut();
            let Some(Queue { closed, .. }) = st.objects.at_mut(slot).and_then(Obj::queue_mut)
            else {
                return Err(Error::BADHANDLE);
            };
            *closed = true;
        }
        self.notify_all(slot, Side::Main, Msg::OK);
        self.notify_all(slot, Side::Putters, Msg::OK);
        Ok(())
    }

    pub fn queue_len(&self, slot: u32) -> usize {
        match self.st.borrow().objects.at(slot).and_then(Obj::queue) {
            Some(Queue { items, .. }) => items.len(),
            _ => 0,
        }
    }

    // ---- Waiter ------------------------------------------------------------

    /// Hands `value` to the greenlet in `gh_waiter_get`, or keeps it for the next get.
    pub fn waiter_switch(&self, slot: u32, value: *mut c_void) -> Result<()> {
        {
            let mut st = self.st.borrow_mut();
            let Some(Obj::Waiter { value: v, .. }) = st.objects.at_mut(slot) else {
                return Err(Error::BADHANDLE);
            };
            if v.is_some() {
                return Err(Error::BUSY);
            }
            *v = Some(value);
        }
        self.notify(slot, Side::Main);
        Ok(())
    }

    pub fn waiter_get(&self, slot: u32, timeout: Option<u64>) -> Result<*mut c_void> {
        let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
        let mut retried = false;
        loop {
            {
                let mut st = self.st.borrow_mut();
                let Some(Obj::Waiter { value, waiter }) = st.objects.at_mut(slot) else {
                    return Err(Error::BADHANDLE);
                };
                if !waiter.idle() && !retried {
                    return Err(Error::BUSY);
                }
                if let Some(v) = value.take() {
                    return Ok(v);
                }
                if !waiter.idle() {
                    return Err(Error::BUSY);
                }
            }
            if timeout == Some(0) {
                return Err(Error::TIMEDOUT);
            }
            self.park_on(slot, Side::Main, false, Self::deadline_left(deadline))?;
            retried = true;
        }
    }

    // ---- close -------------------------------------------------------------

    /// Frees an object; its waiters wake with `ECLOSED` (a timeout is cancelled).
    pub fn obj_close(&self, slot: u32) {
        let obj = self.st.borrow_mut().objects.remove(slot);
        let Some(obj) = obj else { return };
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let lists = match obj {
            Obj::Event { waiters, .. }
            | Obj::Result { waiters, .. }
            | Obj::Sem { waiters, .. }
            | Obj::RLock { waiters, .. }
            | Obj::Cond { waiters } => [waiters, WaitList::default()],
            Obj::Waiter { waiter, .. } => [waiter, WaitList::default()],
            Obj::Queue(q) => {
                let Queue {
                    mut getters,
                    putters,
                    joiners,
                    ..
                } = *q;
                getters.0.extend(joiners.0);
                [getters, putters]
            }
            Obj::Timeout { slot: g, gen, .. } => {
                let mut rearm = None;
                if let Some(gr) = st.greenlets.get_mut(g, gen) {
                    gr.timeouts.retain(|t| t.0 != slot);
                    gr.deadline = gr.timeouts.iter().map(|t| t.1).min().unwrap_or(u64::MAX);
                    if let (true, Some(t)) = (gr.blocked, gr.wait_timer) {
                        rearm = Some((t, gr.call_deadline.min(gr.deadline)));
                    }
                }
                // The owner is blocked with this deadline folded into its wait's timer:
                // move that timer to what is left (or stop it).
                if let Some((t, at)) = rearm {
                    if st.watchers.at(t).is_some_and(|w| w.active) {
                        if at == u64::MAX {
                            st.stop_watcher(t);
                        } else {
                            st.retime_timer(t, at);
                        }
                    }
                }
                return;
            }
        };
        for w in lists.into_iter().flat_map(|l| l.0.into_iter().chain(l.2)) {
            let msg = Msg::code(ECLOSED);
            wake_split(
                &mut st.greenlets,
                &mut st.queue,
                &mut st.main_wake,
                st.main_slot,
                w,
                msg,
            );
        }
    }

    // ---- Timeout (gevent.Timeout) -------------------------------------------

    /// Starts a deadline for the current greenlet.
    pub fn timeout_start(&self, ns: Option<u64>) -> Result<u64> {
        if self.in_hub() {
            return Err(Error::PERM);
        }
        let (slot, gen) = self.current_id();
        let at = match ns {
            Some(ns) => crate::event_loop::now_ns().saturating_add(ns),
            None => u64::MAX,
        };
        let kind = Kind::Timeout;
        let mut st = self.st.borrow_mut();
        let (oslot, ogen) = st.objects.insert(Obj::Timeout { slot, gen, at })?;
        let g = st.greenlets.get_mut(slot, gen).expect("current greenlet");
        g.timeouts.push((oslot, at));
        g.deadline = g.deadline.min(at);
        Ok(self.handle(kind, oslot, ogen))
    }
}

/// A semaphore's freed permit: handed to the first parked waiter (woken Ok, it owns the
/// permit; a bounded semaphore counts it in `.1` until that waiter runs), else into
/// `count`, then the watches are woken (gh_wait_many: a waiter's wake-up changes nothing
/// for them, but they look again either way, as for every object).
fn release_permit(
    count: &mut u64,
    bounded: bool,
    waiters: &mut WaitList,
    greenlets: &mut Table<crate::greenlet::Greenlet>,
    queue: &mut VecDeque<crate::hub::Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
) {
    let handed = wake_first(waiters, greenlets, queue, main_wake, main_slot);
    if handed {
        if bounded {
            waiters.1 += 1;
        }
    } else {
        *count += 1;
    }
    wake_watches(waiters, greenlets, queue, main_wake, main_slot, Msg::OK);
}

/// Wakes the first live waiter of `l` (popping it; counted as woken-not-run).
#[inline]
fn notify_list(
    l: &mut WaitList,
    greenlets: &mut Table<crate::greenlet::Greenlet>,
    queue: &mut VecDeque<crate::hub::Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
) -> bool {
    let woke = wake_first(l, greenlets, queue, main_wake, main_slot);
    if woke {
        l.1 += 1;
    }
    woke
}

/// Pops the first waiter of `l` that is still waiting and wakes it (Ok); false if none.
/// A waiter whose wait ended already is skipped: a task's cannot be listed (it leaves
/// the list as its wait ends), but main's can, as main is woken at once, not through the
/// queue, and leaves the list only when it runs again — so main's entry stays, for main
/// to find: popped, main would take itself for notified (a permit handed, a wake-up to
/// pass on) when nothing was.
#[inline(always)]
fn wake_first(
    l: &mut WaitList,
    greenlets: &mut Table<crate::greenlet::Greenlet>,
    queue: &mut VecDeque<crate::hub::Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
) -> bool {
    while let Some(w) = l.0.pop_front() {
        if wake_split(greenlets, queue, main_wake, main_slot, w, Msg::OK) {
            return true;
        }
        if w.slot == main_slot {
            return wake_first_past_main(l, greenlets, queue, main_wake, main_slot, w);
        }
    }
    false
}

/// `wake_first`'s rare case: main's entry `m`, whose wait ended, was popped: wake the
/// first waiter after it, and put `m` back at the front.
#[cold]
#[inline(never)]
fn wake_first_past_main(
    l: &mut WaitList,
    greenlets: &mut Table<crate::greenlet::Greenlet>,
    queue: &mut VecDeque<crate::hub::Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
    m: WaitId,
) -> bool {
    let mut woke = false;
    while let Some(w) = l.0.pop_front() {
        if wake_split(greenlets, queue, main_wake, main_slot, w, Msg::OK) {
            woke = true;
            break;
        }
    }
    l.0.push_front(m);
    woke
}

/// `WaitList::none_parked`'s rare case: entries listed, none of them a live wait.
#[cold]
#[inline(never)]
fn all_ended(l: &VecDeque<WaitId>, greenlets: &Table<crate::greenlet::Greenlet>) -> bool {
    l.iter().all(|w| {
        greenlets
            .get(w.slot, w.gen)
            .is_none_or(|g| !g.blocked || g.seq != w.seq)
    })
}

/// Wakes every watch of `l` (gh_wait_many, gh_queue_peek) with `msg`, taking them off.
#[inline]
fn wake_watches(
    l: &mut WaitList,
    greenlets: &mut Table<crate::greenlet::Greenlet>,
    queue: &mut VecDeque<crate::hub::Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
    msg: Msg,
) {
    if l.2.is_empty() {
        return;
    }
    for w in l.2.drain(..) {
        wake_split(greenlets, queue, main_wake, main_slot, w, msg);
    }
}
