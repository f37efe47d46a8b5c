//! The `polling` backend: the `polling` crate (epoll, kqueue, event ports, IOCP) — the
//! portable choice. Level-triggered registrations. On Linux its `wait` costs more
//! syscalls than the raw `epoll` backend (it re-arms an internal timerfd and notifier
//! each call), so `epoll` stays the Linux default.
//!
//! `polling` reserves the key `usize::MAX` for its own notifier, so the hub's wake-up
//! token is mapped to `WAKE_KEY` and back.

use super::{Backend, Ready, READ, WAKE_TOKEN, WRITE};
use polling::{Event, Events, PollMode, Poller};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

const WAKE_KEY: usize = usize::MAX - 1;

pub struct Portable {
    poller: Poller,
    events: Events,
    /// The poller's epoll fd number holds another file now (`disown`): the next `reset`
    /// leaks the old poller rather than close that file.
    lost: bool,
    /// `super::file_id` of the poller's fd when it was made (checked after fork).
    id: Option<(u64, u64)>,
}

fn key(token: u64) -> usize {
    if token == WAKE_TOKEN {
        WAKE_KEY
    } else {
        token as usize
    }
}

fn interest(token: u64, events: u8) -> Event {
    let k = key(token);
    match (events & READ != 0, events & WRITE != 0) {
        (true, true) => Event::all(k),
        (true, false) => Event::readable(k),
        (false, true) => Event::writable(k),
        (false, false) => Event::none(k),
    }
}

fn code(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Portable {
    pub fn new() -> Result<Portable, i32> {
        let poller = Poller::new().map_err(code)?;
        Ok(Portable {
            id: super::file_id(poller.as_raw_fd()),
            poller,
            events: Events::new(),
            lost: false,
        })
    }
}

impl Backend for Portable {
    fn name(&self) -> &'static str {
        "polling"
    }

    fn c_name(&self) -> &'static std::ffi::CStr {
        c"polling"
    }

    fn fresh(&self) -> Result<Box<dyn Backend>, i32> {
        Ok(Box::new(Portable::new()?))
    }

    fn fd(&self) -> i32 {
        self.poller.as_raw_fd()
    }

    fn add(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        // SAFETY: the hub deletes the registration before the fd is closed through
        // greenhub (gh_close) and rebuilds the poller when a stale one shows up.
        unsafe {
            self.poller
                .add_with_mode(fd, interest(token, events), PollMode::Level)
        }
        .map_err(code)
    }

    fn modify(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        // SAFETY: only borrowed for the call; the fd number is what the kernel keys on.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller
            .modify_with_mode(b, interest(token, events), PollMode::Level)
            .map_err(code)
    }

    fn delete(&mut self, fd: i32) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        // SAFETY: only borrowed for the call.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.delete(b).map_err(code)
    }

    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> Result<(), i32> {
        self.events.clear();
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        match self.poller.wait(&mut self.events, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(code(e)),
        }
        for ev in self.events.iter() {
            let mut events = 0;
            if ev.readable {
                events |= READ;
            }
            if ev.writable {
                events |= WRITE;
            }
            if ev.is_err() == Some(true) || ev.is_interrupt() {
                events |= READ | WRITE;
            }
            let token = if ev.key == WAKE_KEY {
                WAKE_TOKEN
            } else {
                ev.key as u64
            };
            out.push(Ready { token, events });
        }
        Ok(())
    }

    /// polling's Drop removes its internal timerfd and notifier from the epoll set with
    /// epoll_ctl, which after fork would change the parent's (shared) set. So first point
    /// our copy of the epoll fd number at a fresh, private epoll instance, then drop
    /// normally: the DELs hit the private instance and every fd is closed, nothing leaks.
    fn abandon(self: Box<Self>) {
        let fd = self.poller.as_raw_fd();
        if super::file_id(fd) != self.id {
            // The child closed it and may have opened its own files at these numbers:
            // close nothing (what is left of ours is the parent's anyway).
            std::mem::forget(self);
            return;
        }
        // SAFETY: plain syscalls on fds this process owns; dup2 atomically replaces this
        // process's reference to the shared epoll instance with a private one.
        let fresh = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fresh < 0 {
            // Cannot isolate it: leak rather than touch the parent's set.
            // SAFETY: closes this process's copy only; the Poller is forgotten.
            unsafe { libc::close(fd) };
            std::mem::forget(self);
            return;
        }
        // SAFETY: as above.
        unsafe {
            libc::dup2(fresh, fd);
            libc::close(fresh);
        }
        drop(self);
    }

    fn reset(&mut self) -> Result<(), i32> {
        let old = std::mem::replace(&mut self.poller, Poller::new().map_err(code)?);
        self.id = super::file_id(self.poller.as_raw_fd());
        if std::mem::take(&mut self.lost) {
            std::mem::forget(old);
        }
        Ok(())
    }

    /// The poller's epoll fd was closed behind greenhub's back (`EBADF`): put a private
    /// epoll instance at its (free) number, so dropping the old poller in `reset` closes
    /// that and its own timerfd and notifier, nothing of anyone else's. If the number holds
    /// another file, the old poller is leaked instead.
    fn disown(&mut self, err: i32) {
        if err != libc::EBADF {
            self.lost = true;
            return;
        }
        let fd = self.poller.as_raw_fd();
        // SAFETY: plain syscalls; dup2 targets a number that is not open (EBADF). The
        // lowest free number may be `fd` itself: then the fresh instance is in place.
        unsafe {
            let fresh = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if fresh < 0 || (fresh != fd && libc::dup2(fresh, fd) < 0) {
                self.lost = true;
            }
            if fresh >= 0 && fresh != fd {
                libc::close(fresh);
            }
        }
    }
}
