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
/// A slot whose generation would wrap is retired instead of reused (it stays vacant
/// and off the free list for good), so no stale handle can ever match again: one slot's
/// worth of memory per 2^20 - 1 reuses.
pub struct Table<T> {
    /// Each slot with its generation inside (one bounds check and one cache line per
    /// lookup; the generation sits in the enum tag's padding).
    slots: Vec<Slot<T>>,
    /// First free slot (`NO_SLOT`: none).
    free: u32,
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
    /// (`NO_SLOT`: the end of the list).
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

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: NO_SLOT,
            live: 0,
            base: 1,
        }
    }
}

impl<T> Table<T> {
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
        if self.free != NO_SLOT {
            let s = self.free as usize;
            let slot = &mut self.slots[s];
            let (gen, next) = match *slot {
                Slot::Free(gen, next) => (gen, next),
                _ => unreachable!("the free list holds free slots only"),
            };
            self.free = next;
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
    #[inline]
    fn vacant(&mut self, slot: u32, g: u32) -> Slot<T> {
        if g == GEN_MASK {
            Slot::Retired
        } else {
            let next = Slot::Free(g + 1, self.free);
            self.free = slot;
            next
        }
    }

    /// Frees a slot and returns its object.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let g = match self.slots.get(slot as usize) {
            Some(Slot::Full(g, _)) => *g,
            _ => return None,
        };
        self.live -= 1;
        let next = self.vacant(slot, g);
        match std::mem::replace(&mut self.slots[slot as usize], next) {
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
        let next = self.vacant(slot, g);
        self.slots[slot as usize] = next;
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
            self.free = i as u32;
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
