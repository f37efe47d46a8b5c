//! The `poll` backend: poll(2) through `libc`. Works wherever POSIX does, with no
//! fd-count limit like select's; costs O(registered fds) per poll.
//!
//! Registrations live in a dense `pollfd` array (swap-remove on delete) with a map
//! from fd to index. poll(2) re-reads every fd each call, so a closed fd shows up as
//! POLLNVAL (reported as READ | WRITE, so its waiters wake and see EBADF) and a reused
//! number is simply the new file: there are no stale kernel registrations.

use super::{Backend, Ready, READ, WRITE};

#[derive(Default)]
pub struct Poll {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
    /// fd -> index in `fds` (u32::MAX: not registered).
    index: Vec<u32>,
}

impl Poll {
    fn slot(&self, fd: i32) -> Option<usize> {
        match self.index.get(fd as usize) {
            Some(&i) if i != u32::MAX => Some(i as usize),
            _ => None,
        }
    }
}

fn mask(events: u8) -> i16 {
    let mut m = 0;
    if events & READ != 0 {
        m |= libc::POLLIN | libc::POLLRDHUP;
    }
    if events & WRITE != 0 {
        m |= libc::POLLOUT;
    }
    m
}

impl Backend for Poll {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn c_name(&self) -> &'static std::ffi::CStr {
        c"poll"
    }

    fn fresh(&self) -> Result<Box<dyn Backend>, i32> {
        Ok(Box::new(Poll::default()))
    }

    /// poll(2) has no kernel object: -1 (embedding needs the epoll or polling backend).
    fn fd(&self) -> i32 {
        -1
    }

    fn add(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        if self.slot(fd).is_some() {
            return Err(libc::EEXIST);
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(libc::EBADF);
        }
        if self.index.len() <= fd as usize {
            self.index.resize(fd as usize + 1, u32::MAX);
        }
        self.index[fd as usize] = self.fds.len() as u32;
        self.fds.push(libc::pollfd {
            fd,
            events: mask(events),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn modify(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        let i = self.slot(fd).ok_or(libc::ENOENT)?;
        self.fds[i].events = mask(events);
        self.tokens[i] = token;
        Ok(())
    }

    fn delete(&mut self, fd: i32) -> Result<(), i32> {
        let i = self.slot(fd).ok_or(libc::ENOENT)?;
        self.index[fd as usize] = u32::MAX;
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index[moved.fd as usize] = i as u32;
        }
        Ok(())
    }

    fn peek_is_cheap(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> Result<(), i32> {
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        let n = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = super::epoll::errno();
            return if e == libc::EINTR { Ok(()) } else { Err(e) };
        }
        if n == 0 {
            return Ok(());
        }
        for (p, &token) in self.fds.iter().zip(&self.tokens) {
            let r = p.revents;
            if r == 0 {
                continue;
            }
            let mut events = 0;
            if r & (libc::POLLIN | libc::POLLRDHUP | libc::POLLPRI) != 0 {
                events |= READ;
            }
            if r & libc::POLLOUT != 0 {
                events |= WRITE;
            }
            if r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                events |= READ | WRITE;
            }
            out.push(Ready { token, events });
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), i32> {
        self.fds.clear();
        self.tokens.clear();
        self.index.clear();
        Ok(())
    }
}
