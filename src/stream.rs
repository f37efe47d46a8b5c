//! Buffered streams over an fd (gevent's socket.makefile / asyncio's StreamReader):
//! `read_until` / `readline` / `read_exact` / `read` through a bounded buffer. (The
//! write that reports how many bytes went out when it fails is `io`'s
//! `Hub::write_counted`.)
//!
//! A stream (`HubState::net.streams`) does not own its fd. Invariants:
//! * The buffer holds `buf[start..end]` unread bytes; it grows (doubling from 4 KiB) up
//!   to `max` and never beyond: a delimiter not found within `max` bytes is `EMSGSIZE`,
//!   never unbounded growth.
//! * While a greenlet waits in a read, the stream is `busy` and the kernel writes
//!   straight into the buffer's spare room: nobody may touch the buffer then. Another
//!   read (a second reader) and `close` get `EBUSY`; hub teardown frees the buffer of a
//!   greenlet that will never resume, so nothing Rust-owned lives on its stack.
//! * End of file: 0 when nothing is buffered (a clean end between records), `EEOF`
//!   when a record was cut short (what came stays buffered for `read`).

use crate::error::{Error, Result, EEOF};
use crate::hub::Hub;
use crate::io::Deadline;
use crate::server::{insert_sub, Sub, Take};
use std::ffi::c_void;

pub(crate) const DEFAULT_MAX: usize = 64 * 1024;
const FIRST_ALLOC: usize = 4096;

pub struct Stream {
    fd: i32,
    max: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    busy: bool,
}

/// The first occurrence of `needle` (not empty) in `hay`: memchr for its first byte,
/// then a byte loop over the rest (a delimiter is a few bytes: a memcmp call per
/// candidate position cost the HTTP server ~40 % of its instructions).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        // SAFETY: i <= last_start < hay.len(), so the range [i, last_start] searched
        // (last_start - i + 1 bytes) lies inside `hay`.
        let p = unsafe {
            libc::memchr(
                hay.as_ptr().add(i) as *const libc::c_void,
                first as i32,
                last_start - i + 1,
            )
        };
        if p.is_null() {
            return None;
        }
        let j = p as usize - hay.as_ptr() as usize;
        if hay[j + 1..j + needle.len()]
            .iter()
            .zip(rest)
            .all(|(a, b)| a == b)
        {
            return Some(j);
        }
        i = j + 1;
    }
    None
}

impl Hub {
    pub fn stream_new(&self, fd: i32, max: usize) -> Result<u64> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        let max = if max == 0 { DEFAULT_MAX } else { max };
        let s = Stream {
            fd,
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
            busy: false,
        };
        let (slot, gen) = insert_sub(&mut self.st.borrow_mut().net.streams, s)?;
        Ok(self.net_handle(Sub::Stream, slot, gen))
    }

    pub fn stream_check(&self, raw: u64) -> Result<(u32, u32)> {
        let (slot, gen) = self.net_check(raw, Sub::Stream)?;
        match self.st.borrow().net.streams.get(slot, gen) {
            Some(_) => Ok((slot, gen)),
            None => Err(Error::BADHANDLE),
        }
    }

    pub fn stream_close(&self, slot: u32, gen: u32) -> Result<()> {
        let mut st = self.st.borrow_mut();
        match st.net.streams.get(slot, gen) {
            None => return Err(Error::BADHANDLE),
            Some(s) if s.busy => return Err(Error::BUSY),
            Some(_) => {}
        }
        st.net.streams.take(slot, gen);
        Ok(())
    }

    pub fn stream_buffered(&self, slot: u32, gen: u32) -> Result<usize> {
        let st = self.st.borrow();
        let s = st.net.streams.get(slot, gen).ok_or(Error::BADHANDLE)?;
        Ok(s.end - s.start)
    }

    /// Reads more into the buffer (one read). Returns the bytes added, 0 at end of file;
    /// `EMSGSIZE` when the buffer is full at `max`.
    fn stream_fill(&self, slot: u32, gen: u32, dl: &Deadline) -> Result<usize> {
        let (fd, ptr, room) = {
            let mut st = self.st.borrow_mut();
            let s = st.net.streams.get_mut(slot, gen).ok_or(Error::BADHANDLE)?;
            if s.busy {
                return Err(Error::BUSY);
            }
            if s.start > 0 {
                s.buf.copy_within(s.start..s.end, 0);
                s.end -= s.start;
                s.start = 0;
            }
            if s.end == s.buf.len() {
                if s.buf.len() >= s.max {
                    return Err(Error(-libc::EMSGSIZE));
                }
                let want = (s.buf.len() * 2).max(FIRST_ALLOC).min(s.max);
                s.buf.resize(want, 0);
            }
            s.busy = true;
            // SAFETY: end < buf.len(): the pointer stays inside the allocation.
            let ptr = unsafe { s.buf.as_mut_ptr().add(s.end) };
            (s.fd, ptr, s.buf.len() - s.end)
        };
        // SAFETY: ptr is writable for room bytes: the buffer is neither resized nor freed
        // while busy (close refuses; only hub teardown frees it, and this greenlet never
        // resumes then).
        let r = unsafe { self.read_by(fd, ptr as *mut c_void, room, dl) };
        let mut st = self.st.borrow_mut();
        if let Some(s) = st.net.streams.get_mut(slot, gen) {
            s.busy = false;
            if let Ok(n) = r {
                s.end += n as usize;
            }
        }
        r.map(|n| n as usize)
    }

    /// Takes up to `len` buffered bytes into `out`; returns how many.
    ///
    /// # Safety
    /// `out` writable for `len` bytes.
    unsafe fn stream_take(&self, slot: u32, gen: u32, out: *mut u8, len: usize) -> usize {
        let mut st = self.st.borrow_mut();
        let Some(s) = st.net.streams.get_mut(slot, gen) else {
            return 0;
        };
        let n = len.min(s.end - s.start);
        // SAFETY: out is writable for len >= n bytes; the source is n buffered bytes.
        unsafe { std::ptr::copy_nonoverlapping(s.buf.as_ptr().add(s.start), out, n) };
        s.start += n;
        n
    }

    /// gh_stream_read: buffered bytes first, else one read.
    ///
    /// # Safety
    /// `out` writable for `len` bytes.
    pub unsafe fn stream_read(
        &self,
        slot: u32,
        gen: u32,
        out: *mut u8,
        len: usize,
        timeout: Option<u64>,
    ) -> Result<usize> {
        if self.stream_buffered(slot, gen)? == 0
            && self.stream_fill(slot, gen, &Deadline::new(timeout))? == 0
        {
            return Ok(0);
        }
        // SAFETY: per this function's contract.
        Ok(unsafe { self.stream_take(slot, gen, out, len) })
    }

    /// gh_stream_read_exact: exactly `len` bytes (at most `max`).
    ///
    /// # Safety
    /// `out` writable for `len` bytes.
    pub unsafe fn stream_read_exact(
        &self,
        slot: u32,
        gen: u32,
        out: *mut u8,
        len: usize,
        timeout: Option<u64>,
    ) -> Result<usize> {
        let max = self
            .st
            .borrow()
            .net
            .streams
            .get(slot, gen)
            .ok_or(Error::BADHANDLE)?
            .max;
        if len > max {
            return Err(Error(-libc::EMSGSIZE));
        }
        let dl = Deadline::new(timeout);
        loop {
            let have = self.stream_buffered(slot, gen)?;
            if have >= len {
                // SAFETY: per this function's contract.
                return Ok(unsafe { self.stream_take(slot, gen, out, len) });
            }
            if self.stream_fill(slot, gen, &dl)? == 0 {
                return if have == 0 { Ok(0) } else { Err(Error(EEOF)) };
            }
        }
    }

    /// gh_stream_read_until: the bytes through the first `delim`, into `out`.
    ///
    /// # Safety
    /// `out` writable for `len` bytes.
    pub unsafe fn stream_read_until(
        &self,
        slot: u32,
        gen: u32,
        delim: &[u8],
        out: *mut u8,
        len: usize,
        timeout: Option<u64>,
    ) -> Result<usize> {
        let dl = Deadline::new(timeout);
        let mut scanned = 0; // bytes of the unread data known to hold no delimiter start
        loop {
            let found = {
                let st = self.st.borrow();
                let s = st.net.streams.get(slot, gen).ok_or(Error::BADHANDLE)?;
                let data = &s.buf[s.start..s.end];
                find(&data[scanned..], delim)
                    .map(|i| scanned + i + delim.len())
                    .ok_or(data.len())
            };
            match found {
                Ok(total) if total > len => return Err(Error(-libc::EMSGSIZE)),
                Ok(total) => {
                    // SAFETY: per this function's contract; total <= len.
                    return Ok(unsafe { self.stream_take(slot, gen, out, total) });
                }
                Err(have) => {
                    scanned = (have + 1).saturating_sub(delim.len());
                    match self.stream_fill(slot, gen, &dl) {
                        Ok(0) if have == 0 => return Ok(0),
                        Ok(0) => return Err(Error(EEOF)),
                        Ok(_) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    fn naive(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn find_matches_the_naive_search() {
        let hays: [&[u8]; 7] = [
            b"",
            b"\r",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nnext",
            b"\r\n\r\r\n\r\n",
            b"\r\n\r",
            b"abc\r\n\r\n",
            b"\r\n\r\n",
        ];
        let needles: [&[u8]; 4] = [b"\r\n\r\n", b"\n", b"\r\n", b"x"];
        for h in hays {
            for n in needles {
                assert_eq!(find(h, n), naive(h, n), "{h:?} {n:?}");
            }
        }
        assert_eq!(find(b"abc", b""), None);
        // Every split of a longer text, so the needle straddles each position.
        let text = b"a\r\nb\r\n\r\nc\r\n\r\n";
        for k in 0..text.len() {
            assert_eq!(
                find(&text[k..], b"\r\n\r\n"),
                naive(&text[k..], b"\r\n\r\n")
            );
        }
    }
}
