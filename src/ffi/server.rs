//! Header section "Servers" (gevent.server.StreamServer).

use super::{guard, need, put};
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use crate::server::{Handler, Item, Options};
use std::ffi::{c_char, c_int, c_void};

/// A server handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_server {
    pub id: u64,
}

/// A connection handler: runs in a greenlet of its own for each accepted connection,
/// with the connected socket `fd` (non-blocking, close-on-exec). The server closes `fd`
/// when the handler returns: do not close it yourself (shutdown(2) is fine; dup(2) it to
/// keep the connection). When the server stops, a handler still running after the stop
/// timeout is killed: its blocking calls return GH_ECANCELED and it should return.
pub type gh_server_handler =
    Option<unsafe extern "C" fn(server: gh_server, fd: c_int, arg: *mut c_void)>;

/// Options for gh_server_new / gh_server_new_fd. Zero-initialise it
/// (`gh_server_options o = {0};`): all zeroes are the defaults; NULL options too.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct gh_server_options {
    /// The most handlers running at once; 0 = no limit. While that many run, the server
    /// stops accepting (connections wait in the listen backlog) — gevent's pool.
    pub max_handlers: usize,
    /// gh_server_new only: the listen backlog; 0 = SOMAXCONN.
    pub backlog: c_int,
    /// gh_server_new only: gh_listen flags (GH_LISTEN_REUSEPORT, GH_LISTEN_UNLINK).
    pub listen_flags: c_int,
    /// Stack size of the handler greenlets; 0 = the hub's default (gh_spawn_options).
    pub stack_size: usize,
}

/// Counters of a server, read with gh_server_stats.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct gh_server_counters {
    /// Connections accepted.
    pub accepted: u64,
    /// Handlers running (or about to start) now.
    pub active: u64,
    /// Handlers that returned.
    pub completed: u64,
    /// Accepted connections closed without their handler running: no greenlet could be
    /// spawned (GH_ENOMEM), or the server stopped before the handler started.
    pub refused: u64,
    /// Times accept found the process or system out of fds (or kernel memory) and the
    /// server backed off: it waits until one of its handlers ends or 10 ms (doubling up
    /// to 1 s) pass, then accepts again.
    pub fd_exhausted: u64,
}

/// A datagram handler: runs in a greenlet of its own for each datagram received, with
/// its bytes (`len` of them at `data`) and its sender (`from`, `fromlen`), all valid
/// until the handler returns. Reply with gh_sendto(gh_server_fd(server), ...).
pub type gh_datagram_handler = Option<
    unsafe extern "C" fn(
        server: gh_server,
        data: *const c_void,
        len: usize,
        from: *const libc::sockaddr,
        fromlen: libc::socklen_t,
        arg: *mut c_void,
    ),
>;

/// Calls the C handler behind `f` (the core knows it only as a word).
///
/// # Safety
/// `f` is a non-null `gh_server_handler` turned into a usize by `handler`.
unsafe fn call_c(f: usize, server: u64, item: &Item, arg: *mut c_void) {
    // SAFETY: f was made from a function of exactly this type (see `handler`).
    let f: unsafe extern "C" fn(gh_server, c_int, *mut c_void) = unsafe { std::mem::transmute(f) };
    // SAFETY: the user's handler, called as gh_server_new's contract says.
    unsafe { f(gh_server { id: server }, item.fd, arg) }
}

/// Calls the C datagram handler behind `f`.
///
/// # Safety
/// `f` is a non-null `gh_datagram_handler` turned into a usize by
/// gh_server_new_datagram; `item` describes a live datagram.
unsafe fn call_datagram(f: usize, server: u64, item: &Item, arg: *mut c_void) {
    type F = unsafe extern "C" fn(
        gh_server,
        *const c_void,
        usize,
        *const libc::sockaddr,
        libc::socklen_t,
        *mut c_void,
    );
    // SAFETY: f was made from a function of exactly this type.
    let f: F = unsafe { std::mem::transmute(f) };
    let data = item.data as *const c_void;
    // SAFETY: the user's handler, called as gh_server_new_datagram's contract says.
    unsafe {
        f(
            gh_server { id: server },
            data,
            item.len,
            item.from,
            item.fromlen,
            arg,
        )
    }
}

fn handler(h: gh_server_handler, arg: *mut c_void) -> crate::error::Result<Handler> {
    let f = h.ok_or(Error::INVAL)?;
    Ok(Handler {
        call: call_c,
        f: f as usize,
        arg,
    })
}

fn datagram_handler(h: gh_datagram_handler, arg: *mut c_void) -> crate::error::Result<Handler> {
    let f = h.ok_or(Error::INVAL)?;
    Ok(Handler {
        call: call_datagram,
        f: f as usize,
        arg,
    })
}

/// # Safety
/// `opts` NULL or readable.
unsafe fn options(opts: *const gh_server_options) -> gh_server_options {
    if opts.is_null() {
        gh_server_options::default()
    } else {
        // SAFETY: readable per the caller's contract.
        unsafe { *opts }
    }
}

/// The hub, slot and generation of a live server of this thread.
fn lookup(server: gh_server) -> crate::error::Result<(&'static hub::Hub, u32, u32)> {
    let hub = hub::for_handle(server.id)?;
    let (slot, gen) = hub.server_check(server.id)?;
    Ok((hub, slot, gen))
}

fn core_options(o: &gh_server_options) -> Options {
    Options {
        max_handlers: o.max_handlers,
        stack_size: o.stack_size,
    }
}

/// The shape of the gh_server_new* calls: `out` checked, `make` creates the server,
/// its handle stored in `*out`.
///
/// # Safety
/// `out` NULL or writable.
unsafe fn create(out: *mut gh_server, make: impl FnOnce() -> crate::error::Result<u64>) -> c_int {
    guard(|| {
        need(out)?;
        let id = make()?;
        // SAFETY: checked non-null; writable per the caller's contract.
        unsafe { put(out, gh_server { id }) };
        Ok(0)
    })
}

/// A server of this thread's hub on a new socket listening on (bound to) `address`;
/// the socket is closed again if the server cannot be made.
///
/// # Safety
/// `address` NUL-terminated (or NULL: GH_EINVAL); `opts` NULL or readable.
unsafe fn on_address(
    address: *const c_char,
    h: Handler,
    opts: *const gh_server_options,
    datagram: bool,
) -> crate::error::Result<u64> {
    // SAFETY: per this function's contract.
    let a = unsafe { super::net::addr_str(address) }?;
    // SAFETY: per this function's contract.
    let o = unsafe { options(opts) };
    let hub = hub::current()?;
    let fd = if datagram {
        hub.listen(a, 0, o.listen_flags | crate::net::LISTEN_UDP)?
    } else {
        hub.listen(a, o.backlog, o.listen_flags & !crate::net::LISTEN_UDP)?
    };
    hub.server_new(fd, h, core_options(&o), datagram)
        .inspect_err(|_| {
            let _ = hub.close_fd(fd);
        })
}

/// A server of this thread's hub on the caller's socket `fd`: a stream server on any
/// open fd (EBADF otherwise), a datagram server on a datagram socket only.
///
/// # Safety
/// `opts` NULL or readable.
unsafe fn on_fd(
    fd: c_int,
    h: Handler,
    opts: *const gh_server_options,
    datagram: bool,
) -> crate::error::Result<u64> {
    // SAFETY: per this function's contract.
    let o = core_options(&unsafe { options(opts) });
    if datagram {
        return hub::current()?.datagram_server_on(fd, h, o);
    }
    // SAFETY: fcntl on any int is harmless; it answers EBADF for a closed fd.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Error::BADF);
    }
    hub::current()?.server_new(fd, h, o, false)
}

/// Creates a stream server listening on `address` (gh_listen's forms: `"host:port"`,
/// `"[v6]:port"`, `":port"`, `"unix:/path"`, …) that will run `handler(server, fd, arg)`
/// in a new greenlet for each connection once started (gh_server_start). The server
/// owns its listening socket (gh_server_fd); learn a `":0"` port with gh_local_address.
///
/// *Ownership*: `*out` is the caller's until gh_server_close; `address` and `opts` are
/// only read; `arg` is passed through untouched (keep it valid while handlers may run).
/// *Threads*: the calling thread's hub; handlers run in it.
/// *Blocking*: as gh_listen (only to resolve a name).
/// *Errors*: GH_EINVAL (`out`, `address` or `handler` NULL; a bad address or flags),
/// gh_listen's errors (GH_EADDRINUSE, GH_EACCES, GH_EMFILE, …), GH_ENOMEM.
///
/// # Safety
/// `out` writable; `address` NUL-terminated; `opts` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn gh_server_new(
    out: *mut gh_server,
    address: *const c_char,
    handler: gh_server_handler,
    arg: *mut c_void,
    opts: *const gh_server_options,
) -> c_int {
    let make = || {
        let h = self::handler(handler, arg)?;
        // SAFETY: `address` and `opts` are valid per this function's contract.
        unsafe { on_address(address, h, opts, false) }
    };
    // SAFETY: `out` is writable per this function's contract.
    unsafe { create(out, make) }
}

/// gh_server_new on listening socket `fd` (from gh_listen, or a socket the caller bound
/// and listened on, e.g. inherited from a supervisor). On success the server owns `fd`
/// (it closes it at gh_server_stop / gh_server_close); on failure it stays the caller's.
/// `opts->backlog` and `opts->listen_flags` are ignored.
///
/// *Ownership*: as gh_server_new, and `fd` passes to the server on success.
/// *Threads*: the calling thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` or `handler` NULL), GH_EBADF (`fd` negative or not open),
/// GH_ENOMEM.
///
/// # Safety
/// `out` writable; `opts` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn gh_server_new_fd(
    out: *mut gh_server,
    fd: c_int,
    handler: gh_server_handler,
    arg: *mut c_void,
    opts: *const gh_server_options,
) -> c_int {
    let make = || {
        let h = self::handler(handler, arg)?;
        // SAFETY: `opts` is NULL or readable per this function's contract.
        unsafe { on_fd(fd, h, opts, false) }
    };
    // SAFETY: `out` is writable per this function's contract.
    unsafe { create(out, make) }
}

/// Creates a datagram server (gevent's DatagramServer) bound to `address` (gh_listen's
/// forms; UDP, or a Unix datagram socket for a path) that will run
/// `handler(server, data, len, from, fromlen, arg)` in a new greenlet for each datagram
/// once started (gh_server_start). Datagrams up to 65,536 bytes arrive whole. With
/// `max_handlers`, receiving pauses while that many run (datagrams wait in the socket's
/// buffer, and the kernel drops what does not fit). gh_server_stop, gh_server_close,
/// gh_server_stats (`accepted` counts datagrams) and gh_server_fd work as for stream
/// servers.
///
/// *Ownership*: as gh_server_new. *Threads*: the calling thread's hub; handlers run in it.
/// *Blocking*: as gh_listen (only to resolve a name).
/// *Errors*: GH_EINVAL (`out`, `address` or `handler` NULL; a bad address or flags),
/// gh_listen's errors (GH_EADDRINUSE, GH_EACCES, GH_EMFILE, …), GH_ENOMEM.
///
/// # Safety
/// `out` writable; `address` NUL-terminated; `opts` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn gh_server_new_datagram(
    out: *mut gh_server,
    address: *const c_char,
    handler: gh_datagram_handler,
    arg: *mut c_void,
    opts: *const gh_server_options,
) -> c_int {
    let make = || {
        let h = datagram_handler(handler, arg)?;
        // SAFETY: `address` and `opts` are valid per this function's contract.
        unsafe { on_address(address, h, opts, true) }
    };
    // SAFETY: `out` is writable per this function's contract.
    unsafe { create(out, make) }
}

/// gh_server_new_datagram on datagram socket `fd`, which the caller created and bound
/// (UDP, or AF_UNIX SOCK_DGRAM; e.g. inherited from a supervisor, or with socket options
/// gh_listen does not set) — gevent's DatagramServer given a socket. On success the
/// server owns `fd` (it closes it at gh_server_stop / gh_server_close) and has put it
/// in O_NONBLOCK mode; on failure it stays the caller's. `opts->backlog` and
/// `opts->listen_flags` are ignored.
///
/// *Ownership*: as gh_server_new_datagram, and `fd` passes to the server on success.
/// *Threads*: the calling thread's hub; handlers run in it. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` or `handler` NULL), GH_EBADF (`fd` negative or not open),
/// GH_ENOTSOCK (`fd` is not a socket), GH_EPROTOTYPE (a socket, but not a datagram
/// socket: a stream server takes it, gh_server_new_fd), GH_ENOMEM.
///
/// # Safety
/// `out` writable; `opts` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn gh_server_new_datagram_fd(
    out: *mut gh_server,
    fd: c_int,
    handler: gh_datagram_handler,
    arg: *mut c_void,
    opts: *const gh_server_options,
) -> c_int {
    let make = || {
        let h = datagram_handler(handler, arg)?;
        // SAFETY: `opts` is NULL or readable per this function's contract.
        unsafe { on_fd(fd, h, opts, true) }
    };
    // SAFETY: `out` is writable per this function's contract.
    unsafe { create(out, make) }
}

/// Starts accepting: the accept loop runs in a greenlet of its own from the hub's next
/// iteration, so the caller goes on (run the hub: gh_hub_run, or block in anything).
/// Accepting pauses while `max_handlers` handlers run, and backs off while the process
/// is out of fds (see gh_server_counters.fd_exhausted); connections wait in the backlog.
///
/// *Threads*: the server's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EBUSY (already started), GH_ECLOSED
/// (stopped: a server is started once), GH_ENOMEM.
#[no_mangle]
pub extern "C" fn gh_server_start(server: gh_server) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(server)?;
        hub.server_start(slot, gen).map(|_| 0)
    })
}

/// Stops the server gracefully (gevent's stop(timeout)): closes the listening socket
/// (new connections are refused by the kernel), waits up to `timeout` for the running
/// handlers to return, then kills the rest (their blocking calls return GH_ECANCELED;
/// their fds are closed when they return). Returns how many handlers were killed (0:
/// all finished in time). A second stop returns 0. A handler may stop its own server:
/// it is neither waited for nor killed. The counters stay readable until
/// gh_server_close.
///
/// *Threads*: the server's hub. *Blocking*: yes, up to `timeout` (GH_FOREVER: until the
/// handlers return); `timeout` 0 never blocks and is allowed from hub callbacks (a
/// signal watcher's, say).
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EINVAL (NaN timeout), GH_EPERM (a
/// non-zero timeout from a hub callback), GH_ECANCELED / a gh_throw code / GH_ETIMEDOUT
/// of a gh_timeout while waiting (the listener is closed already; handlers are not
/// killed then: call again).
#[no_mangle]
pub extern "C" fn gh_server_stop(server: gh_server, timeout: f64) -> c_int {
    guard(|| {
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(server)?;
        hub.server_stop(slot, gen, t)
            .map(|n| n.min(c_int::MAX as usize) as c_int)
    })
}

/// Frees the server: stops it without waiting (gh_server_stop(server, 0): running
/// handlers are killed) and invalidates the handle. Handlers still running end on
/// their own; their fds are closed then.
///
/// *Threads*: the server's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE (also when closed twice), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_server_close(server: gh_server) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(server)?;
        hub.server_close(slot, gen).map(|_| 0)
    })
}

/// Copies the server's counters into `*stats`.
///
/// *Threads*: the server's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`stats` NULL), GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `stats` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_server_stats(
    server: gh_server,
    stats: *mut gh_server_counters,
) -> c_int {
    guard(|| {
        need(stats)?;
        let (hub, slot, gen) = lookup(server)?;
        let s = hub.server_stats(slot, gen)?;
        let out = gh_server_counters {
            accepted: s.accepted,
            active: s.active,
            completed: s.completed,
            refused: s.refused,
            fd_exhausted: s.fd_exhausted,
        };
        // SAFETY: checked non-null; writable per the contract.
        unsafe { put(stats, out) };
        Ok(0)
    })
}

/// The server's listening fd (>= 0; owned by the server: do not close it), e.g. for
/// gh_local_address.
///
/// *Threads*: the server's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EBADF (stopped: the socket is closed).
#[no_mangle]
pub extern "C" fn gh_server_fd(server: gh_server) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(server)?;
        hub.server_fd(slot, gen)
    })
}
