//! Header sections "Timeouts" and "Synchronisation".

use super::{guard, need, put};
use crate::error::{Error, Result};
use crate::event_loop::duration_ns;
use crate::handle::Kind;
use crate::hub::{self, Hub};
use crate::sync::{Items, Obj, Outcome, Queue, WaitList};
use std::collections::VecDeque;
use std::ffi::{c_int, c_uint, c_void};

/// A gh_timeout_start deadline (a value handle).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_timeout {
    pub id: u64,
}

/// An event (gevent.event.Event): a flag greenlets can wait for.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_event {
    pub id: u64,
}

/// An AsyncResult (gevent.event.AsyncResult): a value or an error code, set once,
/// read by any number of getters.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_result {
    pub id: u64,
}

/// A counting semaphore (gevent.lock.Semaphore); a lock is gh_sem_new(&s, 1).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_sem {
    pub id: u64,
}

/// A re-entrant lock owned by a greenlet (gevent.lock.RLock).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_rlock {
    pub id: u64,
}

/// A condition variable used with a gh_sem lock (threading.Condition for greenlets).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_cond {
    pub id: u64,
}

/// A FIFO queue of `void *` (gevent.queue.Queue), bounded or unbounded.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_queue {
    pub id: u64,
}

/// A Waiter (gevent's hub Waiter): a one-slot hand-off from anyone — hub callbacks
/// included — to the one greenlet that gets it.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_waiter {
    pub id: u64,
}

#[inline(always)]
fn obj(raw: u64, kind: Kind) -> Result<(&'static Hub, u32)> {
    let hub = hub::for_handle(raw)?;
    // for_handle compared the hub id: the kind and the record are left to check.
    let id = crate::handle::Id::decode(raw);
    if id.kind != kind as u8 {
        return Err(Error::BADHANDLE);
    }
    let slot = hub.obj_live(id.slot, id.gen, kind)?;
    Ok((hub, slot))
}

fn create(out_null: bool, o: Obj) -> Result<u64> {
    if out_null {
        return Err(Error::INVAL);
    }
    hub::current()?.obj_new(o)
}

/// Starts a deadline for the calling greenlet (gevent.Timeout): once `seconds` have
/// passed, every blocking call of this greenlet returns GH_ETIMEDOUT (at once if it is
/// already blocked) until the timeout is cancelled. Nested timeouts: the earliest
/// deadline wins. Negative or +inf: a timeout that never expires.
///
/// *Ownership*: `*out` is the caller's: gh_timeout_cancel it, expired or not.
/// *Threads*: the calling greenlet of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL, NaN), GH_EPERM (from a hub callback), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_timeout_start(out: *mut gh_timeout, seconds: f64) -> c_int {
    guard(|| {
        need(out)?;
        let ns = duration_ns(seconds)?;
        let id = hub::current()?.timeout_start(ns)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_timeout { id }) };
        Ok(0)
    })
}

/// Cancels a timeout (expired or not: cancelling after expiry is harmless). The handle
/// becomes stale.
///
/// *Threads*: this thread's hub (any greenlet). *Blocking*: never.
/// *Errors*: GH_EBADHANDLE (zero, forged, already cancelled), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_timeout_cancel(t: gh_timeout) -> c_int {
    guard(|| {
        let (hub, slot) = obj(t.id, Kind::Timeout)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates an event, initially clear.
///
/// *Ownership*: `*out` is the caller's: gh_event_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_event_new(out: *mut gh_event) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Event {
                set: false,
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_event { id }) };
        Ok(0)
    })
}

/// Sets the event: every greenlet waiting on it wakes (in the order they came), and
/// later waits return at once until gh_event_clear.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_event_set(e: gh_event) -> c_int {
    guard(|| {
        let (hub, slot) = obj(e.id, Kind::Event)?;
        hub.event_set(slot);
        Ok(0)
    })
}

/// Clears the event.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_event_clear(e: gh_event) -> c_int {
    guard(|| {
        let (hub, slot) = obj(e.id, Kind::Event)?;
        hub.event_clear(slot);
        Ok(0)
    })
}

/// Waits until the event is set (returns at once if it is). A waiter woken by
/// gh_event_set returns GH_OK even if the event was cleared again before it ran.
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0 = just check); not from a
/// hub callback. *Errors*: GH_ETIMEDOUT, GH_ECLOSED (closed meanwhile), GH_ECANCELED, a
/// gh_throw code, GH_EPERM, GH_ELOOPEXIT (main, nothing could set it), GH_EINVAL (NaN),
/// GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_event_wait(e: gh_event, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(e.id, Kind::Event)?;
        hub.event_wait(slot, duration_ns(timeout)?).map(|_| 0)
    })
}

/// 1 if the event is set, 0 if not, or a negative code.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_event_is_set(e: gh_event) -> c_int {
    guard(|| {
        let (hub, slot) = obj(e.id, Kind::Event)?;
        Ok(hub.event_is_set(slot) as c_int)
    })
}

/// Frees the event; greenlets waiting on it wake with GH_ECLOSED. The handle goes stale.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE (also on a second close), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_event_close(e: gh_event) -> c_int {
    guard(|| {
        let (hub, slot) = obj(e.id, Kind::Event)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates an AsyncResult, initially unset.
///
/// *Ownership*: `*out` is the caller's: gh_result_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_result_new(out: *mut gh_result) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Result {
                outcome: Outcome::Pending,
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_result { id }) };
        Ok(0)
    })
}

/// Sets the result to `value` and wakes every getter. A result is set once.
///
/// *Ownership*: `value` is passed through untouched (greenhub never frees it).
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBUSY (already set), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_result_set(r: gh_result, value: *mut c_void) -> c_int {
    guard(|| {
        let (hub, slot) = obj(r.id, Kind::Result)?;
        hub.result_set(slot, Outcome::Value(value)).map(|_| 0)
    })
}

/// Sets the result to the error `code` (negative): every getter returns it.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EINVAL (`code` >= 0), GH_EBUSY (already set), GH_EBADHANDLE,
/// GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_result_set_error(r: gh_result, code: c_int) -> c_int {
    guard(|| {
        if code >= 0 {
            return Err(Error::INVAL);
        }
        let (hub, slot) = obj(r.id, Kind::Result)?;
        hub.result_set(slot, Outcome::Error(code)).map(|_| 0)
    })
}

/// Waits until the result is set; then returns GH_OK with `*value` = the value, or the
/// error code it was set to. Any number of greenlets may get it, any number of times.
///
/// *Ownership*: `value` may be NULL. *Threads*: this thread's hub.
/// *Blocking*: yes (`timeout` 0 = just check); not from a hub callback.
/// *Errors*: the code set by gh_result_set_error, GH_ETIMEDOUT, GH_ECLOSED,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT, GH_EINVAL (NaN),
/// GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `value` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_result_get(
    r: gh_result,
    timeout: f64,
    value: *mut *mut c_void,
) -> c_int {
    guard(|| {
        let (hub, slot) = obj(r.id, Kind::Result)?;
        let v = hub.result_get(slot, duration_ns(timeout)?)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put(value, v) };
        Ok(0)
    })
}

/// Frees the result; getters waiting on it wake with GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_result_close(r: gh_result) -> c_int {
    guard(|| {
        let (hub, slot) = obj(r.id, Kind::Result)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates a counting semaphore holding `value` permits (a lock: 1).
///
/// *Ownership*: `*out` is the caller's: gh_sem_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_sem_new(out: *mut gh_sem, value: c_uint) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Sem {
                count: value as u64,
                bound: u64::MAX,
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_sem { id }) };
        Ok(0)
    })
}

/// Takes a permit, waiting until one is released. Waiters are served in FIFO order
/// (a newcomer does not overtake them); a permit released to a waiter that then times
/// out or is killed goes to the next waiter.
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0 = try once); not from a hub
/// callback. *Errors*: GH_ETIMEDOUT, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM,
/// GH_ELOOPEXIT, GH_EINVAL (NaN), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_sem_acquire(s: gh_sem, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(s.id, Kind::Sem)?;
        hub.sem_acquire(slot, duration_ns(timeout)?).map(|_| 0)
    })
}

/// Returns a permit (any greenlet may release, as with gevent's Semaphore): handed
/// straight to the first waiter, which is woken holding it, or kept for the next
/// acquire when nobody waits.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EOVERFLOW (2^64 permits, or a bounded semaphore back at its initial
/// value: nothing to release), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_sem_release(s: gh_sem) -> c_int {
    guard(|| {
        let (hub, slot) = obj(s.id, Kind::Sem)?;
        hub.sem_release(slot).map(|_| 0)
    })
}

/// Frees the semaphore; waiters wake with GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_sem_close(s: gh_sem) -> c_int {
    guard(|| {
        let (hub, slot) = obj(s.id, Kind::Sem)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates a bounded semaphore (gevent.lock.BoundedSemaphore) holding `value` permits:
/// as gh_sem_new, but releasing a permit that would make more than `value` available is
/// an error (GH_EOVERFLOW) instead of a new permit — it catches a release without an
/// acquire.
///
/// *Ownership*: `*out` is the caller's: gh_sem_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_sem_new_bounded(out: *mut gh_sem, value: c_uint) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Sem {
                count: value as u64,
                bound: value as u64,
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_sem { id }) };
        Ok(0)
    })
}

/// Creates a re-entrant lock (gevent.lock.RLock), free: the greenlet that acquires it owns
/// it and may acquire it again; it is free again once released as many times. A greenlet
/// that ends holding it leaves it held.
///
/// *Ownership*: `*out` is the caller's: gh_rlock_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_rlock_new(out: *mut gh_rlock) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::RLock {
                owner: None,
                depth: 0,
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_rlock { id }) };
        Ok(0)
    })
}

/// Acquires the lock for the calling greenlet: at once if it is free or the caller owns it
/// (one level more), else waits, FIFO with the other waiters.
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0 = try once); not from a hub
/// callback (GH_EPERM: the hub cannot own a lock). *Errors*: GH_ETIMEDOUT, GH_ECLOSED,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT, GH_EOVERFLOW (2^32 levels),
/// GH_EINVAL (NaN), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_rlock_acquire(l: gh_rlock, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(l.id, Kind::RLock)?;
        hub.rlock_acquire(slot, duration_ns(timeout)?).map(|_| 0)
    })
}

/// Releases one level of the lock; releasing the last frees it for the first waiter.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EPERM (the calling greenlet does not own it), GH_EBADHANDLE,
/// GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_rlock_release(l: gh_rlock) -> c_int {
    guard(|| {
        let (hub, slot) = obj(l.id, Kind::RLock)?;
        hub.rlock_release(slot).map(|_| 0)
    })
}

/// Frees the lock, held or not; waiters wake with GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_rlock_close(l: gh_rlock) -> c_int {
    guard(|| {
        let (hub, slot) = obj(l.id, Kind::RLock)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates a condition variable (threading.Condition for greenlets), used with a gh_sem
/// lock (a semaphore of 1) that protects the state waited for.
///
/// *Ownership*: `*out` is the caller's: gh_cond_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_cond_new(out: *mut gh_cond) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Cond {
                waiters: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_cond { id }) };
        Ok(0)
    })
}

/// Releases `lock` (which the caller holds), waits until notified (FIFO), then acquires
/// `lock` again before returning, whatever ended the wait — as pthread_cond_timedwait. No
/// notification is lost between the release and the wait (nothing else runs between
/// them). Check the condition again after it returns. Killed, the caller has the lock
/// again only if it was free (blocking calls fail from then on).
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0: releases and re-takes the
/// lock, GH_ETIMEDOUT); not from a hub callback. *Errors*: GH_ETIMEDOUT, GH_ECLOSED (the
/// condition or the lock closed), GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT,
/// GH_EOVERFLOW (`lock` is a bounded semaphore the caller did not hold), GH_EINVAL (NaN),
/// GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_cond_wait(c: gh_cond, lock: gh_sem, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(c.id, Kind::Cond)?;
        let (lhub, lslot) = obj(lock.id, Kind::Sem)?;
        if !std::ptr::eq(hub, lhub) {
            return Err(Error::WRONGTHREAD);
        }
        hub.cond_wait(slot, lslot, duration_ns(timeout)?).map(|_| 0)
    })
}

/// Wakes up to `n` greenlets waiting on the condition, oldest first; returns how many it
/// woke (each re-acquires its lock before its gh_cond_wait returns).
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_cond_notify(c: gh_cond, n: c_uint) -> c_int {
    guard(|| {
        let (hub, slot) = obj(c.id, Kind::Cond)?;
        let woken = hub.cond_notify(slot, n as usize)?;
        Ok(woken.min(c_int::MAX as usize) as c_int)
    })
}

/// Wakes every greenlet waiting on the condition; returns how many.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_cond_notify_all(c: gh_cond) -> c_int {
    guard(|| {
        let (hub, slot) = obj(c.id, Kind::Cond)?;
        let woken = hub.cond_notify(slot, usize::MAX)?;
        Ok(woken.min(c_int::MAX as usize) as c_int)
    })
}

/// Frees the condition; its waiters wake with GH_ECLOSED (and re-acquire their lock).
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_cond_close(c: gh_cond) -> c_int {
    guard(|| {
        let (hub, slot) = obj(c.id, Kind::Cond)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// A new queue of `items` holding at most `capacity` (0 = unbounded) into `*out`.
///
/// # Safety
/// `out` NULL or writable.
unsafe fn queue_new(out: *mut gh_queue, capacity: usize, items: Items) -> c_int {
    guard(|| {
        let q = Obj::Queue(Box::new(Queue {
            items,
            capacity,
            closed: false,
            getters: WaitList::default(),
            putters: WaitList::default(),
            unfinished: 0,
            joiners: WaitList::default(),
        }));
        let id = create(out.is_null(), q)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_queue { id }) };
        Ok(0)
    })
}

/// Creates a FIFO queue of `void *` items holding at most `capacity` items
/// (0 = unbounded).
///
/// *Ownership*: `*out` is the caller's: gh_queue_free it (gh_queue_close only stops
/// puts). *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_queue_new(out: *mut gh_queue, capacity: usize) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { queue_new(out, capacity, Items::Fifo(VecDeque::new())) }
}

/// Creates a LIFO queue (gevent.queue.LifoQueue): as gh_queue_new, but gh_queue_get and
/// gh_queue_peek give the item put last. Getters and putters still wait in FIFO order.
///
/// *Ownership*: `*out` is the caller's: gh_queue_free it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_queue_new_lifo(out: *mut gh_queue, capacity: usize) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { queue_new(out, capacity, Items::Lifo(Vec::new())) }
}

/// Creates a priority queue (gevent.queue.PriorityQueue): as gh_queue_new, but
/// gh_queue_get and gh_queue_peek give the item of the lowest priority first, and among
/// equal priorities the one put first. Put with gh_queue_put_priority (gh_queue_put puts
/// at priority 0).
///
/// *Ownership*: `*out` is the caller's: gh_queue_free it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_queue_new_priority(out: *mut gh_queue, capacity: usize) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        queue_new(
            out,
            capacity,
            Items::Prio(std::collections::BinaryHeap::new(), 0),
        )
    }
}

/// Appends `item`, waiting while a bounded queue is full (putters are served FIFO).
///
/// *Ownership*: `item` is passed through untouched.
/// *Threads*: this thread's hub. *Blocking*: yes when full (`timeout` 0 = try once);
/// not from a hub callback when it would wait.
/// *Errors*: GH_ECLOSED (closed, before or while waiting), GH_ETIMEDOUT, GH_ECANCELED, a
/// gh_throw code, GH_EPERM, GH_ELOOPEXIT, GH_EINVAL (NaN), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_put(q: gh_queue, item: *mut c_void, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.queue_put(slot, item, None, duration_ns(timeout)?)
            .map(|_| 0)
    })
}

/// Puts `item` with priority `priority` into a queue made by gh_queue_new_priority:
/// lower values are taken first (any int, negative too), equal ones in the order they
/// were put. Otherwise as gh_queue_put (waits while a bounded queue is full, putters
/// FIFO).
///
/// *Ownership*: `item` is passed through untouched.
/// *Threads*: this thread's hub. *Blocking*: yes when full (`timeout` 0 = try once);
/// not from a hub callback when it would wait.
/// *Errors*: GH_EINVAL (not a priority queue, NaN), GH_ECLOSED, GH_ETIMEDOUT,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT, GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_put_priority(
    q: gh_queue,
    priority: c_int,
    item: *mut c_void,
    timeout: f64,
) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.queue_put(slot, item, Some(priority), duration_ns(timeout)?)
            .map(|_| 0)
    })
}

/// Takes the oldest item into `*item`, waiting while the queue is empty (getters are
/// served FIFO; an item meant for a getter that times out or is killed goes to the
/// next). After gh_queue_close, getters drain what is left, then get GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: yes when empty (`timeout` 0 = try once);
/// not from a hub callback when it would wait.
/// *Errors*: GH_EINVAL (`item` NULL, NaN), GH_ECLOSED (closed and empty), GH_ETIMEDOUT,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT, GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `item` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_queue_get(q: gh_queue, item: *mut *mut c_void, timeout: f64) -> c_int {
    guard(|| {
        need(item)?;
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        let v = hub.queue_get(slot, duration_ns(timeout)?)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(item, v) };
        Ok(0)
    })
}

/// Gives in `*item` the item gh_queue_get would take next (the oldest, the newest of a
/// LIFO queue, the lowest priority of a priority queue) without taking it, waiting while
/// the queue is empty. A peeker is no getter: it holds up none and an item put wakes the
/// getter first in line and every peeker; when the peeker runs the item may already be
/// taken, so it waits on. After gh_queue_close it gives what is left, then GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: yes when empty (`timeout` 0 = just look);
/// not from a hub callback when it would wait.
/// *Errors*: GH_EINVAL (`item` NULL, NaN), GH_ECLOSED (closed and empty, or freed while
/// waiting), GH_ETIMEDOUT, GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT,
/// GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `item` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_queue_peek(q: gh_queue, item: *mut *mut c_void, timeout: f64) -> c_int {
    guard(|| {
        need(item)?;
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        let v = hub.queue_peek(slot, duration_ns(timeout)?)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(item, v) };
        Ok(0)
    })
}

/// Marks one item taken from the queue as dealt with (queue.task_done): every put counts
/// one unfinished task, every task_done one less; when none is left, the greenlets in
/// gh_queue_join wake.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EINVAL (called more times than items were put), GH_EBADHANDLE,
/// GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_task_done(q: gh_queue) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.queue_task_done(slot).map(|_| 0)
    })
}

/// Waits until every item put into the queue has been marked done with
/// gh_queue_task_done (queue.join); returns at once if none is unfinished. Woken by the
/// last task_done, it returns GH_OK even if more items were put before it ran (as
/// gevent's JoinableQueue.join). gh_queue_close does not end it; gh_queue_free does
/// (GH_ECLOSED).
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0 = just check); not from a
/// hub callback when it would wait.
/// *Errors*: GH_ETIMEDOUT, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM,
/// GH_ELOOPEXIT, GH_EINVAL (NaN), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_join(q: gh_queue, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.queue_join(slot, duration_ns(timeout)?).map(|_| 0)
    })
}

/// Unfinished tasks of the queue now (items put and not yet gh_queue_task_done'd,
/// >= 0), or a negative code.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_unfinished(q: gh_queue) -> libc::ssize_t {
    super::guard_ssize(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        Ok(hub.queue_unfinished(slot).min(isize::MAX as u64) as isize)
    })
}

/// Closes the queue for putting: waiting putters and later puts get GH_ECLOSED; getters
/// take what is left, then get GH_ECLOSED. The handle stays valid (for the drain) until
/// gh_queue_free.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_close(q: gh_queue) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.queue_close(slot).map(|_| 0)
    })
}

/// Items in the queue now (>= 0), or a negative code.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_len(q: gh_queue) -> libc::ssize_t {
    super::guard_ssize(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        Ok(hub.queue_len(slot) as isize)
    })
}

/// Frees the queue; its waiters wake with GH_ECLOSED; items still in it are dropped
/// (greenhub never frees them: drain first if they own memory). The handle goes stale.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_queue_free(q: gh_queue) -> c_int {
    guard(|| {
        let (hub, slot) = obj(q.id, Kind::Queue)?;
        hub.obj_close(slot);
        Ok(0)
    })
}

/// Creates a Waiter: a one-slot hand-off to one greenlet.
///
/// *Ownership*: `*out` is the caller's: gh_waiter_close it. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_waiter_new(out: *mut gh_waiter) -> c_int {
    guard(|| {
        let id = create(
            out.is_null(),
            Obj::Waiter {
                value: None,
                waiter: WaitList::default(),
            },
        )?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(out, gh_waiter { id }) };
        Ok(0)
    })
}

/// Hands `value` to the greenlet waiting in gh_waiter_get (it wakes), or keeps it for
/// the next gh_waiter_get if nobody waits yet — so no wake-up is ever lost, whichever
/// comes first. The way to pass a value from a hub callback to a greenlet.
///
/// *Threads*: this thread's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBUSY (a value is already waiting to be taken), GH_EBADHANDLE,
/// GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_waiter_switch(w: gh_waiter, value: *mut c_void) -> c_int {
    guard(|| {
        let (hub, slot) = obj(w.id, Kind::Waiter)?;
        hub.waiter_switch(slot, value).map(|_| 0)
    })
}

/// Takes the value given by gh_waiter_switch, waiting for it if needed.
///
/// *Threads*: this thread's hub. *Blocking*: yes (`timeout` 0 = just check); not from a
/// hub callback. *Errors*: GH_EBUSY (another greenlet is already waiting on this waiter),
/// GH_ETIMEDOUT, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM, GH_ELOOPEXIT,
/// GH_EINVAL (NaN), GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `value` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_waiter_get(
    w: gh_waiter,
    timeout: f64,
    value: *mut *mut c_void,
) -> c_int {
    guard(|| {
        let (hub, slot) = obj(w.id, Kind::Waiter)?;
        let v = hub.waiter_get(slot, duration_ns(timeout)?)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put(value, v) };
        Ok(0)
    })
}

/// Frees the waiter; a greenlet waiting on it wakes with GH_ECLOSED.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_waiter_close(w: gh_waiter) -> c_int {
    guard(|| {
        let (hub, slot) = obj(w.id, Kind::Waiter)?;
        hub.obj_close(slot);
        Ok(0)
    })
}
