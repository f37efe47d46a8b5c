//! The Linux default backend: epoll through `libc`, one `epoll_wait` per loop iteration.

use super::{Backend, Ready, READ, WRITE};

pub struct Epoll {
    epfd: i32,
    /// `super::file_id` of `epfd` when it was made (checked before closing after fork).
    id: Option<(u64, u64)>,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> Result<Epoll, i32> {
        let epfd = Self::create()?;
        Ok(Epoll {
            epfd,
            id: super::file_id(epfd),
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    fn ctl(&mut self, op: i32, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        let mut flags = 0u32;
        if events & READ != 0 {
            flags |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        }
        if events & WRITE != 0 {
            flags |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event {
            events: flags,
            u64: token,
        };
        if let Some(e) = crate::fault::fail(crate::fault::Site::EpollCtl) {
            return Err(e);
        }
        // SAFETY: ev is a valid epoll_event for the duration of the call.
        if unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) } < 0 {
            return Err(errno());
        }
        Ok(())
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

impl Backend for Epoll {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn c_name(&self) -> &'static std::ffi::CStr {
        c"epoll"
    }

    fn fresh(&self) -> Result<Box<dyn Backend>, i32> {
        Ok(Box::new(Epoll::new()?))
    }

    fn fd(&self) -> i32 {
        self.epfd
    }

    fn add(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    fn modify(&mut self, fd: i32, token: u64, events: u8) -> Result<(), i32> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    fn delete(&mut self, fd: i32) -> Result<(), i32> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn reset(&mut self) -> Result<(), i32> {
        let fresh = Self::create()?;
        if self.epfd >= 0 {
            // SAFETY: closes the epoll fd this value owns; it is replaced at once.
            unsafe { libc::close(self.epfd) };
        }
        self.epfd = fresh;
        self.id = super::file_id(fresh);
        Ok(())
    }

    /// After fork: closes this process's copy of the epoll fd (which leaves the parent's
    /// set alone) only if the number still holds it.
    fn abandon(mut self: Box<Self>) {
        if super::file_id(self.epfd) != self.id {
            self.epfd = -1;
        }
    }

    fn disown(&mut self, _err: i32) {
        self.epfd = -1;
    }

    fn peek_is_cheap(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> Result<(), i32> {
        // SAFETY: buf has buf.len() initialised epoll_event slots the kernel may overwrite.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd,
                self.buf.as_mut_ptr(),
                self.buf.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = errno();
            return if e == libc::EINTR { Ok(()) } else { Err(e) };
        }
        for ev in &self.buf[..n as usize] {
            let f = ev.events;
            let mut events = 0;
            if f & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 != 0 {
                events |= READ;
            }
            if f & libc::EPOLLOUT as u32 != 0 {
                events |= WRITE;
            }
            if f & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                events |= READ | WRITE;
            }
            out.push(Ready {
                token: ev.u64,
                events,
            });
        }
        if n as usize == self.buf.len() && self.buf.len() < 4096 {
            let len = self.buf.len() * 2;
            self.buf
                .resize(len, libc::epoll_event { events: 0, u64: 0 });
        }
        Ok(())
    }
}

impl Epoll {
    fn create() -> Result<i32, i32> {
        if let Some(e) = crate::fault::fail(crate::fault::Site::EpollCreate) {
            return Err(e);
        }
        // SAFETY: plain syscall; result checked.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            Err(errno())
        } else {
            Ok(epfd)
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        if self.epfd >= 0 {
            // SAFETY: closes the epoll fd this value owns.
            unsafe { libc::close(self.epfd) };
        }
    }
}
