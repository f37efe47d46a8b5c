//! Cooperative fd operations (gevent.socket): try the syscall; on `EAGAIN` wait for
//! readiness through `Hub::wait_fd` and try again, within one deadline.
//!
//! * Sockets are used with `MSG_DONTWAIT` (and `MSG_NOSIGNAL` for sends), so their
//!   flags are never changed and SIGPIPE never fires; other fds (pipes, ttys) are put
//!   in O_NONBLOCK mode on first use. Regular files are always ready: the call just
//!   does the I/O.
//! * One reader and one writer per fd at a time (gevent, eventlet, libdill and State
//!   Threads all refuse a second waiter): a second greenlet that would wait to read
//!   (or write) an fd another greenlet is waiting on gets `EBUSY`.
//! * `close` wakes the greenlets waiting on the fd with `ECLOSED` and removes the fd
//!   from the backend before closing it, so its number can be reused at once.

use crate::error::{Error, Result, ECLOSED};
use crate::event_loop::watcher::Action;
use crate::event_loop::{now_ns, READ, WRITE};
use crate::greenlet::Msg;
use crate::hub::Hub;
use std::ffi::c_void;

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// How `Hub::write_counted` puts bytes on an fd.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Via {
    /// write(2), or send(2) without flags when the fd is a socket (gh_write).
    Write,
    /// send(2) with these flags: sockets only, ENOTSOCK otherwise (gh_send).
    Send(i32),
}

/// Which side of an fd an operation uses (one waiter per side).
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Side {
    Read,
    Write,
}

pub(crate) fn left(deadline: Option<u64>) -> Option<u64> {
    deadline.map(|d| d.saturating_sub(now_ns()))
}

/// A call's timeout, turned into a deadline when the call first has to wait: most I/O
/// calls never wait (the data is there, the socket has room), and then read no clock.
/// One `Deadline` is shared by every wait of one call (a write of many chunks, a
/// buffered read of several fills), so the timeout bounds the call's waiting as a
/// whole. (The clock starts at the first wait, not at the call: the syscalls before it
/// take microseconds.) An HTTP request on examples-c/http_server.c read the clock 8
/// times; now twice.
pub(crate) struct Deadline {
    timeout: Option<u64>,
    /// The absolute deadline once started (0: not yet).
    at: std::cell::Cell<u64>,
}

impl Deadline {
    pub(crate) fn new(timeout: Option<u64>) -> Deadline {
        Deadline {
            timeout,
            at: std::cell::Cell::new(0),
        }
    }

    /// The time left for a wait that starts now (None: no timeout; `Some(0)`: do not
    /// wait); the first call fixes the deadline.
    pub(crate) fn left(&self) -> Option<u64> {
        let t = self.timeout?;
        if t == 0 {
            return Some(0);
        }
        let at = self.at.get();
        if at == 0 {
            self.at.set(now_ns().saturating_add(t).max(1));
            return Some(t);
        }
        Some(at.saturating_sub(now_ns()))
    }

    /// The absolute deadline (started now if it was not), for waits that take one.
    pub(crate) fn absolute(&self) -> Option<u64> {
        self.left()?;
        Some(self.at.get()) // 0 for a timeout of 0: already passed
    }

    /// The call asked not to wait at all (timeout 0).
    pub(crate) fn is_zero(&self) -> bool {
        self.timeout == Some(0)
    }
}

impl Hub {
    /// Waits for `side` readiness of `fd` as the fd's one reader/writer.
    fn io_wait(&self, fd: i32, side: Side, dl: &Deadline) -> Result<()> {
        let t = dl.left();
        if t == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        let events = if side == Side::Read { READ } else { WRITE };
        self.wait_fd_as(fd, events, t, true).map(|_| ())
    }

    /// Runs `op` until it does not fail with EAGAIN, waiting for `side` in between.
    /// `len` is what `op` asks to transfer (0: no hint — unknown, or flags such as
    /// MSG_PEEK / MSG_OOB whose readiness is not plain POLLIN/POLLOUT): a short transfer,
    /// like EAGAIN, sets the fd's readiness hint, and a call that finds the hint set
    /// waits for readiness first (one syscall fewer per call on a drained socket).
    pub(crate) fn retry(
        &self,
        fd: i32,
        side: Side,
        timeout: Option<u64>,
        len: usize,
        op: impl FnMut() -> isize,
    ) -> Result<isize> {
        self.retry_by(fd, side, &Deadline::new(timeout), len, op)
    }

    /// `retry` with the waits bounded by `dl` (shared by the waits of a whole call).
    pub(crate) fn retry_by(
        &self,
        fd: i32,
        side: Side,
        dl: &Deadline,
        len: usize,
        mut op: impl FnMut() -> isize,
    ) -> Result<isize> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        if len != 0 && !dl.is_zero() && self.hint(fd, side) {
            self.io_wait(fd, side, dl)?;
        }
        loop {
            let n = op();
            if n >= 0 {
                if len != 0 {
                    self.set_hint(fd, side, n > 0 && (n as usize) < len);
                }
                return Ok(n);
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN | libc::EINPROGRESS => {
                    if len != 0 {
                        self.set_hint(fd, side, true);
                    }
                    self.io_wait(fd, side, dl)?
                }
                e => return Err(self.turn_then(Error(-e))),
            }
        }
    }

    /// A failure that a retry loop would hit again at once without waiting — out of fds
    /// (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM) — first gives the hub a turn
    /// (a yield: other greenlets, timers, signal watchers and IO run), so a naive loop
    /// that retries degrades like libev's instead of starving the hub (FAULTS 42, issue
    /// 14). An error of the yield itself (killed, thrown, a gh_timeout) wins; from a hub
    /// callback, which cannot yield, the failure is returned as it is.
    pub(crate) fn turn_then(&self, e: Error) -> Error {
        if matches!(
            -e.0,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        ) {
            match self.sleep(0.0) {
                Err(y) if y != Error::PERM => return y,
                _ => {}
            }
        }
        e
    }

    /// The readiness hint of `fd`'s `side`: true when the last call found it drained.
    #[inline]
    fn hint(&self, fd: i32, side: Side) -> bool {
        // An always-ready fd (regular file) has nothing to wait for: never wait first.
        self.st.borrow().fds.get(fd).is_some_and(|e| {
            !e.always_ready
                && match side {
                    Side::Read => e.read_drained,
                    Side::Write => e.write_full,
                }
        })
    }

    #[inline]
    fn set_hint(&self, fd: i32, side: Side, drained: bool) {
        let mut st = self.st.borrow_mut();
        let Some(e) = st.fds.entry_mut(fd) else {
            return;
        };
        match side {
            Side::Read => e.read_drained = drained,
            Side::Write => e.write_full = drained,
        }
    }

    /// Whether `fd` is a socket (cached per fd; a wrong guess costs one ENOTSOCK).
    pub(crate) fn is_socket(&self, fd: i32) -> bool {
        self.st.borrow().fds.get(fd).is_none_or(|e| !e.not_socket)
    }

    /// For an fd cached as "not a socket": puts it in O_NONBLOCK mode and returns false,
    /// unless the number now holds a socket (the pipe was `close`d behind greenhub's back
    /// and the number reused: issue 15.8), whose flags are never changed — then the cache
    /// is cleared and the answer is true. The check (one `fstat`) is made only when the
    /// fd is not in O_NONBLOCK mode already, i.e. only when its flags would change.
    pub(crate) fn socket_after_all(&self, fd: i32) -> Result<bool> {
        // SAFETY: fcntl on a caller-provided fd; errors are checked.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl < 0 {
            return Err(Error(-errno()));
        }
        if fl & libc::O_NONBLOCK != 0 {
            return Ok(false);
        }
        // SAFETY: fstat fills a local, zeroed struct stat.
        let mut sb: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut sb) } == 0 && sb.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            if let Some(e) = self.st.borrow_mut().fds.entry_mut(fd) {
                e.not_socket = false;
            }
            return Ok(true);
        }
        set_nonblocking(fd).map(|_| false)
    }

    pub(crate) fn mark_not_socket(&self, fd: i32) -> Result<()> {
        if let Some(e) = self.st.borrow_mut().fds.entry_mut(fd) {
            e.not_socket = true;
        }
        set_nonblocking(fd)
    }

    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn read(
        &self,
        fd: i32,
        buf: *mut c_void,
        len: usize,
        timeout: Option<u64>,
    ) -> Result<isize> {
        // SAFETY: same contract as this function's.
        unsafe { self.read_by(fd, buf, len, &Deadline::new(timeout)) }
    }

    /// `read` with its waits bounded by `dl`.
    ///
    /// # Safety
    /// As `read`.
    pub(crate) unsafe fn read_by(
        &self,
        fd: i32,
        buf: *mut c_void,
        len: usize,
        dl: &Deadline,
    ) -> Result<isize> {
        if self.is_socket(fd) || self.socket_after_all(fd)? {
            // SAFETY: same contract as this function's.
            match unsafe { self.recv_by(fd, buf, len, 0, dl) } {
                Err(e) if e.0 == -libc::ENOTSOCK => self.mark_not_socket(fd)?,
                r => return r,
            }
        }
        // SAFETY: the caller guarantees buf is writable for len bytes.
        self.retry_by(fd, Side::Read, dl, len, || unsafe {
            libc::read(fd, buf, len)
        })
    }

    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn recv(
        &self,
        fd: i32,
        buf: *mut c_void,
        len: usize,
        flags: i32,
        timeout: Option<u64>,
    ) -> Result<isize> {
        // SAFETY: same contract as this function's.
        unsafe { self.recv_by(fd, buf, len, flags, &Deadline::new(timeout)) }
    }

    /// # Safety
    /// As `recv`.
    unsafe fn recv_by(
        &self,
        fd: i32,
        buf: *mut c_void,
        len: usize,
        flags: i32,
        dl: &Deadline,
    ) -> Result<isize> {
        let hint_len = if flags == 0 { len } else { 0 };
        let flags = flags | libc::MSG_DONTWAIT;
        // SAFETY: the caller guarantees buf is writable for len bytes.
        self.retry_by(fd, Side::Read, dl, hint_len, || unsafe {
            libc::recv(fd, buf, len, flags)
        })
    }

    /// gh_write: writes all of `buf` (or fails); returns `len`.
    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn write(
        &self,
        fd: i32,
        buf: *const c_void,
        len: usize,
        timeout: Option<u64>,
    ) -> Result<isize> {
        let mut done = 0;
        // SAFETY: same contract as this function's.
        unsafe { self.write_counted(fd, buf, len, Via::Write, timeout, &mut done) }
            .map(|_| done as isize)
    }

    /// gh_send: sends all of `buf` with `flags` (plus MSG_NOSIGNAL | MSG_DONTWAIT).
    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn send_all(
        &self,
        fd: i32,
        buf: *const c_void,
        len: usize,
        flags: i32,
        timeout: Option<u64>,
    ) -> Result<isize> {
        let mut done = 0;
        // SAFETY: same contract as this function's.
        unsafe { self.write_counted(fd, buf, len, Via::Send(flags), timeout, &mut done) }
            .map(|_| done as isize)
    }

    /// Writes all of `buf` to `fd` within one deadline, waiting whenever it is full;
    /// `*done` counts the bytes that went out, also when it fails (timeout, kill, peer
    /// gone), so the caller can resume (gh_write_all, gh_send_all; gh_write and gh_send
    /// drop the count).
    ///
    /// # Safety
    /// `buf` readable for `len` bytes.
    pub unsafe fn write_counted(
        &self,
        fd: i32,
        buf: *const c_void,
        len: usize,
        via: Via,
        timeout: Option<u64>,
        done: &mut usize,
    ) -> Result<()> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        let dl = Deadline::new(timeout);
        let (mut sock, flags) = match via {
            Via::Write => (self.is_socket(fd) || self.socket_after_all(fd)?, 0),
            Via::Send(flags) => (true, flags),
        };
        // MSG_PEEK/MSG_OOB-like flags have no plain POLLOUT readiness: no hint then.
        let hinted = flags == 0;
        let flags = flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        while *done < len {
            // SAFETY: *done < len: inside the caller's buffer.
            let p = unsafe { (buf as *const u8).add(*done) } as *const c_void;
            let n = len - *done;
            let r = self.retry_by(fd, Side::Write, &dl, if hinted { n } else { 0 }, || {
                if sock {
                    // SAFETY: p is readable for n bytes.
                    unsafe { libc::send(fd, p, n, flags) }
                } else {
                    // SAFETY: as above.
                    unsafe { write_nosigpipe(fd, p, n) }
                }
            });
            match r {
                Ok(k) => *done += k as usize,
                // gh_write on an fd that was not known yet: not a socket after all.
                Err(e) if sock && via == Via::Write && e.0 == -libc::ENOTSOCK => {
                    self.mark_not_socket(fd)?; // (puts it in O_NONBLOCK mode)
                    sock = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn accept(
        &self,
        fd: i32,
        addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t,
        timeout: Option<u64>,
    ) -> Result<i32> {
        // The listener itself must not block the thread (SOCK_NONBLOCK is for the new fd).
        set_nonblocking(fd)?;
        // SAFETY: as this function's contract.
        unsafe { self.accept_nonblocking(fd, addr, addrlen, timeout) }
    }

    /// `accept` on a listener known to be in O_NONBLOCK mode (a gh_server's, which it made
    /// so and owns): no `fcntl` per accepted connection.
    ///
    /// # Safety
    /// As `accept`.
    pub(crate) unsafe fn accept_nonblocking(
        &self,
        fd: i32,
        addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t,
        timeout: Option<u64>,
    ) -> Result<i32> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: addr/addrlen are NULL or valid per the caller (checked by the FFI layer).
        self.retry(fd, Side::Read, timeout, 0, || unsafe {
            libc::accept4(fd, addr, addrlen, flags) as isize
        })
        .map(|n| n as i32)
    }

    ///
    /// # Safety
    /// The buffer / address pointers must be valid as the matching libc call requires.
    pub unsafe fn connect(
        &self,
        fd: i32,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
        timeout: Option<u64>,
    ) -> Result<()> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        set_nonblocking(fd)?;
        let dl = Deadline::new(timeout);
        // SAFETY: addr is valid for len bytes per the caller.
        if unsafe { libc::connect(fd, addr, len) } == 0 {
            return Ok(());
        }
        match errno() {
            libc::EINPROGRESS | libc::EINTR => {}
            libc::EAGAIN => {
                // SAFETY: addr is valid for len bytes per the caller, as above.
                return unsafe { self.connect_backlog_full(fd, addr, len, dl.absolute()) };
            }
            e => return Err(Error(-e)),
        }
        self.io_wait(fd, Side::Write, &dl)?;
        let err = sockopt_int(fd, libc::SO_ERROR)?;
        if err != 0 {
            return Err(Error(-err));
        }
        Ok(())
    }

    /// `connect` said EAGAIN. On AF_UNIX that is a listener whose backlog is full, and
    /// nothing was started: the socket never becomes connected by itself and is writable
    /// all along (so waiting for writability would report an unconnected socket as
    /// connected). A blocking connect waits for room in the backlog; so do we, trying
    /// again after sleeps of 1 ms doubling to 20 ms, until `deadline` (issue 15.1).
    /// On other families EAGAIN means no local port or route entry: returned as is.
    ///
    /// # Safety
    /// `addr` valid for `len` bytes.
    #[cold]
    unsafe fn connect_backlog_full(
        &self,
        fd: i32,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
        deadline: Option<u64>,
    ) -> Result<()> {
        if sockopt_int(fd, libc::SO_DOMAIN) != Ok(libc::AF_UNIX) {
            return Err(Error(-libc::EAGAIN));
        }
        self.backoff(deadline, 20_000_000, || {
            // SAFETY: addr is valid for len bytes per the caller.
            if unsafe { libc::connect(fd, addr, len) } == 0 {
                return Ok(Some(()));
            }
            match errno() {
                libc::EAGAIN | libc::EINTR => Ok(None),
                e => Err(Error(-e)),
            }
        })
    }

    /// Sleeps 1 ms, doubling up to `max_pause` ns, between calls of `attempt` until it
    /// gives a value, fails, or `deadline` passes (`ETIMEDOUT`).
    fn backoff<T>(
        &self,
        deadline: Option<u64>,
        max_pause: u64,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let mut pause = 1_000_000u64;
        loop {
            let t = left(deadline).map_or(pause, |l| l.min(pause));
            if t == 0 {
                return Err(Error::TIMEDOUT);
            }
            self.sleep(t as f64 / 1e9)?;
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            pause = (pause * 2).min(max_pause);
        }
    }

    /// gh_close: wakes the fd's waiters with `ECLOSED`, stops its watchers, removes it
    /// from the backend, then closes it.
    pub fn close_fd(&self, fd: i32) -> Result<()> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            // The hub's own fds (backend, wake-up eventfd, a pidfd being waited on) are
            // not the caller's to close (issue 15.11).
            if fd == st.backend.fd() || fd == st.wake_fd || st.wait_fds.contains(&fd) {
                return Err(Error::BUSY);
            }
            for side in 0..2 {
                if let Some(w) = st.take_parked(fd, side) {
                    st.wake_later(w, Msg::code(ECLOSED));
                }
            }
            let watchers: Vec<u32> = st
                .fds
                .get(fd)
                .map(|e| e.watchers.iter().map(|w| w.0).collect())
                .unwrap_or_default();
            for slot in watchers {
                if let Some(Action::Resume {
                    slot: g, gen, seq, ..
                }) = st.watchers.at(slot).map(|w| w.action())
                {
                    st.wake_later(
                        crate::hub::wait::WaitId { slot: g, gen, seq },
                        Msg::code(ECLOSED),
                    );
                }
                st.stop_watcher(slot);
            }
            st.fds.forget(&mut *st.backend, fd);
            if let Some(e) = st.fds.entry_mut(fd) {
                e.not_socket = false;
                e.read_drained = false;
                e.write_full = false;
            }
        }
        // SAFETY: closing an fd the caller owns and asked us to close.
        if unsafe { libc::close(fd) } < 0 {
            let e = errno();
            if e != libc::EINTR {
                return Err(Error(-e));
            }
        }
        Ok(())
    }

    /// gh_waitpid: waits for child `pid` to exit, through a pidfd where the kernel has
    /// them (Linux >= 5.3), else by polling every few milliseconds.
    pub fn waitpid(&self, pid: i32, status: &mut i32, timeout: Option<u64>) -> Result<i32> {
        if pid <= 0 {
            return Err(Error::INVAL);
        }
        let reap = |status: &mut i32| -> Result<i32> {
            // SAFETY: status is a valid out-parameter.
            let r = unsafe { libc::waitpid(pid, status, libc::WNOHANG) };
            if r < 0 {
                Err(Error(-errno()))
            } else {
                Ok(r)
            }
        };
        let r = reap(status)?;
        if r == pid {
            return Ok(pid);
        }
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        let deadline = timeout.map(|t| now_ns().saturating_add(t));
        // SAFETY: plain syscall; result checked.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        let result = if pidfd >= 0 {
            // Owned by the hub while we wait (closed at teardown if this greenlet is
            // discarded), not by this stack frame.
            self.st.borrow_mut().wait_fds.push(pidfd);
            let r = self
                .wait_fd(pidfd, READ, left(deadline))
                .and_then(|_| reap(status));
            self.st.borrow_mut().wait_fds.retain(|&fd| fd != pidfd);
            // SAFETY: closes the pidfd we opened.
            unsafe { libc::close(pidfd) };
            r
        } else {
            self.backoff(deadline, 50_000_000, || {
                Ok(reap(&mut *status)?.eq(&pid).then_some(pid))
            })
        };
        match result {
            Ok(r) if r == pid => Ok(pid),
            Ok(_) => Err(Error::TIMEDOUT),
            Err(e) => Err(e),
        }
    }
}

/// An int-valued SOL_SOCKET option of `fd`.
pub(crate) fn sockopt_int(fd: i32, opt: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v/l are valid out-parameters of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut v as *mut _ as *mut c_void,
            &mut l,
        )
    };
    if rc < 0 {
        return Err(Error(-errno()));
    }
    Ok(v)
}

pub(crate) fn set_nonblocking(fd: i32) -> Result<()> {
    // SAFETY: fcntl on a caller-provided fd; errors are checked.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(Error(-errno()));
    }
    if fl & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(Error(-errno()));
    }
    Ok(())
}

/// write(2) that turns a SIGPIPE it causes into plain EPIPE (`nosigpipe`).
///
/// # Safety
/// `buf` readable for `len` bytes.
pub(crate) unsafe fn write_nosigpipe(fd: i32, buf: *const c_void, len: usize) -> isize {
    // SAFETY: buf is readable for len bytes per this function's contract.
    nosigpipe(|| unsafe { libc::write(fd, buf, len) })
}

/// Runs `op` (a write-like syscall) with SIGPIPE blocked, and consumes a SIGPIPE it
/// raised, so it fails with plain EPIPE (pipes and sendfile have no MSG_NOSIGNAL).
/// errno is `op`'s on return.
pub(crate) fn nosigpipe(op: impl FnOnce() -> isize) -> isize {
    // SAFETY: sigset/sigprocmask calls on local, initialised sets.
    unsafe {
        let mut pipe_set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old);
        let n = op();
        let e = errno();
        if n < 0 && e == libc::EPIPE && !was_pending {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        *libc::__errno_location() = e;
        n
    }
}
