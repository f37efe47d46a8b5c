//! Error codes: the one `Error` type of the core and its C codes.
//!
//! OS errors are negative errno values (libuv style); library errors live below
//! -1000. Every code has a static name and a static sentence, unknown codes
//! included, so `gh_strerror`/`gh_err_name` never allocate and never fail.

use std::ffi::CStr;

/// Library error codes (below -1000). Values are part of the ABI.
pub(crate) const EBADHANDLE: i32 = -1001;
pub(crate) const EWRONGTHREAD: i32 = -1002;
pub(crate) const ELOOPEXIT: i32 = -1003;
pub(crate) const EDEAD: i32 = -1004;
pub(crate) const ENOSWITCH: i32 = -1005;
pub(crate) const ECLOSED: i32 = -1006;
pub(crate) const EINTERNAL: i32 = -1007;
pub(crate) const EBACKEND: i32 = -1008;
/// -1009: -1008 is GH_EBACKEND on main (issue 17).
pub(crate) const EEOF: i32 = -1009;
/// getaddrinfo failures are EAI_BASE + EAI_* (EAI_* are negative on Linux).
pub(crate) const EAI_BASE: i32 = -2000;

/// A failure of a core operation, carried as its C code (always negative).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    pub const INVAL: Error = Error(-libc::EINVAL);
    pub const NOMEM: Error = Error(-libc::ENOMEM);
    pub const TIMEDOUT: Error = Error(-libc::ETIMEDOUT);
    pub const CANCELED: Error = Error(-libc::ECANCELED);
    pub const BUSY: Error = Error(-libc::EBUSY);
    pub const PERM: Error = Error(-libc::EPERM);
    pub const BADF: Error = Error(-libc::EBADF);
    pub const DEADLK: Error = Error(-libc::EDEADLK);
    pub const NOTSUP: Error = Error(-libc::ENOTSUP);
    pub const BADHANDLE: Error = Error(EBADHANDLE);
    pub const WRONGTHREAD: Error = Error(EWRONGTHREAD);
    pub const LOOPEXIT: Error = Error(ELOOPEXIT);
    pub const DEAD: Error = Error(EDEAD);
    pub const INTERNAL: Error = Error(EINTERNAL);
    pub const BACKEND: Error = Error(EBACKEND);
    pub const EXIST: Error = Error(-libc::EEXIST);
    pub const NOSWITCH: Error = Error(ENOSWITCH);

    /// The error of the last failed libc call (`errno`), as a code.
    pub fn last_os() -> Error {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        Error(-e)
    }

    pub fn code(self) -> i32 {
        self.0
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// (code, name, sentence) for every code greenhub documents or passes through.
static TABLE: &[(i32, &CStr, &CStr)] = &[
    (0, c"GH_OK", c"success"),
    (-libc::EPERM, c"GH_EPERM", c"operation not permitted here (blocking inside a hub callback or from the hub, or from a greenlet that may not do it)"),
    (-libc::ENOENT, c"GH_ENOENT", c"no such file or directory"),
    (-libc::ESRCH, c"GH_ESRCH", c"no such process"),
    (-libc::EINTR, c"GH_EINTR", c"interrupted system call"),
    (-libc::EIO, c"GH_EIO", c"input/output error"),
    (-libc::ECHILD, c"GH_ECHILD", c"no child processes"),
    (-libc::EAGAIN, c"GH_EAGAIN", c"resource temporarily unavailable"),
    (-libc::ENOMEM, c"GH_ENOMEM", c"out of memory or out of stack mappings"),
    (-libc::EACCES, c"GH_EACCES", c"permission denied"),
    (-libc::EFAULT, c"GH_EFAULT", c"bad address"),
    (-libc::EBUSY, c"GH_EBUSY", c"resource busy (watcher already started, hub already configured, or another greenlet already waits on this)"),
    (-libc::EEXIST, c"GH_EEXIST", c"file exists"),
    (-libc::ENOTDIR, c"GH_ENOTDIR", c"not a directory"),
    (-libc::EISDIR, c"GH_EISDIR", c"is a directory"),
    (-libc::EINVAL, c"GH_EINVAL", c"invalid argument (NULL pointer, bad size, bad flag or NaN time)"),
    (-libc::EBADF, c"GH_EBADF", c"bad file descriptor"),
    (-libc::ENFILE, c"GH_ENFILE", c"too many open files in system"),
    (-libc::EMFILE, c"GH_EMFILE", c"too many open files"),
    (-libc::ENOSPC, c"GH_ENOSPC", c"no space left on device"),
    (-libc::EPIPE, c"GH_EPIPE", c"broken pipe"),
    (-libc::ERANGE, c"GH_ERANGE", c"result out of range"),
    (-libc::EDEADLK, c"GH_EDEADLK", c"deadlock: a greenlet would wait for itself (join of self or a join cycle)"),
    (-libc::ENAMETOOLONG, c"GH_ENAMETOOLONG", c"name too long"),
    (-libc::ENOSYS, c"GH_ENOSYS", c"function not implemented"),
    (-libc::ENOTSUP, c"GH_ENOTSUP", c"operation not supported by this build or backend"),
    (-libc::ENOTSOCK, c"GH_ENOTSOCK", c"not a socket"),
    (-libc::EADDRINUSE, c"GH_EADDRINUSE", c"address already in use"),
    (-libc::EADDRNOTAVAIL, c"GH_EADDRNOTAVAIL", c"address not available"),
    (-libc::ENETUNREACH, c"GH_ENETUNREACH", c"network unreachable"),
    (-libc::ECONNABORTED, c"GH_ECONNABORTED", c"connection aborted"),
    (-libc::ECONNRESET, c"GH_ECONNRESET", c"connection reset by peer"),
    (-libc::ENOTCONN, c"GH_ENOTCONN", c"socket is not connected"),
    (-libc::ETIMEDOUT, c"GH_ETIMEDOUT", c"timed out"),
    (-libc::ECONNREFUSED, c"GH_ECONNREFUSED", c"connection refused"),
    (-libc::EHOSTUNREACH, c"GH_EHOSTUNREACH", c"host unreachable"),
    (-libc::EALREADY, c"GH_EALREADY", c"operation already in progress"),
    (-libc::EINPROGRESS, c"GH_EINPROGRESS", c"operation in progress"),
    (-libc::ECANCELED, c"GH_ECANCELED", c"the calling greenlet was killed (GreenletExit): clean up and return"),
    (EBADHANDLE, c"GH_EBADHANDLE", c"bad handle: zero, stale (closed, released or of a destroyed hub) or forged"),
    (EWRONGTHREAD, c"GH_EWRONGTHREAD", c"the handle belongs to another thread's hub"),
    (ELOOPEXIT, c"GH_ELOOPEXIT", c"this operation would block forever: nothing left in the loop can wake it (LoopExit)"),
    (EDEAD, c"GH_EDEAD", c"the greenlet is dead"),
    (ENOSWITCH, c"GH_ENOSWITCH", c"the code did not switch (or blocked the hub too long)"),
    (ECLOSED, c"GH_ECLOSED", c"the object was closed while this call waited on it"),
    (EINTERNAL, c"GH_EINTERNAL", c"internal error in greenhub (a bug; details on stderr)"),
    (EBACKEND, c"GH_EBACKEND", c"the hub's backend failed: its poll failed or it broke the backend contract (details on stderr)"),
    (EEOF, c"GH_EEOF", c"end of file in the middle of a record (the bytes that came stay buffered)"),
    (EAI_BASE + libc::EAI_BADFLAGS, c"GH_EAI_BADFLAGS", c"getaddrinfo: bad value for ai_flags"),
    (EAI_BASE + libc::EAI_NONAME, c"GH_EAI_NONAME", c"getaddrinfo: name or service not known"),
    (EAI_BASE + libc::EAI_AGAIN, c"GH_EAI_AGAIN", c"getaddrinfo: temporary failure in name resolution"),
    (EAI_BASE + libc::EAI_FAIL, c"GH_EAI_FAIL", c"getaddrinfo: non-recoverable failure in name resolution"),
    (EAI_BASE + libc::EAI_FAMILY, c"GH_EAI_FAMILY", c"getaddrinfo: address family not supported"),
    (EAI_BASE + libc::EAI_SOCKTYPE, c"GH_EAI_SOCKTYPE", c"getaddrinfo: socket type not supported"),
    (EAI_BASE + libc::EAI_SERVICE, c"GH_EAI_SERVICE", c"getaddrinfo: service not supported for this socket type"),
    (EAI_BASE + libc::EAI_MEMORY, c"GH_EAI_MEMORY", c"getaddrinfo: memory allocation failure"),
    (EAI_BASE + libc::EAI_OVERFLOW, c"GH_EAI_OVERFLOW", c"getaddrinfo: argument buffer overflow"),
    (-libc::EOVERFLOW, c"GH_EOVERFLOW", c"value too large (overflow)"),
    (-libc::EISCONN, c"GH_EISCONN", c"socket is already connected"),
    (-libc::ENOBUFS, c"GH_ENOBUFS", c"no buffer space available"),
    (-libc::EMSGSIZE, c"GH_EMSGSIZE", c"message too long"),
    (-libc::EAFNOSUPPORT, c"GH_EAFNOSUPPORT", c"address family not supported"),
    (-libc::EPROTOTYPE, c"GH_EPROTOTYPE", c"wrong type of socket for this call (e.g. a stream socket where a datagram socket is needed)"),
];

fn lookup(code: i32) -> Option<&'static (i32, &'static CStr, &'static CStr)> {
    TABLE.iter().find(|e| e.0 == code)
}

/// The EAI_* value of a gh_getaddrinfo failure code.
pub fn eai(code: i32) -> Option<i32> {
    (EAI_BASE - 100..EAI_BASE)
        .contains(&code)
        .then(|| code - EAI_BASE)
}

/// The static name of a code (`"GH_ETIMEDOUT"`), `"GH_UNKNOWN"` for unknown codes.
pub fn name(code: i32) -> &'static CStr {
    lookup(code).map_or(c"GH_UNKNOWN", |e| e.1)
}

/// The static sentence for a code, `"unknown error code"` for unknown codes.
pub fn message(code: i32) -> &'static CStr {
    lookup(code).map_or(c"unknown error code", |e| e.2)
}

/// Runs `f`; if an unwind that is not a Rust panic leaves it — `pthread_exit` or
/// `pthread_cancel` (glibc's forced unwind), or a C++ exception a callback or greenlet
/// function let escape — the process ends here with a message saying so (SIGABRT).
/// greenhub cannot let such an unwind through: its loop and the greenlets' stacks have
/// no way to be torn down in the middle of a switch, and Rust's panic boundary would
/// end the process anyway, with only glibc's "FATAL: exception not rethrown" or Rust's
/// "cannot catch foreign exceptions" to say why. A Rust panic passes on (to the panic
/// boundary, which makes it `GH_EINTERNAL`). Costs nothing when nothing unwinds.
#[inline(always)]
pub(crate) fn no_foreign_unwind<R>(f: impl FnOnce() -> R) -> R {
    struct Sentinel;
    impl Drop for Sentinel {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                foreign_unwind();
            }
        }
    }
    let s = Sentinel;
    let r = f();
    std::mem::forget(s);
    r
}

#[cold]
#[inline(never)]
fn foreign_unwind() -> ! {
    const MSG: &[u8] =
        b"greenhub: fatal: an unwind is crossing greenhub's frames: pthread_exit or \
pthread_cancel (a forced unwind), or a C++ exception a callback or greenlet function let \
escape. greenhub cannot unwind its loop or a greenlet's stack: aborting. End a thread \
outside greenhub calls (stop its loop first), and catch exceptions inside callbacks and \
greenlet functions (greenhub.h, \"Threads and unwinding\").\n";
    // SAFETY: writes a static buffer to stderr (no allocation: this runs during an unwind).
    unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_unique_name_and_message() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert_ne!(a.0, b.0);
                assert_ne!(a.1, b.1);
            }
            assert!(a.1.to_bytes().starts_with(b"GH_"));
        }
        assert_eq!(name(-libc::ETIMEDOUT), c"GH_ETIMEDOUT");
        assert_eq!(name(12345), c"GH_UNKNOWN");
        assert_eq!(message(i32::MIN), c"unknown error code");
    }
}
