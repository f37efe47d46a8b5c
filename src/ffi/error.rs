//! Errors and version (header section "Conventions" and "Version").

use crate::error;
use std::ffi::{c_char, c_int, c_uint};

/// Success.
pub const GH_OK: c_int = 0;
/// Operation not permitted here: blocking inside a hub callback or from the hub, or a call only the main greenlet may make (-EPERM).
pub const GH_EPERM: c_int = -1;
/// Interrupted system call (-EINTR).
pub const GH_EINTR: c_int = -4;
/// Bad file descriptor: negative, closed or not open (-EBADF).
pub const GH_EBADF: c_int = -9;
/// Input/output error (-EIO).
pub const GH_EIO: c_int = -5;
/// No child processes: not a child of this process, or already reaped (-ECHILD).
pub const GH_ECHILD: c_int = -10;
/// Resource temporarily unavailable (-EAGAIN).
pub const GH_EAGAIN: c_int = -11;
/// Out of memory, or out of stack mappings (-ENOMEM).
pub const GH_ENOMEM: c_int = -12;
/// Busy: watcher already started, hub already configured, target greenlet not switchable (-EBUSY).
pub const GH_EBUSY: c_int = -16;
/// Already exists: a backend registered under that name already (-EEXIST).
pub const GH_EEXIST: c_int = -17;
/// Invalid argument: NULL pointer, bad size, bad flag, NaN time (-EINVAL).
pub const GH_EINVAL: c_int = -22;
/// Too many open files in the system (-ENFILE).
pub const GH_ENFILE: c_int = -23;
/// Too many open files in this process (-EMFILE).
pub const GH_EMFILE: c_int = -24;
/// Message too long: a gh_stream record (line) longer than the stream's buffer bound or
/// the caller's buffer; a datagram too large (-EMSGSIZE).
pub const GH_EMSGSIZE: c_int = -90;
/// Broken pipe: the peer closed (-EPIPE); SIGPIPE is never raised by greenhub's I/O.
pub const GH_EPIPE: c_int = -32;
/// Out of range: e.g. an fd at or past FD_SETSIZE under the select backend (-ERANGE).
pub const GH_ERANGE: c_int = -34;
/// Deadlock: join of self, or a join cycle (-EDEADLK).
pub const GH_EDEADLK: c_int = -35;
/// Value too large (-EOVERFLOW).
pub const GH_EOVERFLOW: c_int = -75;
/// Not a socket (-ENOTSOCK).
pub const GH_ENOTSOCK: c_int = -88;
/// Wrong type of socket for the call: e.g. a stream socket given to
/// gh_server_new_datagram_fd (-EPROTOTYPE).
pub const GH_EPROTOTYPE: c_int = -91;
/// Not supported by this build or backend (-ENOTSUP).
pub const GH_ENOTSUP: c_int = -95;
/// Network unreachable (-ENETUNREACH).
pub const GH_ENETUNREACH: c_int = -101;
/// Connection reset by peer (-ECONNRESET).
pub const GH_ECONNRESET: c_int = -104;
/// Socket already connected (-EISCONN).
pub const GH_EISCONN: c_int = -106;
/// The timeout expired (-ETIMEDOUT).
pub const GH_ETIMEDOUT: c_int = -110;
/// Connection refused (-ECONNREFUSED).
pub const GH_ECONNREFUSED: c_int = -111;
/// Host unreachable (-EHOSTUNREACH).
pub const GH_EHOSTUNREACH: c_int = -113;
/// The calling greenlet was killed (gevent's GreenletExit): clean up and return (-ECANCELED).
pub const GH_ECANCELED: c_int = -125;
/// Zero, stale (closed, released, destroyed hub) or forged handle.
pub const GH_EBADHANDLE: c_int = -1001;
/// The handle belongs to another thread's hub.
pub const GH_EWRONGTHREAD: c_int = -1002;
/// This wait can never end: nothing left in the loop could wake it (gevent's LoopExit).
pub const GH_ELOOPEXIT: c_int = -1003;
/// Switch or throw to a dead greenlet.
pub const GH_EDEAD: c_int = -1004;
/// gh_assert_switches_end: the code did not switch (or blocked too long).
pub const GH_ENOSWITCH: c_int = -1005;
/// The fd, queue or object was closed while this call waited on it.
pub const GH_ECLOSED: c_int = -1006;
/// A bug in greenhub (a caught panic); the message went to stderr.
pub const GH_EINTERNAL: c_int = -1007;
/// The hub's backend failed: a plug-in backend's poll failed or broke the contract
/// written at gh_backend (details on stderr); the hub's fd waits fail with it from then on.
pub const GH_EBACKEND: c_int = -1008;
/// End of file in the middle of a record: gh_stream_read_exact / gh_stream_read_until /
/// gh_stream_readline got part of what they wait for; those bytes stay buffered.
pub const GH_EEOF: c_int = -1009;

/// A sentence describing `code` (for GH_EAI_BASE + EAI_* codes, gai_strerror's text).
///
/// *Ownership*: the string is static; do not free it.
/// *Threads*: any thread. *Blocking*: never.
/// *Errors*: none; unknown codes give "unknown error code".
#[no_mangle]
pub extern "C" fn gh_strerror(code: c_int) -> *const c_char {
    if let Some(eai) = error::eai(code) {
        // SAFETY: gai_strerror returns a pointer to a static string for any code.
        return unsafe { libc::gai_strerror(eai) };
    }
    error::message(code).as_ptr()
}

/// The name of `code`, e.g. "GH_ETIMEDOUT".
///
/// *Ownership*: the string is static; do not free it.
/// *Threads*: any thread. *Blocking*: never.
/// *Errors*: none; unknown codes give "GH_UNKNOWN".
#[no_mangle]
pub extern "C" fn gh_err_name(code: c_int) -> *const c_char {
    error::name(code).as_ptr()
}

/// The library's version as GH_VERSION_HEX: (major << 16) | (minor << 8) | patch.
/// Compare it with the GH_VERSION_HEX macro to detect a header/library mismatch.
///
/// *Threads*: any thread. *Errors*: none.
#[no_mangle]
pub extern "C" fn gh_version() -> c_uint {
    let p = |s: &str| s.parse::<c_uint>().unwrap_or(0);
    (p(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (p(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | p(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The library's version as a string, e.g. "0.1.0".
///
/// *Ownership*: static; do not free. *Threads*: any thread. *Errors*: none.
#[no_mangle]
pub extern "C" fn gh_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

// `features=`: the optional cargo features compiled in, comma separated.
#[cfg(feature = "sanitizer")]
macro_rules! f_sanitizer {
    () => {
        "sanitizer"
    };
}
#[cfg(not(feature = "sanitizer"))]
macro_rules! f_sanitizer {
    () => {
        ""
    };
}
#[cfg(all(
    feature = "sanitizer",
    any(feature = "fault-injection", feature = "tsan")
))]
macro_rules! sep1 {
    () => {
        ","
    };
}
#[cfg(not(all(
    feature = "sanitizer",
    any(feature = "fault-injection", feature = "tsan")
)))]
macro_rules! sep1 {
    () => {
        ""
    };
}
#[cfg(feature = "fault-injection")]
macro_rules! f_fault_injection {
    () => {
        "fault-injection"
    };
}
#[cfg(not(feature = "fault-injection"))]
macro_rules! f_fault_injection {
    () => {
        ""
    };
}
#[cfg(all(feature = "fault-injection", feature = "tsan"))]
macro_rules! sep2 {
    () => {
        ","
    };
}
#[cfg(not(all(feature = "fault-injection", feature = "tsan")))]
macro_rules! sep2 {
    () => {
        ""
    };
}
#[cfg(feature = "tsan")]
macro_rules! f_tsan {
    () => {
        "tsan"
    };
}
#[cfg(not(feature = "tsan"))]
macro_rules! f_tsan {
    () => {
        ""
    };
}
macro_rules! features {
    () => {
        concat!(
            f_sanitizer!(),
            sep1!(),
            f_fault_injection!(),
            sep2!(),
            f_tsan!()
        )
    };
}
#[cfg(panic = "unwind")]
macro_rules! panic_strategy {
    () => {
        "unwind"
    };
}
#[cfg(not(panic = "unwind"))]
macro_rules! panic_strategy {
    () => {
        "abort"
    };
}
#[cfg(debug_assertions)]
macro_rules! profile {
    () => {
        "debug"
    };
}
#[cfg(not(debug_assertions))]
macro_rules! profile {
    () => {
        "release"
    };
}

/// How this library was built, one line of `key=value` fields separated by "; ", e.g.
/// "greenhub 0.1.0; backends=epoll,polling,poll; features=fault-injection;
/// panic=unwind; target=x86_64-unknown-linux-gnu; profile=release" (`features=` lists
/// the optional cargo features compiled in — sanitizer, fault-injection, tsan — comma
/// separated, empty when none). greenhub needs panic=unwind: a build with
/// panic=abort is broken (its panic boundaries cannot work).
///
/// *Ownership*: static; do not free. *Threads*: any thread. *Blocking*: never.
/// *Errors*: none.
#[no_mangle]
pub extern "C" fn gh_build_info() -> *const c_char {
    concat!(
        "greenhub ",
        env!("CARGO_PKG_VERSION"),
        "; backends=epoll,polling,poll; features=",
        features!(),
        "; panic=",
        panic_strategy!(),
        "; target=",
        env!("GH_BUILD_TARGET"),
        "; profile=",
        profile!(),
        "\0"
    )
    .as_ptr() as *const c_char
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn c_constants_match_core() {
        assert_eq!(GH_EPERM, Error::PERM.0);
        assert_eq!(GH_EINTR, -libc::EINTR);
        assert_eq!(GH_EBADF, Error::BADF.0);
        assert_eq!(GH_EAGAIN, -libc::EAGAIN);
        assert_eq!(GH_ENOMEM, Error::NOMEM.0);
        assert_eq!(GH_EBUSY, Error::BUSY.0);
        assert_eq!(GH_EINVAL, Error::INVAL.0);
        assert_eq!(GH_EDEADLK, Error::DEADLK.0);
        assert_eq!(GH_ENOTSUP, Error::NOTSUP.0);
        assert_eq!(GH_ETIMEDOUT, Error::TIMEDOUT.0);
        assert_eq!(GH_ECANCELED, Error::CANCELED.0);
        assert_eq!(GH_EBADHANDLE, crate::error::EBADHANDLE);
        assert_eq!(GH_EWRONGTHREAD, crate::error::EWRONGTHREAD);
        assert_eq!(GH_ELOOPEXIT, crate::error::ELOOPEXIT);
        assert_eq!(GH_EDEAD, crate::error::EDEAD);
        assert_eq!(GH_ENOSWITCH, crate::error::ENOSWITCH);
        assert_eq!(GH_ECLOSED, crate::error::ECLOSED);
        assert_eq!(GH_EINTERNAL, crate::error::EINTERNAL);
        assert_eq!(GH_EBACKEND, crate::error::EBACKEND);
        assert_eq!(GH_EEXIST, Error::EXIST.0);
        assert_eq!(GH_EEOF, crate::error::EEOF);
        for (c, e) in [
            (GH_EIO, libc::EIO),
            (GH_ECHILD, libc::ECHILD),
            (GH_ENFILE, libc::ENFILE),
            (GH_EMFILE, libc::EMFILE),
            (GH_EPIPE, libc::EPIPE),
            (GH_ERANGE, libc::ERANGE),
            (GH_EMSGSIZE, libc::EMSGSIZE),
            (GH_EOVERFLOW, libc::EOVERFLOW),
            (GH_ENOTSOCK, libc::ENOTSOCK),
            (GH_EPROTOTYPE, libc::EPROTOTYPE),
            (GH_ENETUNREACH, libc::ENETUNREACH),
            (GH_ECONNRESET, libc::ECONNRESET),
            (GH_EISCONN, libc::EISCONN),
            (GH_ECONNREFUSED, libc::ECONNREFUSED),
            (GH_EHOSTUNREACH, libc::EHOSTUNREACH),
        ] {
            assert_eq!(c, -e);
            assert!(crate::error::name(c).to_bytes().starts_with(b"GH_E"));
        }
    }
}
