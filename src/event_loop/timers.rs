//! Timers: a 4-ary min-heap of (deadline, start order) with inline deadlines
//! (libev's layout: a cache-friendly array, O(log n) insert and cancel).
//!
//! Entries are keyed by watcher slot; `pos[slot]` is the entry's index in the heap
//! (or `NONE`), so a timer is cancelled in O(log n) without searching. Equal
//! deadlines fire in start order (`seq` breaks ties).

const NONE: u32 = u32::MAX;

#[derive(Copy, Clone, Debug)]
struct Entry {
    at: u64,
    seq: u64,
    slot: u32,
}

impl Entry {
    #[inline]
    fn before(&self, o: &Entry) -> bool {
        (self.at, self.seq) < (o.at, o.seq)
    }
}

#[derive(Default)]
pub struct Timers {
    heap: Vec<Entry>,
    pos: Vec<u32>,
    seq: u64,
}

impl Timers {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.heap.first().map(|e| e.at)
    }

    /// When timer `slot` is due, if it is scheduled (diagnostics).
    pub fn due(&self, slot: u32) -> Option<u64> {
        let i = *self.pos.get(slot as usize)?;
        self.heap.get(i as usize).map(|e| e.at)
    }

    /// Schedules `slot` at `at` (re-schedules it if present).
    pub fn insert(&mut self, slot: u32, at: u64) {
        self.remove(slot);
        if self.pos.len() <= slot as usize {
            self.pos.resize(slot as usize + 1, NONE);
        }
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            slot,
        });
        let i = self.heap.len() - 1;
        self.pos[slot as usize] = i as u32;
        self.up(i);
    }

    /// Cancels `slot`'s entry if it has one.
    pub fn remove(&mut self, slot: u32) -> bool {
        let Some(&p) = self.pos.get(slot as usize) else {
            return false;
        };
        if p == NONE {
            return false;
        }
        let i = p as usize;
        self.pos[slot as usize] = NONE;
        let last = self.heap.pop().expect("pos points into the heap");
        if i < self.heap.len() {
            self.heap[i] = last;
            self.pos[last.slot as usize] = i as u32;
            self.up(i);
            self.down(i);
        }
        true
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<u32> {
        let top = *self.heap.first()?;
        if top.at > now {
            return None;
        }
        self.remove(top.slot);
        Some(top.slot)
    }

    fn set(&mut self, i: usize, e: Entry) {
        self.heap[i] = e;
        self.pos[e.slot as usize] = i as u32;
    }

    fn up(&mut self, mut i: usize) {
        let e = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 4;
            if !e.before(&self.heap[parent]) {
                break;
            }
            let p = self.heap[parent];
            self.set(i, p);
            i = parent;
        }
        self.set(i, e);
    }

    fn down(&mut self, mut i: usize) {
        let n = self.heap.len();
        let e = self.heap[i];
        loop {
            let first = 4 * i + 1;
            if first >= n {
                break;
            }
            let mut best = first;
            for c in first + 1..(first + 4).min(n) {
                if self.heap[c].before(&self.heap[best]) {
                    best = c;
                }
            }
            if !self.heap[best].before(&e) {
                break;
            }
            let b = self.heap[best];
            self.set(i, b);
            i = best;
        }
        self.set(i, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for slot in (0..10_000u32).step_by(3) {
            assert!(t.remove(slot));
        }
        let mut last = (0u64, 0u32);
        let mut n = 0;
        while let Some(slot) = t.pop_due(u64::MAX) {
            let cur = (deadlines[slot as usize], slot);
            assert!(cur >= last, "{cur:?} after {last:?}");
            assert!(slot % 3 != 0);
            last = cur;
            n += 1;
        }
        assert_eq!(n, 10_000 - 3334);
    }

    #[test]
    fn reinsert_moves_entry() {
        let mut t = Timers::default();
        t.insert(1, 100);
        t.insert(2, 50);
        t.insert(1, 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t.pop_due(1000), Some(1));
        assert_eq!(t.pop_due(20), None);
        assert_eq!(t.pop_due(50), Some(2));
        assert!(t.is_empty());
    }
}
