//! More cooperative fd operations (gevent.socket's recvfrom/sendto/recvmsg/sendmsg,
//! os.readv/writev, socket.sendfile): datagrams, vectored and message I/O, sendfile.
//! Same rules as `io`: sockets with MSG_DONTWAIT (their flags untouched), other fds put
//! in O_NONBLOCK mode, one reader and one writer per fd, no SIGPIPE.

use crate::error::{Error, Result};
use crate::event_loop::now_ns;
use crate::hub::Hub;
use crate::io::{left, nosigpipe, set_nonblocking, Side};

/// iovecs handed to one writev/sendmsg: the caller's, from `start`, the first one
/// advanced by `skip` bytes; at most this many per call (plain data on the stack: a
/// greenlet may be discarded while it waits, and nothing here needs freeing).
const IOV_CHUNK: usize = 64;

impl Hub {
    /// gh_recvfrom / gh_recvmsg: one recvmsg(2) once readable.
    ///
    /// # Safety
    /// `msg` valid for recvmsg(2).
    pub unsafe fn recvmsg(
        &self,
        fd: i32,
        msg: *mut libc::msghdr,
        flags: i32,
        timeout: Option<u64>,
    ) -> Result<isize> {
        let flags = flags | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
        // SAFETY: msg is valid per the caller.
        self.retry(fd, Side::Read, timeout, 0, || unsafe {
            libc::recvmsg(fd, msg, flags)
        })
    }

    /// gh_sendto / gh_sendmsg: one sendmsg(2) once writable.
    ///
    /// # Safety
    /// `msg` valid for sendmsg(2).
    pub unsafe fn sendmsg(
        &self,
        fd: i32,
        msg: *const libc::msghdr,
        flags: i32,
        timeout: Option<u64>,
    ) -> Result<isize> {
        let flags = flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: msg is valid per the caller.
        self.retry(fd, Side::Write, timeout, 0, || unsafe {
            libc::sendmsg(fd, msg, flags)
        })
    }

    /// gh_readv: one readv(2) (recvmsg for sockets) once readable.
    ///
    /// # Safety
    /// `iov[..n]` valid, each buffer writable.
    pub unsafe fn readv(
        &self,
        fd: i32,
        iov: *const libc::iovec,
        n: usize,
        timeout: Option<u64>,
    ) -> Result<isize> {
        if self.is_socket(fd) || self.socket_after_all(fd)? {
            // SAFETY: plain data; all-zero is a valid msghdr.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov as *mut libc::iovec;
            msg.msg_iovlen = n as _;
            // SAFETY: msg points at the caller's valid iovecs.
            match unsafe { self.recvmsg(fd, &mut msg, 0, timeout) } {
                Err(e) if e.0 == -libc::ENOTSOCK => self.mark_not_socket(fd)?,
                r => return r,
            }
        }
        // SAFETY: iov is valid per the caller.
        self.retry(fd, Side::Read, timeout, 0, || unsafe {
            libc::readv(fd, iov, n as i32)
        })
    }

    /// gh_writev / gh_writev_all: writes every byte of `iov[..n]` (writev(2), sendmsg
    /// for sockets), waiting while the fd is full; `*done` counts the bytes that went
    /// out, also when it fails.
    ///
    /// # Safety
    /// `iov[..n]` valid, each buffer readable.
    pub unsafe fn writev_all(
        &self,
        fd: i32,
        iov: *const libc::iovec,
        n: usize,
        timeout: Option<u64>,
        done: &mut usize,
    ) -> Result<()> {
        let dl = crate::io::Deadline::new(timeout);
        let mut sock = self.is_socket(fd) || self.socket_after_all(fd)?;
        let (mut start, mut skip) = (0usize, 0usize);
        loop {
            // Skip the iovecs already written (and empty ones).
            // SAFETY: start < n: inside the caller's array.
            while start < n && unsafe { (*iov.add(start)).iov_len } <= skip {
                // SAFETY: as above.
                skip -= unsafe { (*iov.add(start)).iov_len };
                start += 1;
            }
            if start == n {
                return Ok(());
            }
            let mut chunk = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; IOV_CHUNK];
            let k = (n - start).min(IOV_CHUNK);
            for (i, c) in chunk.iter_mut().enumerate().take(k) {
                // SAFETY: start + i < n.
                *c = unsafe { *iov.add(start + i) };
            }
            // SAFETY: skip < chunk[0].iov_len (the loop above), so the base stays inside.
            chunk[0].iov_base = unsafe { (chunk[0].iov_base as *mut u8).add(skip) } as *mut _;
            chunk[0].iov_len -= skip;
            // (Saturating: lengths that add up past SIZE_MAX are the caller's error, which
            // the kernel reports as EINVAL.)
            let want = chunk[..k]
                .iter()
                .fold(0usize, |a, c| a.saturating_add(c.iov_len));
            let cp = chunk.as_ptr();
            let r = self.retry_by(fd, Side::Write, &dl, want, || {
                if sock {
                    // SAFETY: plain data; all-zero is a valid msghdr.
                    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                    msg.msg_iov = cp as *mut libc::iovec;
                    msg.msg_iovlen = k as _;
                    let fl = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                    // SAFETY: msg points at `chunk`, valid iovecs of the caller's buffers.
                    unsafe { libc::sendmsg(fd, &msg, fl) }
                } else {
                    // SAFETY: as above.
                    nosigpipe(|| unsafe { libc::writev(fd, cp, k as i32) })
                }
            });
            match r {
                Ok(w) => {
                    *done += w as usize;
                    skip += w as usize;
                }
                Err(e) if sock && e.0 == -libc::ENOTSOCK => {
                    self.mark_not_socket(fd)?; // (puts it in O_NONBLOCK mode)
                    sock = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// gh_sendfile: sends up to `count` bytes of `in_fd` to `out_fd` (sendfile(2)),
    /// waiting while `out_fd` is full; stops early at the end of `in_fd`. `*done` counts
    /// the bytes sent, also on failure.
    pub fn sendfile(
        &self,
        out_fd: i32,
        in_fd: i32,
        offset: Option<&mut i64>,
        count: usize,
        timeout: Option<u64>,
        done: &mut usize,
    ) -> Result<()> {
        if out_fd < 0 || in_fd < 0 {
            return Err(Error::BADF);
        }
        set_nonblocking(out_fd)?;
        let dl = crate::io::Deadline::new(timeout);
        let off_ptr: *mut i64 = match offset {
            Some(o) => o,
            None => std::ptr::null_mut(),
        };
        while *done < count {
            let want = count - *done;
            let r = self.retry_by(out_fd, Side::Write, &dl, want, || {
                // SAFETY: off_ptr is NULL or the caller's offset, valid for the call.
                nosigpipe(|| unsafe { libc::sendfile(out_fd, in_fd, off_ptr, want) })
            })?;
            if r == 0 {
                break; // end of in_fd
            }
            *done += r as usize;
        }
        Ok(())
    }
}

/// poll(2) of `fds` without waiting; the number of entries with revents.
pub(crate) fn poll_now(fds: &mut [libc::pollfd]) -> Result<usize> {
    loop {
        // SAFETY: fds is a valid array of fds.len() pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        if crate::io::errno() != libc::EINTR {
            return Err(Error(-crate::io::errno()));
        }
    }
}

impl Hub {
    /// gh_poll: waits until one of `fds` is ready (poll(2) semantics for the events and
    /// revents), cooperatively: a temporary epoll set of the fds is what this greenlet
    /// waits on, so the hub's own registrations are untouched.
    pub fn poll_fds(&self, fds: &mut [libc::pollfd], timeout: Option<u64>) -> Result<usize> {
        let n = poll_now(fds)?;
        if n > 0 {
            return Ok(n);
        }
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        // SAFETY: plain syscall.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(self.turn_then(Error(-crate::io::errno())));
        }
        let slot = match self.st.borrow_mut().net.polls.insert(ep) {
            Ok((slot, _)) => slot,
            Err(e) => {
                // SAFETY: closes the epoll fd just created.
                unsafe { libc::close(ep) };
                return Err(e);
            }
        };
        let mut r = Ok(0);
        for (i, p) in fds.iter().enumerate() {
            if p.fd < 0 {
                continue;
            }
            let mut ev = libc::epoll_event {
                events: (p.events as u16 as u32)
                    & (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32,
                u64: i as u64,
            };
            // SAFETY: ev is a valid event for epoll_ctl.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, p.fd, &mut ev) } < 0 {
                match crate::io::errno() {
                    // A regular file (always ready, so poll_now saw it) or a fd listed
                    // twice: nothing more to watch for it.
                    libc::EPERM | libc::EEXIST => {}
                    e => {
                        r = Err(Error(-e));
                        break;
                    }
                }
            }
        }
        if r.is_ok() {
            let deadline = timeout.map(|t| now_ns().saturating_add(t));
            r = loop {
                match self.wait_fd(ep, crate::event_loop::READ, left(deadline)) {
                    Ok(_) => match poll_now(fds) {
                        Ok(0) => continue, // gone again before we looked: wait on
                        other => break other,
                    },
                    Err(e) => break Err(e),
                }
            };
        }
        self.st.borrow_mut().net.polls.remove(slot);
        let _ = self.close_fd(ep);
        r
    }
}
