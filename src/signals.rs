//! Signal delivery to hubs.
//!
//! One process-wide handler per watched signal. The handler (async-signal-safe: only
//! atomics and write(2)) marks the signal pending for every hub that watches it and
//! writes that hub's eventfd; each hub then fires its signal watchers in its own thread.
//! So a signal reaches the hub of the thread that watches it, whatever thread the
//! kernel ran the handler on, and several watchers of one signal all fire.
//!
//! Up to `SLOTS` hubs may watch signals at once. The disposition a signal had before
//! its first watcher started is restored when its last watcher (in any hub) stops.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Hubs that can watch signals at the same time.
pub(crate) const SLOTS: usize = 64;
/// Signals 1..=64 (Linux has 64).
pub(crate) const MAX_SIGNAL: i32 = 64;

#[allow(clippy::declare_interior_mutable_const)]
const FD_INIT: AtomicI32 = AtomicI32::new(-1);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// Wake-up eventfd of each slot's hub (-1: free).
static WAKE_FDS: [AtomicI32; SLOTS] = [FD_INIT; SLOTS];
/// Signals pending per slot (bit signum - 1).
static PENDING: [AtomicU64; SLOTS] = [ZERO; SLOTS];
/// Slots watching each signal (bit slot).
static WATCHERS: [AtomicU64; MAX_SIGNAL as usize + 1] = [ZERO; MAX_SIGNAL as usize + 1];
/// Deliveries of each signal so far (the run-info dump tells a new one from the same one
/// seen by another hub).
static DELIVERED: [AtomicU64; MAX_SIGNAL as usize + 1] = [ZERO; MAX_SIGNAL as usize + 1];

/// How many times `sig` has been delivered to greenhub's handler.
pub(crate) fn delivered(sig: i32) -> u64 {
    DELIVERED
        .get(sig as usize)
        .map_or(0, |d| d.load(Ordering::SeqCst))
}

/// Handlers running now (teardown waits for 0 before closing an eventfd).
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

struct Global {
    /// Hubs watching each signal (with any number of watchers each).
    hubs: [u32; MAX_SIGNAL as usize + 1],
    /// The disposition to restore when the last watcher stops.
    saved: [Option<libc::sigaction>; MAX_SIGNAL as usize + 1],
    used: u64,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    hubs: [0; MAX_SIGNAL as usize + 1],
    saved: [None; MAX_SIGNAL as usize + 1],
    used: 0,
});

fn global() -> std::sync::MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|p| p.into_inner())
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: errno is thread-local; saved and restored around our write(2)s.
    let saved = unsafe { *libc::__errno_location() };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    if (1..=MAX_SIGNAL).contains(&sig) {
        DELIVERED[sig as usize].fetch_add(1, Ordering::SeqCst);
        let mut mask = WATCHERS[sig as usize].load(Ordering::SeqCst);
        while mask != 0 {
            let slot = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            PENDING[slot].fetch_or(1 << (sig - 1), Ordering::SeqCst);
            let fd = WAKE_FDS[slot].load(Ordering::SeqCst);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: write(2) is async-signal-safe; 8 bytes from a live u64.
                unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
            }
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { *libc::__errno_location() = saved };
}

/// `EINVAL` for signals that cannot be watched (out of range, SIGKILL, SIGSTOP, and
/// the synchronous fault signals, which must be handled on the faulting thread).
pub fn check(signum: i32) -> Result<()> {
    let bad = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
    ];
    if !(1..=MAX_SIGNAL).contains(&signum) || bad.contains(&signum) {
        return Err(Error::INVAL);
    }
    Ok(())
}

/// Gives a hub a slot; `ENOMEM` when `SLOTS` hubs already watch signals.
pub fn attach_hub(wake_fd: i32) -> Result<usize> {
    let mut g = global();
    let slot = (!g.used).trailing_zeros() as usize;
    if slot >= SLOTS {
        return Err(Error::NOMEM);
    }
    g.used |= 1 << slot;
    PENDING[slot].store(0, Ordering::SeqCst);
    WAKE_FDS[slot].store(wake_fd, Ordering::SeqCst);
    Ok(slot)
}

/// A new wake-up fd for a slot (after fork).
pub fn set_wake_fd(slot: usize, wake_fd: i32) {
    WAKE_FDS[slot].store(wake_fd, Ordering::SeqCst);
}

/// Frees a hub's slot: no handler writes its eventfd once this returns.
pub fn detach_hub(slot: usize) {
    WAKE_FDS[slot].store(-1, Ordering::SeqCst);
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
    let mut g = global();
    for (sig, watchers) in WATCHERS.iter().enumerate().skip(1) {
        if watchers.fetch_and(!(1 << slot), Ordering::SeqCst) & (1 << slot) != 0 {
            release(&mut g, sig as i32);
        }
    }
    g.used &= !(1 << slot);
}

/// Slot `slot` starts watching `signum` (its first watcher of it).
pub fn watch(slot: usize, signum: i32) -> Result<()> {
    let mut g = global();
    if g.hubs[signum as usize] == 0 {
        // SAFETY: a zeroed sigaction is a valid value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: sa_mask is ours to initialise.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: zeroed out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid sigaction pointers; signum checked by `check`.
        if unsafe { libc::sigaction(signum, &sa, &mut old) } != 0 {
            return Err(Error::last_os());
        }
        g.saved[signum as usize] = Some(old);
    }
    g.hubs[signum as usize] += 1;
    WATCHERS[signum as usize].fetch_or(1 << slot, Ordering::SeqCst);
    Ok(())
}

/// Slot `slot` stops watching `signum` (its last watcher of it stopped).
pub fn unwatch(slot: usize, signum: i32) {
    let mut g = global();
    if WATCHERS[signum as usize].fetch_and(!(1 << slot), Ordering::SeqCst) & (1 << slot) != 0 {
        release(&mut g, signum);
    }
}

fn release(g: &mut Global, signum: i32) {
    let n = &mut g.hubs[signum as usize];
    *n = n.saturating_sub(1);
    if *n == 0 {
        if let Some(old) = g.saved[signum as usize].take() {
            // SAFETY: restores the disposition saved by `watch`.
            unsafe { libc::sigaction(signum, &old, std::ptr::null_mut()) };
        }
    }
}

/// Takes the signals pending for a slot (bit signum - 1).
pub fn take_pending(slot: usize) -> u64 {
    PENDING[slot].swap(0, Ordering::SeqCst)
}

/// In a forked child (pthread_atfork, async-signal-safe): the slots' eventfds are the
/// parent's; forget them until each hub sets its own again (signals meanwhile stay
/// pending in `PENDING`).
pub fn forget_wake_fds_after_fork() {
    for fd in &WAKE_FDS {
        fd.store(-1, Ordering::SeqCst);
    }
}

thread_local! {
    // ManuallyDrop: no destructor, so a fork during thread or process teardown (an
    // atexit handler) can still use it (it is None whenever a thread ends).
    static FORK_GUARD: std::mem::ManuallyDrop<std::cell::RefCell<Option<std::sync::MutexGuard<'static, Global>>>> =
        const { std::mem::ManuallyDrop::new(std::cell::RefCell::new(None)) };
}

/// pthread_atfork "prepare" (after the registry lock): hold the signal table's lock
/// across fork so the child never inherits it locked by another thread.
pub fn fork_prepare() {
    let g = global();
    FORK_GUARD.with(|f| *f.borrow_mut() = Some(g));
}

/// pthread_atfork "parent"/"child": release it.
pub fn fork_release() {
    FORK_GUARD.with(|f| *f.borrow_mut() = None);
}
