//! Greenlet stacks: slots carved from large reserved regions, a guard (`GUARD`, 64 KiB)
//! under each, recycled through a per-hub pool.
//!
//! ```text
//!  one region (CHUNK = 64 MiB of MAP_NORESERVE address space; 4 MiB under valgrind),
//!  carved bottom-up into slots:
//!
//!  +-------+---------------------+-------+---------------------+-------+-----  ...
//!  | guard |  stack 0   ...|meta | guard |  stack 1   ...|meta | guard |  (not carved yet)
//!  +-------+---------------------+-------+---------------------+-------+-----  ...
//!  ^ slot 0 = guard + size bytes         ^ slot 1                        stacks grow down:
//!                                                                        base() = meta
//! ```
//!
//! * Guard (64 KiB, so frames with big arrays fault too): `madvise(MADV_GUARD_INSTALL)`
//!   where the kernel has it (Linux >= 6.13: no extra memory mapping per stack; the region
//!   stays one mapping), else
//!   `mprotect(PROT_NONE)` (each stack then splits the region: 2 mappings per stack).
//!   Decided once per process, on the first slot carved.
//! * Reserving a region takes a mapping from a process-wide budget counted against
//!   `/proc/sys/vm/max_map_count` (see `MAP_BUDGET`), and with `mprotect` carving a slot
//!   takes 2 more: spawn fails with `GH_ENOMEM` while a margin of mappings is still left for
//!   everyone else in the process, whatever the guard mode and the stack size.
//! * `meta` (top `META` bytes of each slot) is written at spawn: the greenlet's id, name and
//!   stack size, for the stack-overflow reporter (`crate::overflow`), which finds a faulting
//!   address's slot through the lock-free `REGIONS` table — no cost per switch.
//! * Pool policy (`StackPool::give`): a freed stack goes on its size class's *hot* list
//!   (pages kept: reuse costs no syscall). The list is trimmed to `HOT_CAP` when the hub
//!   is about to sleep in its poll (`StackPool::trim`), and while the hub is busy when it
//!   holds more than `HOT_CAP` and more than four times the stacks in use (plus `BATCH`):
//!   sorted by address, all but `HOT_CAP` give their pages back with `MADV_DONTNEED`, one
//!   range per run of adjacent slots (guard markers survive MADV_DONTNEED, and an mprotect
//!   guard page has nothing to drop), and go on the *cold* list (address space and guard
//!   page kept). Trimming late makes the runs long, and the runs of one trim go to the
//!   kernel in one `process_madvise` per 1,024 where it takes that (`dont_need`): a mass
//!   exit of greenlets costs few calls, not one per greenlet. Take prefers hot, then cold,
//!   then carves a new slot. So the touched free stacks of a class stay under
//!   `max(HOT_CAP, 4 × in use) + BATCH` while busy, `HOT_CAP` once idle; regions are
//!   unmapped when the pool drops (`gh_hub_destroy`), when no stack is in use any more.
//! * Every stack is registered with valgrind (`ValgrindStackRegistration`) while it
//!   exists as a `GhStack`, so valgrind understands the switches.
//!
//! Invariants: a `GhStack` is a slot of a region owned by the `StackPool` it came from, and
//! is given back to that pool (or dropped while the pool is being torn down, which only
//! happens once no coroutine uses any stack: `Hub::drop` discards every greenlet first).

use crate::error::{Error, Result};
use crate::fault::{self, Site};
use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};
use std::ffi::CStr;
use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

/// Default greenlet stack: 256 KiB of address space; only touched pages cost memory.
pub(crate) const DEFAULT_STACK: usize = 256 * 1024;
/// Smallest stack handed out (requests below are rounded up to it).
pub(crate) const MIN_STACK: usize = 16 * 1024;
/// Largest stack accepted; larger requests are `EINVAL`.
pub(crate) const MAX_STACK: usize = 1 << 30;
/// Address space reserved per region (more for a class whose slot is bigger). 64 MiB keeps
/// valgrind (which cannot map huge reservations) and small machines happy, and costs one
/// mmap per ~3,200 16 KiB stacks.
const CHUNK: usize = 64 << 20;
/// Under valgrind: memcheck pays per byte mapped (tens of ms for 64 MiB + headroom).
const CHUNK_VALGRIND: usize = 4 << 20;

/// `CHUNK`, or `CHUNK_VALGRIND` when the process runs under valgrind (its preload
/// library is in LD_PRELOAD: as cheap as RUNNING_ON_VALGRIND, and read once).
fn chunk() -> usize {
    if under_valgrind() {
        CHUNK_VALGRIND
    } else {
        CHUNK
    }
}

/// True when the process runs under valgrind (its preload library is in LD_PRELOAD: as
/// cheap as RUNNING_ON_VALGRIND, and read once).
fn under_valgrind() -> bool {
    static CACHED: AtomicU8 = AtomicU8::new(0);
    match CACHED.load(Ordering::Relaxed) {
        0 => {
            let vg = std::env::var_os("LD_PRELOAD")
                .is_some_and(|v| v.to_string_lossy().contains("vgpreload"));
            CACHED.store(if vg { 1 } else { 2 }, Ordering::Relaxed);
            vg
        }
        c => c == 1,
    }
}
/// Free stacks per size class kept with their pages (see the module doc).
const HOT_CAP: usize = 1024;
/// Free stacks whose pages are given back together (see the module doc).
const BATCH: usize = 256;
/// Bytes at the top of each slot holding its `SlotMeta`.
const META: usize = 64;
/// Below the meta, each slot holds its greenlet's coroutine object (`GhStack::co_slot`):
/// it never moves while the greenlet lives (the hub resumes it through a pointer), costs
/// no allocation, and shares the stack's top page, which a switch touches anyway.
/// Above the coroutine, its C++ exception globals while it does not run (`cxa_of`).
pub const CO_AREA: usize = CO_SIZE + std::mem::size_of::<crate::greenlet::CxaGlobals>();
const CO_SIZE: usize = (std::mem::size_of::<crate::greenlet::Co>() + 15) & !15;

/// Where the greenlet whose coroutine is at `co` (a `GhStack::co_slot`) keeps its C++
/// exception globals while it does not run (`Hub::swap_cxx`): right above the coroutine.
#[inline]
pub fn cxa_of(co: *mut crate::greenlet::Co) -> *mut crate::greenlet::CxaGlobals {
    co.cast::<u8>().wrapping_add(CO_SIZE).cast()
}
const MAGIC: u64 = 0x6275_686e_6565_7267; // "greenhub", little-endian
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Bytes of guard under each stack. One page only catches a frame that touches memory
/// within a page of the stack's end: a C frame with a big array (`char buf[72 KiB]` on
/// a 64 KiB stack, only its start written) jumped over it into the neighbouring slot
/// and silently changed another greenlet's stack (issue 15.3). A guard costs address
/// space only (`MADV_GUARD_INSTALL` markers, or `PROT_NONE` pages never committed), so it
/// is 64 KiB: a frame reaching up to 64 KiB below its stack's end faults.
pub(crate) const GUARD: usize = 64 * 1024;

/// The guard under each stack (`GUARD`, at least a page).
#[inline]
pub fn guard_len() -> usize {
    GUARD.max(page_size())
}

/// The page size (sysconf once per process: it was ~150 instructions per spawn).
#[inline]
pub fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p <= 0 { 4096 } else { p as usize };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// Rounds a requested size to what the pool hands out; 0 means `default`.
/// `EINVAL` above `MAX_STACK`.
pub fn normalize(size: usize, default: usize) -> Result<usize> {
    let size = if size == 0 { default } else { size };
    if size > MAX_STACK {
        return Err(Error::INVAL);
    }
    let page = page_size();
    Ok(size.max(MIN_STACK).div_ceil(page) * page)
}

/// What the overflow reporter learns about a slot (written at spawn, top of the slot).
#[repr(C)]
pub struct SlotMeta {
    pub magic: u64,
    pub id: u64,
    pub size: u64,
    /// NUL-terminated, truncated copy of the greenlet's name.
    pub name: [u8; META - 24],
}

// ---- giving pages back --------------------------------------------------------------------

/// Whether `process_madvise` on this process takes `MADV_DONTNEED`: 0 not decided yet,
/// 1 yes, 2 no (the kernel is older than 6.15's `PIDFD_SELF` or refuses it, or
/// `GREENHUB_STACK_RELEASE=madvise`: a plain madvise each).
static BATCHED_MADVISE: AtomicU8 = AtomicU8::new(0);
/// The kernel's `PIDFD_SELF_THREAD` (Linux >= 6.15): a pidfd meaning the calling thread,
/// so no fd is opened for the call.
const PIDFD_SELF_THREAD: libc::c_int = -10000;
/// `UIO_MAXIOV`: the most ranges one `process_madvise` call takes.
const MAX_IOV: usize = 1024;
/// The most bytes one `process_madvise` call is given: the kernel caps a call's iovecs at
/// `MAX_RW_COUNT` (`INT_MAX` rounded down to a page) and quietly shortens a longer list.
const MAX_BATCH_BYTES: usize = 1 << 30;

/// `ranges` cut into consecutive batches of at most `MAX_IOV` ranges and
/// `MAX_BATCH_BYTES` bytes (a range longer than that goes alone).
fn batches(ranges: &[libc::iovec]) -> impl Iterator<Item = &[libc::iovec]> {
    let mut rest = ranges;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0usize);
        while n < rest.len()
            && n < MAX_IOV
            && (n == 0 || bytes.saturating_add(rest[n].iov_len) <= MAX_BATCH_BYTES)
        {
            bytes = bytes.saturating_add(rest[n].iov_len);
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

/// Batching allowed: not turned off by `GREENHUB_STACK_RELEASE=madvise` (read until
/// decided) nor found refused.
fn batching_allowed() -> bool {
    match BATCHED_MADVISE.load(Ordering::Relaxed) {
        0 if std::env::var_os("GREENHUB_STACK_RELEASE").is_some_and(|v| v == "madvise") => {
            BATCHED_MADVISE.store(2, Ordering::Relaxed);
            false
        }
        s => s != 2,
    }
}

/// `MADV_DONTNEED` over `ranges`. With `batch`, a `process_madvise` call on this process
/// per batch (`batches`) where the kernel takes it (Linux >= 6.15), else one `madvise`
/// per range: the same effect. Each call pays a TLB flush; measured here (6.18, a VM), a
/// million 16 KiB stacks' pages given back one call each took 1.5 µs per stack, batched
/// 0.3 µs. Not under valgrind (3.19 does not know the syscall; it warns and fails it).
/// Returns the syscalls made.
///
/// # Safety
/// Every range is mapped memory of this process that nothing uses: its pages are dropped
/// and read back as zero.
unsafe fn dont_need(ranges: &[libc::iovec], batch: bool) -> usize {
    let mut calls = 0;
    for chunk in batches(ranges) {
        if batch && chunk.len() > 1 && batching_allowed() {
            let total: usize = chunk.iter().map(|r| r.iov_len).sum();
            calls += 1;
            // SAFETY: `chunk` is a valid iovec array of `chunk.len()` (<= UIO_MAXIOV)
            // entries; the ranges are the caller's promise; the pidfd is a sentinel.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    PIDFD_SELF_THREAD,
                    chunk.as_ptr(),
                    chunk.len(),
                    libc::MADV_DONTNEED,
                    0,
                )
            };
            if r >= 0 {
                // The kernel takes the call (a short count is a batch cut short).
                BATCHED_MADVISE.store(1, Ordering::Relaxed);
                if r as usize == total {
                    continue;
                }
            }
            // No such call, no PIDFD_SELF, the advice refused for this process, or a
            // seccomp filter's EPERM: never again. Anything else: this batch only.
            if r < 0
                && [libc::ENOSYS, libc::EBADF, libc::EINVAL, libc::EPERM]
                    .contains(&crate::io::errno())
            {
                BATCHED_MADVISE.store(2, Ordering::Relaxed);
            }
            // Not done (refused, failed or stopped part way): the whole batch again, one
            // range at a time (dropping pages twice is harmless).
        }
        for r in chunk {
            calls += 1;
            // SAFETY: the caller's promise for this range.
            unsafe { libc::madvise(r.iov_base, r.iov_len, libc::MADV_DONTNEED) };
        }
    }
    calls
}

// ---- guard mode --------------------------------------------------------------------------

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Guard {
    Madvise,
    Mprotect,
}

/// 0 = not probed yet, 1 = madvise, 2 = mprotect.
static GUARD_MODE: AtomicU8 = AtomicU8::new(0);

/// The process's guard mode, if probed.
pub fn guard_mode() -> Option<Guard> {
    match GUARD_MODE.load(Ordering::Relaxed) {
        1 => Some(Guard::Madvise),
        2 => Some(Guard::Mprotect),
        _ => None,
    }
}

/// `GREENHUB_STACK_GUARD=mprotect` forces the fallback (to test it on kernels that have
/// `MADV_GUARD_INSTALL`); read until the mode is decided.
fn env_mode() -> Option<Guard> {
    if std::env::var_os("GREENHUB_STACK_GUARD").is_some_and(|v| v == "mprotect") {
        GUARD_MODE.store(2, Ordering::Relaxed);
        return Some(Guard::Mprotect);
    }
    None
}

// ---- mapping budget (mprotect mode) ------------------------------------------------------

/// Mappings the pools may still add before recounting `/proc/self/maps`. Refilled (under
/// `REFILL`) with `min(room, 1024)` where room = max_map_count - margin - mappings now,
/// margin = max(max_map_count / 8, 1024): so spawn fails with `GH_ENOMEM` while at least the
/// margin is left for the rest of the process, and the file is read once per ~512 stacks.
static MAP_BUDGET: AtomicIsize = AtomicIsize::new(0);
static REFILL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Lines of a /proc file (a mapping count for /proc/self/maps), read without allocating.
fn count_lines(path: &CStr) -> Option<usize> {
    // SAFETY: path is NUL-terminated; result checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 16384];
    let mut n = 0;
    loop {
        // SAFETY: buf is writable for its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if r <= 0 {
            // SAFETY: closes the fd opened above.
            unsafe { libc::close(fd) };
            return (r == 0).then_some(n);
        }
        n += buf[..r as usize].iter().filter(|&&b| b == b'\n').count();
    }
}

/// `vm.max_map_count` (65530 when it cannot be read: the kernel default); read once.
pub fn max_map_count() -> usize {
    static CACHED: AtomicUsize = AtomicUsize::new(0);
    match CACHED.load(Ordering::Relaxed) {
        0 => {
            let n = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or(65530);
            CACHED.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// Mappings of this process now.
pub fn mapping_count() -> usize {
    count_lines(c"/proc/self/maps").unwrap_or(0)
}

/// Takes `n` mappings from the budget; false when that would eat into the margin.
fn take_mappings(n: isize, limit: usize) -> bool {
    loop {
        let b = MAP_BUDGET.load(Ordering::Relaxed);
        if b >= n {
            if MAP_BUDGET
                .compare_exchange(b, b - n, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            continue;
        }
        let _g = REFILL.lock().unwrap_or_else(|p| p.into_inner());
        if MAP_BUDGET.load(Ordering::Relaxed) >= n {
            continue; // another thread refilled
        }
        let margin = (limit / 8).max(1024);
        let room = limit as isize - margin as isize - mapping_count() as isize;
        if room < n {
            return false;
        }
        MAP_BUDGET.store(room.min(1024), Ordering::Relaxed);
    }
}

// ---- the lock-free region table (read by the SIGSEGV handler) ----------------------------

struct RegionEntry {
    /// 0 = free, 1 = being (re)written, else the region's base address.
    base: AtomicUsize,
    len: AtomicUsize,
    slot: AtomicUsize,
}

const MAX_REGIONS: usize = 16384;
#[allow(clippy::declare_interior_mutable_const)]
const FREE_ENTRY: RegionEntry = RegionEntry {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    slot: AtomicUsize::new(0),
};
static REGIONS: [RegionEntry; MAX_REGIONS] = [FREE_ENTRY; MAX_REGIONS];
/// Entries in use are all below this index.
static REGIONS_HIGH: AtomicUsize = AtomicUsize::new(0);

/// Publishes a region; `None` when the table is full (its overflows go unreported).
fn publish(base: usize, len: usize, slot: usize) -> Option<usize> {
    for (i, e) in REGIONS.iter().enumerate() {
        // (A plain load first: a full table is scanned at every region reserved — 57,000
        // 1 GiB stacks are 57,000 regions — and a locked CAS per entry made that seconds.)
        if e.base.load(Ordering::Relaxed) == 0
            && e.base
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            e.len.store(len, Ordering::Relaxed);
            e.slot.store(slot, Ordering::Relaxed);
            e.base.store(base, Ordering::Release);
            REGIONS_HIGH.fetch_max(i + 1, Ordering::AcqRel);
            return Some(i);
        }
    }
    None
}

fn unpublish(i: usize) {
    REGIONS[i].base.store(0, Ordering::Release);
}

/// What the overflow reporter prints about a fault in a guard page.
pub struct GuardHit {
    pub id: u64,
    pub size: u64,
    pub name: [u8; META - 24],
}

/// If `addr` lies in the guard page of a carved slot whose meta is set, that slot's
/// owner. Async-signal-safe: atomics and plain reads only.
pub fn guard_hit(addr: usize) -> Option<GuardHit> {
    let guard = guard_len();
    let high = REGIONS_HIGH.load(Ordering::Acquire).min(MAX_REGIONS);
    for e in &REGIONS[..high] {
        let base = e.base.load(Ordering::Acquire);
        if base <= 1 || addr < base {
            continue;
        }
        let len = e.len.load(Ordering::Relaxed);
        let slot = e.slot.load(Ordering::Relaxed);
        if e.base.load(Ordering::Acquire) != base || slot == 0 || addr - base >= len {
            continue; // rewritten meanwhile, or not in this region
        }
        let off = addr - base;
        if off % slot >= guard {
            return None; // inside a region, but not in a guard
        }
        let top = base + (off / slot + 1) * slot;
        let meta = (top - META) as *const SlotMeta;
        // SAFETY: `top - META` lies inside this published region, which stays mapped while
        // a greenlet of it runs (the only code that can fault in its guard pages); the
        // volatile reads keep the compiler from assuming anything about this memory.
        let (magic, id, size, name) = unsafe {
            (
                std::ptr::addr_of!((*meta).magic).read_volatile(),
                std::ptr::addr_of!((*meta).id).read_volatile(),
                std::ptr::addr_of!((*meta).size).read_volatile(),
                std::ptr::addr_of!((*meta).name).read_volatile(),
            )
        };
        return (magic == MAGIC).then_some(GuardHit { id, size, name });
    }
    None
}

// ---- stacks ------------------------------------------------------------------------------

/// One greenlet stack: a slot of a region (guard page + `size` bytes, meta at the top).
pub struct GhStack {
    /// End of the slot (one past its highest byte).
    top: usize,
    size: usize,
    _valgrind: ValgrindStackRegistration,
}

impl GhStack {
    fn new(slot_start: usize, slot_len: usize) -> GhStack {
        GhStack {
            top: slot_start + slot_len,
            size: slot_len - guard_len(),
            _valgrind: ValgrindStackRegistration::new(slot_start as *mut u8, slot_len),
        }
    }

    /// Usable bytes (without the guard page; the top `META` bytes hold the slot's meta).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Lowest usable address (just above the guard page).
    pub fn bottom(&self) -> usize {
        self.top - self.size
    }

    fn meta(&self) -> *mut SlotMeta {
        (self.top - META) as *mut SlotMeta
    }

    /// Records the name of who runs on this stack (truncated copy), for the overflow
    /// reporter. Call `set_owner` afterwards.
    pub fn set_name(&mut self, name: Option<&CStr>) {
        let meta = self.meta();
        let b = name.map_or(&[][..], |n| n.to_bytes());
        // SAFETY: the meta area is inside this stack's slot, writable, and not used as
        // stack (base() is below it); nothing else writes it while we own the stack.
        unsafe {
            let dst = std::ptr::addr_of_mut!((*meta).name) as *mut u8;
            let k = b.len().min(META - 24 - 1);
            std::ptr::copy_nonoverlapping(b.as_ptr(), dst, k);
            dst.add(k).write_volatile(0);
        }
    }

    /// Records the owner's id and marks the meta valid. Call before the coroutine first
    /// runs (after `set_name`).
    pub fn set_owner(&mut self, id: u64) {
        let meta = self.meta();
        // SAFETY: as in set_name.
        unsafe {
            std::ptr::addr_of_mut!((*meta).id).write_volatile(id);
            std::ptr::addr_of_mut!((*meta).size).write_volatile(self.size as u64);
            std::ptr::addr_of_mut!((*meta).magic).write_volatile(MAGIC);
        }
    }

    fn clear_owner(&mut self) {
        // SAFETY: as in set_owner.
        unsafe { std::ptr::addr_of_mut!((*self.meta()).magic).write_volatile(0) };
    }
}

/// Sets the name in the meta of a stack owned by a suspended/new coroutine.
///
/// # Safety
/// `top` must be the `top()` of a live `GhStack`.
pub unsafe fn rename(top: usize, name: &CStr) {
    let meta = (top - META) as *mut SlotMeta;
    let mut buf = [0u8; META - 24];
    let b = name.to_bytes();
    let k = b.len().min(buf.len() - 1);
    buf[..k].copy_from_slice(&b[..k]);
    // SAFETY: per the contract the meta area belongs to a live stack's slot.
    unsafe { std::ptr::addr_of_mut!((*meta).name).write_volatile(buf) };
}

impl GhStack {
    /// End of the slot; identifies the stack for `rename`.
    pub fn top(&self) -> usize {
        self.top
    }

    /// Where this slot keeps its greenlet's coroutine object (`CO_AREA` bytes, 16-byte
    /// aligned, above the stack's base: never part of the stack itself).
    pub fn co_slot(&self) -> *mut crate::greenlet::Co {
        (self.top - META - CO_AREA) as *mut crate::greenlet::Co
    }
}

// SAFETY: base and limit are 16-byte aligned bounds of a slot of a region that stays mapped
// while this value exists (module invariant); limit includes the guard page, base is
// below the slot's meta and its coroutine object.
unsafe impl Stack for GhStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.top - META - CO_AREA).expect("stack base is never null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.top - self.size - guard_len()).expect("stack limit is never null")
    }
}

// ---- regions and the pool ----------------------------------------------------------------

/// A reserved range carved into equal slots, bottom-up.
struct Region {
    base: usize,
    len: usize,
    slot: usize,
    carved: usize,
    entry: Option<usize>,
}

impl Region {
    /// Reserves a region for slots of `slot` bytes. It maps one more chunk (headroom) and
    /// gives that back at once: a reservation only succeeds while address space
    /// (RLIMIT_AS) is left for the rest of the process after it.
    ///
    /// A region is a memory mapping: it takes one from the process-wide budget in every
    /// guard mode (with 1 GiB stacks a region holds one stack, so the mappings run out
    /// before the address space: issue 15.4).
    fn reserve(slot: usize, map_limit: Option<usize>) -> Result<Region> {
        if !take_mappings(1, map_limit.unwrap_or_else(max_map_count)) {
            return Err(Error::NOMEM);
        }
        let headroom = chunk();
        let len = slot * (headroom / slot).max(1);
        if let Some(e) = fault::fail(Site::Mmap) {
            return Err(Error(-e));
        }
        let probe = len.checked_add(headroom).ok_or(Error::NOMEM)?;
        // SAFETY: anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                probe,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::NOMEM);
        }
        let base = p as usize;
        // SAFETY: gives back the headroom part of the mapping just made.
        unsafe { libc::munmap((base + len) as *mut libc::c_void, headroom) };
        Ok(Region {
            base,
            len,
            slot,
            carved: 0,
            entry: publish(base, len, slot),
        })
    }

    fn full(&self) -> bool {
        (self.carved + 1) * self.slot > self.len
    }

    /// Guards the next slot and hands it out.
    fn carve(&mut self, force: Option<Guard>, map_limit: Option<usize>) -> Result<GhStack> {
        let guard = guard_len();
        let start = self.base + self.carved * self.slot;
        let p = start as *mut libc::c_void;
        let mut mode = force.or_else(guard_mode).or_else(env_mode);
        if mode != Some(Guard::Mprotect) {
            if let Some(e) = fault::fail(Site::Madvise) {
                return Err(Error(-e));
            }
            // SAFETY: the guard (first bytes) of an uncarved slot of our own region.
            if unsafe { libc::madvise(p, guard, MADV_GUARD_INSTALL) } == 0 {
                if mode.is_none() {
                    GUARD_MODE.store(1, Ordering::Relaxed);
                }
                self.carved += 1;
                return Ok(GhStack::new(start, self.slot));
            }
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if mode == Some(Guard::Madvise) || e != libc::EINVAL {
                return Err(Error::NOMEM);
            }
            // The kernel does not know MADV_GUARD_INSTALL (< 6.13): mprotect from now on.
            GUARD_MODE.store(2, Ordering::Relaxed);
            mode = Some(Guard::Mprotect);
        }
        debug_assert_eq!(mode, Some(Guard::Mprotect));
        if !take_mappings(2, map_limit.unwrap_or_else(max_map_count)) {
            return Err(Error::NOMEM);
        }
        // SAFETY: the guard (first bytes) of an uncarved slot of our own region.
        if unsafe { libc::mprotect(p, guard, libc::PROT_NONE) } != 0 {
            return Err(Error::NOMEM);
        }
        self.carved += 1;
        Ok(GhStack::new(start, self.slot))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(i) = self.entry {
            unpublish(i);
        }
        // SAFETY: unmaps exactly the region this value reserved; no stack of it is in use
        // (module invariant).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

struct Class {
    size: usize,
    hot: Vec<GhStack>,
    cold: Vec<GhStack>,
    /// Index in `StackPool::regions` of the region being carved.
    carving: Option<usize>,
}

/// Free stacks by size class, and the regions they are carved from.
#[derive(Default)]
pub struct StackPool {
    // Field order matters: stacks (valgrind registrations) drop before their regions unmap.
    classes: Vec<Class>,
    regions: Vec<Region>,
    /// Slots carved so far (for tests and diagnostics).
    pub mapped: usize,
    /// Stacks handed out and not given back.
    pub in_use: usize,
    /// Tests: force a guard mode / a max_map_count.
    force: Option<Guard>,
    map_limit: Option<usize>,
    /// Some class may hold more than `HOT_CAP` hot stacks (set by `give`): `trim` has
    /// work (the hub's poll asks each time it is about to sleep).
    over_cap: bool,
}

impl StackPool {
    /// A stack of exactly `size` (normalized) bytes: hot, cold, else carved.
    #[inline]
    pub fn take(&mut self, size: usize) -> Result<GhStack> {
        if let Some(c) = self.classes.iter_mut().find(|c| c.size == size) {
            if let Some(st) = c.hot.pop() {
                self.in_use += 1;
                return Ok(st);
            }
        }
        self.take_slow(size)
    }

    #[cold]
    #[inline(never)]
    fn take_slow(&mut self, size: usize) -> Result<GhStack> {
        let ci = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    size,
                    hot: Vec::new(),
                    cold: Vec::new(),
                    carving: None,
                });
                self.classes.len() - 1
            }
        };
        let class = &mut self.classes[ci];
        if let Some(st) = class.hot.pop().or_else(|| class.cold.pop()) {
            self.in_use += 1;
            return Ok(st);
        }
        let slot = size.checked_add(guard_len()).ok_or(Error::NOMEM)?;
        let ri = match class.carving {
            Some(r) if !self.regions[r].full() => r,
            _ => {
                self.regions.push(Region::reserve(slot, self.map_limit)?);
                class.carving = Some(self.regions.len() - 1);
                self.regions.len() - 1
            }
        };
        let st = self.regions[ri].carve(self.force, self.map_limit)?;
        self.mapped += 1;
        self.in_use += 1;
        Ok(st)
    }

    /// Returns a stack no coroutine uses any more (policy in the module doc).
    pub fn give(&mut self, mut st: GhStack) {
        self.in_use -= 1;
        let Some(class) = self.classes.iter_mut().find(|c| c.size == st.size) else {
            debug_assert!(false, "a stack is given back to the pool it came from");
            return;
        };
        st.clear_owner();
        class.hot.push(st);
        let n = class.hot.len();
        if n > HOT_CAP {
            self.over_cap = true;
            if n >= HOT_CAP + BATCH && n >= 4 * self.in_use + BATCH {
                Self::cool(class);
            }
        }
    }

    /// Before the hub sleeps: every class back to `HOT_CAP` touched free stacks.
    #[inline]
    pub fn trim(&mut self) {
        if std::mem::take(&mut self.over_cap) {
            for c in self.classes.iter_mut().filter(|c| c.hot.len() > HOT_CAP) {
                Self::cool(c);
            }
        }
    }

    /// Gives back the pages of all but `HOT_CAP` hot stacks of `class` (module doc).
    #[cold]
    fn cool(class: &mut Class) {
        class.hot.sort_unstable_by_key(|s| s.bottom());
        let mut batch: Vec<GhStack> = class.hot.drain(HOT_CAP..).collect();
        if fault::fail(Site::Madvise).is_none() {
            let mut runs = Vec::new();
            let mut i = 0;
            while i < batch.len() {
                // A run of slots that follow each other in one region: one range.
                let start = batch[i].bottom();
                let mut end = batch[i].top;
                let mut j = i + 1;
                while j < batch.len() && batch[j].bottom() == end + guard_len() {
                    end = batch[j].top;
                    j += 1;
                }
                runs.push(libc::iovec {
                    iov_base: start as *mut libc::c_void,
                    iov_len: end - start,
                });
                i = j;
            }
            // SAFETY: each run covers free slots of this pool only (their usable parts and
            // the guard pages between them); nobody runs on them, their pages read back as
            // zero, and guard markers / PROT_NONE pages stay as they are.
            unsafe { dont_need(&runs, !under_valgrind()) };
        }
        class.cold.append(&mut batch);
    }

    /// Free stacks kept with their pages, and without, over all classes.
    pub fn free_counts(&self) -> (usize, usize) {
        self.classes
            .iter()
            .fold((0, 0), |(h, c), cl| (h + cl.hot.len(), c + cl.cold.len()))
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
        pool.give(s2);
        assert_eq!(pool.in_use, 0);
    }

    #[test]
    fn slots_are_adjacent_and_guarded() {
        let mut pool = StackPool::default();
        let a = pool.take(MIN_STACK).unwrap();
        let b = pool.take(MIN_STACK).unwrap();
        let page = guard_len();
        assert_eq!(b.bottom(), a.top() + page);
        // The guard page of b is recognised; a's usable bytes are not a guard.
        let mut b = b;
        b.set_name(Some(c"worker"));
        b.set_owner(77);
        let hit = guard_hit(b.bottom() - 1).expect("guard page of b");
        assert_eq!((hit.id, hit.size), (77, MIN_STACK as u64));
        assert_eq!(&hit.name[..7], b"worker\0");
        assert!(guard_hit(b.bottom()).is_none());
        assert!(guard_hit(a.bottom() + 100).is_none());
        // a has no owner yet: its guard page is not reported.
        assert!(guard_hit(a.bottom() - page).is_none());
        pool.give(a);
        pool.give(b);
    }

    #[test]
    fn region_table_forgets_dropped_pools() {
        let addr;
        {
            let mut pool = StackPool::default();
            let mut s = pool.take(MIN_STACK).unwrap();
            s.set_name(None);
            s.set_owner(1);
            addr = s.bottom() - 1;
            assert!(guard_hit(addr).is_some());
            pool.give(s);
        }
        assert!(guard_hit(addr).is_none());
    }

    #[test]
    fn hot_list_is_capped_and_cold_stacks_are_zeroed() {
        let mut pool = StackPool::default();
        let size = MIN_STACK + page_size();
        let mut v: Vec<GhStack> = (0..HOT_CAP + BATCH)
            .map(|_| pool.take(size).unwrap())
            .collect();
        for s in &mut v {
            s.set_owner(5);
            // SAFETY: writes inside the usable part of a stack we own and nobody runs on.
            unsafe { *((s.bottom() + 8) as *mut u64) = 0xdead_beef };
        }
        let mut bottoms: Vec<usize> = v.iter().map(|s| s.bottom()).collect();
        bottoms.sort_unstable();
        let mut v = v.into_iter();
        for s in v.by_ref().take(HOT_CAP + BATCH - 1) {
            pool.give(s);
        }
        assert_eq!(pool.free_counts(), (HOT_CAP + BATCH - 1, 0));
        pool.give(v.next().unwrap());
        assert_eq!(pool.free_counts(), (HOT_CAP, BATCH));
        assert_eq!(pool.in_use, 0);
        // The BATCH highest went cold: their pages read back as zero. (The guard
        // pages between them, covered by the merged madvise, keep guarding: MADV_DONTNEED
        // leaves MADV_GUARD_INSTALL markers in place — checked on Linux 6.18 by touching
        // a guard page in a forked child after such a call: SIGSEGV.)
        for &b in &bottoms[HOT_CAP..] {
            // SAFETY: still mapped (the pool owns the region); nobody uses the slot.
            assert_eq!(unsafe { *((b + 8) as *const u64) }, 0);
        }
        // The hot ones kept theirs.
        for &b in &bottoms[..HOT_CAP] {
            // SAFETY: as above.
            assert_eq!(unsafe { *((b + 8) as *const u64) }, 0xdead_beef);
        }
        assert_eq!(pool.mapped, HOT_CAP + BATCH);
    }

    /// A fresh private anonymous read-write mapping of `len` bytes, with `extra` flags;
    /// its address (the test unmaps it).
    fn anon_map(len: usize, extra: libc::c_int) -> usize {
        // SAFETY: a new mapping at an address the kernel picks; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p as usize
    }

    #[test]
    fn dont_need_drops_exactly_its_ranges_batched_or_not() {
        // Every other page of a private mapping, more ranges than one batch takes: the
        // listed pages read back as zero, their neighbours keep their bytes, both ways.
        let page = page_size();
        let pages = 2 * MAX_IOV + 6;
        for batch in [true, false] {
            let base = anon_map(pages * page, 0);
            // SAFETY: inside the mapping just made.
            unsafe { std::ptr::write_bytes(base as *mut u8, 0xab, pages * page) };
            let ranges: Vec<libc::iovec> = (0..pages)
                .step_by(2)
                .map(|i| libc::iovec {
                    iov_base: (base + i * page) as *mut libc::c_void,
                    iov_len: page,
                })
                .collect();
            assert!(ranges.len() > MAX_IOV);
            // SAFETY: pages of our own mapping that nothing else uses.
            let calls = unsafe { dont_need(&ranges, batch) };
            for i in 0..pages {
                // SAFETY: inside the mapping.
                let (first, last) = unsafe {
                    (
                        *((base + i * page) as *const u8),
                        *((base + (i + 1) * page - 1) as *const u8),
                    )
                };
                let want = if i.is_multiple_of(2) { 0 } else { 0xab };
                assert_eq!((first, last), (want, want), "page {i}, batch {batch}");
            }
            if !batch {
                assert_eq!(calls, ranges.len());
            } else if BATCHED_MADVISE.load(Ordering::Relaxed) == 1 {
                // Where the kernel takes it (Linux >= 6.15): a call per MAX_IOV ranges.
                assert_eq!(calls, ranges.len().div_ceil(MAX_IOV));
            }
            // SAFETY: unmaps the mapping made above.
            unsafe { libc::munmap(base as *mut libc::c_void, pages * page) };
        }
    }

    #[test]
    fn batches_stay_under_the_kernels_count_and_byte_caps() {
        let iov = |len: usize| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: len,
        };
        let sizes = |v: &[libc::iovec]| -> Vec<usize> { batches(v).map(|b| b.len()).collect() };
        // By count: 1,024 ranges a batch.
        let small: Vec<_> = (0..3000).map(|_| iov(4096)).collect();
        assert_eq!(sizes(&small), [1024, 1024, 952]);
        // By bytes: 1 GiB a batch; a longer range alone.
        let mib = 1 << 20;
        let big: Vec<_> = [600, 600, 300, 124, 1, 3072, 64]
            .iter()
            .map(|&m| iov(m * mib))
            .collect();
        assert_eq!(sizes(&big), [1, 3, 1, 1, 1]);
        for b in batches(&big) {
            let bytes: usize = b.iter().map(|r| r.iov_len).sum();
            assert!(b.len() == 1 || bytes <= MAX_BATCH_BYTES);
        }
        assert_eq!(batches(&[]).count(), 0);
    }

    #[test]
    fn dont_need_past_the_kernels_byte_cap() {
        // 3 GiB of reserved, mostly untouched address space in 64 MiB ranges (a mass exit
        // over whole regions): one byte touched in each range reads back zero, and where
        // the kernel batches, one call per GiB (a single call would stop at ~2 GiB).
        let len = 3usize << 30;
        let step = 64usize << 20;
        let base = anon_map(len, libc::MAP_NORESERVE);
        let ranges: Vec<libc::iovec> = (0..len / step)
            .map(|i| {
                let start = base + i * step;
                // SAFETY: inside the reservation.
                unsafe { *((start + step - 1) as *mut u8) = 7 };
                libc::iovec {
                    iov_base: start as *mut libc::c_void,
                    iov_len: step,
                }
            })
            .collect();
        // SAFETY: our own reservation, used by nothing else.
        let calls = unsafe { dont_need(&ranges, true) };
        for r in &ranges {
            // SAFETY: inside the reservation.
            let last = unsafe { *((r.iov_base as usize + step - 1) as *const u8) };
            assert_eq!(last, 0);
        }
        if BATCHED_MADVISE.load(Ordering::Relaxed) == 1 {
            assert_eq!(calls, 3);
        }
        // SAFETY: unmaps the reservation made above.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }

    #[test]
    fn mprotect_mode_counts_mappings_and_stops_before_the_limit() {
        // Other tests of this process map and unmap concurrently: measure until one
        // attempt is undisturbed (a wrong count would be wrong every time).
        let mut seen = Vec::new();
        let (mut pool, v) = loop {
            let mut pool = StackPool {
                force: Some(Guard::Mprotect),
                ..StackPool::default()
            };
            let before = mapping_count();
            let v: Vec<GhStack> = (0..8).map(|_| pool.take(MIN_STACK).unwrap()).collect();
            let added = mapping_count() - before;
            if (15..=17).contains(&added) {
                break (pool, v);
            }
            seen.push(added);
            assert!(seen.len() < 20, "8 mprotect stacks added {seen:?} mappings");
            for s in v {
                pool.give(s);
            }
        };
        // A max_map_count just above what exists now: the margin refuses more stacks.
        let mut tight = StackPool {
            force: Some(Guard::Mprotect),
            map_limit: Some(mapping_count() + 1024 + 4),
            ..StackPool::default()
        };
        MAP_BUDGET.store(0, Ordering::Relaxed);
        let mut got = Vec::new();
        let err = loop {
            match tight.take(MIN_STACK) {
                Ok(s) => got.push(s),
                Err(e) => break e,
            }
            assert!(got.len() < 100, "the mapping budget never ran out");
        };
        assert_eq!(err, Error::NOMEM);
        for s in got {
            tight.give(s);
        }
        MAP_BUDGET.store(0, Ordering::Relaxed);
        for s in v {
            pool.give(s);
        }
    }
}
