//! Header section "More I/O": datagrams, vectored and message I/O, sendfile.

use super::{guard, guard_ssize, put};
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use std::ffi::{c_int, c_void};

/// The common shape: `bad` arguments and NaN timeouts are GH_EINVAL, then `op`.
fn checked(
    bad: bool,
    timeout: f64,
    op: impl FnOnce(&hub::Hub, Option<u64>) -> crate::error::Result<isize>,
) -> libc::ssize_t {
    guard_ssize(|| {
        if bad {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        op(hub::current()?, t)
    })
}

/// recvfrom(2), waiting cooperatively: one datagram (or, on a stream socket, what is
/// there, up to `len`). `*addr`/`*addrlen` get the sender as recvfrom(2) gives it (both
/// NULL: not wanted). Returns the bytes received (a datagram longer than `len` is
/// truncated: pass MSG_TRUNC to get its real length), 0 for an empty datagram or a
/// closed stream, or a code. One reader per fd (GH_EBUSY), as gh_recv.
///
/// *Ownership*: `buf`, `addr` are the caller's. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`buf` NULL with `len` > 0, exactly one of addr/addrlen NULL,
/// NaN timeout), GH_ETIMEDOUT, GH_EBUSY, GH_EBADF, GH_ENOTSOCK, GH_ECLOSED,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, -errno of recvfrom(2).
///
/// # Safety
/// `buf` writable for `len` bytes; `addr` writable for `*addrlen` bytes (or both NULL).
#[no_mangle]
pub unsafe extern "C" fn gh_recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
    timeout: f64,
) -> libc::ssize_t {
    checked(
        (buf.is_null() && len > 0) || addr.is_null() != addrlen.is_null(),
        timeout,
        |hub, t| {
            let mut iov = libc::iovec {
                iov_base: buf,
                iov_len: len,
            };
            // SAFETY: plain data; all-zero is a valid msghdr.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if !addr.is_null() {
                msg.msg_name = addr as *mut c_void;
                // SAFETY: addrlen is readable per the contract.
                msg.msg_namelen = unsafe { *addrlen };
            }
            // SAFETY: the buffers are valid per the contract.
            let n = unsafe { hub.recvmsg(fd, &mut msg, flags, t) }?;
            if !addrlen.is_null() {
                // SAFETY: writable per the contract.
                unsafe { *addrlen = msg.msg_namelen };
            }
            Ok(n)
        },
    )
}

/// sendto(2), waiting cooperatively while the socket is full: one call, so a datagram
/// goes whole (GH_EMSGSIZE if too large); on a stream socket it may send part (use
/// gh_send for all of it). `addr` NULL: the connected peer. Returns the bytes sent or a
/// code. MSG_NOSIGNAL is added: no SIGPIPE.
///
/// *Ownership*: `buf`, `addr` only read. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`buf` NULL with `len` > 0, NaN timeout), GH_ETIMEDOUT, GH_EBUSY,
/// GH_EBADF, GH_ENOTSOCK, GH_EMSGSIZE, GH_ECONNREFUSED (an earlier datagram was
/// refused), GH_ENOBUFS (after a yield, see gh_accept), GH_ECLOSED, GH_ECANCELED, a
/// gh_throw code, GH_EPERM, -errno of sendto(2).
///
/// # Safety
/// `buf` readable for `len` bytes; `addr` NULL or readable for `addrlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const libc::sockaddr,
    addrlen: libc::socklen_t,
    timeout: f64,
) -> libc::ssize_t {
    checked(buf.is_null() && len > 0, timeout, |hub, t| {
        let mut iov = libc::iovec {
            iov_base: buf as *mut c_void,
            iov_len: len,
        };
        // SAFETY: plain data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !addr.is_null() {
            msg.msg_name = addr as *mut c_void;
            msg.msg_namelen = addrlen;
        }
        // SAFETY: the buffers are valid per the contract.
        unsafe { hub.sendmsg(fd, &msg, flags, t) }
    })
}

/// recvmsg(2), waiting cooperatively (MSG_DONTWAIT and MSG_CMSG_CLOEXEC are added:
/// fds received with SCM_RIGHTS are close-on-exec and the caller's). Returns the bytes
/// received, 0 on orderly shutdown, or a code; `msg` is filled as recvmsg(2) fills it.
/// One reader per fd.
///
/// *Ownership*: `msg` and its buffers are the caller's. *Threads*: the calling
/// thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`msg` NULL, NaN timeout), GH_ETIMEDOUT, GH_EBUSY, GH_EBADF,
/// GH_ENOTSOCK, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM, -errno of
/// recvmsg(2).
///
/// # Safety
/// `msg` and the buffers it points to valid as recvmsg(2) requires.
#[no_mangle]
pub unsafe extern "C" fn gh_recvmsg(
    fd: c_int,
    msg: *mut libc::msghdr,
    flags: c_int,
    timeout: f64,
) -> libc::ssize_t {
    checked(msg.is_null(), timeout, |hub, t| {
        // SAFETY: valid per the contract.
        unsafe { hub.recvmsg(fd, msg, flags, t) }
    })
}

/// sendmsg(2), waiting cooperatively while the socket is full (MSG_DONTWAIT and
/// MSG_NOSIGNAL added): one call, so on a stream socket it may send part of the data
/// (ancillary data such as SCM_RIGHTS fds goes with the first byte; send the rest with
/// gh_send or gh_writev). Returns the bytes sent or a code.
///
/// *Ownership*: `msg` only read; fds passed with SCM_RIGHTS stay the caller's.
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`msg` NULL, NaN timeout), GH_ETIMEDOUT, GH_EBUSY, GH_EBADF,
/// GH_ENOTSOCK, GH_EMSGSIZE, GH_EPIPE, GH_ECLOSED, GH_ECANCELED, a gh_throw code,
/// GH_EPERM, -errno of sendmsg(2).
///
/// # Safety
/// `msg` and the buffers it points to valid as sendmsg(2) requires.
#[no_mangle]
pub unsafe extern "C" fn gh_sendmsg(
    fd: c_int,
    msg: *const libc::msghdr,
    flags: c_int,
    timeout: f64,
) -> libc::ssize_t {
    checked(msg.is_null(), timeout, |hub, t| {
        // SAFETY: valid per the contract.
        unsafe { hub.sendmsg(fd, msg, flags, t) }
    })
}

/// Checks an iovec array argument: NULL only with `iovcnt` 0, `iovcnt` in 0..=IOV_MAX.
fn iov_ok(iov: *const libc::iovec, iovcnt: c_int) -> bool {
    (0..=1024).contains(&iovcnt) && (!iov.is_null() || iovcnt == 0)
}

/// readv(2) into `iovcnt` buffers, waiting cooperatively while nothing is there: one
/// read (recvmsg for sockets). Returns the bytes read (> 0), 0 at end of file, or a
/// code. One reader per fd.
///
/// *Ownership*: the buffers are the caller's. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`iov` NULL with `iovcnt` > 0, `iovcnt` negative or above 1024,
/// NaN timeout), as gh_read otherwise.
///
/// # Safety
/// `iov[0..iovcnt]` readable, each buffer writable for its length.
#[no_mangle]
pub unsafe extern "C" fn gh_readv(
    fd: c_int,
    iov: *const libc::iovec,
    iovcnt: c_int,
    timeout: f64,
) -> libc::ssize_t {
    checked(!iov_ok(iov, iovcnt), timeout, |hub, t| {
        if iovcnt == 0 {
            return Ok(0);
        }
        // SAFETY: valid per the contract.
        unsafe { hub.readv(fd, iov, iovcnt as usize, t) }
    })
}

/// Writes every byte of the `iovcnt` buffers (writev(2), sendmsg for sockets), waiting
/// cooperatively whenever the fd is full; returns the total, or a code (then an unknown
/// part went out, as with gh_write: gh_writev_all also says how much). No SIGPIPE. One
/// writer per fd.
///
/// *Ownership*: the buffers are only read (`iov` is not modified).
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`iov` NULL with `iovcnt` > 0, `iovcnt` negative or above 1024,
/// NaN timeout), as gh_write otherwise.
///
/// # Safety
/// `iov[0..iovcnt]` readable, each buffer readable for its length.
#[no_mangle]
pub unsafe extern "C" fn gh_writev(
    fd: c_int,
    iov: *const libc::iovec,
    iovcnt: c_int,
    timeout: f64,
) -> libc::ssize_t {
    checked(!iov_ok(iov, iovcnt), timeout, |hub, t| {
        let mut done = 0;
        // SAFETY: valid per the contract.
        unsafe { hub.writev_all(fd, iov, iovcnt.max(0) as usize, t, &mut done) }
            .map(|_| done as isize)
    })
}

/// gh_writev that says how far it got: writes every byte of the `iovcnt` buffers,
/// waiting cooperatively whenever the fd is full, and stores in `*written` how many
/// bytes went out in every outcome, as gh_write_all does (resume by skipping that many
/// bytes of the buffers). Returns GH_OK (`*written` == the buffers' total) or a code.
/// No SIGPIPE. One writer per fd.
///
/// *Ownership*: the buffers are only read (`iov` is not modified).
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`written` NULL, `iov` NULL with `iovcnt` > 0, `iovcnt` negative
/// or above 1024, NaN timeout), as gh_write_all otherwise.
///
/// # Safety
/// `iov[0..iovcnt]` readable, each buffer readable for its length; `written` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_writev_all(
    fd: c_int,
    iov: *const libc::iovec,
    iovcnt: c_int,
    timeout: f64,
    written: *mut usize,
) -> c_int {
    let bad = !iov_ok(iov, iovcnt);
    // SAFETY: the pointers are valid per this function's contract.
    super::io::counted(bad, iovcnt == 0, timeout, written, |hub, t, n| unsafe {
        hub.writev_all(fd, iov, iovcnt as usize, t, n)
    })
}

/// Sends up to `count` bytes of file `in_fd` to `out_fd` (a socket or pipe) with
/// sendfile(2), waiting cooperatively whenever `out_fd` is full; stops early at the end
/// of `in_fd`. `offset`: where to read `in_fd` (advanced by what was sent; the file
/// position is then untouched), or NULL to use and advance the file position.
/// `*sent` (may be NULL) gets the bytes sent — also when the call fails, so it can be
/// resumed. Returns GH_OK or a code. `out_fd` is put in O_NONBLOCK mode; no SIGPIPE.
///
/// *Ownership*: nothing changes hands. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (NaN timeout, `in_fd` not mmap-able), GH_EBADF, GH_ETIMEDOUT,
/// GH_EBUSY (another greenlet writes `out_fd`), GH_EPIPE, GH_ECONNRESET, GH_ECLOSED,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, -errno of sendfile(2).
///
/// # Safety
/// `offset` NULL or valid for reads and writes; `sent` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: usize,
    timeout: f64,
    sent: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or writable per the contract.
        unsafe { put(sent, 0) };
        let t = duration_ns(timeout)?;
        let hub = hub::current()?;
        let mut done = 0usize;
        // SAFETY: NULL or valid per the contract.
        let off = unsafe { offset.as_mut() };
        let r = hub.sendfile(out_fd, in_fd, off, count, t, &mut done);
        // SAFETY: NULL or writable per the contract.
        unsafe { put(sent, done) };
        r.map(|_| 0)
    })
}

/// poll(2), cooperatively (gevent.select.poll / select): waits until at least one of
/// the `nfds` entries of `fds` is ready for its `events` (POLLIN, POLLOUT, POLLPRI,
/// POLLRDHUP), fills every `revents` as poll(2) does (POLLERR, POLLHUP, POLLNVAL
/// included; entries with a negative fd are ignored) and returns how many entries have
/// revents (> 0). Only the calling greenlet waits: the fds are watched through a
/// temporary epoll set (one epoll_create1 and an epoll_ctl per fd when the call has to
/// wait; none when something is ready at once), so other greenlets may wait on the same
/// fds meanwhile.
///
/// *Ownership*: `fds` is the caller's; only `revents` is written.
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback
/// (`timeout` 0 checks once and never blocks).
/// *Errors*: GH_ETIMEDOUT (nothing became ready; poll(2) would return 0),
/// GH_EINVAL (`fds` NULL with `nfds` > 0, `nfds` above 65,536, NaN timeout),
/// GH_EMFILE/GH_ENFILE (no fd for the epoll set, after a yield), GH_ENOMEM,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, -errno of epoll_ctl(2) (e.g. GH_EBADF for a
/// closed fd when the call has to wait: poll(2) would have said POLLNVAL at once).
///
/// # Safety
/// `fds` readable and writable for `nfds` entries.
#[no_mangle]
pub unsafe extern "C" fn gh_poll(fds: *mut libc::pollfd, nfds: usize, timeout: f64) -> c_int {
    guard(|| {
        if (fds.is_null() && nfds > 0) || nfds > 65536 {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        let hub = hub::current()?;
        if nfds == 0 {
            // Nothing to watch: a plain sleep (poll(2) with no fds), then "timed out".
            hub.sleep(t.map_or(-1.0, |ns| ns as f64 / 1e9))?;
            return Err(Error::TIMEDOUT);
        }
        // SAFETY: valid for nfds entries per the contract.
        let list = unsafe { std::slice::from_raw_parts_mut(fds, nfds) };
        hub.poll_fds(list, t).map(|n| n as c_int)
    })
}
