//! Header section "Network helpers": address strings, listen, connect_to.

use super::{guard, guard_ssize};
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use std::ffi::{c_char, c_int, CStr};

/// gh_listen flag: set SO_REUSEPORT, so several sockets (one hub per thread or process)
/// can listen on one port and the kernel spreads connections between them.
pub const GH_LISTEN_REUSEPORT: c_int = 1;
/// gh_listen flag: for a Unix socket path, first remove a socket file left at that path
/// (by a previous run); a file of any other type is left alone (then GH_EADDRINUSE).
pub const GH_LISTEN_UNLINK: c_int = 2;
/// gh_listen flag: a bound datagram (UDP or Unix SOCK_DGRAM) socket instead of a
/// listening stream socket (`backlog` is then ignored).
pub const GH_LISTEN_UDP: c_int = 4;

/// A NUL-terminated UTF-8 address string, or EINVAL.
///
/// # Safety
/// `p` NULL or NUL-terminated.
pub(crate) unsafe fn addr_str<'a>(p: *const c_char) -> crate::error::Result<&'a str> {
    super::need(p)?;
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::INVAL)
}

/// Creates a socket bound to `address` and, for a stream socket, listening with
/// `backlog` (<= 0: SOMAXCONN); returns the fd (non-blocking, close-on-exec; the caller
/// owns it: gh_close it, or hand it to gh_server_new_fd).
///
/// `address`: `"host:port"`, `"[v6addr]:port"`, `":port"` or `"*:port"` (every IPv4
/// interface; `"[::]:port"` for IPv6 and IPv4), `"unix:/path"`, `"/path"`, `"./path"`,
/// `"@name"` (Linux abstract namespace). The port is a number (0: the kernel picks one,
/// see gh_local_address) or a service name. A host name resolving to several addresses
/// binds the first that works. TCP sockets get SO_REUSEADDR.
///
/// `flags`: GH_LISTEN_REUSEPORT, GH_LISTEN_UNLINK, GH_LISTEN_UDP, or 0.
///
/// *Ownership*: `address` is only read. *Threads*: the calling thread's hub.
/// *Blocking*: only to resolve a host or service name (getaddrinfo on the thread pool:
/// then not from a hub callback); numeric addresses and paths never wait.
/// *Errors*: GH_EINVAL (`address` NULL, not UTF-8 or malformed — an IPv6 address needs
/// brackets —, unknown `flags` bits), GH_ENAMETOOLONG (Unix path too long),
/// GH_EADDRINUSE, GH_EACCES, GH_EADDRNOTAVAIL, GH_EMFILE/GH_ENFILE (after a yield, see
/// gh_accept), GH_EAI_BASE + EAI_* (name resolution), GH_ETIMEDOUT/GH_ECANCELED/
/// GH_EPERM (while resolving a name), -errno of socket(2)/bind(2)/listen(2).
///
/// # Safety
/// `address` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gh_listen(address: *const c_char, backlog: c_int, flags: c_int) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let a = unsafe { addr_str(address) }?;
        hub::current()?.listen(a, backlog, flags)
    })
}

/// Connects a new stream socket to `address` (the forms of gh_listen except the
/// every-interface ones) and returns the connected fd (non-blocking, close-on-exec;
/// the caller owns it). A host name is resolved on the thread pool; each address it
/// resolves to is tried in turn, each attempt with `timeout`, until one connects
/// (socket.create_connection); the error of the last attempt is returned otherwise.
/// Bound the whole call with a gh_timeout.
///
/// *Ownership*: `address` is only read. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`address` NULL or malformed, no host, NaN timeout),
/// GH_ENAMETOOLONG, GH_ECONNREFUSED, GH_ETIMEDOUT, GH_ENETUNREACH, GH_EHOSTUNREACH,
/// GH_ENOENT (no such Unix socket), GH_EAGAIN (Unix listener's backlog full),
/// GH_EAI_BASE + EAI_* (name resolution), GH_EMFILE/GH_ENFILE, GH_ECANCELED, a gh_throw
/// code, GH_EPERM, -errno of socket(2)/connect(2).
///
/// # Safety
/// `address` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gh_connect_to(address: *const c_char, timeout: f64) -> c_int {
    guard(|| {
        // SAFETY: per this function's contract.
        let a = unsafe { addr_str(address) }?;
        let t = duration_ns(timeout)?;
        hub::current()?.connect_to(a, t)
    })
}

/// Copies `s` into `buf` with snprintf semantics; returns the full length.
///
/// # Safety
/// `buf` writable for `len` bytes (checked non-NULL when `len` > 0).
pub(crate) unsafe fn copy_str(s: &str, buf: *mut c_char, len: usize) -> isize {
    if len > 0 {
        let n = s.len().min(len - 1);
        // SAFETY: buf is writable for len > n bytes per the contract.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
    }
    s.len() as isize
}

fn name_of(fd: c_int, peer: bool, buf: *mut c_char, len: usize) -> libc::ssize_t {
    guard_ssize(|| {
        if (buf.is_null() && len > 0) || len > isize::MAX as usize {
            return Err(Error::INVAL);
        }
        if fd < 0 {
            return Err(Error::BADF);
        }
        // SAFETY: plain data; all-zero is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut sl = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = &mut ss as *mut _ as *mut libc::sockaddr;
        // SAFETY: ss/sl are valid out-parameters of the right size.
        let rc = unsafe {
            if peer {
                libc::getpeername(fd, p, &mut sl)
            } else {
                libc::getsockname(fd, p, &mut sl)
            }
        };
        if rc < 0 {
            return Err(Error::last_os());
        }
        let s = crate::net::format(&ss, sl)?;
        // SAFETY: checked above: buf is writable for len bytes, or len is 0.
        Ok(unsafe { copy_str(&s, buf, len) })
    })
}

/// Writes the local address of socket `fd` as an address string gh_listen and
/// gh_connect_to accept (`"127.0.0.1:8080"`, `"[::1]:8080"`, `"unix:/path"`,
/// `"unix:@name"`; `"unix:"` for an unnamed one) into `buf`, snprintf style: at most
/// `len` bytes with the NUL, returns the full length (so >= `len` means truncated);
/// `buf` NULL with `len` 0 measures. Use it to learn the port of a `":0"` listener.
///
/// *Ownership*: writes the caller's buffer. *Threads*: any thread. *Blocking*: never.
/// *Errors*: GH_EINVAL (`buf` NULL with `len` > 0), GH_EBADF, GH_ENOTSOCK,
/// GH_EAFNOSUPPORT (not an IPv4, IPv6 or Unix socket).
///
/// # Safety
/// `buf` writable for `len` bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn gh_local_address(
    fd: c_int,
    buf: *mut c_char,
    len: usize,
) -> libc::ssize_t {
    name_of(fd, false, buf, len)
}

/// gh_local_address for the peer of connected socket `fd` (getpeername(2)).
///
/// *Ownership*, *Threads*, *Blocking*: as gh_local_address.
/// *Errors*: as gh_local_address, plus GH_ENOTCONN.
///
/// # Safety
/// `buf` writable for `len` bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn gh_peer_address(fd: c_int, buf: *mut c_char, len: usize) -> libc::ssize_t {
    name_of(fd, true, buf, len)
}
