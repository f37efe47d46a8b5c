//! Async watchers' pending flags, lock-free, so `gh_async_send` is async-signal-safe
//! (libev's `ev_async_send` and libuv's `uv_async_send` are; users call it from signal
//! handlers: issue 15.10).
//!
//! A sender touches only atomics and makes at most one `write(2)`: no lock (the hub's
//! thread may be interrupted while holding one), no allocation, no thread-local.
//!
//! ```text
//! HUBS[hub id] ──> AsyncHub { wake_fd, woken, inflight, segs[0..19] }
//!                                                        └──> [AtomicU64; 64 << k]
//! cell = generation << 1 | pending      (0: no async watcher in that slot)
//! ```
//!
//! * `AsyncHub`s and their segments are never freed: a sender may hold a pointer to one
//!   while its hub is destroyed. A hub reusing the id reuses them (at most one per id).
//! * Only the hub's thread writes cells (arm, disarm, take) and `wake_fd`; senders only
//!   set the pending bit of a cell whose generation matches.
//! * Teardown (`hub_gone`) sets `wake_fd` to -1 and waits until no sender is between
//!   its check of `wake_fd` and its `write` (`inflight`), so the eventfd is closed only
//!   when no sender can write to its number any more.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

const SEGMENTS: usize = 19; // 64 << 18 > 2^24 slots
const FIRST: u32 = 64;

struct AsyncHub {
    wake_fd: AtomicI32,
    /// A wake-up was written and not drained yet (coalescing).
    woken: AtomicBool,
    /// Senders between their check of `wake_fd` and their `write`.
    inflight: AtomicU32,
    segs: [AtomicPtr<AtomicU64>; SEGMENTS],
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_HUB: AtomicPtr<AsyncHub> = AtomicPtr::new(std::ptr::null_mut());
static HUBS: [AtomicPtr<AsyncHub>; 1 << 16] = [NO_HUB; 1 << 16];

/// (segment, index in it) of `slot`.
fn place(slot: u32) -> (usize, usize) {
    let i = slot as u64 + FIRST as u64;
    let k = (63 - i.leading_zeros()) as usize - FIRST.trailing_zeros() as usize;
    (k, (i - ((FIRST as u64) << k)) as usize)
}

fn hub(id: u16) -> Option<&'static AsyncHub> {
    // SAFETY: AsyncHubs are leaked boxes, never freed.
    unsafe { HUBS[id as usize].load(Ordering::Acquire).as_ref() }
}

fn cell(h: &'static AsyncHub, slot: u32) -> Option<&'static AtomicU64> {
    let (k, i) = place(slot);
    let seg = h.segs.get(k)?.load(Ordering::Acquire);
    // SAFETY: segment k is a leaked array of FIRST << k cells; i is below that.
    unsafe { seg.as_ref().map(|_| &*seg.add(i)) }
}

/// A hub with id `id` starts (or, after fork, has a new eventfd): senders wake `wake_fd`.
/// Hub thread only. (Its `AsyncHub` is made by its first async watcher: `arm`.)
pub(crate) fn hub_started(id: u16, wake_fd: i32) {
    if let Some(h) = hub(id) {
        h.woken.store(false, Ordering::SeqCst);
        h.wake_fd.store(wake_fd, Ordering::SeqCst);
    }
}

/// The hub `id` is going: no sender wakes it any more, every cell is cleared. Returns
/// once no sender can still write to its eventfd (which the caller then closes).
pub(crate) fn hub_gone(id: u16) {
    let Some(h) = hub(id) else { return };
    h.wake_fd.store(-1, Ordering::SeqCst);
    for (k, seg) in h.segs.iter().enumerate() {
        let p = seg.load(Ordering::Acquire);
        if p.is_null() {
            continue;
        }
        for i in 0..(FIRST as usize) << k {
            // SAFETY: i is within segment k (FIRST << k cells).
            unsafe { &*p.add(i) }.store(0, Ordering::SeqCst);
        }
    }
    while h.inflight.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// A new async watcher (`slot`, `gen`) of hub `id`, whose eventfd is `wake_fd`. Hub
/// thread only. The first one of an id makes its `AsyncHub` (kept for the process's
/// life, and reused by later hubs with that id: at most 65,534 of them).
pub(crate) fn arm(id: u16, slot: u32, gen: u32, wake_fd: i32) {
    let h = match hub(id) {
        Some(h) => h,
        None => {
            let h: &'static AsyncHub = Box::leak(Box::new(AsyncHub {
                wake_fd: AtomicI32::new(wake_fd),
                woken: AtomicBool::new(false),
                inflight: AtomicU32::new(0),
                segs: Default::default(),
            }));
            HUBS[id as usize].store(h as *const _ as *mut _, Ordering::Release);
            h
        }
    };
    let (k, _) = place(slot);
    if h.segs[k].load(Ordering::Acquire).is_null() {
        let cells: Box<[AtomicU64]> = (0..(FIRST as usize) << k)
            .map(|_| AtomicU64::new(0))
            .collect();
        let p = Box::leak(cells).as_mut_ptr();
        h.segs[k].store(p, Ordering::Release);
    }
    if let Some(c) = cell(h, slot) {
        c.store((gen as u64) << 1, Ordering::SeqCst);
    }
}

/// The async watcher in `slot` is closed. Hub thread only.
pub(crate) fn disarm(id: u16, slot: u32) {
    if let Some(c) = hub(id).and_then(|h| cell(h, slot)) {
        c.store(0, Ordering::SeqCst);
    }
}

/// In a fork child: no hub may write the parent's eventfds. The forking thread's hub
/// (`own`) keeps its pending flags (sends are recorded, not written, until `after_fork`
/// gives it its own eventfd and looks at them); the other threads' hubs are gone.
pub(crate) fn forked(own: Option<u16>) {
    for (id, p) in HUBS.iter().enumerate() {
        // SAFETY: AsyncHubs are leaked boxes, never freed.
        if let Some(h) = unsafe { p.load(Ordering::Acquire).as_ref() } {
            let fd = if Some(id as u16) == own { FORKED } else { -1 };
            h.wake_fd.store(fd, Ordering::SeqCst);
        }
    }
}

/// `AsyncHub::wake_fd` of the forking thread's hub in a fork child, before `after_fork`.
const FORKED: i32 = -2;

/// Whether the async watcher (`slot`, `gen`) was sent to; clears it when `take`.
pub(crate) fn pending(id: u16, slot: u32, gen: u32, take: bool) -> bool {
    let Some(c) = hub(id).and_then(|h| cell(h, slot)) else {
        return false;
    };
    let armed = (gen as u64) << 1;
    if take {
        c.compare_exchange(armed | 1, armed, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    } else {
        c.load(Ordering::SeqCst) == armed | 1
    }
}

/// The hub drained its eventfd: the next send writes it again. Hub thread only; call
/// before looking at the pending flags.
pub(crate) fn drained(id: u16) {
    if let Some(h) = hub(id) {
        h.woken.store(false, Ordering::SeqCst);
    }
}

/// gh_async_send: marks (`slot`, `gen`) of hub `id` pending and wakes the hub. Any
/// thread, and signal handlers: atomics and one write(2) only. `EBADHANDLE` if that is
/// not a live async watcher.
pub(crate) fn send(id: u16, slot: u32, gen: u32) -> Result<()> {
    let h = hub(id).ok_or(Error::BADHANDLE)?;
    h.inflight.fetch_add(1, Ordering::SeqCst);
    let r = send_in(h, slot, gen);
    h.inflight.fetch_sub(1, Ordering::SeqCst);
    r
}

fn send_in(h: &'static AsyncHub, slot: u32, gen: u32) -> Result<()> {
    let fd = h.wake_fd.load(Ordering::SeqCst);
    if (fd < 0 && fd != FORKED) || gen == 0 {
        return Err(Error::BADHANDLE);
    }
    let c = cell(h, slot).ok_or(Error::BADHANDLE)?;
    let armed = (gen as u64) << 1;
    match c.compare_exchange(armed, armed | 1, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {}
        Err(v) if v == armed | 1 => return Ok(()), // coalesced
        Err(_) => return Err(Error::BADHANDLE),
    }
    if fd >= 0 && !h.woken.swap(true, Ordering::SeqCst) {
        let one: u64 = 1;
        // SAFETY: 8 bytes from a live u64 to the hub's eventfd, which `hub_gone` does not
        // let close while this sender is counted in `inflight`.
        unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::place;

    #[test]
    fn places() {
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(63), (0, 63));
        assert_eq!(place(64), (1, 0));
        assert_eq!(place(191), (1, 127));
        assert_eq!(place(192), (2, 0));
        assert!(place((1 << 24) - 1).0 < super::SEGMENTS);
    }
}
