//! Header section "Cooperative I/O".

use super::{guard, guard_ssize};

// (gh_wait_* first, then the fd operations, as in the header.)
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use crate::io::Via;
use std::ffi::{c_int, c_void};

use super::watcher::{GH_READ, GH_WRITE};

/// Waits until `fd` is ready for `events` (GH_READ, GH_WRITE or both) and returns the
/// ready events (> 0). No wake-up is lost whether or not the fd is ready when the call
/// starts. `timeout` 0 checks once without waiting.
///
/// Close a watched fd only when nothing waits on it. If you close() an fd and reuse its
/// number while a `dup` of the old file lives, and wait on the new fd within the same
/// loop iteration, the old file's readiness may wake that wait spuriously — at most 64
/// times (the read then fails with EAGAIN) before greenhub verifies the registration and
/// drops the stale one. Any wait can in principle wake spuriously: handle EAGAIN.
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_EBADF (`fd` negative or not open), GH_EINVAL (bad `events`,
/// NaN timeout), GH_EPERM (hub callback), GH_ECANCELED (the caller was killed), a gh_throw
/// code, GH_ELOOPEXIT (main greenlet, nothing could make it ready — cannot happen for a
/// real fd wait, which keeps the loop alive); and the backend's registration errors, at
/// once: GH_ERANGE (the "select" backend: `fd` at or past FD_SETSIZE), the -errno a plug-in
/// backend's add returned, GH_EBACKEND (a plug-in backend broke: see gh_backend), OS
/// errors of epoll_ctl (GH_ENOMEM).
#[no_mangle]
pub extern "C" fn gh_wait_fd(fd: c_int, events: c_int, timeout: f64) -> c_int {
    guard(|| {
        if events == 0 || events & !(GH_READ | GH_WRITE) != 0 {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        if fd < 0 {
            return Err(Error::BADF);
        }
        hub::current()?.wait_fd(fd, events as u8, t)
    })
}

/// gh_wait_fd(fd, GH_READ, timeout), returning GH_OK when readable.
///
/// *Threads*, *Blocking*, *Errors*: as gh_wait_fd.
#[no_mangle]
pub extern "C" fn gh_wait_read(fd: c_int, timeout: f64) -> c_int {
    let r = gh_wait_fd(fd, GH_READ, timeout);
    if r > 0 {
        0
    } else {
        r
    }
}

/// gh_wait_fd(fd, GH_WRITE, timeout), returning GH_OK when writable.
///
/// *Threads*, *Blocking*, *Errors*: as gh_wait_fd.
#[no_mangle]
pub extern "C" fn gh_wait_write(fd: c_int, timeout: f64) -> c_int {
    let r = gh_wait_fd(fd, GH_WRITE, timeout);
    if r > 0 {
        0
    } else {
        r
    }
}

/// The shared shape of gh_read/gh_write/gh_recv/gh_send: a NULL buffer with `len` > 0
/// and a NaN timeout are GH_EINVAL, `len` 0 transfers nothing, then `op` does the I/O.
fn transfer(
    buf_null: bool,
    len: usize,
    timeout: f64,
    op: impl FnOnce(&hub::Hub, Option<u64>) -> crate::error::Result<isize>,
) -> libc::ssize_t {
    guard_ssize(|| {
        if buf_null && len > 0 {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        if len == 0 {
            return Ok(0);
        }
        op(hub::current()?, t)
    })
}

/// Reads up to `len` bytes from `fd` into `buf`, waiting cooperatively while nothing is
/// there. Returns the bytes read (> 0), 0 at end of file / orderly shutdown, or a code.
/// Sockets are read with recv(MSG_DONTWAIT) (their flags untouched); other fds are set
/// O_NONBLOCK on first use. Regular files just read.
///
/// One reader per fd: while a greenlet waits in gh_read/gh_recv/gh_accept on `fd`,
/// another greenlet's read-side call on it that would have to wait returns GH_EBUSY
/// (gevent's rule: two readers of one stream would interleave data unpredictably); data
/// already there is simply read. gh_wait_read is not affected.
///
/// *Ownership*: `buf` is the caller's; written up to the returned length.
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_EBUSY (another greenlet is reading `fd`), GH_EBADF,
/// GH_EINVAL (`buf` NULL with `len` > 0, NaN timeout), GH_ECLOSED (gh_close'd meanwhile),
/// GH_ECANCELED, a gh_throw code, GH_EPERM (hub callback), -errno of read(2)/recv(2)
/// (e.g. GH_ECONNRESET), and when it must wait, gh_wait_fd's backend registration errors
/// (GH_ERANGE, GH_EBACKEND, ...).
///
/// # Safety
/// `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_read(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    // SAFETY: the pointers are valid per this function's contract.
    transfer(buf.is_null(), len, timeout, |hub, t| unsafe {
        hub.read(fd, buf, len, t)
    })
}

/// Writes all `len` bytes of `buf` to `fd`, waiting cooperatively whenever the fd is
/// full; returns `len`, or a code (then an unknown prefix may have been written:
/// gh_write_all is the same call that also says how much, so it can be resumed).
/// A closed peer gives GH_EPIPE; SIGPIPE is never raised (sockets use MSG_NOSIGNAL,
/// pipe writes block the signal for the call and consume it).
///
/// One writer per fd at a time (GH_EBUSY for a second waiting writer).
///
/// *Ownership*: `buf` is only read. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_EBUSY, GH_EBADF, GH_EPIPE, GH_EINVAL (`buf` NULL with
/// `len` > 0, NaN timeout), GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM,
/// -errno of write(2)/send(2), and when it must wait, gh_wait_fd's backend registration
/// errors (GH_ERANGE, GH_EBACKEND, ...).
///
/// # Safety
/// `buf` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_write(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    // SAFETY: the pointers are valid per this function's contract.
    transfer(buf.is_null(), len, timeout, |hub, t| unsafe {
        hub.write(fd, buf, len, t)
    })
}

/// The shared shape of gh_write_all/gh_send_all/gh_writev_all: `*done` is set to 0
/// first (`done` NULL is GH_EINVAL: the count is what these calls are for), then `bad`
/// arguments and a NaN timeout are GH_EINVAL, `empty` transfers nothing, and `op` counts
/// into it; the count is stored whatever the outcome.
pub(super) fn counted(
    bad: bool,
    empty: bool,
    timeout: f64,
    done: *mut usize,
    op: impl FnOnce(&hub::Hub, Option<u64>, &mut usize) -> crate::error::Result<()>,
) -> c_int {
    guard(|| {
        super::need(done)?;
        // SAFETY: checked non-null; writable per the caller's contract.
        unsafe { super::put(done, 0) };
        if bad {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        if empty {
            return Ok(0);
        }
        let mut n = 0usize;
        let r = op(hub::current()?, t, &mut n);
        // SAFETY: as above.
        unsafe { super::put(done, n) };
        r.map(|_| 0)
    })
}

/// gh_write that says how far it got: writes all `len` bytes of `buf` to `fd`, waiting
/// cooperatively while it is full, and stores in `*written` how many bytes went out —
/// in every outcome: `len` on success, the part written before a timeout, GH_ECANCELED
/// (killed), GH_EPIPE or any other error (0 when nothing went out, e.g. GH_EBADF), so
/// the write can be resumed from `buf + *written`. Returns GH_OK (`*written` == `len`)
/// or a code. Sockets get MSG_NOSIGNAL; SIGPIPE is never raised. One writer per fd, as
/// gh_write.
///
/// *Ownership*: `buf` is only read. *Threads*: the calling thread's hub.
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`written` NULL, `buf` NULL with `len` > 0, NaN timeout),
/// GH_EBADF, GH_EBUSY (another greenlet waits to write `fd`), GH_ETIMEDOUT, GH_EPIPE,
/// GH_ECONNRESET, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM, -errno of
/// write(2)/send(2), and when it must wait, gh_wait_fd's backend registration errors
/// (GH_ERANGE, GH_EBACKEND, ...).
///
/// # Safety
/// `buf` readable for `len` bytes; `written` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_write_all(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    timeout: f64,
    written: *mut usize,
) -> c_int {
    // SAFETY: the pointers are valid per this function's contract.
    counted(
        buf.is_null() && len > 0,
        len == 0,
        timeout,
        written,
        |hub, t, n| unsafe { hub.write_counted(fd, buf, len, Via::Write, t, n) },
    )
}

/// recv(2) with `flags`, waiting cooperatively (MSG_DONTWAIT is added). Returns the bytes
/// received, 0 on orderly shutdown, or a code. One reader per fd, as gh_read.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_read.
/// *Errors*: as gh_read, plus GH_ENOTSOCK.
///
/// # Safety
/// `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_recv(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    timeout: f64,
) -> libc::ssize_t {
    // SAFETY: the pointers are valid per this function's contract.
    transfer(buf.is_null(), len, timeout, |hub, t| unsafe {
        hub.recv(fd, buf, len, flags, t)
    })
}

/// send(2) of all `len` bytes with `flags` (MSG_DONTWAIT | MSG_NOSIGNAL added), waiting
/// cooperatively; returns `len` or a code (then an unknown prefix may have been sent:
/// gh_send_all also says how much). One writer per fd, as gh_write.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_write.
/// *Errors*: as gh_write, plus GH_ENOTSOCK.
///
/// # Safety
/// `buf` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_send(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    timeout: f64,
) -> libc::ssize_t {
    // SAFETY: the pointers are valid per this function's contract.
    transfer(buf.is_null(), len, timeout, |hub, t| unsafe {
        hub.send_all(fd, buf, len, flags, t)
    })
}

/// gh_send that says how far it got: send(2) of all `len` bytes with `flags`
/// (MSG_DONTWAIT | MSG_NOSIGNAL added), waiting cooperatively, storing in `*sent` how
/// many bytes went out in every outcome, as gh_write_all does. Returns GH_OK (`*sent`
/// == `len`) or a code. One writer per fd.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_write_all.
/// *Errors*: as gh_write_all (GH_EINVAL for `sent` NULL), plus GH_ENOTSOCK.
///
/// # Safety
/// `buf` readable for `len` bytes; `sent` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_send_all(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    timeout: f64,
    sent: *mut usize,
) -> c_int {
    // SAFETY: the pointers are valid per this function's contract.
    counted(
        buf.is_null() && len > 0,
        len == 0,
        timeout,
        sent,
        |hub, t, n| unsafe { hub.write_counted(fd, buf, len, Via::Send(flags), t, n) },
    )
}

/// Accepts a connection on listening socket `fd`, waiting cooperatively. Returns the new
/// fd (non-blocking and close-on-exec; the caller owns it) or a code. `addr`/`addrlen`
/// as accept(2) (both NULL, or both valid).
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_EBUSY (another greenlet accepts on `fd`), GH_EBADF,
/// GH_EINVAL (`fd` not listening, exactly one of addr/addrlen NULL, NaN timeout),
/// GH_ENOTSOCK, GH_EMFILE/GH_ENFILE/GH_ENOBUFS/GH_ENOMEM (out of fds or kernel memory:
/// the error surfaces after the call has given the hub a turn — a yield — so a loop that
/// just retries lets the other greenlets, timers and signal watchers run and serves again
/// as fds free up; back off anyway, or use gh_server_new, which does), GH_ECLOSED,
/// GH_ECANCELED, a gh_throw code, GH_EPERM, and when it must wait, gh_wait_fd's backend
/// registration errors (GH_ERANGE, GH_EBACKEND, ...).
///
/// # Safety
/// `addr` writable for `*addrlen` bytes, `addrlen` readable and writable (or both NULL).
#[no_mangle]
pub unsafe extern "C" fn gh_accept(
    fd: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
    timeout: f64,
) -> c_int {
    guard(|| {
        if addr.is_null() != addrlen.is_null() {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        // SAFETY: the pointers are valid per this function's contract.
        unsafe { hub::current()?.accept(fd, addr, addrlen, t) }
    })
}

/// Connects socket `fd` to `addr`: a non-blocking connect, then a cooperative wait for
/// writability and SO_ERROR. Leaves `fd` in O_NONBLOCK mode. An AF_UNIX listener whose
/// backlog is full (connect(2) says EAGAIN: nothing started) is waited for as a
/// blocking connect would: tried again after short sleeps (1 ms doubling to 20 ms) until
/// it is accepted into the backlog or the timeout expires; GH_OK always means connected.
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT (the connect may still complete later: close the fd),
/// GH_ECONNREFUSED, GH_ENETUNREACH, GH_EHOSTUNREACH, GH_EINVAL (`addr` NULL, NaN
/// timeout), GH_EBADF, GH_ENOTSOCK, GH_EBUSY (another greenlet writes `fd`),
/// GH_EISCONN, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM, GH_EAGAIN (not
/// AF_UNIX: no free local port), -errno of connect(2), and when it must wait,
/// gh_wait_fd's backend registration errors (GH_ERANGE, ...).
///
/// # Safety
/// `addr` readable for `addrlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_connect(
    fd: c_int,
    addr: *const libc::sockaddr,
    addrlen: libc::socklen_t,
    timeout: f64,
) -> c_int {
    guard(|| {
        super::need(addr)?;
        let t = duration_ns(timeout)?;
        // SAFETY: the pointers are valid per this function's contract.
        unsafe { hub::current()?.connect(fd, addr, addrlen, t).map(|_| 0) }
    })
}

/// Closes `fd` the cooperative way: greenlets waiting on it (gh_read, gh_wait_read, …)
/// wake with GH_ECLOSED, io watchers on it are stopped, it is removed from the event
/// loop, then close(2) runs. Its number may be reused at once: old waiters never see the
/// new file's events. The hub's own fds (gh_hub_backend_fd(), its wake-up eventfd, a
/// pidfd gh_waitpid waits on) are refused with GH_EBUSY and stay open.
///
/// *Ownership*: the fd is closed even when waiters existed.
/// *Threads*: the calling thread's hub. Only that hub's waiters and watchers are woken
/// and removed: a greenlet of another thread's hub waiting on the same fd is not woken by
/// it (as with close(2) under epoll, the registration lives on while another reference
/// to the file does, so such a wait can miss its end); close an fd shared between
/// threads only after its users in other threads are done with it (or wake them with
/// gh_hub_call_threadsafe first).
/// *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADF (negative or not open), GH_EBUSY (one of the hub's own fds),
/// -errno of close(2) (e.g. GH_EIO).
#[no_mangle]
pub extern "C" fn gh_close(fd: c_int) -> c_int {
    guard(|| hub::current()?.close_fd(fd).map(|_| 0))
}

/// Waits cooperatively for child process `pid` to exit and reaps it; `*status` gets the
/// waitpid(2) status (may be NULL). Returns `pid`, or a code. Uses a pidfd (Linux >= 5.3),
/// else polls. `timeout` 0 checks once.
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_ETIMEDOUT, GH_ECHILD (not a child of this process, or already reaped),
/// GH_EINVAL (`pid` <= 0, NaN timeout), GH_ECANCELED, a gh_throw code, GH_EPERM.
///
/// # Safety
/// `status` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_waitpid(pid: c_int, status: *mut c_int, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let mut st = 0;
        let r = hub::current()?.waitpid(pid, &mut st, t)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { super::put(status, st) };
        Ok(r)
    })
}
