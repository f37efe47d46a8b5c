//! Header section "Re-entrant locks" (gevent.lock.RLock).

use super::{guard, need, put};
use crate::event_loop::duration_ns;
use crate::hub;
use std::ffi::c_int;

/// A re-entrant lock handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_rlock {
    pub id: u64,
}

/// The hub, slot and generation of a live lock of this thread.
fn lookup(l: gh_rlock) -> crate::error::Result<(&'static hub::Hub, u32, u32)> {
    let hub = hub::for_handle(l.id)?;
    let (slot, gen) = hub.rlock_check(l.id)?;
    Ok((hub, slot, gen))
}

/// Creates a re-entrant lock (gevent.lock.RLock), unlocked. The greenlet that holds it
/// may acquire it again: each acquire needs its release. A greenlet that ends while
/// holding it leaves it held (as gevent's does).
///
/// *Ownership*: `*out` is the caller's until gh_rlock_close.
/// *Threads*: the calling thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_rlock_new(out: *mut gh_rlock) -> c_int {
    guard(|| {
        need(out)?;
        let id = hub::current()?.rlock_new()?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { put(out, gh_rlock { id }) };
        Ok(0)
    })
}

/// Acquires `lock` for the calling greenlet (the main greenlet counts as one): at once
/// if it is free or already the caller's (the depth grows), else waits up to `timeout`
/// behind earlier waiters (FIFO).
///
/// *Threads*: the lock's hub. *Blocking*: yes (`timeout` 0: never); not from a hub
/// callback (the hub cannot own a lock).
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EINVAL (NaN timeout), GH_ETIMEDOUT,
/// GH_ECLOSED (closed while waiting), GH_ECANCELED, a gh_throw code, GH_EPERM (hub
/// callback), GH_EOVERFLOW (2^32 - 1 nested acquires).
#[no_mangle]
pub extern "C" fn gh_rlock_acquire(lock: gh_rlock, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(lock)?;
        hub.rlock_acquire(slot, gen, t).map(|_| 0)
    })
}

/// Releases one level of the caller's hold on `lock`; the last one frees it and wakes
/// the first waiter.
///
/// *Threads*: the lock's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EPERM (the caller does not hold it).
#[no_mangle]
pub extern "C" fn gh_rlock_release(lock: gh_rlock) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(lock)?;
        hub.rlock_release(slot, gen).map(|_| 0)
    })
}

/// How many times the calling greenlet holds `lock` (0: it does not hold it), or a code.
///
/// *Threads*: the lock's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_rlock_owned(lock: gh_rlock) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(lock)?;
        hub.rlock_depth(slot, gen)
            .map(|d| d.min(c_int::MAX as u32) as c_int)
    })
}

/// Frees `lock`, held or not; greenlets waiting to acquire it wake with GH_ECLOSED.
///
/// *Threads*: the lock's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE (also when closed twice), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_rlock_close(lock: gh_rlock) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(lock)?;
        hub.rlock_close(slot, gen).map(|_| 0)
    })
}
