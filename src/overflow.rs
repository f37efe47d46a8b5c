//! The stack-overflow reporter: a SIGSEGV/SIGBUS handler that names the greenlet whose
//! guard page was hit, then lets the process die of the signal.
//!
//! * Installed once per process, when the first hub is created (`install_handler`),
//!   with `SA_ONSTACK`: an overflowed stack cannot run a handler, so each thread with a
//!   hub gets an alternate signal stack (`AltStack`) unless it already has one (the
//!   thread's own, or Rust's for threads started by Rust's std).
//! * A fault inside a guard page of a carved stack slot whose meta is set (written at
//!   spawn: `stack::GhStack::set_owner`) is ours: write(2) one line — greenlet name, id
//!   (its handle's `id`), stack size and how to raise it — then restore `SIG_DFL` and
//!   re-raise, so the process dies with the signal (and a core dump where enabled).
//!   Nothing is done per switch: the lookup goes address → region table → slot meta.
//! * Any other fault goes to the handler installed before ours: `sa_sigaction` or
//!   `sa_handler` is called directly (its own `sa_mask` and `SA_RESETHAND` are not
//!   emulated); `SIG_DFL` and `SIG_IGN` (ignoring a fault would loop forever) become
//!   reset-to-default and re-raise.
//!
//! Everything the handler does is async-signal-safe: atomics, plain reads, write(2),
//! sigaction(2), raise(3). errno is saved and restored.
//!
//! Limits: a single frame reaching more than the guard (`stack::GUARD`, 64 KiB) past
//! its stack's end can jump over it into the slot below (another greenlet's stack top) —
//! C code compiled with `-fstack-clash-protection` probes every page and always hits the
//! guard.

use crate::error::{Error, Result};
use crate::fault::{self, Site};
use crate::stack::{self, GuardHit};
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// The dispositions greenhub's handler replaced: [SIGSEGV, SIGBUS].
struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);
// SAFETY: written only inside `INSTALL.call_once`, before the handler that reads it is
// installed; read-only afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));
static INSTALL: std::sync::Once = std::sync::Once::new();
const SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Installs the handler for SIGSEGV and SIGBUS, once per process.
pub fn install_handler() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: a zeroed sigaction is a valid value to fill in; the handler has the
            // SA_SIGINFO signature; `PREVIOUS[i]` is written before the handler that
            // reads it exists (we are inside call_once, nobody else writes it).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_fault as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                let prev = (*PREVIOUS.0.get())[i].as_mut_ptr();
                libc::sigaction(sig, std::ptr::null(), prev);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

/// Writes `bytes` to stderr (async-signal-safe; short writes retried, errors ignored).
fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: bytes is readable for its length.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// A fixed buffer to build the message in without allocating.
struct Line {
    buf: [u8; 320],
    len: usize,
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_u64(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// The report line for a guard-page hit.
fn message(hit: &GuardHit) -> Line {
    let mut l = Line {
        buf: [0; 320],
        len: 0,
    };
    let name_len = hit
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(hit.name.len());
    l.push(b"greenhub: stack overflow in greenlet ");
    if name_len == 0 {
        l.push(b"<unnamed>");
    } else {
        l.push(b"\"");
        l.push(&hit.name[..name_len]);
        l.push(b"\"");
    }
    l.push(b" (id ");
    l.push_u64(hit.id);
    l.push(b"), stack ");
    l.push_u64(hit.size / 1024);
    l.push(b" KiB; raise it with gh_spawn_ex's stack_size or GREENHUB_STACK_SIZE\n");
    l
}

fn reset_and_raise(sig: c_int) {
    // SAFETY: restoring the default disposition and raising are async-signal-safe; the
    // signal stays blocked until the handler returns, then kills the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

extern "C" fn on_fault(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: errno is this thread's; saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(hit) = stack::guard_hit(addr) {
        let line = message(&hit);
        write_all(&line.buf[..line.len]);
        reset_and_raise(sig);
    } else {
        chain(sig, info, ctx);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Hands a fault that is not ours to the disposition installed before greenhub's.
fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: initialised before this handler was installed (see `Previous`).
    let prev = unsafe { (*PREVIOUS.0.get())[i].assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        reset_and_raise(sig);
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous owner installed `h` as an SA_SIGINFO handler.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous owner installed `h` as a plain handler.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// An alternate signal stack greenhub mapped for a thread; on drop it is disabled (if it
/// is still the thread's and not in use) and unmapped.
pub struct AltStack {
    base: usize,
    len: usize,
}

/// Alternate signal stack size: the report needs little, a chained handler may need more
/// (glibc's dynamic SIGSTKSZ is a few KiB even with AVX-512 state).
const ALT_STACK: usize = 64 * 1024;

impl AltStack {
    /// Gives the calling thread an alternate signal stack unless it has one (`None`).
    pub fn for_this_thread() -> Result<Option<AltStack>> {
        let mut cur = MaybeUninit::<libc::stack_t>::uninit();
        // SAFETY: queries only; cur is writable.
        if unsafe { libc::sigaltstack(std::ptr::null(), cur.as_mut_ptr()) } != 0 {
            return Err(Error::last_os());
        }
        // SAFETY: initialised by the successful call.
        let cur = unsafe { cur.assume_init() };
        if cur.ss_flags & libc::SS_DISABLE == 0 {
            return Ok(None);
        }
        let len = ALT_STACK.max(4 * libc::SIGSTKSZ);
        if let Some(e) = fault::fail(Site::Mmap) {
            return Err(Error(-e));
        }
        // SAFETY: anonymous private mapping; result checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::NOMEM);
        }
        let alt = AltStack {
            base: p as usize,
            len,
        };
        let st = libc::stack_t {
            ss_sp: p,
            ss_flags: 0,
            ss_size: len,
        };
        // SAFETY: st describes our own mapping, which lives until `alt` drops.
        if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
            return Err(Error::last_os()); // drop unmaps
        }
        Ok(Some(alt))
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let mut cur = MaybeUninit::<libc::stack_t>::uninit();
        // SAFETY: queries only; cur is writable.
        let ok = unsafe { libc::sigaltstack(std::ptr::null(), cur.as_mut_ptr()) } == 0;
        if ok {
            // SAFETY: initialised by the successful call.
            let cur = unsafe { cur.assume_init() };
            if cur.ss_sp as usize == self.base {
                if cur.ss_flags & libc::SS_ONSTACK != 0 {
                    return; // running on it (cannot happen from hub teardown): keep it
                }
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                // SAFETY: disables this thread's alternate stack, which is ours.
                unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
            }
        }
        // Not the thread's alternate stack any more (or disabled above): nothing uses it.
        // (A hub dropped on another thread than its own never happens: hubs are
        // thread-local.)
        // SAFETY: unmaps the mapping this value owns.
        unsafe { libc::munmap(self.base as *mut c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_greenlet_id_and_size() {
        let mut name = [0u8; 40];
        name[..6].copy_from_slice(b"worker");
        let l = message(&GuardHit {
            id: 4294967301,
            size: 16 * 1024,
            name,
        });
        let s = std::str::from_utf8(&l.buf[..l.len]).unwrap();
        assert_eq!(
            s,
            "greenhub: stack overflow in greenlet \"worker\" (id 4294967301), stack 16 KiB; \
             raise it with gh_spawn_ex's stack_size or GREENHUB_STACK_SIZE\n"
        );
        let l = message(&GuardHit {
            id: 0,
            size: 256 * 1024,
            name: [0; 40],
        });
        let s = std::str::from_utf8(&l.buf[..l.len]).unwrap();
        assert!(
            s.contains("greenlet <unnamed> (id 0), stack 256 KiB"),
            "{s}"
        );
    }

    #[test]
    fn alt_stack_is_installed_only_when_missing_and_removed_on_drop() {
        // Rust's test threads come with std's alternate stack: use a bare pthread-like
        // thread state by disabling it first, then restoring it.
        std::thread::spawn(|| {
            let mut saved = MaybeUninit::<libc::stack_t>::uninit();
            // SAFETY: queries this thread's alternate stack.
            unsafe { libc::sigaltstack(std::ptr::null(), saved.as_mut_ptr()) };
            // SAFETY: initialised above.
            let saved = unsafe { saved.assume_init() };
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disables this thread's alternate stack (restored below).
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
            let alt = AltStack::for_this_thread().unwrap().expect("none before");
            assert!(AltStack::for_this_thread().unwrap().is_none());
            drop(alt);
            let mut now = MaybeUninit::<libc::stack_t>::uninit();
            // SAFETY: queries only.
            unsafe { libc::sigaltstack(std::ptr::null(), now.as_mut_ptr()) };
            // SAFETY: initialised above.
            assert!(unsafe { now.assume_init() }.ss_flags & libc::SS_DISABLE != 0);
            if saved.ss_flags & libc::SS_DISABLE == 0 {
                // SAFETY: std's own stack, still mapped by std for this thread.
                unsafe { libc::sigaltstack(&saved, std::ptr::null_mut()) };
            }
        })
        .join()
        .unwrap();
    }
}
