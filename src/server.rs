//! StreamServer and DatagramServer (gevent.server): a listening (or bound) socket, an
//! accept (receive) loop in a greenlet of its own, and a handler greenlet per connection
//! (per datagram).
//!
//! Owns, per hub (`HubState::net`): the servers (listening fd, handler, limits,
//! counters, the accept greenlet) and the connections being handled (fd, handler
//! greenlet, server). Invariants:
//! * A connection's fd belongs to the server: closed (gh_close) when its handler
//!   returns, when it is dropped before its handler started, or at hub teardown.
//! * `active` counts the connections of a server whose handler may still run; each
//!   leaves it exactly once (`Hub::conn_done`), which also returns the server's
//!   semaphore permit (when it has a limit) and sets its `freed` event.
//! * The greenlets hold no Rust-owned value across a switch: the accept loop and the
//!   handler trampoline keep only handles and fds, and look their records up again
//!   after every blocking call (a server may be closed, or the hub destroyed, meanwhile).
//!
//! Out of fds (EMFILE/ENFILE/ENOBUFS/ENOMEM from accept) the loop backs off: it waits
//! until a handler of this server ends (that frees an fd) or a delay passes, 10 ms
//! doubling to 1 s, reset by the next successful accept (gevent's `_do_read` delays).

use crate::error::{Error, Result};
use crate::greenlet::State;
use crate::handle::{Kind, Table};
use crate::hub::greenlets::SpawnOpts;
use crate::hub::Hub;
use crate::sync::{Obj, WaitList};
use std::ffi::c_void;
use std::panic::AssertUnwindSafe;

/// How the core calls the user's handler: `call(f, server handle, item, arg)` (the FFI
/// layer knows the C signature behind `f`).
#[derive(Copy, Clone)]
pub struct Handler {
    pub call: unsafe fn(usize, u64, &Item, *mut c_void),
    pub f: usize,
    pub arg: *mut c_void,
}

/// What a handler gets: a stream server's connection fd, or a datagram server's
/// datagram (its bytes and sender; `fd` is then the server's socket, for replies).
pub struct Item {
    pub fd: i32,
    pub data: *const u8,
    pub len: usize,
    pub from: *const libc::sockaddr,
    pub fromlen: libc::socklen_t,
}

/// A received datagram, owned by its connection record until its handler returns.
pub struct Datagram {
    data: Box<[u8]>,
    from: libc::sockaddr_storage,
    fromlen: libc::socklen_t,
}

/// The largest datagram a datagram server receives whole (a UDP payload's maximum).
const MAX_DATAGRAM: usize = 65536;

/// gh_server_options.
#[derive(Copy, Clone, Default)]
pub struct Options {
    /// 0: no limit; else accepting pauses while this many handlers run.
    pub max_handlers: usize,
    pub stack_size: usize,
}

#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub active: u64,
    pub completed: u64,
    pub refused: u64,
    pub fd_exhausted: u64,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Phase {
    New,
    Serving,
    Stopped,
}

pub struct Server {
    /// The listening fd; -1 once closed (stop).
    lfd: i32,
    handler: Handler,
    opts: Options,
    /// A datagram server (gevent's DatagramServer): a handler per datagram.
    datagram: bool,
    phase: Phase,
    /// The accept loop's greenlet (slot, gen), while it has one.
    acceptor: Option<(u32, u32)>,
    /// Objects slots: a semaphore of `max_handlers` permits (with a limit), an event set
    /// whenever a handler ends.
    sem: Option<u32>,
    freed: u32,
    stats: Stats,
}

/// A connection (or a datagram) being handled.
pub struct Conn {
    server: (u32, u32),
    /// The connection's fd (the server's to close); -1 for a datagram.
    fd: i32,
    greenlet: Option<(u32, u32)>,
    datagram: Option<Box<Datagram>>,
}

/// A connection of a server as `conns_of` lists it: (slot, gen, handler greenlet).
pub(crate) type ConnRef = (u32, u32, Option<(u32, u32)>);

/// A hub's servers, the connections they handle, buffered streams (src/stream.rs) and
/// gh_poll's epoll fds (src/io_ext.rs).
#[derive(Default)]
pub struct Net {
    servers: Table<Server>,
    conns: Table<Conn>,
    pub(crate) streams: Table<crate::stream::Stream>,
    /// gh_poll's epoll fds while their callers wait (closed at hub teardown).
    pub(crate) polls: Table<i32>,
    /// gh_pool_* pools and their members (src/pool.rs).
    pub(crate) pools: crate::pool::Pools,
}

impl Drop for Net {
    /// Hub teardown: the greenlets are gone without running more code; close the fds
    /// that were theirs to close.
    fn drop(&mut self) {
        for c in self.conns.drain() {
            if c.fd >= 0 {
                // SAFETY: the connection's fd belongs to its server (module invariant).
                unsafe { libc::close(c.fd) };
            }
        }
        for ep in self.polls.drain() {
            // SAFETY: the epoll fd belongs to a gh_poll call that will never resume.
            unsafe { libc::close(ep) };
        }
        for s in self.servers.drain() {
            if s.lfd >= 0 {
                // SAFETY: the listening fd belongs to the server.
                unsafe { libc::close(s.lfd) };
            }
        }
    }
}

/// Which table of `Net` a `Kind::Net` handle names: the top two bits of its slot field.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum Sub {
    Server = 0,
    Stream = 1,
    Pool = 2,
}

const SUB_SHIFT: u32 = 22;
/// Slots per table (the slot field has 24 bits; 2 say the table).
const SUB_SLOTS: u32 = 1 << SUB_SHIFT;

/// `Table::insert` for a `Net` table: ENOMEM past `SUB_SLOTS` objects.
pub(crate) fn insert_sub<T>(t: &mut Table<T>, v: T) -> Result<(u32, u32)> {
    let (slot, gen) = t.insert(v)?;
    if slot >= SUB_SLOTS {
        t.remove(slot);
        return Err(Error::NOMEM);
    }
    Ok((slot, gen))
}

/// `Table::remove` of a slot whose generation is `gen`.
pub(crate) trait Take<T> {
    fn take(&mut self, slot: u32, gen: u32) -> Option<T>;
}

impl<T> Take<T> for Table<T> {
    fn take(&mut self, slot: u32, gen: u32) -> Option<T> {
        self.get(slot, gen)?;
        self.remove(slot)
    }
}

fn exhausted(e: Error) -> bool {
    matches!(
        -e.0,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

const BACKOFF_MIN_NS: u64 = 10_000_000;
const BACKOFF_MAX_NS: u64 = 1_000_000_000;

pub(crate) fn pack(slot: u32, gen: u32) -> *mut c_void {
    (((gen as u64) << 32) | slot as u64) as usize as *mut c_void
}

pub(crate) fn unpack(p: *mut c_void) -> (u32, u32) {
    let v = p as usize as u64;
    (v as u32, (v >> 32) as u32)
}

/// The accept loop's greenlet: `arg` is the server (slot, gen).
unsafe extern "C" fn accept_main(arg: *mut c_void) -> *mut c_void {
    let (slot, gen) = unpack(arg);
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if let Some(hub) = crate::hub::existing() {
            hub.accept_loop(slot, gen);
        }
    }));
    std::ptr::null_mut()
}

/// A connection's greenlet: `arg` is the connection (slot, gen).
unsafe extern "C" fn conn_main(arg: *mut c_void) -> *mut c_void {
    let (slot, gen) = unpack(arg);
    let Some(hub) = crate::hub::existing() else {
        return std::ptr::null_mut();
    };
    let found = std::panic::catch_unwind(AssertUnwindSafe(|| hub.conn_start(slot, gen)))
        .ok()
        .flatten();
    if let Some((h, sid, item)) = &found {
        // SAFETY: the handler and its argument were given to gh_server_new* by the user,
        // who promised the function may be called with them; a datagram's bytes live in
        // its connection record, which stays until conn_done below.
        unsafe { (h.call)(h.f, *sid, item, h.arg) };
    }
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        hub.conn_done(slot, gen, found.is_some())
    }));
    std::ptr::null_mut()
}

impl Hub {
    fn server_handle(&self, slot: u32, gen: u32) -> u64 {
        self.net_handle(Sub::Server, slot, gen)
    }

    /// A handle of `Kind::Net` for object (slot, gen) of table `sub`.
    pub(crate) fn net_handle(&self, sub: Sub, slot: u32, gen: u32) -> u64 {
        self.handle(Kind::Net, ((sub as u32) << SUB_SHIFT) | slot, gen)
    }

    /// Decodes a `Kind::Net` handle of table `sub` (another table's: EBADHANDLE).
    pub(crate) fn net_check(&self, raw: u64, sub: Sub) -> Result<(u32, u32)> {
        let (slot, gen) = self.check(raw, Kind::Net)?;
        if slot >> SUB_SHIFT != sub as u32 {
            return Err(Error::BADHANDLE);
        }
        Ok((slot & (SUB_SLOTS - 1), gen))
    }

    /// Checks a server handle; returns its (slot, gen).
    pub fn server_check(&self, raw: u64) -> Result<(u32, u32)> {
        let (slot, gen) = self.net_check(raw, Sub::Server)?;
        match self.st.borrow().net.servers.get(slot, gen) {
            Some(_) => Ok((slot, gen)),
            None => Err(Error::BADHANDLE),
        }
    }

    fn new_obj(&self, obj: Obj, kind: Kind) -> Result<u32> {
        let raw = self.obj_new(obj)?;
        self.obj_check(raw, kind)
    }

    /// A server on listening socket `lfd` (owned from now on; on failure it stays the
    /// caller's).
    pub fn server_new(
        &self,
        lfd: i32,
        handler: Handler,
        opts: Options,
        datagram: bool,
    ) -> Result<u64> {
        {
            crate::io::set_nonblocking(lfd)?;
            let sem = match opts.max_handlers {
                0 => None,
                n => Some(self.new_obj(
                    Obj::Sem {
                        count: n as u64,
                        bound: u64::MAX,
                        waiters: WaitList::default(),
                    },
                    Kind::Sem,
                )?),
            };
            let freed = match self.new_obj(
                Obj::Event {
                    set: false,
                    waiters: WaitList::default(),
                },
                Kind::Event,
            ) {
                Ok(e) => e,
                Err(e) => {
                    if let Some(s) = sem {
                        self.obj_close(s);
                    }
                    return Err(e);
                }
            };
            let server = Server {
                lfd,
                handler,
                opts,
                datagram,
                phase: Phase::New,
                acceptor: None,
                sem,
                freed,
                stats: Stats::default(),
            };
            let r = insert_sub(&mut self.st.borrow_mut().net.servers, server);
            match r {
                Ok((slot, gen)) => Ok(self.server_handle(slot, gen)),
                Err(e) => {
                    if let Some(s) = sem {
                        self.obj_close(s);
                    }
                    self.obj_close(freed);
                    Err(e)
                }
            }
        }
    }

    /// A datagram server on the caller's socket `fd` (owned from now on; on failure it
    /// stays the caller's). `fd` must be a datagram socket: EPROTOTYPE for a stream (or
    /// seqpacket) socket, ENOTSOCK for another file, EBADF for no open fd.
    pub fn datagram_server_on(&self, fd: i32, handler: Handler, opts: Options) -> Result<u64> {
        match crate::io::sockopt_int(fd, libc::SO_TYPE)? {
            libc::SOCK_DGRAM => self.server_new(fd, handler, opts, true),
            _ => Err(Error(-libc::EPROTOTYPE)),
        }
    }

    /// Starts the accept loop in a greenlet of its own (from the next iteration).
    pub fn server_start(&self, slot: u32, gen: u32) -> Result<()> {
        {
            let st = self.st.borrow();
            let s = st.net.servers.get(slot, gen).ok_or(Error::BADHANDLE)?;
            match s.phase {
                Phase::New => {}
                Phase::Serving => return Err(Error::BUSY),
                Phase::Stopped => return Err(Error(crate::error::ECLOSED)),
            }
        }
        let opts = SpawnOpts {
            name: Some(c"gh_server accept loop".to_owned()),
            ..SpawnOpts::default()
        };
        let g = self.spawn(accept_main, pack(slot, gen), opts)?;
        let mut st = self.st.borrow_mut();
        let s = st.net.servers.get_mut(slot, gen).expect("checked");
        s.acceptor = Some(g);
        s.phase = Phase::Serving;
        Ok(())
    }

    /// The accept loop: runs until the server stops (its blocking call fails with
    /// ECANCELED or ECLOSED) or disappears.
    fn accept_loop(&self, slot: u32, gen: u32) {
        let mut backoff = BACKOFF_MIN_NS;
        // A datagram's landing place: plain bytes on this greenlet's stack (nothing to
        // free if the hub is destroyed while it waits), copied into the record after.
        let mut dbuf = [0u8; MAX_DATAGRAM];
        loop {
            let Some((lfd, sem, freed, datagram)) = self
                .st
                .borrow()
                .net
                .servers
                .get(slot, gen)
                .filter(|s| s.phase == Phase::Serving && s.lfd >= 0)
                .map(|s| (s.lfd, s.sem, s.freed, s.datagram))
            else {
                return;
            };
            if let Some(sem) = sem {
                if self.sem_acquire(sem, None).is_err() {
                    return;
                }
            }
            let mut dgram = None;
            let r = if datagram {
                self.recv_datagram(lfd, &mut dbuf).map(|d| {
                    dgram = Some(d);
                    -1
                })
            } else {
                // SAFETY: no address is asked for; the server made lfd non-blocking when
                // it took it (and owns it), so no fcntl per connection.
                unsafe {
                    self.accept_nonblocking(lfd, std::ptr::null_mut(), std::ptr::null_mut(), None)
                }
            };
            let fd = match r {
                Ok(fd) => fd,
                Err(e) => {
                    if let Some(sem) = sem {
                        let _ = self.sem_release(sem);
                    }
                    if exhausted(e) {
                        if let Some(s) = self.st.borrow_mut().net.servers.get_mut(slot, gen) {
                            s.stats.fd_exhausted += 1;
                        }
                        // Wait until one of our handlers ends (its fd is free again) or
                        // the delay passes.
                        self.event_clear(freed);
                        match self.event_wait(freed, Some(backoff)) {
                            Ok(()) | Err(Error::TIMEDOUT) => {}
                            Err(_) => return,
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX_NS);
                        continue;
                    }
                    match -e.0 {
                        // The client gave up before we accepted: next one. (A datagram
                        // socket reports an earlier send's ICMP error the same way.)
                        libc::ECONNABORTED | libc::EPROTO | libc::EPERM | libc::EINTR => continue,
                        libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH if datagram => {
                            continue
                        }
                        _ => return, // stopped (ECANCELED, ECLOSED) or the listener broke
                    }
                }
            };
            backoff = BACKOFF_MIN_NS;
            let serving = self
                .st
                .borrow()
                .net
                .servers
                .get(slot, gen)
                .is_some_and(|s| s.phase == Phase::Serving);
            if !serving {
                // Stopped (or closed) while this accept completed: not ours to handle.
                if fd >= 0 {
                    let _ = self.close_fd(fd);
                }
                if let Some(s) = self.st.borrow_mut().net.servers.get_mut(slot, gen) {
                    s.stats.accepted += 1;
                    s.stats.refused += 1;
                }
                return;
            }
            self.conn_spawn(slot, gen, fd, dgram);
        }
    }

    /// One datagram from `fd` (its bytes copied into a record of their own).
    fn recv_datagram(&self, fd: i32, buf: &mut [u8]) -> Result<Box<Datagram>> {
        // SAFETY: plain data; all-zero is valid.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut c_void,
            iov_len: buf.len(),
        };
        // SAFETY: plain data; all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_name = &mut from as *mut _ as *mut c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: msg points at live locals of the right sizes.
        let n = unsafe { self.recvmsg(fd, &mut msg, 0, None) }? as usize;
        Ok(Box::new(Datagram {
            data: buf[..n.min(buf.len())].into(),
            from,
            fromlen: msg.msg_namelen,
        }))
    }

    /// Hands accepted `fd` (or a received datagram) to a new handler greenlet of server
    /// (slot, gen).
    fn conn_spawn(&self, slot: u32, gen: u32, fd: i32, datagram: Option<Box<Datagram>>) {
        let (stack_size, sem) = {
            let mut st = self.st.borrow_mut();
            let s = st
                .net
                .servers
                .get_mut(slot, gen)
                .expect("checked by the loop");
            s.stats.accepted += 1;
            s.stats.active += 1;
            (s.opts.stack_size, s.sem)
        };
        let inserted = self.st.borrow_mut().net.conns.insert(Conn {
            server: (slot, gen),
            fd,
            greenlet: None,
            datagram,
        });
        let spawned = inserted.and_then(|(c, cg)| {
            let opts = SpawnOpts {
                stack_size,
                ..SpawnOpts::default()
            };
            match self.spawn(conn_main, pack(c, cg), opts) {
                Ok(g) => {
                    if let Some(conn) = self.st.borrow_mut().net.conns.at_mut(c) {
                        conn.greenlet = Some(g);
                    }
                    Ok(())
                }
                Err(e) => {
                    self.st.borrow_mut().net.conns.remove(c);
                    Err(e)
                }
            }
        });
        if spawned.is_err() {
            // No greenlet for it (out of stacks): refuse the connection.
            if fd >= 0 {
                let _ = self.close_fd(fd);
            }
            if let Some(s) = self.st.borrow_mut().net.servers.get_mut(slot, gen) {
                s.stats.active -= 1;
                s.stats.refused += 1;
            }
            if let Some(sem) = sem {
                let _ = self.sem_release(sem);
            }
        }
    }

    /// In a connection's greenlet, before the handler: what to call, or None when the
    /// server is gone.
    fn conn_start(&self, slot: u32, gen: u32) -> Option<(Handler, u64, Item)> {
        let st = self.st.borrow();
        let c = st.net.conns.get(slot, gen)?;
        let (ss, sg) = c.server;
        let s = st.net.servers.get(ss, sg)?;
        let item = match &c.datagram {
            None => Item {
                fd: c.fd,
                data: std::ptr::null(),
                len: 0,
                from: std::ptr::null(),
                fromlen: 0,
            },
            Some(d) => Item {
                fd: s.lfd,
                data: d.data.as_ptr(),
                len: d.data.len(),
                from: &d.from as *const _ as *const libc::sockaddr,
                fromlen: d.fromlen,
            },
        };
        Some((s.handler, self.server_handle(ss, sg), item))
    }

    /// A connection leaves its server: close its fd, count it, return the permit,
    /// release its greenlet's record. `handled`: its handler ran.
    fn conn_done(&self, slot: u32, gen: u32, handled: bool) {
        let Some(c) = self.st.borrow_mut().net.conns.take(slot, gen) else {
            return;
        };
        if c.fd >= 0 {
            let _ = self.close_fd(c.fd);
        }
        if let Some((g, gg)) = c.greenlet {
            let _ = self.release(g, gg);
        }
        let (ss, sg) = c.server;
        let objs = {
            let mut st = self.st.borrow_mut();
            st.net.servers.get_mut(ss, sg).map(|s| {
                s.stats.active -= 1;
                if handled {
                    s.stats.completed += 1;
                } else {
                    s.stats.refused += 1;
                }
                (s.sem, s.freed)
            })
        };
        if let Some((sem, freed)) = objs {
            if let Some(sem) = sem {
                let _ = self.sem_release(sem);
            }
            self.event_set(freed);
        }
    }

    /// The connections of server (slot, gen): (conn slot, conn gen, greenlet).
    fn conns_of(&self, slot: u32, gen: u32) -> Vec<ConnRef> {
        let st = self.st.borrow();
        st.net
            .conns
            .iter()
            .filter(|(_, c)| c.server == (slot, gen))
            .map(|(cs, c)| (cs, st.net.conns.gen(cs), c.greenlet))
            .collect()
    }

    /// gh_server_stop: closes the listener, waits up to `timeout` for the handlers to
    /// return, kills the rest. Returns how many handlers were killed. `timeout` 0 never
    /// blocks (allowed in hub callbacks). A handler stopping its own server is neither
    /// waited for nor killed.
    pub fn server_stop(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<usize> {
        let (lfd, acceptor, freed) = {
            let mut st = self.st.borrow_mut();
            let s = st.net.servers.get_mut(slot, gen).ok_or(Error::BADHANDLE)?;
            if s.phase == Phase::Stopped {
                return Ok(0);
            }
            if timeout != Some(0) && self.in_hub() {
                return Err(Error::PERM);
            }
            s.phase = Phase::Stopped;
            let lfd = std::mem::replace(&mut s.lfd, -1);
            (lfd, s.acceptor.take(), s.freed)
        };
        if let Some((g, gg)) = acceptor {
            let _ = self.kill(g, gg, Some(0));
        }
        if lfd >= 0 {
            let _ = self.close_fd(lfd);
        }
        if let Some((g, gg)) = acceptor {
            // The loop ends at its next switch (its wait fails with ECANCELED).
            let _ = self.release(g, gg);
        }
        let me = self.current_id();
        let mine = |conns: &[ConnRef]| conns.iter().filter(|c| c.2 != Some(me)).count();
        if timeout != Some(0) {
            let deadline = timeout.map(|t| crate::event_loop::now_ns().saturating_add(t));
            while mine(&self.conns_of(slot, gen)) > 0 {
                let left = deadline.map(|d| d.saturating_sub(crate::event_loop::now_ns()));
                if left == Some(0) {
                    break;
                }
                self.event_clear(freed);
                match self.event_wait(freed, left) {
                    Ok(()) | Err(Error::TIMEDOUT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut killed = 0;
        for (cs, cg, g) in self.conns_of(slot, gen) {
            let Some((g, gg)) = g.filter(|g| *g != me) else {
                if g.is_none() {
                    self.conn_done(cs, cg, false);
                }
                continue;
            };
            killed += 1;
            let _ = self.kill(g, gg, Some(0));
            // Killed before it started: it never runs, so it cannot leave by itself.
            if matches!(self.state(g, gg), Ok(State::Dead) | Err(_)) {
                self.conn_done(cs, cg, false);
            }
        }
        Ok(killed)
    }

    /// gh_server_close: stops (without waiting) and frees the server.
    pub fn server_close(&self, slot: u32, gen: u32) -> Result<()> {
        self.server_stop(slot, gen, Some(0))?;
        let s = self
            .st
            .borrow_mut()
            .net
            .servers
            .take(slot, gen)
            .ok_or(Error::BADHANDLE)?;
        if let Some(sem) = s.sem {
            self.obj_close(sem);
        }
        self.obj_close(s.freed);
        Ok(())
    }

    pub fn server_stats(&self, slot: u32, gen: u32) -> Result<Stats> {
        let st = self.st.borrow();
        let s = st.net.servers.get(slot, gen).ok_or(Error::BADHANDLE)?;
        Ok(s.stats)
    }

    pub fn server_fd(&self, slot: u32, gen: u32) -> Result<i32> {
        let st = self.st.borrow();
        let s = st.net.servers.get(slot, gen).ok_or(Error::BADHANDLE)?;
        if s.lfd < 0 {
            return Err(Error::BADF);
        }
        Ok(s.lfd)
    }
}
