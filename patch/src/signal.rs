//! Signal handlers: a blocking call made from a signal handler must stay plain libc
//! (parking would switch stacks under the code the signal interrupted).
//!
//! The patch interposes `sigaction` and `signal` (and `bsd_signal`): a handler the
//! program installs is stored in a table and a trampoline is installed in its place;
//! the trampoline counts, per thread, the handlers running, and `in_handler()` reads
//! that count. The program's view stays its own: the old action sigaction reports is
//! the handler and flags it installed. The count is read only where a call would park
//! (a call that completes at once does the same in or out of a handler).
//! A handler installed with the raw `rt_sigaction` syscall is not seen.

use crate::real;
use libc::{c_int, c_void, sighandler_t, siginfo_t};
use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::Relaxed};

const NSIG: usize = 65;

static HANDLER: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// The program's SA_SIGINFO bit for each signal's handler.
static SIGINFO: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// True while a signal handler installed through the patch runs on this thread.
#[inline]
pub fn in_handler() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
}

unsafe extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let i = sig as usize;
    if i >= NSIG {
        return;
    }
    let h = HANDLER[i].load(Relaxed);
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
    // SAFETY: h is the handler the program installed for sig, with the prototype its
    // SA_SIGINFO flag says.
    unsafe {
        if SIGINFO[i].load(Relaxed) & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
    let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
}

fn tramp() -> sighandler_t {
    trampoline as unsafe extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as sighandler_t
}

/// sigaction(2): the program's handler runs behind the patch's trampoline.
///
/// # Safety
/// As sigaction(2).
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let i = sig as usize;
    if sig <= 0 || i >= NSIG {
        // SAFETY: passed through (libc reports EINVAL).
        return unsafe { real::sigaction()(sig, act, old) };
    }
    let (prev_h, prev_f) = (HANDLER[i].load(Relaxed), SIGINFO[i].load(Relaxed));
    // SAFETY: act is NULL or the caller's.
    let r = match unsafe { act.as_ref() } {
        Some(a) if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN => {
            let mut w = *a;
            HANDLER[i].store(a.sa_sigaction, Relaxed);
            SIGINFO[i].store(a.sa_flags & libc::SA_SIGINFO, Relaxed);
            w.sa_sigaction = tramp();
            w.sa_flags |= libc::SA_SIGINFO;
            // SAFETY: w is a valid action; old is NULL or the caller's.
            let r = unsafe { real::sigaction()(sig, &w, old) };
            if r < 0 {
                HANDLER[i].store(prev_h, Relaxed);
                SIGINFO[i].store(prev_f, Relaxed);
            }
            r
        }
        // SAFETY: passed through.
        _ => unsafe { real::sigaction()(sig, act, old) },
    };
    // SAFETY: old is NULL or the caller's, filled by libc.
    if let (0, Some(o)) = (r, unsafe { old.as_mut() }) {
        if o.sa_sigaction == tramp() {
            o.sa_sigaction = prev_h;
            o.sa_flags = (o.sa_flags & !libc::SA_SIGINFO) | prev_f;
        }
    }
    r
}

/// signal(3) with glibc's (BSD) semantics — SA_RESTART, the signal blocked while its
/// handler runs — through the interposed sigaction.
///
/// # Safety
/// As signal(3).
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: all-zero is a valid sigaction to fill.
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    a.sa_flags = libc::SA_RESTART;
    // SAFETY: a valid, empty set, then sig added (libc checks its range).
    unsafe {
        libc::sigemptyset(&mut a.sa_mask);
        if libc::sigaddset(&mut a.sa_mask, sig) < 0 {
            return libc::SIG_ERR;
        }
    }
    // SAFETY: valid actions.
    if unsafe { sigaction(sig, &a, &mut old) } < 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// bsd_signal(3): signal.
///
/// # Safety
/// As signal(3).
#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: the same call.
    unsafe { signal(sig, handler) }
}
