//! Header section "Buffered streams" (gevent's socket.makefile, asyncio's StreamReader).

use super::{guard, guard_ssize, need, put};
use crate::error::Error;
use crate::event_loop::duration_ns;
use crate::hub;
use std::ffi::{c_char, c_int, c_void};

/// A buffered stream handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_stream {
    pub id: u64,
}

/// The hub, slot and generation of a live stream of this thread.
fn lookup(s: gh_stream) -> crate::error::Result<(&'static hub::Hub, u32, u32)> {
    let hub = hub::for_handle(s.id)?;
    let (slot, gen) = hub.stream_check(s.id)?;
    Ok((hub, slot, gen))
}

/// Creates a buffered reader over `fd` (a socket, pipe, tty or file) whose buffer grows
/// as needed up to `max_buffer` bytes (0: 64 KiB) and never beyond: a record longer
/// than that is GH_EMSGSIZE, not unbounded memory. The buffer is allocated on first
/// read (4 KiB, doubling).
///
/// *Ownership*: `*out` is the caller's until gh_stream_close. The stream does not own
/// `fd`: close it yourself (after gh_stream_close, or let gh_server close it).
/// *Threads*: the calling thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`out` NULL), GH_EBADF (`fd` negative), GH_ENOMEM.
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_stream_new(out: *mut gh_stream, fd: c_int, max_buffer: usize) -> c_int {
    guard(|| {
        need(out)?;
        let id = hub::current()?.stream_new(fd, max_buffer)?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { put(out, gh_stream { id }) };
        Ok(0)
    })
}

/// Frees the stream and its buffer (bytes still buffered are dropped); `fd` stays open.
///
/// *Threads*: the stream's hub. *Blocking*: never; allowed from callbacks.
/// *Errors*: GH_EBADHANDLE (also when closed twice), GH_EWRONGTHREAD, GH_EBUSY (a
/// greenlet is waiting in a read of this stream: kill it or gh_close the fd first).
#[no_mangle]
pub extern "C" fn gh_stream_close(stream: gh_stream) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(stream)?;
        hub.stream_close(slot, gen).map(|_| 0)
    })
}

/// The number of bytes read from the fd and not yet consumed (>= 0), or a code.
///
/// *Threads*: the stream's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_stream_buffered(stream: gh_stream) -> libc::ssize_t {
    guard_ssize(|| {
        let (hub, slot, gen) = lookup(stream)?;
        hub.stream_buffered(slot, gen).map(|n| n as isize)
    })
}

/// The shape of the stream reads: check the buffer and timeout, look the stream up,
/// run `op`.
fn stream_op(
    stream: gh_stream,
    buf_null: bool,
    len: usize,
    timeout: f64,
    op: impl FnOnce(&hub::Hub, u32, u32, Option<u64>) -> crate::error::Result<usize>,
) -> libc::ssize_t {
    guard_ssize(|| {
        if buf_null || len > isize::MAX as usize {
            return Err(Error::INVAL);
        }
        let t = duration_ns(timeout)?;
        let (hub, slot, gen) = lookup(stream)?;
        op(hub, slot, gen, t).map(|n| n as isize)
    })
}

/// Reads up to `len` bytes: what is buffered, else one read of the fd (waiting
/// cooperatively). Returns the bytes read (> 0), 0 at end of file, or a code.
///
/// *Ownership*: `buf` is the caller's. *Threads*: the stream's hub.
/// *Blocking*: yes (when nothing is buffered); not from a hub callback.
/// *Errors*: GH_EINVAL (`buf` NULL, `len` 0, NaN timeout), GH_EBADHANDLE,
/// GH_EWRONGTHREAD, GH_EBUSY (another greenlet reads this stream or its fd),
/// GH_ETIMEDOUT, GH_ECLOSED, GH_ECANCELED, a gh_throw code, GH_EPERM, and gh_read's
/// errors (GH_ECONNRESET, GH_EBADF, …).
///
/// # Safety
/// `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_stream_read(
    stream: gh_stream,
    buf: *mut c_void,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    stream_op(
        stream,
        buf.is_null() || len == 0,
        len,
        timeout,
        |h, s, g, t| {
            // SAFETY: buf is writable for len bytes per the contract.
            unsafe { h.stream_read(s, g, buf as *mut u8, len, t) }
        },
    )
}

/// Reads exactly `len` bytes into `buf` (one deadline for the whole call). Returns
/// `len`; 0 at end of file with nothing buffered (a clean end between records);
/// GH_EEOF at end of file after part of it (those bytes stay buffered: gh_stream_read
/// gets them); GH_EMSGSIZE if `len` exceeds the stream's `max_buffer` (read bigger
/// blocks with gh_stream_read). On a timeout or error what arrived stays buffered.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_stream_read.
/// *Errors*: as gh_stream_read, plus GH_EEOF and GH_EMSGSIZE.
///
/// # Safety
/// `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_stream_read_exact(
    stream: gh_stream,
    buf: *mut c_void,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    stream_op(
        stream,
        buf.is_null() || len == 0,
        len,
        timeout,
        |h, s, g, t| {
            // SAFETY: buf is writable for len bytes per the contract.
            unsafe { h.stream_read_exact(s, g, buf as *mut u8, len, t) }
        },
    )
}

/// Reads through the first occurrence of `delim` (`dlen` bytes, e.g. "\r\n\r\n" for an
/// HTTP head) and copies those bytes, the delimiter included, into `buf`. Returns their
/// number; 0 at end of file with nothing buffered; GH_EEOF at end of file in the middle
/// (the bytes stay buffered); GH_EMSGSIZE when no delimiter comes within the stream's
/// `max_buffer` bytes, or the record is longer than `len` (the bytes stay buffered: a
/// bigger `buf` may take it; past `max_buffer` the stream cannot make progress: close
/// the connection). Bytes after the delimiter stay buffered for the next call.
///
/// *Ownership*: `buf` is the caller's, `delim` only read. *Threads*, *Blocking*: as
/// gh_stream_read.
/// *Errors*: as gh_stream_read (plus GH_EINVAL for `delim` NULL or `dlen` 0), GH_EEOF,
/// GH_EMSGSIZE.
///
/// # Safety
/// `delim` readable for `dlen` bytes; `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_stream_read_until(
    stream: gh_stream,
    delim: *const c_void,
    dlen: usize,
    buf: *mut c_void,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    let bad = buf.is_null() || len == 0 || delim.is_null() || dlen == 0;
    stream_op(stream, bad, len, timeout, |h, s, g, t| {
        // SAFETY: delim is readable for dlen bytes per the contract.
        let d = unsafe { std::slice::from_raw_parts(delim as *const u8, dlen) };
        // SAFETY: buf is writable for len bytes per the contract.
        unsafe { h.stream_read_until(s, g, d, buf as *mut u8, len, t) }
    })
}

/// gh_stream_read_until with "\n", NUL-terminated: `buf` gets the line with its "\n"
/// and a NUL after it, so the longest line that fits is `len - 1` bytes (else
/// GH_EMSGSIZE). Returns the line's length without the NUL; 0 at end of file between
/// lines; GH_EEOF for a last line without "\n" (gh_stream_read gets it).
///
/// *Ownership*, *Threads*, *Blocking*: as gh_stream_read_until.
/// *Errors*: as gh_stream_read_until (GH_EINVAL for `len` < 2).
///
/// # Safety
/// `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn gh_stream_readline(
    stream: gh_stream,
    buf: *mut c_char,
    len: usize,
    timeout: f64,
) -> libc::ssize_t {
    stream_op(
        stream,
        buf.is_null() || len < 2,
        len,
        timeout,
        |h, s, g, t| {
            // SAFETY: buf is writable for len bytes per the contract; the line takes at
            // most len - 1 of them, the NUL the next one.
            unsafe {
                let n = h.stream_read_until(s, g, b"\n", buf as *mut u8, len - 1, t)?;
                *buf.add(n) = 0;
                Ok(n)
            }
        },
    )
}
