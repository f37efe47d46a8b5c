//! Header section "Pools" (gevent.pool.Pool and Group).

use super::gh_greenlet;
use super::greenlet::gh_fn;
use super::{guard, guard_ssize, need, put};
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::handle::Kind;
use crate::hub;
use crate::hub::greenlets::SpawnOpts;
use std::ffi::{c_int, c_void};

/// A pool handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_pool {
    pub id: u64,
}

/// The hub, slot and generation of a live pool of this thread.
fn lookup(p: gh_pool) -> crate::error::Result<(&'static hub::Hub, u32, u32)> {
    let hub = hub::for_handle(p.id)?;
    let (slot, gen) = hub.pool_check(p.id)?;
    Ok((hub, slot, gen))
}

/// Creates a pool of at most `size` greenlets running at once (gevent.pool.Pool);
/// `size` 0: no limit (gevent.pool.Group: a set of greenlets to join or kill together).
///
/// *Ownership*: `*out` is the caller's until gh_pool_close.
/// *Threads*: the calling thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_pool_new(out: *mut gh_pool, size: usize) -> c_int {
    guard(|| {
        need(out)?;
        let id = hub::current()?.pool_new(size)?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { put(out, gh_pool { id }) };
        Ok(0)
    })
}

/// Spawns `fn(arg)` as a member of `pool`, first waiting up to `timeout` while the pool
/// is full (gevent's Pool.spawn). The greenlet is an ordinary one (gh_join reports
/// `fn`'s return value, gh_kill works); it leaves the pool when `fn` returns. `out`
/// NULL: detached, as with gh_spawn. A member killed before it started frees its place
/// at the pool's next call (a caller already waiting notices it when another member
/// ends or its timeout passes).
///
/// *Ownership*: as gh_spawn. *Threads*: the pool's hub.
/// *Blocking*: while the pool is full (`timeout` 0: never; then allowed from callbacks).
/// *Errors*: GH_EINVAL (`fn` NULL, NaN timeout), GH_EBADHANDLE, GH_EWRONGTHREAD,
/// GH_ETIMEDOUT (still full), GH_ECLOSED (the pool was closed meanwhile), GH_ENOMEM,
/// GH_ECANCELED, a gh_throw code, GH_EPERM (would wait in a hub callback).
///
/// # Safety
/// `out` NULL or writable; `fn` safe to call with `arg` on a greenlet stack.
#[no_mangle]
pub unsafe extern "C" fn gh_pool_spawn(
    pool: gh_pool,
    out: *mut gh_greenlet,
    r#fn: gh_fn,
    arg: *mut c_void,
    timeout: f64,
) -> c_int {
    guard(|| {
        let f = r#fn.ok_or(Error::INVAL)?;
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(pool)?;
        let opts = SpawnOpts {
            detached: out.is_null(),
            ..SpawnOpts::default()
        };
        let (gs, gg) = hub.pool_spawn(slot, gen, f, arg, t, opts)?;
        let id = hub.handle(Kind::Greenlet, gs, gg);
        // SAFETY: NULL or writable per the contract.
        unsafe { put(out, gh_greenlet { id }) };
        Ok(0)
    })
}

/// Waits up to `timeout` until `pool` has a free place (gevent's wait_available);
/// GH_OK at once for a pool without a size.
///
/// *Threads*: the pool's hub. *Blocking*: yes (`timeout` 0: never).
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EINVAL (NaN timeout), GH_ETIMEDOUT,
/// GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM.
#[no_mangle]
pub extern "C" fn gh_pool_wait_available(pool: gh_pool, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_wait_available(slot, gen, t).map(|_| 0)
    })
}

/// Waits up to `timeout` until every member of `pool` has ended (gevent's join).
///
/// *Threads*: the pool's hub. *Blocking*: yes (`timeout` 0: never).
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EINVAL (NaN timeout), GH_ETIMEDOUT,
/// GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM.
#[no_mangle]
pub extern "C" fn gh_pool_join(pool: gh_pool, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_join(slot, gen, t).map(|_| 0)
    })
}

/// Kills every member of `pool` (GreenletExit: their blocking calls return
/// GH_ECANCELED; members not started yet never run), then with `timeout` > 0 waits up
/// to it for them to end. A member killing its own pool is spared.
///
/// *Threads*: the pool's hub. *Blocking*: with `timeout` > 0; `timeout` 0 never blocks
/// and is allowed from hub callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EINVAL (NaN timeout), GH_ETIMEDOUT
/// (members still running), GH_EPERM (a non-zero timeout in a hub callback),
/// GH_ECLOSED, GH_ECANCELED, a gh_throw code.
#[no_mangle]
pub extern "C" fn gh_pool_kill(pool: gh_pool, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_kill(slot, gen, t).map(|_| 0)
    })
}

/// The number of members of `pool` running (or about to start), >= 0, or a code.
///
/// *Threads*: the pool's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_pool_count(pool: gh_pool) -> libc::ssize_t {
    guard_ssize(|| {
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_counts(slot, gen).map(|(_, n)| n as isize)
    })
}

/// How many more members `pool` takes now (gevent's free_count): size - count, or
/// SSIZE_MAX for a pool without a size.
///
/// *Threads*: the pool's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_pool_free_count(pool: gh_pool) -> libc::ssize_t {
    guard_ssize(|| {
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_counts(slot, gen).map(|(size, n)| match size {
            0 => isize::MAX,
            s => s.saturating_sub(n).min(isize::MAX as usize) as isize,
        })
    })
}

/// Frees `pool`: its members run on (no longer in any pool); callers waiting in
/// gh_pool_spawn / gh_pool_join / gh_pool_wait_available on it wake with GH_ECLOSED.
///
/// *Threads*: the pool's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE (also when closed twice), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_pool_close(pool: gh_pool) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(pool)?;
        hub.pool_close(slot, gen).map(|_| 0)
    })
}
