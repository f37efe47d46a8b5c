//! The data-path interposers: read/write and the socket calls.
//!
//! Every one starts with the same question (`gh::parkable()`: a hub on this thread, the
//! caller is main or a greenlet) and the fd's kind (`fdkind`). Then one engine
//! (`transfer`) does what a blocking libc call would, without blocking the thread:
//! * try the call without waiting: sockets get `MSG_DONTWAIT` (their flags never
//!   change); pipes and other pollable streams are polled with a zero timeout before a
//!   read, or set O_NONBLOCK for the one syscall of a write and restored at once (no
//!   other greenlet runs in between);
//! * on `EAGAIN`: if the program made the fd non-blocking itself (`F_GETFL` shows
//!   O_NONBLOCK, set by fcntl, ioctl(FIONBIO) or SOCK_NONBLOCK), return `EAGAIN` as
//!   libc would; otherwise park on the hub until the fd is ready, within the socket's
//!   SO_RCVTIMEO/SO_SNDTIMEO (expiry: `EAGAIN`, as libc) and try again;
//! * writes (and `MSG_WAITALL` reads) continue after a partial transfer, as a blocking
//!   call does; a kill (`ECANCELED`), a gh_timeout (`ETIMEDOUT`) or SO_SNDTIMEO ending
//!   the wait after a partial transfer returns the count done so far: nothing is lost.

use crate::fdkind::{self, Kind};
use crate::gh::{self, errno, set_errno, Gh, Stop, GH_READ, GH_WRITE};
use crate::real;
use libc::{c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

/// The program's own view: did it make `fd` non-blocking?
fn user_nonblocking(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    fl < 0 || fl & libc::O_NONBLOCK != 0
}

/// The socket option `opt` (SO_RCVTIMEO/SO_SNDTIMEO) in seconds; None = no timeout.
fn sock_timeout(fd: c_int, opt: c_int) -> Option<f64> {
    if opt == 0 {
        return None;
    }
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as socklen_t;
    // SAFETY: tv/len are valid out-pointers of the right size; getsockopt is not
    // interposed.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut tv as *mut libc::timeval as *mut c_void,
            &mut len,
        )
    };
    if r < 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6)
}

/// A count transferred so far, or the error when nothing was.
fn finish(done: usize, e: c_int) -> ssize_t {
    if done > 0 {
        done as ssize_t
    } else {
        set_errno(e);
        -1
    }
}

/// The engine. `op(done, nonblocking)` makes one attempt for the part after `done`
/// bytes (`nonblocking` false only for the plain blocking fallback). `all`: keep going
/// after a partial transfer until this many bytes (writes, MSG_WAITALL). `events`:
/// GH_READ or GH_WRITE; `timeo`: SO_RCVTIMEO/SO_SNDTIMEO, or 0 for none.
pub fn transfer(
    g: &Gh,
    fd: c_int,
    events: c_int,
    timeo: c_int,
    all: Option<usize>,
    op: impl FnMut(usize, bool) -> ssize_t,
) -> ssize_t {
    transfer_from(g, fd, events, timeo, all, 0, false, op)
}

/// `transfer` continuing a call whose fast path already moved `start` bytes;
/// `again`: its last attempt failed with EAGAIN (so the loop waits before retrying).
#[allow(clippy::too_many_arguments)]
pub fn transfer_from(
    g: &Gh,
    fd: c_int,
    events: c_int,
    timeo: c_int,
    all: Option<usize>,
    start: usize,
    mut again: bool,
    mut op: impl FnMut(usize, bool) -> ssize_t,
) -> ssize_t {
    let mut done = start;
    let mut deadline: Option<Option<f64>> = None;
    loop {
        let r = if again {
            again = false;
            set_errno(libc::EAGAIN);
            -1
        } else {
            op(done, true)
        };
        if r >= 0 {
            let r = r as usize;
            match all {
                Some(t) if r > 0 && done + r < t => {
                    done += r;
                    continue;
                }
                _ => return (done + r) as ssize_t,
            }
        }
        let e = errno();
        if e != libc::EAGAIN && e != libc::EWOULDBLOCK {
            return finish(done, e);
        }
        if user_nonblocking(fd) {
            return finish(done, libc::EAGAIN);
        }
        let stop = if crate::signal::in_handler() {
            Err(Stop::Plain)
        } else {
            let d = *deadline.get_or_insert_with(|| gh::deadline_after(sock_timeout(fd, timeo)));
            gh::wait_fd(g, fd, events, d)
        };
        match stop {
            Ok(()) => {}
            Err(Stop::Own) => return finish(done, libc::EAGAIN),
            Err(Stop::Errno(e)) => return finish(done, e),
            Err(Stop::Plain) => {
                let r = op(done, false);
                return if r >= 0 {
                    (done + r as usize) as ssize_t
                } else {
                    finish(done, errno())
                };
            }
        }
    }
}

/// Runs `f` with O_NONBLOCK set on `fd` (whose flags are `fl`), restoring `fl` before
/// returning; errno is `f`'s.
fn with_nonblock(fd: c_int, fl: c_int, f: impl FnOnce() -> ssize_t) -> ssize_t {
    // SAFETY: F_SETFL with an int argument.
    unsafe { real::fcntl()(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as libc::c_ulong) };
    let r = f();
    let e = errno();
    // SAFETY: as above.
    unsafe { real::fcntl()(fd, libc::F_SETFL, fl as libc::c_ulong) };
    set_errno(e);
    r
}

/// True when a zero-timeout poll says `fd` has `ev` (or an error/hangup) pending.
fn ready_now(fd: c_int, ev: libc::c_short) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: ev,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { real::poll()(&mut p, 1, 0) != 0 }
}

/// A read-like call on a pipe or other stream: ready-check, then the real call.
fn stream_in(g: &Gh, fd: c_int, mut call: impl FnMut() -> ssize_t) -> ssize_t {
    transfer(g, fd, GH_READ, 0, None, |_, nb| {
        if nb && !ready_now(fd, libc::POLLIN) {
            set_errno(libc::EAGAIN);
            return -1;
        }
        call()
    })
}

/// A write-like call on a pipe or other stream the program keeps blocking: O_NONBLOCK
/// around each attempt. `call(done)` writes the part after `done` bytes.
fn stream_out(
    g: &Gh,
    fd: c_int,
    total: usize,
    mut call: impl FnMut(usize) -> ssize_t,
) -> Option<ssize_t> {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
    if fl < 0 || fl & libc::O_NONBLOCK != 0 {
        return None;
    }
    Some(transfer(g, fd, GH_WRITE, 0, Some(total), |done, nb| {
        if nb {
            with_nonblock(fd, fl, || call(done))
        } else {
            call(done)
        }
    }))
}

/// The iovecs after the first `skip` bytes of `iov`.
fn advance(iov: &[iovec], mut skip: usize) -> Vec<iovec> {
    let mut out = Vec::with_capacity(iov.len());
    for v in iov {
        if skip >= v.iov_len {
            skip -= v.iov_len;
            continue;
        }
        out.push(iovec {
            // SAFETY: skip < iov_len: still inside this buffer.
            iov_base: unsafe { (v.iov_base as *mut u8).add(skip) } as *mut c_void,
            iov_len: v.iov_len - skip,
        });
        skip = 0;
    }
    out
}

/// Total length of `iovcnt` iovecs (0 for a bad count: libc reports the error).
///
/// # Safety
/// `iov` valid for `iovcnt` entries when `iovcnt` > 0.
unsafe fn iov_slice<'a>(iov: *const iovec, iovcnt: c_int) -> &'a [iovec] {
    if iov.is_null() || iovcnt <= 0 || iovcnt > libc::UIO_MAXIOV {
        return &[];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(iov, iovcnt as usize) }
}

fn iov_total(iov: &[iovec]) -> usize {
    iov.iter().fold(0usize, |a, v| a.saturating_add(v.iov_len))
}

/// recvmsg/sendmsg on the iovecs after `done` bytes of `msg` (no ancillary data after
/// the first part of a send).
///
/// # Safety
/// `msg` valid; its iovecs valid.
unsafe fn msg_op(fd: c_int, msg: *const msghdr, done: usize, flags: c_int, send: bool) -> ssize_t {
    if done == 0 {
        // SAFETY: the caller's msghdr, passed through.
        return unsafe {
            if send {
                real::sendmsg()(fd, msg, flags)
            } else {
                real::recvmsg()(fd, msg as *mut msghdr, flags)
            }
        };
    }
    // SAFETY: msg is valid per this function's contract.
    let mut m = unsafe { *msg };
    // SAFETY: its iovecs are valid.
    let rest = advance(unsafe { iov_slice(m.msg_iov, m.msg_iovlen as c_int) }, done);
    m.msg_iov = rest.as_ptr() as *mut iovec;
    m.msg_iovlen = rest.len() as _;
    if send {
        m.msg_control = std::ptr::null_mut();
        m.msg_controllen = 0;
    }
    // SAFETY: m describes the caller's buffers (advanced); rest outlives the call.
    unsafe {
        if send {
            real::sendmsg()(fd, &m, flags)
        } else {
            real::recvmsg()(fd, &mut m, flags)
        }
    }
}

fn dontwait(nb: bool) -> c_int {
    if nb {
        libc::MSG_DONTWAIT
    } else {
        0
    }
}

/// A socket result of ENOTSOCK: the cached kind was stale (the number now names
/// another file). Look again; true when the caller should redo the call plainly.
fn stale_socket(r: ssize_t) -> bool {
    r < 0 && errno() == libc::ENOTSOCK
}

/// read(2), cooperative on sockets and pipes.
///
/// # Safety
/// As read(2): `buf` writable for `count` bytes.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if gh::on() && fdkind::is_socket(fd) {
        // The fast path, right in any context (no hub, a callback, a signal handler): a
        // read that finds data returns the same whether or not it could have waited.
        // Only EAGAIN needs to know who is calling.
        // SAFETY: the caller's buffer, passed through.
        let r = unsafe { real::recv()(fd, buf, count, libc::MSG_DONTWAIT) };
        if r >= 0 {
            return r;
        }
        // SAFETY: the caller's arguments.
        return unsafe { read_slow(fd, buf, count) };
    }
    // SAFETY: the caller's arguments.
    unsafe { read_other(fd, buf, count) }
}

/// read on anything but a socket: pipes and streams cooperatively, the rest libc's.
///
/// # Safety
/// As read(2).
#[inline(never)]
unsafe fn read_other(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if gh::on() && fdkind::kind(fd) == Kind::Stream {
        if let Some(g) = gh::parkable() {
            // SAFETY: the caller's buffer, passed through.
            return stream_in(g, fd, || unsafe { real::read()(fd, buf, count) });
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::read()(fd, buf, count) }
}

/// A socket read whose no-wait attempt failed.
///
/// # Safety
/// As read(2).
#[cold]
unsafe fn read_slow(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    match errno() {
        libc::EAGAIN => {}
        libc::ENOTSOCK => {
            fdkind::classify(fd); // a stale kind: the number names another file now
                                  // SAFETY: the caller's arguments, passed through.
            return unsafe { real::read()(fd, buf, count) };
        }
        _ => return -1,
    }
    match may_wait() {
        Some(g) => transfer_from(g, fd, GH_READ, libc::SO_RCVTIMEO, None, 0, true, |_, nb| {
            // SAFETY: the caller's buffer, passed through.
            unsafe { real::recv()(fd, buf, count, dontwait(nb)) }
        }),
        // SAFETY: the caller's arguments: libc's own (blocking or EAGAIN) read.
        None => unsafe { real::read()(fd, buf, count) },
    }
}

/// libgreenhub's functions when the caller may park (a hub, main or a greenlet, not in
/// a signal handler).
fn may_wait() -> Option<&'static Gh> {
    gh::parkable().filter(|_| !crate::signal::in_handler())
}

/// write(2), cooperative on sockets and pipes; writes all of `count` unless an error,
/// SO_SNDTIMEO, gh_kill or a gh_timeout ends it (then the count written so far).
///
/// # Safety
/// As write(2): `buf` readable for `count` bytes.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if gh::on() && fdkind::is_socket(fd) {
        // The fast path (see read): all of it sent without waiting.
        // SAFETY: the caller's buffer, passed through.
        let r = unsafe { real::send()(fd, buf, count, libc::MSG_DONTWAIT) };
        if r as usize == count {
            return r;
        }
        // SAFETY: the caller's arguments.
        return unsafe { write_slow(fd, buf, count, r) };
    }
    // SAFETY: the caller's arguments.
    unsafe { write_other(fd, buf, count) }
}

/// write on anything but a socket: pipes and streams cooperatively, the rest libc's.
///
/// # Safety
/// As write(2).
#[inline(never)]
unsafe fn write_other(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if gh::on() && fdkind::kind(fd) == Kind::Stream {
        if let Some(g) = gh::parkable() {
            let r = stream_out(g, fd, count, |done| {
                // SAFETY: done < count: inside the caller's buffer.
                unsafe {
                    real::write()(
                        fd,
                        (buf as *const u8).add(done) as *const c_void,
                        count - done,
                    )
                }
            });
            if let Some(r) = r {
                return r;
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::write()(fd, buf, count) }
}

/// A socket write whose no-wait attempt sent `r` bytes (or failed: -1).
///
/// # Safety
/// As write(2).
#[cold]
unsafe fn write_slow(fd: c_int, buf: *const c_void, count: size_t, r: ssize_t) -> ssize_t {
    if r < 0 {
        match errno() {
            libc::EAGAIN => {}
            libc::ENOTSOCK => {
                fdkind::classify(fd);
                // SAFETY: the caller's arguments, passed through.
                return unsafe { real::write()(fd, buf, count) };
            }
            _ => return -1,
        }
    }
    let done = r.max(0) as usize;
    let part = |done: usize, flags: c_int| {
        // SAFETY: done < count: inside the caller's buffer.
        unsafe {
            real::send()(
                fd,
                (buf as *const u8).add(done) as *const c_void,
                count - done,
                flags,
            )
        }
    };
    match may_wait() {
        Some(g) => transfer_from(
            g,
            fd,
            GH_WRITE,
            libc::SO_SNDTIMEO,
            Some(count),
            done,
            r < 0,
            |d, nb| part(d, dontwait(nb)),
        ),
        None => {
            // libc's own write of the rest (blocking, or EAGAIN for a non-blocking fd).
            // SAFETY: done < count: inside the caller's buffer.
            let rr = unsafe {
                real::write()(
                    fd,
                    (buf as *const u8).add(done) as *const c_void,
                    count - done,
                )
            };
            if rr >= 0 {
                (done + rr as usize) as ssize_t
            } else {
                finish(done, errno())
            }
        }
    }
}

/// readv(2), cooperative on sockets and pipes.
///
/// # Safety
/// As readv(2).
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    if let Some(g) = gh::parkable() {
        match fdkind::kind(fd) {
            Kind::Socket => {
                // SAFETY: an all-zero msghdr is valid (no name, no control data).
                let mut m: msghdr = unsafe { std::mem::zeroed() };
                m.msg_iov = iov as *mut iovec;
                m.msg_iovlen = iovcnt.max(0) as _;
                let r = transfer(g, fd, GH_READ, libc::SO_RCVTIMEO, None, |_, nb| {
                    // SAFETY: the caller's iovecs, passed through.
                    unsafe { real::recvmsg()(fd, &mut m, dontwait(nb)) }
                });
                if !stale_socket(r) {
                    return r;
                }
                fdkind::classify(fd);
            }
            Kind::Stream => {
                // SAFETY: the caller's arguments, passed through.
                return stream_in(g, fd, || unsafe { real::readv()(fd, iov, iovcnt) });
            }
            Kind::Plain => {}
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::readv()(fd, iov, iovcnt) }
}

/// writev(2), cooperative on sockets and pipes; writes all of it (see `write`).
///
/// # Safety
/// As writev(2).
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    if let Some(g) = gh::parkable() {
        // SAFETY: the caller's iovecs.
        let v = unsafe { iov_slice(iov, iovcnt) };
        let total = iov_total(v);
        match fdkind::kind(fd) {
            Kind::Socket if !v.is_empty() => {
                // SAFETY: an all-zero msghdr is valid.
                let mut m: msghdr = unsafe { std::mem::zeroed() };
                m.msg_iov = iov as *mut iovec;
                m.msg_iovlen = iovcnt as _;
                let r = transfer(
                    g,
                    fd,
                    GH_WRITE,
                    libc::SO_SNDTIMEO,
                    Some(total),
                    |done, nb| {
                        // SAFETY: m and the caller's iovecs are valid.
                        unsafe { msg_op(fd, &m, done, dontwait(nb), true) }
                    },
                );
                if !stale_socket(r) {
                    return r;
                }
                fdkind::classify(fd);
            }
            Kind::Stream if !v.is_empty() => {
                let r = stream_out(g, fd, total, |done| {
                    let rest = advance(v, done);
                    // SAFETY: rest points into the caller's buffers.
                    unsafe { real::writev()(fd, rest.as_ptr(), rest.len() as c_int) }
                });
                if let Some(r) = r {
                    return r;
                }
            }
            _ => {}
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::writev()(fd, iov, iovcnt) }
}

/// recv(2), cooperative (MSG_WAITALL waits for all of `len`, as libc).
///
/// # Safety
/// As recv(2).
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed through.
    unsafe {
        recvfrom(
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// recvfrom(2), cooperative on sockets.
///
/// # Safety
/// As recvfrom(2).
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    if flags & (libc::MSG_DONTWAIT | libc::MSG_WAITALL) == 0 && gh::on() && fdkind::is_socket(fd) {
        // The fast path (see read).
        // SAFETY: the caller's arguments, passed through.
        let r =
            unsafe { real::recvfrom()(fd, buf, len, flags | libc::MSG_DONTWAIT, addr, addrlen) };
        if r >= 0 || errno() != libc::EAGAIN {
            return r;
        }
        if let Some(g) = may_wait() {
            return transfer_from(g, fd, GH_READ, libc::SO_RCVTIMEO, None, 0, true, |_, nb| {
                // SAFETY: the caller's arguments, passed through.
                unsafe { real::recvfrom()(fd, buf, len, flags | dontwait(nb), addr, addrlen) }
            });
        }
    } else if flags & libc::MSG_WAITALL != 0 && flags & libc::MSG_DONTWAIT == 0 {
        if let (Some(g), true) = (may_wait(), fdkind::is_socket(fd)) {
            let fl = flags & !libc::MSG_WAITALL;
            return transfer(g, fd, GH_READ, libc::SO_RCVTIMEO, Some(len), |done, nb| {
                // SAFETY: done < len: inside the caller's buffer.
                unsafe {
                    real::recvfrom()(
                        fd,
                        (buf as *mut u8).add(done) as *mut c_void,
                        len - done,
                        fl | dontwait(nb),
                        addr,
                        addrlen,
                    )
                }
            });
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::recvfrom()(fd, buf, len, flags, addr, addrlen) }
}

/// recvmsg(2), cooperative on sockets (MSG_WAITALL: plain libc).
///
/// # Safety
/// As recvmsg(2).
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if flags & (libc::MSG_DONTWAIT | libc::MSG_WAITALL) == 0 && !msg.is_null() {
        if let Some(g) = gh::parkable() {
            if fdkind::kind(fd) == Kind::Socket {
                return transfer(g, fd, GH_READ, libc::SO_RCVTIMEO, None, |_, nb| {
                    // SAFETY: the caller's msghdr, passed through.
                    unsafe { real::recvmsg()(fd, msg, flags | dontwait(nb)) }
                });
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::recvmsg()(fd, msg, flags) }
}

/// send(2), cooperative on sockets.
///
/// # Safety
/// As send(2).
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's arguments, passed through.
    unsafe { sendto(fd, buf, len, flags, std::ptr::null(), 0) }
}

/// sendto(2), cooperative on sockets; sends all of it on a stream socket.
///
/// # Safety
/// As sendto(2).
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 && gh::on() && fdkind::is_socket(fd) {
        // The fast path (see write).
        // SAFETY: the caller's arguments, passed through.
        let r = unsafe { real::sendto()(fd, buf, len, flags | libc::MSG_DONTWAIT, addr, addrlen) };
        if r as usize == len || (r < 0 && errno() != libc::EAGAIN) {
            return r;
        }
        let part = |done: usize, nb: bool| {
            // SAFETY: done < len: inside the caller's buffer.
            unsafe {
                real::sendto()(
                    fd,
                    (buf as *const u8).add(done) as *const c_void,
                    len - done,
                    flags | dontwait(nb),
                    addr,
                    addrlen,
                )
            }
        };
        let done = r.max(0) as usize;
        return match may_wait() {
            Some(g) => transfer_from(
                g,
                fd,
                GH_WRITE,
                libc::SO_SNDTIMEO,
                Some(len),
                done,
                r < 0,
                part,
            ),
            None => {
                let rr = part(done, false);
                if rr >= 0 {
                    (done + rr as usize) as ssize_t
                } else {
                    finish(done, errno())
                }
            }
        };
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::sendto()(fd, buf, len, flags, addr, addrlen) }
}

/// sendmsg(2), cooperative on sockets; sends all of it on a stream socket (ancillary
/// data goes with the first part).
///
/// # Safety
/// As sendmsg(2).
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if flags & libc::MSG_DONTWAIT == 0 && !msg.is_null() {
        if let Some(g) = gh::parkable() {
            if fdkind::kind(fd) == Kind::Socket {
                // SAFETY: the caller's msghdr and iovecs.
                let total =
                    iov_total(unsafe { iov_slice((*msg).msg_iov, (*msg).msg_iovlen as c_int) });
                return transfer(
                    g,
                    fd,
                    GH_WRITE,
                    libc::SO_SNDTIMEO,
                    Some(total),
                    |done, nb| {
                        // SAFETY: the caller's msghdr, advanced past `done` bytes.
                        unsafe { msg_op(fd, msg, done, flags | dontwait(nb), true) }
                    },
                );
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::sendmsg()(fd, msg, flags) }
}

/// accept(2), cooperative.
///
/// # Safety
/// As accept(2).
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's arguments, passed through.
    unsafe { accept4(fd, addr, len, 0) }
}

/// accept4(2), cooperative on a listening socket the program keeps blocking
/// (O_NONBLOCK for the one syscall of each attempt; an accepted socket does not
/// inherit it). Waits within SO_RCVTIMEO.
///
/// # Safety
/// As accept4(2).
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if let Some(g) = gh::parkable() {
        if fdkind::kind(fd) == Kind::Socket {
            // SAFETY: F_GETFL takes no argument.
            let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
            if fl >= 0 && fl & libc::O_NONBLOCK == 0 {
                let r = transfer(g, fd, GH_READ, libc::SO_RCVTIMEO, None, |_, nb| {
                    // SAFETY: the caller's arguments, passed through.
                    let call = || unsafe { real::accept4()(fd, addr, len, flags) as ssize_t };
                    if nb {
                        with_nonblock(fd, fl, call)
                    } else {
                        call()
                    }
                });
                fdkind::set(r as c_int, Kind::Socket);
                return r as c_int;
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    let r = unsafe { real::accept4()(fd, addr, len, flags) };
    fdkind::set(r, Kind::Socket);
    r
}

/// connect(2), cooperative on a socket the program keeps blocking: returns 0 or the
/// real error once the connection is made or refused (never EINPROGRESS), within
/// SO_SNDTIMEO (expiry: EINPROGRESS, as libc).
///
/// # Safety
/// As connect(2).
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if let Some(g) = gh::parkable() {
        if fdkind::kind(fd) == Kind::Socket {
            // SAFETY: F_GETFL takes no argument.
            let fl = unsafe { real::fcntl()(fd, libc::F_GETFL, 0) };
            if fl >= 0 && fl & libc::O_NONBLOCK == 0 && !crate::signal::in_handler() {
                return connect_coop(g, fd, addr, len, fl);
            }
        }
    }
    // SAFETY: the caller's arguments, passed through.
    unsafe { real::connect()(fd, addr, len) }
}

fn connect_coop(g: &Gh, fd: c_int, addr: *const sockaddr, len: socklen_t, fl: c_int) -> c_int {
    let deadline = gh::deadline_after(sock_timeout(fd, libc::SO_SNDTIMEO));
    let mut backoff = 0.001;
    loop {
        // SAFETY: the caller's arguments, passed through.
        let r = with_nonblock(fd, fl, || unsafe { real::connect()(fd, addr, len) }
            as ssize_t);
        if r == 0 {
            return 0;
        }
        let (stop, own) = match errno() {
            libc::EINPROGRESS => match gh::wait_fd(g, fd, GH_WRITE, deadline) {
                Ok(()) => {
                    let mut err: c_int = 0;
                    let mut l = std::mem::size_of::<c_int>() as socklen_t;
                    // SAFETY: err/l are valid out-pointers of the right size.
                    unsafe {
                        libc::getsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            &mut err as *mut c_int as *mut c_void,
                            &mut l,
                        )
                    };
                    if err == 0 {
                        // One more connect moves the socket to "connected" in the
                        // kernel's socket state, as a blocking connect leaves it (else
                        // the program's next connect would answer 0, not EISCONN).
                        // SAFETY: the caller's arguments.
                        with_nonblock(fd, fl, || unsafe { real::connect()(fd, addr, len) }
                            as ssize_t);
                        set_errno(0);
                        return 0;
                    }
                    set_errno(err);
                    return -1;
                }
                // SO_SNDTIMEO expired: libc's blocking connect says EINPROGRESS.
                Err(s) => (s, libc::EINPROGRESS),
            },
            // A Unix socket whose listener's backlog is full: a blocking connect waits
            // for room, which no fd event announces. Retry, backing off to 50 ms.
            libc::EAGAIN => {
                let nap = gh::now() + backoff;
                backoff = (backoff * 2.0).min(0.05);
                let d = deadline.map_or(nap, |x| x.min(nap));
                match gh::sleep_until(g, Some(d)) {
                    Ok(()) => continue,
                    Err(Stop::Own) if deadline.is_none_or(|x| gh::now() < x) => continue,
                    Err(s) => (s, libc::EAGAIN),
                }
            }
            _ => return -1,
        };
        return match stop {
            Stop::Own => {
                set_errno(own);
                -1
            }
            Stop::Errno(e) => {
                set_errno(e);
                -1
            }
            Stop::Plain => {
                // SAFETY: the caller's arguments, passed through.
                unsafe { real::connect()(fd, addr, len) }
            }
        };
    }
}

/// The fortified read (`_FORTIFY_SOURCE`): the size check, then `read`.
///
/// # Safety
/// As read(2); `buflen` is the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    buflen: size_t,
) -> ssize_t {
    if count > buflen {
        // SAFETY: libc's check reports the overflow.
        return unsafe { real::__read_chk()(fd, buf, count, buflen) };
    }
    // SAFETY: count fits the buffer.
    unsafe { read(fd, buf, count) }
}

/// The fortified recv (`_FORTIFY_SOURCE`).
///
/// # Safety
/// As recv(2); `buflen` is the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buflen {
        // SAFETY: libc's check reports the overflow.
        return unsafe { real::__recv_chk()(fd, buf, len, buflen, flags) };
    }
    // SAFETY: len fits the buffer.
    unsafe { recv(fd, buf, len, flags) }
}

/// The fortified recvfrom (`_FORTIFY_SOURCE`).
///
/// # Safety
/// As recvfrom(2); `buflen` is the size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: libc's check reports the overflow.
        return unsafe { real::__recvfrom_chk()(fd, buf, len, buflen, flags, addr, addrlen) };
    }
    // SAFETY: len fits the buffer.
    unsafe { recvfrom(fd, buf, len, flags, addr, addrlen) }
}
