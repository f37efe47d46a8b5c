//! Greenlet stacks: mmap'd regions with a guard page, recycled through a per-hub pool.
//!
//! ```text
//!  high  +------------------+ <- base()   (stack grows down)
//!        |   usable stack   |
//!        |       ...        |
//!        +------------------+
//!        |    guard page    |  PROT_NONE (mprotect) or MADV_GUARD_INSTALL (Linux >= 6.13)
//!  low   +------------------+ <- limit()
//! ```
//!
//! Invariants: a `GhStack` owns its mapping and unmaps it on drop; a stack in the
//! pool is not used by any coroutine. Spawning at steady state takes stacks from the
//! pool, so it costs no mmap/munmap. Stacks are registered with valgrind so it
//! understands the switches.

use crate::error::{Error, Result};
use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};
use std::sync::atomic::{AtomicBool, Ordering};

/// Default greenlet stack: 256 KiB of address space; only touched pages cost memory.
pub(crate) const DEFAULT_STACK: usize = 256 * 1024;
/// Smallest stack handed out (requests below are rounded up to it).
pub(crate) const MIN_STACK: usize = 16 * 1024;
/// Largest stack accepted; larger requests are `EINVAL`.
pub(crate) const MAX_STACK: usize = 1 << 30;
/// Free stacks kept per size class.
const POOL_CAP: usize = 1024;

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// Rounds a requested size to what `GhStack::new` allocates; 0 means `default`.
/// `EINVAL` above `MAX_STACK`.
pub fn normalize(size: usize, default: usize) -> Result<usize> {
    let size = if size == 0 { default } else { size };
    if size > MAX_STACK {
        return Err(Error::INVAL);
    }
    let page = page_size();
    Ok(size.max(MIN_STACK).div_ceil(page) * page)
}

const MADV_GUARD_INSTALL: libc::c_int = 102;
static GUARD_MADVISE_WORKS: AtomicBool = AtomicBool::new(true);

/// One greenlet stack and its guard page.
pub struct GhStack {
    base: usize,
    len: usize,
    _valgrind: ValgrindStackRegistration,
}

impl GhStack {
    /// Maps `size` usable bytes (already normalized) plus a guard page.
    pub fn new(size: usize) -> Result<GhStack> {
        let page = page_size();
        let len = size.checked_add(page).ok_or(Error::NOMEM)?;
        // SAFETY: anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::NOMEM);
        }
        let stack = GhStack {
            base: p as usize + len,
            len,
            _valgrind: ValgrindStackRegistration::new(p as *mut u8, len),
        };
        let mut guarded = false;
        if GUARD_MADVISE_WORKS.load(Ordering::Relaxed) {
            // SAFETY: the first page of our own fresh mapping.
            guarded = unsafe { libc::madvise(p, page, MADV_GUARD_INSTALL) } == 0;
            if !guarded {
                GUARD_MADVISE_WORKS.store(false, Ordering::Relaxed);
            }
        }
        // SAFETY: the first page of our own fresh mapping.
        if !guarded && unsafe { libc::mprotect(p, page, libc::PROT_NONE) } != 0 {
            return Err(Error::NOMEM); // drop unmaps
        }
        Ok(stack)
    }

    /// Usable bytes (without the guard page).
    pub fn size(&self) -> usize {
        self.len - page_size()
    }

    /// Lowest usable address (just above the guard page).
    pub fn bottom(&self) -> usize {
        self.base - self.size()
    }
}

impl Drop for GhStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns.
        unsafe { libc::munmap((self.base - self.len) as *mut libc::c_void, self.len) };
    }
}

// SAFETY: base and limit are page aligned (hence STACK_ALIGNMENT aligned) bounds of a mapping
// this value owns for its whole life; limit includes the guard page.
unsafe impl Stack for GhStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.base).expect("stack base is never null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.base - self.len).expect("stack limit is never null")
    }
}

/// Free stacks by size, so spawn at steady state does no mmap.
#[derive(Default)]
pub struct StackPool {
    classes: Vec<(usize, Vec<GhStack>)>,
    /// Stacks mapped so far (for tests and diagnostics).
    pub mapped: usize,
}

impl StackPool {
    /// A stack of exactly `size` (normalized) bytes: from the pool, else fresh.
    pub fn take(&mut self, size: usize) -> Result<GhStack> {
        if let Some((_, v)) = self.classes.iter_mut().find(|(s, _)| *s == size) {
            if let Some(st) = v.pop() {
                return Ok(st);
            }
        }
        let st = GhStack::new(size)?;
        self.mapped += 1;
        Ok(st)
    }

    /// Returns a stack no coroutine uses any more.
    pub fn give(&mut self, st: GhStack) {
        let size = st.size();
        let class = match self.classes.iter().position(|(s, _)| *s == size) {
            Some(i) => i,
            None => {
                self.classes.push((size, Vec::new()));
                self.classes.len() - 1
            }
        };
        let v = &mut self.classes[class].1;
        if v.len() < POOL_CAP {
            v.push(st);
        } else {
            self.mapped -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_clamps_and_rejects() {
        let page = page_size();
        assert_eq!(normalize(0, DEFAULT_STACK).unwrap(), DEFAULT_STACK);
        assert_eq!(normalize(1, DEFAULT_STACK).unwrap(), MIN_STACK);
        assert_eq!(
            normalize(MIN_STACK + 1, DEFAULT_STACK).unwrap(),
            MIN_STACK + page
        );
        assert_eq!(normalize(usize::MAX, DEFAULT_STACK), Err(Error::INVAL));
    }

    #[test]
    fn pool_reuses_stacks() {
        let mut pool = StackPool::default();
        let s = pool.take(MIN_STACK).unwrap();
        let bottom = s.bottom();
        assert_eq!(s.size(), MIN_STACK);
        pool.give(s);
        let s2 = pool.take(MIN_STACK).unwrap();
        assert_eq!(s2.bottom(), bottom);
        assert_eq!(pool.mapped, 1);
    }
}
