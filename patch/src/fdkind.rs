//! What kind of file an fd is, cached per fd number: the interposers handle sockets and
//! pollable streams (pipes, FIFOs, eventfd/timerfd/signalfd and other anonymous inodes)
//! cooperatively; regular files, directories, ttys and other character or block devices
//! go straight to libc (epoll cannot watch a regular file, and a tty stays the
//! program's). The cache is reset by the interposed `close`/`dup2`/`dup3` and set by
//! `socket`/`socketpair`/`pipe`/`pipe2`/`accept`; an entry
//! made stale by a close the patch did not see heals itself where it matters: a
//! "socket" that is no longer one answers `ENOTSOCK` and is looked at again.

use libc::c_int;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A socket: per-call `MSG_DONTWAIT`, the fd's flags never change.
    Socket,
    /// A pipe, FIFO or pollable anonymous inode: poll first, or O_NONBLOCK for the
    /// duration of one syscall (restored before the caller can run again).
    Stream,
    /// Everything else: plain libc.
    Plain,
}

const UNKNOWN: u8 = 0;
const SOCKET: u8 = 1;
const STREAM: u8 = 2;
const PLAIN: u8 = 3;
const SLOTS: usize = 1 << 16;

static TABLE: [AtomicU8; SLOTS] = [const { AtomicU8::new(UNKNOWN) }; SLOTS];

fn code(k: Kind) -> u8 {
    match k {
        Kind::Socket => SOCKET,
        Kind::Stream => STREAM,
        Kind::Plain => PLAIN,
    }
}

/// The kind of `fd` (Plain for a closed or negative fd: libc gives the error).
#[inline(always)]
pub fn kind(fd: c_int) -> Kind {
    if let Some(slot) = TABLE.get(fd as u32 as usize) {
        match slot.load(Relaxed) {
            SOCKET => return Kind::Socket,
            STREAM => return Kind::Stream,
            PLAIN => return Kind::Plain,
            _ => {}
        }
    }
    classify(fd)
}

/// True when `fd` is a socket (the interposers' fast path: one load).
#[inline(always)]
pub fn is_socket(fd: c_int) -> bool {
    match TABLE.get(fd as u32 as usize).map(|s| s.load(Relaxed)) {
        Some(SOCKET) => true,
        Some(STREAM) | Some(PLAIN) => false,
        _ => classify(fd) == Kind::Socket,
    }
}

/// Looks at `fd` with fstat and caches the answer.
#[cold]
pub fn classify(fd: c_int) -> Kind {
    if fd < 0 {
        return Kind::Plain;
    }
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer; fstat is not interposed.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Kind::Plain; // not open: not cached
    }
    let k = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Kind::Socket,
        libc::S_IFIFO => Kind::Stream,
        0 => Kind::Stream, // anonymous inodes: eventfd, timerfd, signalfd, epoll, inotify
        _ => Kind::Plain,
    };
    if let Some(slot) = TABLE.get(fd as usize) {
        slot.store(code(k), Relaxed);
    }
    k
}

/// Forgets `fd` (closed, or about to be replaced by dup2/dup3).
#[inline(always)]
pub fn forget(fd: c_int) {
    if let Some(slot) = TABLE.get(fd as u32 as usize) {
        slot.store(UNKNOWN, Relaxed);
    }
}

/// `fd` was just created as a `k` (socket, socketpair, pipe).
#[inline(always)]
pub fn set(fd: c_int, k: Kind) {
    if let Some(slot) = TABLE.get(fd as u32 as usize) {
        slot.store(code(k), Relaxed);
    }
}

/// `to` now refers to the same file as `from`.
pub fn copy(from: c_int, to: c_int) {
    let (Some(a), Some(b)) = (
        TABLE.get(from as u32 as usize),
        TABLE.get(to as u32 as usize),
    ) else {
        return;
    };
    b.store(a.load(Relaxed), Relaxed);
}
