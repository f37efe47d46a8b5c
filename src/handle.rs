//! Generation-checked handles: ids and tables. (The process-wide registry of live hubs,
//! what other threads touch of a hub, is `crate::remote`.)
//!
//! A handle is a 64-bit value:
//!
//! ```text
//!  63        48 47  44 43            24 23             0
//! +------------+------+----------------+----------------+
//! |  hub id    | kind |   generation   |     slot       |
//! +------------+------+----------------+----------------+
//!     16 bits   4 bits     20 bits          24 bits
//! ```
//!
//! * hub id: never 0 and never 0xFFFF, so zeroed and all-ones handles are never valid;
//!   ids of destroyed hubs are not reused while 65,000 other hubs are created, and a hub
//!   that reuses an id starts its generations above every one the id's earlier hubs
//!   handed out (`register_hub`), so a stale handle stays stale for the process's life.
//! * kind: a greenlet handle passed where a watcher is expected is rejected.
//! * generation: bumped every time a slot is freed, so a stale handle (released,
//!   closed) never matches the object that reuses its slot (2^20 reuses per slot).
//!
//! `Table<T>` is a slab whose slots carry generations. Lookups answer
//! `EBADHANDLE` or `EWRONGTHREAD`, never UB.

use crate::error::{Error, Result};

pub(crate) const SLOT_BITS: u32 = 24;
pub(crate) const GEN_BITS: u32 = 20;
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// What a handle refers to; stored in the handle so kinds cannot be confused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Greenlet = 1,
    Watcher = 2,
    HubRef = 3,
    Event = 4,
    Result = 5,
    Sem = 6,
    Queue = 7,
    Waiter = 8,
    Timeout = 9,
    /// gh_assert_switches_begin's token.
    SwitchToken = 10,
    /// gh_local_key_create's key.
    LocalKey = 11,
    /// gh_rlock_new's re-entrant lock.
    RLock = 12,
    /// gh_cond_new's condition variable.
    Cond = 13,
    /// gh_server, gh_stream and gh_pool (src/server.rs `Sub`): one kind for the three,
    /// told apart by the top bits of the slot field (the 4-bit kind field is nearly
    /// full). 14, not 11: other branches took 11 to 13.
    Net = 14,
}

/// A decoded handle.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub hub: u16,
    pub kind: u8,
    pub gen: u32,
    pub slot: u32,
}

impl Id {
    pub fn encode(hub: u16, kind: Kind, gen: u32, slot: u32) -> u64 {
        ((hub as u64) << 48)
            | ((kind as u64) << 44)
            | (((gen & GEN_MASK) as u64) << SLOT_BITS)
            | (slot as u64 & (MAX_SLOTS as u64 - 1))
    }

    pub fn decode(raw: u64) -> Id {
        Id {
            hub: (raw >> 48) as u16,
            kind: ((raw >> 44) & 0xF) as u8,
            gen: ((raw >> SLOT_BITS) as u32) & GEN_MASK,
            slot: (raw as u32) & (MAX_SLOTS as u32 - 1),
        }
    }
}

/// A slab whose slots carry a generation, for handle checking.
///
/// Records stay in place: a slot is a `Vec` element; free slots form an intrusive list
/// through the vacant slots themselves (last freed first, as `slab` does: no memory per
/// free slot beyond the slot), and `discard` drops a record where it lies (a greenlet
/// record is ~230 bytes: moving it out to drop it was a third of spawn's memcpy).
///
/// With `LOWEST` (the watcher table), a new object takes the lowest free slot instead
/// (`FreeBits`, a bit per slot): timers freed in firing order, which is random across
/// the table, would otherwise hand their slots to the next burst of starts in that
/// random order, one cache miss per start in a big table; lowest first, a burst of
/// starts walks the table in order.
///
/// A slot whose generation would wrap is retired instead of reused (it stays vacant
/// and off the free list for good), so no stale handle can ever match again: one slot's
/// worth of memory per 2^20 - 1 reuses.
pub struct Table<T, const LOWEST: bool = false> {
    /// Each slot with its generation inside (one bounds check and one cache line per
    /// lookup; the generation sits in the enum tag's padding).
    slots: Vec<Slot<T>>,
    /// First free slot (`NO_SLOT`: none). Unused with `LOWEST`.
    free: u32,
    /// The free slots, with `LOWEST`.
    bits: FreeBits,
    /// Live objects.
    live: usize,
    /// The generation a new slot starts at (above every generation an earlier hub with
    /// the same id handed out: `register_hub`).
    base: u32,
}

enum Slot<T> {
    /// Live, with its generation (1..=GEN_MASK).
    Full(u32, T),
    /// Vacant, with the generation its next object gets; the next free slot
    /// (`NO_SLOT`: the end of the list, and always with `LOWEST`).
    Free(u32, u32),
    /// Vacant for good (its generation would wrap): generation 0, which no handle has.
    Retired,
}

impl<T> Slot<T> {
    #[inline(always)]
    fn gen(&self) -> u32 {
        match self {
            Slot::Full(g, _) | Slot::Free(g, _) => *g,
            Slot::Retired => 0,
        }
    }
}

const NO_SLOT: u32 = u32::MAX;

/// A set of slot numbers that finds its lowest member in four steps: a bit per slot
/// (`l0`), and above it a bit per non-empty word of the level below (64^4 = 2^24 =
/// `MAX_SLOTS`). 1 MiB of watchers' slots (26k) take 4 KiB of bits; 1M, 128 KiB.
#[derive(Default)]
struct FreeBits {
    l0: Vec<u64>,
    l1: Vec<u64>,
    l2: Vec<u64>,
    l3: u64,
}

const _: () = assert!(MAX_SLOTS == 1 << 24, "FreeBits has four levels of 64");

impl FreeBits {
    /// The lowest member, if any.
    #[inline(always)]
    fn first(&self) -> Option<u32> {
        if self.l3 == 0 {
            return None;
        }
        // A set bit above always has a non-empty word below it.
        let i2 = self.l3.trailing_zeros() as usize;
        let i1 = i2 * 64 + self.l2[i2].trailing_zeros() as usize;
        let i0 = i1 * 64 + self.l1[i1].trailing_zeros() as usize;
        Some((i0 * 64) as u32 + self.l0[i0].trailing_zeros())
    }

    /// Adds `s` (not a member).
    #[inline]
    fn add(&mut self, s: u32) {
        let i0 = (s / 64) as usize;
        if i0 >= self.l0.len() {
            self.grow(i0);
        }
        let was = self.l0[i0];
        self.l0[i0] = was | 1 << (s % 64);
        if was != 0 {
            return;
        }
        let (i1, b1) = (i0 / 64, i0 % 64);
        let was = self.l1[i1];
        self.l1[i1] = was | 1 << b1;
        if was != 0 {
            return;
        }
        let (i2, b2) = (i1 / 64, i1 % 64);
        let was = self.l2[i2];
        self.l2[i2] = was | 1 << b2;
        if was == 0 {
            self.l3 |= 1 << i2;
        }
    }

    /// Removes `s` (a member).
    #[inline(always)]
    fn remove(&mut self, s: u32) {
        let i0 = (s / 64) as usize;
        let w = self.l0[i0] & !(1 << (s % 64));
        self.l0[i0] = w;
        if w == 0 {
            self.emptied(i0);
        }
    }

    /// Word `i0` of `l0` became empty: clears its bit above (and so on up).
    #[cold]
    fn emptied(&mut self, i0: usize) {
        let (i1, b1) = (i0 / 64, i0 % 64);
        self.l1[i1] &= !(1 << b1);
        if self.l1[i1] != 0 {
            return;
        }
        let (i2, b2) = (i1 / 64, i1 % 64);
        self.l2[i2] &= !(1 << b2);
        if self.l2[i2] == 0 {
            self.l3 &= !(1 << i2);
        }
    }

    /// Makes room for word `i0` of `l0` (and the words above it), doubling.
    #[cold]
    fn grow(&mut self, i0: usize) {
        let n0 = (i0 + 1).next_power_of_two().max(16);
        self.l0.resize(n0, 0);
        self.l1.resize(n0.div_ceil(64), 0);
        self.l2.resize(n0.div_ceil(64 * 64), 0);
    }

    fn clear(&mut self) {
        self.l0.fill(0);
        self.l1.fill(0);
        self.l2.fill(0);
        self.l3 = 0;
    }
}

impl<T, const LOWEST: bool> Default for Table<T, LOWEST> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: NO_SLOT,
            bits: FreeBits::default(),
            live: 0,
            base: 1,
        }
    }
}

impl<T, const LOWEST: bool> Table<T, LOWEST> {
    /// An empty table whose slots start at generation `base` (1..=GEN_MASK).
    pub fn with_base(base: u32) -> Self {
        Table {
            base: base.clamp(1, GEN_MASK),
            ..Table::default()
        }
    }

    /// The highest generation any handle of this table can carry.
    pub fn max_gen(&self) -> u32 {
        let retired = |g: u32| if g == 0 { GEN_MASK } else { g };
        self.slots
            .iter()
            .map(|s| retired(s.gen()))
            .max()
            .unwrap_or(0)
    }

    /// Inserts `value`; returns (slot, generation). `ENOMEM` past 2^24 slots.
    #[inline]
    pub fn insert(&mut self, value: T) -> Result<(u32, u32)> {
        self.insert_inline(value)
    }

    /// `insert`, inlined: for a large record built in the caller, which the compiler can
    /// then write straight into its slot instead of copying it there.
    #[inline(always)]
    pub fn insert_inline(&mut self, value: T) -> Result<(u32, u32)> {
        let first = if LOWEST {
            self.bits.first().unwrap_or(NO_SLOT)
        } else {
            self.free
        };
        if first != NO_SLOT {
            let s = first as usize;
            let slot = &mut self.slots[s];
            let (gen, next) = match *slot {
                Slot::Free(gen, next) => (gen, next),
                _ => unreachable!("the free list holds free slots only"),
            };
            if LOWEST {
                self.bits.remove(first);
            } else {
                self.free = next;
            }
            // A free slot holds no value: nothing to drop.
            *slot = Slot::Full(gen, value);
            self.live += 1;
            return Ok((s as u32, gen));
        }
        // A new slot: the record is written once, straight into its place.
        let s = self.slots.len();
        if s >= MAX_SLOTS {
            return Err(Error::NOMEM);
        }
        self.slots.push(Slot::Full(self.base, value));
        self.live += 1;
        Ok((s as u32, self.base))
    }

    /// What a full slot of generation `g` becomes when freed: free with the next
    /// generation (so old handles go stale), or retired when the generation would wrap.
    /// `freed` then puts it on the free list (or in the free set).
    #[inline(always)]
    fn vacant(free: u32, g: u32) -> Slot<T> {
        if g == GEN_MASK {
            Slot::Retired
        } else {
            Slot::Free(g + 1, if LOWEST { NO_SLOT } else { free })
        }
    }

    /// Slot `slot`, of generation `g`, was just made `vacant`.
    #[inline(always)]
    fn freed(&mut self, slot: u32, g: u32) {
        if g == GEN_MASK {
            return;
        }
        if LOWEST {
            self.bits.add(slot);
        } else {
            self.free = slot;
        }
    }

    /// Frees a slot and returns its object.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let cell = self.slots.get_mut(slot as usize)?;
        let Slot::Full(g, _) = *cell else {
            return None;
        };
        let old = std::mem::replace(cell, Self::vacant(self.free, g));
        self.live -= 1;
        self.freed(slot, g);
        match old {
            Slot::Full(_, v) => Some(v),
            _ => None,
        }
    }

    /// Frees a slot, dropping its object in place.
    #[inline]
    pub fn discard(&mut self, slot: u32) {
        let g = match self.slots.get(slot as usize) {
            Some(Slot::Full(g, _)) => *g,
            _ => return,
        };
        self.live -= 1;
        self.slots[slot as usize] = Self::vacant(self.free, g);
        self.freed(slot, g);
    }

    #[inline]
    pub fn gen(&self, slot: u32) -> u32 {
        self.slots.get(slot as usize).map_or(0, Slot::gen)
    }

    /// The object at `slot` if its generation is `gen`.
    #[inline]
    pub fn get(&self, slot: u32, gen: u32) -> Option<&T> {
        match self.slots.get(slot as usize) {
            Some(Slot::Full(g, v)) if *g == gen => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut T> {
        match self.slots.get_mut(slot as usize) {
            Some(Slot::Full(g, v)) if *g == gen => Some(v),
            _ => None,
        }
    }

    /// The live object at `slot` and its generation (one lookup for both).
    #[inline]
    pub fn at_mut_gen(&mut self, slot: u32) -> Option<(u32, &mut T)> {
        match self.slots.get_mut(slot as usize) {
            Some(Slot::Full(g, v)) => Some((*g, v)),
            _ => None,
        }
    }

    /// The live object at `slot`, whatever its generation (internal references).
    #[inline]
    pub fn at(&self, slot: u32) -> Option<&T> {
        match self.slots.get(slot as usize) {
            Some(Slot::Full(_, v)) => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut T> {
        match self.slots.get_mut(slot as usize) {
            Some(Slot::Full(_, v)) => Some(v),
            _ => None,
        }
    }

    /// Live objects.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(k, v)| match v {
            Slot::Full(_, v) => Some((k as u32, v)),
            _ => None,
        })
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|v| match v {
            Slot::Full(_, v) => Some(v),
            _ => None,
        })
    }

    /// Removes every object (hub teardown). Retired slots stay retired.
    pub fn drain(&mut self) -> Vec<T> {
        self.live = 0;
        self.free = NO_SLOT;
        self.bits.clear();
        let mut out = Vec::new();
        // Rebuilt from the top so the lowest slot is handed out first.
        for i in (0..self.slots.len()).rev() {
            // (Generations are kept, as they were.)
            let next = match self.slots[i] {
                Slot::Retired => continue,
                Slot::Full(g, _) | Slot::Free(g, _) => Slot::Free(g, self.free),
            };
            if let Slot::Full(_, v) = std::mem::replace(&mut self.slots[i], next) {
                out.push(v);
            }
            if LOWEST {
                self.slots[i] = Slot::Free(self.slots[i].gen(), NO_SLOT);
                self.bits.add(i as u32);
            } else {
                self.free = i as u32;
            }
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher's slot — a timer's main memory — is its 36-byte record and its
    /// generation: 40 bytes, the tag in the record's niches.
    #[test]
    fn watcher_slot_size() {
        use crate::event_loop::watcher::Watcher;
        assert_eq!(std::mem::size_of::<Slot<Watcher>>(), 40);
        assert_eq!(
            std::mem::size_of::<Slot<Watcher>>(),
            std::mem::size_of::<Watcher>() + 4
        );
    }

    #[test]
    fn encode_roundtrip() {
        let raw = Id::encode(0x1234, Kind::Watcher, 0xABCDE, 0x123456);
        let id = Id::decode(raw);
        assert_eq!(
            id,
            Id {
                hub: 0x1234,
                kind: 2,
                gen: 0xABCDE,
                slot: 0x123456
            }
        );
    }

    /// A `LOWEST` table hands out the lowest free slot, across every level of its bit
    /// set (300k slots: three levels in use), and keeps generations and retirement.
    #[test]
    fn lowest_table_reuses_lowest_slot_first() {
        let mut t: Table<u32, true> = Table::default();
        let n = 300_000u32;
        let gens: Vec<u32> = (0..n).map(|i| t.insert(i).unwrap().1).collect();
        assert!((0..n).all(|i| t.get(i, gens[i as usize]) == Some(&i)));
        // Free in a scrambled order (a multiplicative walk of 0..n).
        let order: Vec<u32> = (0..n)
            .map(|i| (i as u64 * 7919 % n as u64) as u32)
            .collect();
        for &s in &order {
            assert_eq!(t.remove(s), Some(s));
        }
        assert!(t.is_empty());
        for i in 0..n {
            let (s, g) = t.insert(i + 1).unwrap();
            assert_eq!(s, i, "ascending reuse");
            assert_eq!(g, gens[i as usize] + 1);
        }
        assert!(t.get(0, gens[0]).is_none(), "old handles are stale");
        // Holes in the middle come back lowest first, before new slots.
        for s in [250_123, 70_000, 4_095, 4_096, 262_144, 63] {
            t.remove(s);
        }
        let got: Vec<u32> = (0..7).map(|_| t.insert(0).unwrap().0).collect();
        assert_eq!(got, [63, 4_095, 4_096, 70_000, 250_123, 262_144, n]);
        // A slot whose generation would wrap is retired, never handed out again.
        let mut t: Table<u32, true> = Table::with_base(GEN_MASK - 1);
        let (a, _) = t.insert(1).unwrap();
        let (b, _) = t.insert(2).unwrap();
        t.remove(a);
        assert_eq!(t.insert(3).unwrap(), (a, GEN_MASK));
        t.remove(a);
        t.remove(b);
        assert_eq!(t.insert(4).unwrap(), (b, GEN_MASK));
        assert_eq!(t.insert(5).unwrap().0, 2, "slot {a} is retired");
        // drain frees every slot, lowest first afterwards.
        assert_eq!(t.drain().len(), 2);
        assert_eq!(t.insert(6).unwrap().0, b);
    }

    #[test]
    fn table_generations_go_stale() {
        let mut t: Table<u32> = Table::default();
        let (s, g) = t.insert(7).unwrap();
        assert_eq!(t.get(s, g), Some(&7));
        t.remove(s);
        assert!(t.get(s, g).is_none());
        let (s2, g2) = t.insert(8).unwrap();
        assert_eq!(s2, s);
        assert_ne!(g2, g);
        assert!(t.get(s, g).is_none());
        // ABA: no number of reuses of one slot revives the first handle; the slot is
        // retired when its generation would wrap.
        let mut last = (s2, g2);
        for _ in 0..(1u32 << GEN_BITS) + 10 {
            t.remove(last.0);
            last = t.insert(9).unwrap();
            assert!(last != (s, g));
        }
        assert!(t.get(s, g).is_none());
        assert_eq!(t.len(), 1);
        assert!(last.0 != s, "the wrapped slot was retired");
    }
}
