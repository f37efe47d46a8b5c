//! Timers: a 4-ary min-heap of (deadline, start order) with the deadlines inline.
//!
//! An entry is 16 bytes (deadline, watcher slot, start stamp) and the heap is laid out
//! so that the four children of a node fill one 64-byte cache line: the storage starts
//! `off` (0..=3) entries before logical index 0, chosen from the buffer's address so
//! that each group of children (`4i + 1 ..= 4i + 4`) starts on a cache line (libev's
//! `HEAP0` idea, but checked against the real address; re-chosen, with one move of the
//! entries, when the buffer is reallocated). The buffer is a plain `Vec` of 8-byte
//! aligned entries, so growing it is a `realloc` (an `mremap`, no copy, for a big one).
//!
//! `pos[slot]` is the logical index of the slot's entry, in 3 bytes (a hub has at most
//! 2^24 watcher slots, so at most 2^24 entries: 1 MB less per million timers). It is
//! only meaningful while the entry at that index names the slot (each slot is in the
//! heap at most once), so firing a timer does not write it (one random memory access
//! fewer per timer) and a slot that was never scheduled needs no sentinel.
//!
//! Equal deadlines fire in start order: `seq` is a 32-bit start stamp; when the counter
//! would wrap, the live entries are renumbered in their order (once per 2^32 starts),
//! so stamps always compare in start order.
//!
//! Removing the root (every fired timer) walks the hole down to a leaf along the
//! smallest children (a branch-free pick of the smallest of four: for random deadlines
//! a branch would mispredict half the time) while prefetching the next level's four
//! groups, then sifts the heap's last entry up from there: it belongs near the bottom,
//! so that is about half the comparisons of a plain sift-down. No operation allocates
//! once the vectors have grown to the peak number of timers.

const NONE: u32 = u32::MAX;

// Heap indices are stored in 24 bits: there are never more entries than watcher slots.
const _: () = assert!(crate::handle::MAX_SLOTS <= 1 << 24);

/// `slot` and `seq` first: on little-endian machines the key below is then the entry's
/// 16 bytes as they lie in memory (two loads, no shifting). Aligned to 16 so that an
/// entry moves as one 16-byte load and store (and the buffer is 16-byte aligned: still
/// a plain malloc/realloc).
#[derive(Copy, Clone, Debug)]
#[repr(C, align(16))]
struct Entry {
    slot: u32,
    seq: u32,
    at: u64,
}

impl Entry {
    const EMPTY: Entry = Entry {
        slot: NONE,
        seq: 0,
        at: 0,
    };

    /// The ordering key: deadline, then start stamp (one comparison, no branch). The
    /// slot in the low bits never decides: no two live entries share a stamp.
    #[inline(always)]
    fn key(&self) -> u128 {
        ((self.at as u128) << 64) | ((self.seq as u128) << 32) | self.slot as u128
    }

    #[inline(always)]
    fn before(&self, o: &Entry) -> bool {
        self.key() < o.key()
    }
}

#[derive(Default)]
pub struct Timers {
    /// `off` padding entries, then the heap: logical entry `i` is `heap[off + i]`.
    heap: Vec<Entry>,
    off: usize,
    /// Logical heap index of each slot's entry, little-endian 24 bits (see the module
    /// comment).
    pos: Vec<[u8; 3]>,
    /// The last start stamp handed out.
    seq: u32,
}

impl Timers {
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len() - self.off
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `i`; `i < self.len()`.
    #[inline(always)]
    fn get(&self, i: usize) -> Entry {
        debug_assert!(i < self.len());
        // SAFETY: every caller passes i < len(), so off + i < heap.len().
        unsafe { *self.heap.get_unchecked(self.off + i) }
    }

    /// Stores `e` as entry `i` (`i < self.len()`, `e` an entry of the heap: its slot
    /// went through `insert`, which sized `pos` for it) and records its index.
    #[inline(always)]
    fn put(&mut self, i: usize, e: Entry) {
        debug_assert!(i < self.len() && (e.slot as usize) < self.pos.len());
        let b = (i as u32).to_le_bytes();
        // SAFETY: off + i < heap.len() and slot < pos.len() (pos never shrinks), as
        // above.
        unsafe {
            *self.heap.get_unchecked_mut(self.off + i) = e;
            *self.pos.get_unchecked_mut(e.slot as usize) = [b[0], b[1], b[2]];
        }
    }

    /// The logical index of `slot`'s entry, if it is scheduled.
    #[inline]
    fn index(&self, slot: u32) -> Option<usize> {
        let p = *self.pos.get(slot as usize)?;
        let i = u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize;
        (i < self.len() && self.get(i).slot == slot).then_some(i)
    }

    /// The earliest deadline.
    #[inline]
    pub fn next(&self) -> Option<u64> {
        self.heap.get(self.off).map(|e| e.at)
    }

    /// When timer `slot` is due, if it is scheduled (diagnostics).
    pub fn due(&self, slot: u32) -> Option<u64> {
        self.index(slot).map(|i| self.get(i).at)
    }

    /// Schedules `slot` at `at` (re-schedules it if present: it then orders as if just
    /// started).
    ///
    /// The common case (a slot `pos` already covers, no stamp wrap, room in the buffer,
    /// not scheduled yet) is a handful of instructions and a short sift-up (about 1.3
    /// levels for a random deadline); the rest is out of line. `insert_inline` is the
    /// same, always inlined: for the timer start paths.
    #[inline]
    pub fn insert(&mut self, slot: u32, at: u64) {
        self.insert_inline(slot, at)
    }

    /// `insert`, always inlined into its caller.
    #[inline(always)]
    pub fn insert_inline(&mut self, slot: u32, at: u64) {
        let e = self.stamp(slot, at);
        if let Some(i) = self.index(slot) {
            return self.moved(i, e);
        }
        self.push_new(e);
    }

    /// `insert` of a slot known not to be scheduled (a user timer's start: an inactive
    /// user timer has no entry, as only internal timers stop lazily), always inlined:
    /// no look for an entry to move.
    #[inline(always)]
    pub fn insert_new_inline(&mut self, slot: u32, at: u64) {
        debug_assert!(self.index(slot).is_none(), "slot {slot} is scheduled");
        let e = self.stamp(slot, at);
        self.push_new(e);
    }

    /// `insert`'s first half: room for `slot` and one more entry, and its entry with
    /// the next start stamp.
    #[inline(always)]
    fn stamp(&mut self, slot: u32, at: u64) -> Entry {
        debug_assert!((slot as usize) < crate::handle::MAX_SLOTS);
        if slot as usize >= self.pos.len()
            || self.seq == u32::MAX
            || self.heap.len() == self.heap.capacity()
        {
            self.make_room(slot);
        }
        self.seq += 1;
        Entry {
            at,
            slot,
            seq: self.seq,
        }
    }

    /// Adds entry `e`, whose slot is not scheduled, after `stamp`.
    #[inline(always)]
    fn push_new(&mut self, e: Entry) {
        let i = self.len();
        debug_assert!(self.heap.len() < self.heap.capacity());
        // make_room left room: the push never reallocates.
        self.heap.push(e);
        self.up(i, e);
    }

    /// Before `insert`: sizes `pos` for `slot`, renumbers the stamps before the counter
    /// wraps, and makes room for one more entry.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, slot: u32) {
        let s = slot as usize;
        if s >= self.pos.len() {
            // In steps of 4 KiB, not one slot per new watcher.
            self.pos.resize((s + 1).next_multiple_of(1024), [0; 3]);
        }
        if self.seq == u32::MAX {
            self.renumber();
        }
        if self.heap.len() == self.heap.capacity() {
            self.grow();
        }
    }

    /// Entry `i` is re-scheduled as `e` (the newest start now): moves it.
    #[inline(never)]
    fn moved(&mut self, i: usize, e: Entry) {
        if e.before(&self.get(i)) {
            self.up(i, e);
        } else {
            self.down(i, e);
        }
    }

    /// Cancels `slot`'s entry if it has one.
    pub fn remove(&mut self, slot: u32) -> bool {
        let Some(i) = self.index(slot) else {
            return false;
        };
        let last = self.heap.pop().expect("the heap holds slot's entry");
        if i < self.len() {
            if i > 0 && last.before(&self.get((i - 1) / 4)) {
                self.up(i, last);
            } else {
                self.down(i, last);
            }
        }
        true
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    #[inline]
    pub fn pop_due(&mut self, now: u64) -> Option<u32> {
        let top = *self.heap.get(self.off)?;
        if top.at > now {
            return None;
        }
        let last = self.heap.pop().expect("not empty");
        if !self.is_empty() {
            self.fill_root(last);
        }
        Some(top.slot)
    }

    /// The root was taken out and `last` popped off the end: walk the hole down along
    /// the smallest children to a leaf, then sift `last` up from there.
    fn fill_root(&mut self, last: Entry) {
        let n = self.len();
        let mut i = 0;
        loop {
            let c = 4 * i + 1;
            if c + 4 <= n {
                let s = self.off + c;
                // The next level's four groups (the children of c..c+4, logical
                // 4c+1..4c+17) are contiguous, from storage off + 4c + 1.
                prefetch(self.heap.as_ptr().wrapping_add(self.off + 4 * c + 1));
                debug_assert!(s + 4 <= self.heap.len());
                // SAFETY: c + 4 <= n = len(), so s + 4 <= off + len() = heap.len().
                let g = unsafe { self.heap.get_unchecked(s..s + 4) };
                let (k0, k1, k2, k3) = (g[0].key(), g[1].key(), g[2].key(), g[3].key());
                let (a, ka) = if k1 < k0 { (1, k1) } else { (0, k0) };
                let (b, kb) = if k3 < k2 { (3, k3) } else { (2, k2) };
                let m = if kb < ka { b } else { a };
                let e = g[m];
                self.put(i, e);
                i = c + m;
            } else if c < n {
                let mut best = c;
                let mut be = self.get(c);
                for k in c + 1..n {
                    let ke = self.get(k);
                    if ke.before(&be) {
                        best = k;
                        be = ke;
                    }
                }
                self.put(i, be);
                i = best;
            } else {
                break;
            }
        }
        self.up(i, last);
    }

    /// Places `e` at index `i` or above it.
    #[inline(always)]
    fn up(&mut self, mut i: usize, e: Entry) {
        while i > 0 {
            let parent = (i - 1) / 4;
            let p = self.get(parent);
            if !e.before(&p) {
                break;
            }
            self.put(i, p);
            i = parent;
        }
        self.put(i, e);
    }

    /// Places `e` at index `i` or below it.
    fn down(&mut self, mut i: usize, e: Entry) {
        let n = self.len();
        loop {
            let c = 4 * i + 1;
            if c >= n {
                break;
            }
            let mut best = c;
            let mut be = self.get(c);
            for k in c + 1..(c + 4).min(n) {
                let ke = self.get(k);
                if ke.before(&be) {
                    best = k;
                    be = ke;
                }
            }
            if !be.before(&e) {
                break;
            }
            self.put(i, be);
            i = best;
        }
        self.put(i, e);
    }

    /// Makes room for one more entry, re-choosing `off` for the new buffer.
    #[cold]
    fn grow(&mut self) {
        self.heap.reserve(4);
        let want = lead(self.heap.as_ptr() as usize);
        if want == self.off {
            return;
        }
        let n = self.len();
        let old = self.off;
        if want > old {
            self.heap.resize(want + n, Entry::EMPTY);
            self.heap.copy_within(old..old + n, want);
        } else {
            self.heap.copy_within(old..old + n, want);
            self.heap.truncate(want + n);
        }
        self.off = want;
    }

    /// Gives the live entries the stamps 1..=len in their start order (the counter is
    /// about to wrap), so later stamps compare after them.
    #[cold]
    fn renumber(&mut self) {
        let off = self.off;
        let mut order: Vec<(u32, usize)> = (0..self.len()).map(|i| (self.get(i).seq, i)).collect();
        order.sort_unstable();
        for (n, &(_, i)) in order.iter().enumerate() {
            self.heap[off + i].seq = n as u32 + 1;
        }
        self.seq = self.len() as u32;
    }
}

/// The padding entries that put logical index 1 (the first group of children) at a
/// 64-byte boundary of a buffer at `addr`.
fn lead(addr: usize) -> usize {
    let size = std::mem::size_of::<Entry>();
    ((64 - (addr + size) % 64) % 64) / size
}

/// Asks for the 256 bytes at `p` (four cache lines) to be brought into cache; `p` may
/// point anywhere (a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const Entry) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = p as *const i8;
        for l in 0..4 {
            // SAFETY: a prefetch is a hint that never faults, whatever the address; the
            // pointer is computed with wrapping arithmetic and never dereferenced.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * l)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let mut t = Timers::default();
        for s in 0..1000 {
            t.insert(s, 1000 - s as u64);
            // The children of the root (and so every group of children) start a line
            // (when the allocator gives 16-byte alignment, as glibc's malloc does).
            let base = t.heap.as_ptr() as usize;
            if base.is_multiple_of(16) {
                assert_eq!((base + 16 * (t.off + 1)) % 64, 0);
            }
        }
    }

    /// Once the vectors have grown to the peak number of timers, starting, stopping,
    /// re-scheduling and firing allocate nothing.
    #[test]
    fn no_allocation_at_steady_state() {
        let mut t = Timers::default();
        for s in 0..5000 {
            t.insert(s, s as u64 * 7 % 1000);
        }
        let caps = (
            t.heap.capacity(),
            t.heap.as_ptr(),
            t.pos.capacity(),
            t.pos.as_ptr(),
        );
        for round in 0..20_000u64 {
            let s = (round * 2654435761 % 5000) as u32;
            match round % 4 {
                0 => assert!(t.remove(s) || t.due(s).is_none()),
                1 => t.insert(s, round % 997),
                2 => {
                    if let Some(slot) = t.pop_due(u64::MAX) {
                        t.insert(slot, round % 991);
                    }
                }
                _ => t.insert(s, round % 13),
            }
        }
        assert_eq!(
            caps,
            (
                t.heap.capacity(),
                t.heap.as_ptr(),
                t.pos.capacity(),
                t.pos.as_ptr()
            )
        );
        check(&t);
    }

    fn check(t: &Timers) {
        for i in 0..t.len() {
            let e = t.get(i);
            assert_eq!(t.index(e.slot), Some(i));
            if i > 0 {
                assert!(!e.before(&t.get((i - 1) / 4)), "heap order at {i}");
            }
        }
    }

    #[test]
    fn fires_in_deadline_then_start_order() {
        let mut t = Timers::default();
        let mut x: u64 = 12345;
        let mut deadlines = Vec::new();
        for slot in 0..10_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 33) % 500;
            deadlines.push(at);
            t.insert(slot, at);
        }
        check(&t);
        for slot in (0..10_000u32).step_by(3) {
            assert!(t.remove(slot));
            assert!(!t.remove(slot));
        }
        check(&t);
        let mut last = (0u64, 0u32);
        let mut n = 0;
        while let Some(slot) = t.pop_due(u64::MAX) {
            let cur = (deadlines[slot as usize], slot);
            assert!(cur >= last, "{cur:?} after {last:?}");
            assert!(slot % 3 != 0);
            last = cur;
            n += 1;
            if n % 997 == 0 {
                check(&t);
            }
        }
        assert_eq!(n, 10_000 - 3334);
        assert!(t.is_empty());
        assert_eq!(t.next(), None);
    }

    #[test]
    fn reinsert_moves_entry() {
        let mut t = Timers::default();
        t.insert(1, 100);
        t.insert(2, 50);
        t.insert(1, 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t.due(1), Some(10));
        assert_eq!(t.pop_due(1000), Some(1));
        assert_eq!(t.due(1), None);
        assert_eq!(t.pop_due(20), None);
        assert_eq!(t.pop_due(50), Some(2));
        assert!(t.is_empty());
    }

    /// A re-scheduled timer orders after the timers already started for its deadline.
    #[test]
    fn reinsert_counts_as_a_new_start() {
        let mut t = Timers::default();
        for s in 0..5 {
            t.insert(s, 7);
        }
        t.insert(0, 7);
        t.insert(3, 7);
        let order: Vec<u32> = std::iter::from_fn(|| t.pop_due(7)).collect();
        assert_eq!(order, [1, 2, 4, 0, 3]);
    }

    /// Against a sorted model: random inserts, re-inserts, removes and pops.
    #[test]
    fn matches_a_model() {
        let mut t = Timers::default();
        let mut model: std::collections::BTreeMap<(u64, u64), u32> = Default::default();
        let mut key_of: std::collections::HashMap<u32, (u64, u64)> = Default::default();
        let mut stamp = 0u64;
        let mut x: u64 = 99;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for round in 0..200_000u32 {
            let slot = rnd(300) as u32;
            match rnd(10) {
                0..=4 => {
                    let at = rnd(50);
                    stamp += 1;
                    if let Some(k) = key_of.remove(&slot) {
                        model.remove(&k);
                    }
                    model.insert((at, stamp), slot);
                    key_of.insert(slot, (at, stamp));
                    t.insert(slot, at);
                }
                5..=6 => {
                    let had = key_of.remove(&slot).map(|k| model.remove(&k));
                    assert_eq!(t.remove(slot), had.is_some());
                }
                _ => {
                    let now = rnd(60);
                    let want = match model.iter().next() {
                        Some((&(at, s), &sl)) if at <= now => {
                            model.remove(&(at, s));
                            key_of.remove(&sl);
                            Some(sl)
                        }
                        _ => None,
                    };
                    assert_eq!(t.pop_due(now), want, "round {round}");
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(t.next(), model.keys().next().map(|k| k.0));
            if round % 5000 == 0 {
                check(&t);
            }
        }
    }

    /// The start stamp wraps: live entries are renumbered and keep their start order.
    #[test]
    fn stamp_wrap_keeps_start_order() {
        let mut t = Timers {
            seq: u32::MAX - 3,
            ..Default::default()
        };
        for s in 0..10 {
            t.insert(s, 5 + (s as u64 % 2));
        }
        check(&t);
        assert!(t.seq < 20);
        assert_eq!(t.seq, 10);
        let order: Vec<u32> = std::iter::from_fn(|| t.pop_due(10)).collect();
        assert_eq!(order, [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]);
    }
}
