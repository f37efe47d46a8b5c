//! The `select` backend: select(2) through `libc` — the lowest common denominator
//! (eventlet's "selects" hub). Costs O(highest registered fd) per poll and cannot
//! watch an fd at or past `FD_SETSIZE` (1024 on Linux): registering one is `ERANGE`
//! (`GH_ERANGE`), with one line on stderr naming the backends without the limit.
//!
//! Registrations live in three master `fd_set`s (read, write, any) copied into the
//! call each poll, with a token per fd. Like poll(2), select(2) re-reads every fd
//! each call, so there are no stale kernel registrations; unlike poll(2) it fails the
//! whole call with `EBADF` when one registered fd was closed behind greenhub's back.
//! That fd is then reported ready (READ | WRITE, as poll's POLLNVAL) so its waiters
//! wake and see `EBADF` from their own syscall, and the loop's usual rules follow.

use super::{Backend, Ready, READ, WRITE};

const SETSIZE: i32 = libc::FD_SETSIZE as i32;

pub struct Select {
    read: libc::fd_set,
    write: libc::fd_set,
    /// Every registered fd (also those registered with no events).
    any: libc::fd_set,
    /// Token per fd (meaningful where `any` has the fd).
    tokens: Vec<u64>,
    /// Highest registered fd (-1: none).
    max: i32,
}

fn empty_set() -> libc::fd_set {
    // SAFETY: fd_set is plain bits; FD_ZERO initialises it.
    unsafe {
        let mut s: libc::fd_set = std::mem::zeroed();
        libc::FD_ZERO(&mut s);
        s
    }
}

fn has(set: &libc::fd_set, fd: i32) -> bool {
    // SAFETY: 0 <= fd < FD_SETSIZE is checked by every caller.
    unsafe { libc::FD_ISSET(fd, set) }
}

fn put(set: &mut libc::fd_set, fd: i32, on: bool) {
    // SAFETY: 0 <= fd < FD_SETSIZE is checked by every caller.
    unsafe {
        if on {
            libc::FD_SET(fd, set)
        } else {
            libc::FD_CLR(fd, set)
        }
    }
}

impl Default for Select {
    fn default() -> Self {
        Select {
            read: empty_set(),
            write: empty_set(),
            any: empty_set(),
            tokens: vec![0; SETSIZE as usize],
            max: -1,
        }
    }
}

impl Select {
    fn known(&self, fd: i32) -> bool {
        (0..SETSIZE).contains(&fd) && has(&self.any, fd)
    }

    fn set(&mut self, fd: i32, token: u64, events: u8) {
        put(&mut self.read, fd, events & READ != 0);
        put(&mut self.write, fd, events & WRITE != 0);
        put(&mut self.any, fd, true);
        self.tokens[fd as usize] = token;
        self.max = self.max.max(fd);
    }

    /// select(2) said EBADF: report the registered fds that are closed as ready.
    fn report_closed(&self, out: &mut Vec<Ready>) {
        for fd in 0..=self.max {
            // SAFETY: F_GETFD only queries the descriptor table.
            if has(&self.any, fd) && unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                out.push(Ready {
                    token: self.tokens[fd as usize],
                    events: READ | WRITE,
                });
            }
        }
    }
}

#[cold]
fn past_setsize(fd: i32) -> i32 {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "greenhub: the select backend cannot watch fd {fd}: select(2) stops at FD_SETSIZE ({SETSIZE}); use the epoll, polling or poll backend (GREENHUB_BACKEND)"
        );
    }
    libc::ERANGE
}

impl Backend for Select {
    fn name(&self) -> &'static str {
        "select"
    }

    fn c_name(&self) -> &'static std::ffi::CStr {
        c"select"
    }

    /// select(2) has no kernel object: -1 (embedding needs the epoll or polling backend).
    fn fd(&self) -> i32 {
        -1
    }

    fn add(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        if fd >= SETSIZE {
            return Err(past_setsize(fd));
        }
        if has(&self.any, fd) {
            return Err(libc::EEXIST);
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(libc::EBADF);
        }
        self.set(fd, token, events);
        Ok(())
    }

    fn modify(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        if !self.known(fd) {
            return Err(libc::ENOENT);
        }
        self.set(fd, token, events);
        Ok(())
    }

    fn delete(&mut self, fd: i32) -> Result<(), i32> {
        if !self.known(fd) {
            return Err(libc::ENOENT);
        }
        put(&mut self.read, fd, false);
        put(&mut self.write, fd, false);
        put(&mut self.any, fd, false);
        while self.max >= 0 && !has(&self.any, self.max) {
            self.max -= 1;
        }
        Ok(())
    }

    fn peek_is_cheap(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> Result<(), i32> {
        let mut r = self.read;
        let mut w = self.write;
        // Exceptional conditions (out-of-band data) count as READ, as POLLPRI does.
        let mut x = self.read;
        let mut tv = libc::timeval {
            tv_sec: (timeout_ms.max(0) / 1000) as libc::time_t,
            tv_usec: ((timeout_ms.max(0) % 1000) * 1000) as libc::suseconds_t,
        };
        let tvp = if timeout_ms < 0 {
            std::ptr::null_mut()
        } else {
            &mut tv as *mut libc::timeval
        };
        // SAFETY: the sets are valid fd_sets holding fds below FD_SETSIZE; tvp is NULL
        // or a live timeval.
        let n = unsafe { libc::select(self.max + 1, &mut r, &mut w, &mut x, tvp) };
        if n < 0 {
            return match super::epoll::errno() {
                libc::EINTR => Ok(()),
                libc::EBADF => {
                    self.report_closed(out);
                    Ok(())
                }
                e => Err(e),
            };
        }
        if n == 0 {
            return Ok(());
        }
        for fd in 0..=self.max {
            let mut events = 0;
            if has(&r, fd) || has(&x, fd) {
                events |= READ;
            }
            if has(&w, fd) {
                events |= WRITE;
            }
            if events != 0 {
                out.push(Ready {
                    token: self.tokens[fd as usize],
                    events,
                });
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), i32> {
        *self = Select::default();
        Ok(())
    }

    fn fresh(&self) -> Result<Box<dyn Backend>, i32> {
        Ok(Box::new(Select::default()))
    }
}
