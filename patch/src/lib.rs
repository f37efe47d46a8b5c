//! # libgreenhub_patch — cooperative libc for greenhub (gevent.monkey for C)
//!
//! A shared library that defines the blocking libc calls a network client or server
//! uses. Activated by symbol interposition only — `LD_PRELOAD=libgreenhub_patch.so`, or
//! linking it ahead of libc — it lets unmodified C libraries (libpq, libcurl's easy API,
//! hiredis, OpenSSL on a blocking socket…) run concurrently in greenlets: where libc
//! would block the thread, the interposer parks the calling greenlet on the hub.
//!
//! Each interposer asks, in this order:
//! 1. is the patch on and libgreenhub present (`gh`), and may the caller park —
//!    this thread has a hub and the caller is its main greenlet or a greenlet, not the
//!    hub, a hub callback, or greenhub itself (`gh::parkable`, via libgreenhub's
//!    `gh_hub_context`), and not a signal handler (`signal`)?
//! 2. is the fd a kind the hub can wait on — a socket or a pipe-like stream, not a
//!    regular file or a tty (`fdkind`)?
//! 3. did the program make the fd non-blocking itself? Then it gets `EAGAIN`, as from
//!    libc. Otherwise the call waits on the hub, within the socket's SO_RCVTIMEO /
//!    SO_SNDTIMEO.
//!
//! One shortcut: `read`/`write`/`recv`/`recvfrom`/`send`/`sendto` on a socket first try
//! the call with `MSG_DONTWAIT` (after step 2 only): a transfer that does not have to
//! wait is the same whoever calls, so question 1 is asked only on `EAGAIN`. That keeps
//! the ready path at one table load and one flag more than libc's.
//!
//! Any "no" is the real libc function (`real`, resolved once with
//! `dlsym(RTLD_NEXT)`), so results, errno and partial counts are libc's. A kill
//! (`gh_kill`) or gh_timeout ending a wait returns -1 with ECANCELED / ETIMEDOUT after
//! nothing was transferred, or the partial count.
//!
//! ```text
//! gh        libgreenhub found at run time; may the caller park; waits; errno mapping
//! real      the real libc functions (dlsym RTLD_NEXT)
//! fdkind    per-fd kind cache: socket / stream / plain
//! io        read write readv writev recv recvfrom recvmsg send sendto sendmsg
//!           accept accept4 connect (+ the _FORTIFY_SOURCE __read_chk, __recv_chk, __recvfrom_chk)
//! poll      poll ppoll select pselect epoll_wait epoll_pwait (+ __poll_chk, __ppoll_chk)
//! sleep     sleep usleep nanosleep clock_nanosleep
//! dns       getaddrinfo gethostbyname gethostbyname_r (thread pool)
//! fd        close dup dup2 dup3 fcntl fcntl64 socket socketpair pipe pipe2 (kind cache upkeep),
//!           dlopen (a late libgreenhub)
//! signal    signal-handler detection: sigaction signal bsd_signal wrap handlers
//! ```

pub mod dns;
pub mod fd;
pub mod fdkind;
pub mod gh;
pub mod io;
pub mod poll;
pub mod real;
pub mod signal;
pub mod sleep;

use libc::{c_char, c_int};

/// The functions this library defines, as `gh_patch_info()` lists them.
const COVERED: &str = "read write readv writev recv recvfrom recvmsg send sendto sendmsg \
accept accept4 connect poll ppoll select pselect epoll_wait epoll_pwait sleep usleep \
nanosleep clock_nanosleep getaddrinfo gethostbyname gethostbyname_r close dup dup2 dup3 \
fcntl fcntl64 socket socketpair pipe pipe2 dlopen sigaction signal bsd_signal __read_chk __recv_chk __recvfrom_chk __poll_chk __ppoll_chk";

/// 1 when the interposed functions may park greenlets (libgreenhub found, and
/// GREENHUB_PATCH is not 0/off); 0 when every one of them is plain libc.
///
/// *Threads*: any. *Blocking*: never.
#[no_mangle]
pub extern "C" fn gh_patch_active() -> c_int {
    gh::gh().is_some() as c_int
}

/// A static, NUL-terminated line: whether the patch is active (and why not) and the
/// functions it covers. Do not free it.
///
/// *Threads*: any. *Blocking*: never.
#[no_mangle]
pub extern "C" fn gh_patch_info() -> *const c_char {
    static ON: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    static OFF: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    let (cell, state) = if gh::gh().is_some() {
        (&ON, "active")
    } else {
        (
            &OFF,
            "inactive (GREENHUB_PATCH=0, or libgreenhub is not loaded yet): plain libc",
        )
    };
    cell.get_or_init(|| {
        std::ffi::CString::new(format!(
            "greenhub_patch {}: {state}; covers: {COVERED}",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_default()
    })
    .as_ptr()
}
