//! Header section "Waiting on many" (gevent.wait / gevent.iwait).

use super::guard;
use crate::error::{Error, Result};
use crate::event_loop::duration_ns;
use crate::hub;
use crate::sync::wait_many::{self, Target, Waitable};
use std::ffi::{c_int, c_short};

/// gh_waitable.kind: a greenlet (`handle` = a gh_greenlet's id); ready once it is dead.
pub const GH_WAIT_GREENLET: c_int = 1;
/// gh_waitable.kind: an event (`handle` = a gh_event's id); ready while it is set.
pub const GH_WAIT_EVENT: c_int = 2;
/// gh_waitable.kind: an AsyncResult (`handle` = a gh_result's id); ready once it holds a
/// value or an error.
pub const GH_WAIT_RESULT: c_int = 3;
/// gh_waitable.kind: a semaphore (`handle` = a gh_sem's id); ready while gh_sem_acquire
/// would get a permit at once (no waiter ahead; the permit is not taken).
pub const GH_WAIT_SEM: c_int = 4;
/// gh_waitable.kind: a queue (`handle` = a gh_queue's id); `events` GH_READ (or 0): ready
/// while gh_queue_get would get an item at once; GH_WRITE: while gh_queue_put would find
/// room at once; both when the queue is closed (the call would not block: it fails).
/// Nothing is taken or put.
pub const GH_WAIT_QUEUE: c_int = 5;
/// gh_waitable.kind: a file descriptor (`fd`, `events` GH_READ and/or GH_WRITE); ready as
/// gh_wait_fd would return (hang-up and error count as both).
pub const GH_WAIT_FD: c_int = 6;
/// gh_waitable.revents bit: this entry is why gh_wait_many / gh_wait_any failed (a bad
/// kind, handle, fd or events; an object or fd closed during the wait).
pub const GH_WAIT_NVAL: c_short = 0x20;
const _: () = assert!(GH_WAIT_NVAL == wait_many::NVAL);

/// One object to wait on, for gh_wait_many / gh_wait_any: what to wait for (`kind` and
/// `handle`, or `fd` and `events`) and, on return, whether it is ready (`revents`). An
/// array of them is the caller's, as poll(2)'s struct pollfd array; fill the fields the
/// kind uses and zero the others, e.g. `{ .kind = GH_WAIT_EVENT, .handle = e.id }` or
/// `{ .kind = GH_WAIT_FD, .fd = sock, .events = GH_READ }`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_waitable {
    /// GH_WAIT_GREENLET, GH_WAIT_EVENT, GH_WAIT_RESULT, GH_WAIT_SEM, GH_WAIT_QUEUE or
    /// GH_WAIT_FD; anything else (0 included) is GH_EINVAL.
    pub kind: c_int,
    /// GH_WAIT_FD: the file descriptor (ignored for other kinds).
    pub fd: c_int,
    /// The handle's `id` (e.g. `g.id` of a gh_greenlet) for the other kinds (ignored for
    /// GH_WAIT_FD).
    pub handle: u64,
    /// GH_WAIT_FD: GH_READ and/or GH_WRITE (not 0). GH_WAIT_QUEUE: GH_READ (0 means it),
    /// GH_WRITE or both. Ignored for the other kinds.
    pub events: c_short,
    /// Output, set on every entry whenever the call returns after checking the list: 0
    /// = not ready; GH_READ (greenlet, event, result, semaphore; a readable queue or
    /// fd) and/or GH_WRITE (a queue with room, a writable fd) = ready; GH_WAIT_NVAL = the
    /// entry the call failed on. Its value on input does not matter.
    pub revents: c_short,
}

impl Waitable for gh_waitable {
    fn target(&self) -> Target {
        match self.kind {
            GH_WAIT_GREENLET => Target::Greenlet(self.handle),
            GH_WAIT_EVENT => Target::Event(self.handle),
            GH_WAIT_RESULT => Target::Result(self.handle),
            GH_WAIT_SEM => Target::Sem(self.handle),
            GH_WAIT_QUEUE => Target::Queue(self.handle, self.events),
            GH_WAIT_FD => Target::Fd(self.fd, self.events),
            _ => Target::Invalid,
        }
    }

    fn revents(&self) -> i16 {
        self.revents
    }

    fn set_revents(&mut self, revents: i16) {
        self.revents = revents;
    }
}

/// The checked arguments of both calls: the list (as the caller's slice) and the timeout.
///
/// # Safety
/// `objects` NULL or valid for reads and writes of `n` entries.
unsafe fn args<'a>(
    objects: *mut gh_waitable,
    n: usize,
    timeout: f64,
) -> Result<(&'a mut [gh_waitable], Option<u64>)> {
    let t = duration_ns(timeout)?;
    if objects.is_null() || n > c_int::MAX as usize {
        return Err(Error::INVAL);
    }
    // SAFETY: non-null and valid for n entries per the contract.
    Ok((unsafe { std::slice::from_raw_parts_mut(objects, n) }, t))
}

/// Waits until `count` of the `n` objects of `objects` are ready, or `timeout` passes
/// (gevent.wait(objects, timeout, count)): greenlets dead, events and results set,
/// semaphores and queues that would not block, fds readable or writable (see the
/// GH_WAIT_* kinds). Nothing is taken: waiting on a semaphore or a queue takes no permit
/// and no item, and keeps no other greenlet from getting them — the object may be gone
/// again by the time the caller acts, so act with timeout 0 and wait again if needed.
/// `count` 0 means all `n`; `n` 0 returns 0 at once. Returns how many are ready (>=
/// `count`, possibly more: every entry's `revents` says which). Readiness is checked
/// again whenever one of them changes, so an object that was ready and is not any more
/// is not counted.
///
/// *Ownership*: `objects` is the caller's; greenhub reads it and writes `revents` during
/// the call only; it must stay valid and unchanged (by other greenlets too) until the
/// call returns. The handles are not consumed.
/// *Threads*: this thread's hub; every handle must belong to it.
/// *Blocking*: yes, until `count` are ready (`timeout` 0 = check once); from a hub
/// callback only when it need not wait (GH_EPERM otherwise).
/// *Errors*: GH_ETIMEDOUT (fewer than `count` ready: `revents` still say which are);
/// GH_EINVAL (`objects` NULL, `n` > INT_MAX, `count` > `n`, NaN timeout, an entry of an
/// unknown kind, bad `events`, the main greenlet or the hub as a greenlet entry);
/// GH_EBADHANDLE / GH_EWRONGTHREAD (an entry's handle), GH_EBADF (a negative or closed
/// fd), GH_EDEADLK (the calling greenlet itself is in the list) — for these the entry's
/// `revents` is GH_WAIT_NVAL and nothing was waited for; GH_ECLOSED (an object or fd of
/// the list was closed or freed, or a greenlet's handle released, during the wait: its
/// `revents` is GH_WAIT_NVAL);
/// GH_ECANCELED (killed), a gh_throw code, GH_EPERM (from a hub callback, when it would
/// wait), GH_ELOOPEXIT (main, nothing left that could make them ready), GH_ENOMEM.
/// After an error that ends a wait (GH_ECANCELED, a thrown code, GH_ELOOPEXIT) the
/// `revents` are set from a last check.
///
/// # Safety
/// `objects` NULL or valid for reads and writes of `n` entries.
#[no_mangle]
pub unsafe extern "C" fn gh_wait_many(
    objects: *mut gh_waitable,
    n: usize,
    count: usize,
    timeout: f64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let (list, t) = unsafe { args(objects, n, timeout)? };
        if count > n {
            return Err(Error::INVAL);
        }
        let count = if count == 0 { n } else { count };
        if n == 0 {
            return Ok(0);
        }
        let ready = hub::current()?.wait_many(list, count, t)?;
        Ok(ready as c_int)
    })
}

/// Waits until one of the `n` objects of `objects` is ready (gevent.wait(objects,
/// count=1)) and returns the index of the first ready entry (every entry's `revents` is
/// set, as gh_wait_many does).
///
/// *Ownership*, *Threads*, *Blocking*: as gh_wait_many.
/// *Errors*: as gh_wait_many with `count` 1; GH_EINVAL also when `n` is 0 (nothing could
/// ever be ready).
///
/// # Safety
/// `objects` NULL or valid for reads and writes of `n` entries.
#[no_mangle]
pub unsafe extern "C" fn gh_wait_any(objects: *mut gh_waitable, n: usize, timeout: f64) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let (list, t) = unsafe { args(objects, n, timeout)? };
        if n == 0 {
            return Err(Error::INVAL);
        }
        hub::current()?.wait_many(list, 1, t)?;
        let first = list
            .iter()
            .position(|w| w.revents != 0 && w.revents & GH_WAIT_NVAL == 0);
        Ok(first.expect("one is ready") as c_int)
    })
}
