//! Generation-checked handles and the process-wide registry of live hubs.
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
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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
    slots: Vec<Slot<T>>,
    gens: Vec<u32>,
    /// First free slot (`NO_SLOT`: none).
    free: u32,
    /// Live objects.
    live: usize,
    /// The generation a new slot starts at (above every generation an earlier hub with
    /// the same id handed out: `register_hub`).
    base: u32,
}

enum Slot<T> {
    Full(T),
    /// Vacant; the next free slot (`NO_SLOT`: the end of the list).
    Free(u32),
    /// Vacant for good (its generation would wrap).
    Retired,
}

const NO_SLOT: u32 = u32::MAX;

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            gens: Vec::new(),
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
        self.gens.iter().map(|&g| retired(g)).max().unwrap_or(0)
    }

    /// Inserts `value`; returns (slot, generation). `ENOMEM` past 2^24 slots.
    #[inline]
    pub fn insert(&mut self, value: T) -> Result<(u32, u32)> {
        let slot = if self.free != NO_SLOT {
            let s = self.free as usize;
            self.free = match self.slots[s] {
                Slot::Free(next) => next,
                _ => unreachable!("the free list holds free slots only"),
            };
            s
        } else {
            let s = self.slots.len();
            if s >= MAX_SLOTS {
                return Err(Error::NOMEM);
            }
            self.slots.push(Slot::Retired);
            self.gens.push(self.base);
            s
        };
        self.slots[slot] = Slot::Full(value);
        self.live += 1;
        Ok((slot as u32, self.gens[slot]))
    }

    /// Frees a full slot: bumps its generation so old handles go stale (or retires it
    /// when the generation would wrap) and returns what it held.
    #[inline]
    fn vacate(&mut self, slot: u32) -> Option<Slot<T>> {
        let i = slot as usize;
        if !matches!(self.slots.get(i), Some(Slot::Full(_))) {
            return None;
        }
        self.live -= 1;
        let g = &mut self.gens[i];
        let next = if *g == GEN_MASK {
            *g = 0;
            Slot::Retired
        } else {
            *g += 1;
            let next = Slot::Free(self.free);
            self.free = slot;
            next
        };
        Some(std::mem::replace(&mut self.slots[i], next))
    }

    /// Frees a slot and returns its object.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        match self.vacate(slot)? {
            Slot::Full(v) => Some(v),
            _ => None,
        }
    }

    /// Frees a slot, dropping its object in place.
    #[inline]
    pub fn discard(&mut self, slot: u32) {
        let i = slot as usize;
        if !matches!(self.slots.get(i), Some(Slot::Full(_))) {
            return;
        }
        self.live -= 1;
        let g = &mut self.gens[i];
        if *g == GEN_MASK {
            *g = 0;
            self.slots[i] = Slot::Retired;
        } else {
            *g += 1;
            self.slots[i] = Slot::Free(self.free);
            self.free = slot;
        }
    }

    #[inline]
    pub fn gen(&self, slot: u32) -> u32 {
        self.gens.get(slot as usize).copied().unwrap_or(0)
    }

    /// The object at `slot` if its generation is `gen`.
    #[inline]
    pub fn get(&self, slot: u32, gen: u32) -> Option<&T> {
        if gen == 0 || self.gen(slot) != gen {
            return None;
        }
        self.at(slot)
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut T> {
        if gen == 0 || self.gen(slot) != gen {
            return None;
        }
        self.at_mut(slot)
    }

    /// The live object at `slot`, whatever its generation (internal references).
    #[inline]
    pub fn at(&self, slot: u32) -> Option<&T> {
        match self.slots.get(slot as usize) {
            Some(Slot::Full(v)) => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut T> {
        match self.slots.get_mut(slot as usize) {
            Some(Slot::Full(v)) => Some(v),
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
            Slot::Full(v) => Some((k as u32, v)),
            _ => None,
        })
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|v| match v {
            Slot::Full(v) => Some(v),
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
            let retired = self.gens[i] == 0;
            let next = if retired {
                Slot::Retired
            } else {
                Slot::Free(self.free)
            };
            if let Slot::Full(v) = std::mem::replace(&mut self.slots[i], next) {
                out.push(v);
            }
            if !retired {
                self.free = i as u32;
            }
        }
        out.reverse();
        out
    }
}

/// What other threads may touch of a hub: its wake-up fd and async flags.
/// Owned by the registry and the hub through `Arc`, so a thread that races
/// `gh_hub_destroy` never touches freed memory.
pub struct HubShared {
    pub id: u16,
    /// The first generation of this hub's tables, and its gh_hub_ref's generation: above
    /// every generation handed out by earlier hubs with the same id (`register_hub`).
    pub base: u32,
    pub remote: Mutex<Remote>,
    /// What the hub's thread runs now, for the blocking monitor: `switch count << 32 |
    /// running greenlet slot`, with `POLLING` set while the hub waits in its poll. One
    /// relaxed store per switch; only the monitor thread reads it.
    pub active: std::sync::atomic::AtomicU64,
    /// The hub's thread (kernel tid): monitor reports and captures.
    pub tid: std::sync::atomic::AtomicI32,
    /// Greenlet names and spawn sites, published for the monitor thread while this hub
    /// is monitored (kept current at spawn, rename and death; not on switches).
    pub published: Mutex<crate::monitor::Published>,
}

/// `HubShared::active`: set while the hub waits in its poll (idle, not blocked).
pub(crate) const POLLING: u64 = 1 << 31;

/// State behind `HubShared::remote`'s lock.
pub struct Remote {
    /// eventfd written to wake the hub's poll; -1 once the hub is destroyed.
    pub wake_fd: i32,
    /// A wake-up has been written and not consumed yet (coalescing).
    pub woken: bool,
    /// Finished thread-pool jobs waiting for the hub to hand their results over.
    pub done: Vec<crate::threadpool::Done>,
    /// gh_hub_call_threadsafe calls waiting to be queued in the hub.
    pub calls: Vec<(unsafe extern "C" fn(*mut std::ffi::c_void), usize)>,
}

impl HubShared {
    /// Sets the wake flag and writes the eventfd if no wake-up is pending.
    /// Call with the lock held.
    pub fn wake_locked(r: &mut Remote) {
        if !r.woken && r.wake_fd >= 0 {
            r.woken = true;
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an fd we own (checked >= 0 under the lock
            // that destroy takes before closing it).
            unsafe { libc::write(r.wake_fd, &one as *const u64 as *const libc::c_void, 8) };
        }
    }
}

static NEXT_HUB: AtomicU32 = AtomicU32::new(1);

/// Hub ids are 16 bits, so they are reused after 65,534 hubs; a stale handle of an
/// earlier hub with the same id must never match (issue 15.9). So per id, the first
/// generation the next hub with that id may use: one above every generation the
/// earlier ones handed out (`unregister_hub`). An id whose base passes `BASE_LIMIT` is
/// retired (its hubs could otherwise not reuse a slot 2^19 times before it retires).
/// Written with the registry's lock held. A static array (no allocation that grows
/// with the number of hubs ever made; 0 means 1).
#[allow(clippy::declare_interior_mutable_const)]
const BASE_ONE: AtomicU32 = AtomicU32::new(0);
static ID_BASES: [AtomicU32; 1 << 16] = [BASE_ONE; 1 << 16];

fn id_base(id: u16) -> u32 {
    ID_BASES[id as usize].load(Ordering::Relaxed).max(1)
}

pub(crate) const BASE_LIMIT: u32 = 1 << (GEN_BITS - 1);

fn registry() -> &'static Mutex<HashMap<u16, Arc<HubShared>>> {
    static REG: std::sync::OnceLock<Mutex<HashMap<u16, Arc<HubShared>>>> =
        std::sync::OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock_registry() -> std::sync::MutexGuard<'static, HashMap<u16, Arc<HubShared>>> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

/// Allocates a hub id not in use by any live hub nor retired, and registers its shared
/// part. `ENOMEM` when none is left.
pub fn register_hub(wake_fd: i32) -> Result<Arc<HubShared>> {
    let mut reg = lock_registry();
    if reg.len() >= 0xFFF0 {
        return Err(Error::NOMEM);
    }
    let mut tries = 0u32;
    let (id, base) = loop {
        tries += 1;
        if tries > 0x10000 {
            return Err(Error::NOMEM);
        }
        let n = NEXT_HUB.fetch_add(1, Ordering::Relaxed) as u16;
        let base = id_base(n);
        if n != 0 && n != 0xFFFF && base <= BASE_LIMIT && !reg.contains_key(&n) {
            break (n, base);
        }
    };
    let shared = Arc::new(HubShared {
        id,
        base,
        remote: Mutex::new(Remote {
            wake_fd,
            woken: false,
            done: Vec::new(),
            calls: Vec::new(),
        }),
        active: std::sync::atomic::AtomicU64::new(0),
        // SAFETY: gettid and pthread_self have no preconditions.
        tid: std::sync::atomic::AtomicI32::new(unsafe { libc::gettid() }),
        published: Mutex::new(crate::monitor::Published::default()),
    });
    reg.insert(id, shared.clone());
    Ok(shared)
}

/// Removes a hub from the registry; `max_gen` is the highest generation its handles
/// can carry (the next hub with this id starts above it).
pub fn unregister_hub(id: u16, max_gen: u32) {
    let mut reg = lock_registry();
    reg.remove(&id);
    let next = id_base(id).max(max_gen.saturating_add(1));
    ID_BASES[id as usize].store(next, Ordering::Relaxed);
}

/// The ids of every live hub, in creation order of their ids.
pub fn live_hub_ids() -> Vec<u16> {
    let mut v: Vec<u16> = lock_registry().keys().copied().collect();
    v.sort_unstable();
    v
}

/// The shared part of a live hub (any thread).
pub fn lookup_hub(id: u16) -> Option<Arc<HubShared>> {
    lock_registry().get(&id).cloned()
}

/// The error for a handle that is not of this thread's hub.
pub fn foreign(id: u16) -> Error {
    if id != 0 && lock_registry().contains_key(&id) {
        Error::WRONGTHREAD
    } else {
        Error::BADHANDLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

type RegistryGuard = std::sync::MutexGuard<'static, HashMap<u16, Arc<HubShared>>>;
type RemoteGuard = std::sync::MutexGuard<'static, Remote>;

thread_local! {
    /// Locks held across fork() by the forking thread (see `fork_prepare`).
    /// ManuallyDrop: no destructor, usable during teardown (an atexit handler that forks);
    /// empty whenever a thread ends (its Vec's buffer is freed in `fork_release`).
    static FORK_GUARDS: std::mem::ManuallyDrop<std::cell::RefCell<(Option<RegistryGuard>, Vec<RemoteGuard>)>> =
        const { std::mem::ManuallyDrop::new(std::cell::RefCell::new((None, Vec::new()))) };
}

/// pthread_atfork "prepare": take the registry lock and every hub's remote lock, so
/// no other thread holds one at the moment of fork (the child inherits them unlocked
/// by the forking thread in `fork_release`).
pub extern "C" fn fork_prepare() {
    let reg = lock_registry();
    let mut guards = Vec::new();
    for shared in reg.values() {
        // SAFETY: the registry keeps this Arc (so the HubShared) alive while its lock is
        // held, and `fork_release` drops these guards before the registry guard.
        let s: &'static HubShared = unsafe { &*Arc::as_ptr(shared) };
        guards.push(s.remote.lock().unwrap_or_else(|p| p.into_inner()));
    }
    crate::signals::fork_prepare();
    FORK_GUARDS.with(|g| *g.borrow_mut() = (Some(reg), guards));
}

/// In a fork child, before `fork_release`: the hubs of the threads that did not survive
/// the fork (all but `own`) leave the registry (gh_hub_call_threadsafe to them is then
/// GH_EBADHANDLE: issue 15.13), their ids are retired (their handles' generations are
/// unknown), and no hub's wake-up eventfd — the parent's — is written any more (the own
/// hub gets its own in `after_fork`).
pub fn fork_child_hubs(own: Option<u16>) {
    FORK_GUARDS.with(|g| {
        let mut g = g.borrow_mut();
        for r in g.1.iter_mut() {
            r.wake_fd = -1;
        }
        g.1 = Vec::new(); // the remote guards borrow from the registry's Arcs: first
        if let Some(reg) = g.0.as_mut() {
            let dead: Vec<u16> = reg.keys().copied().filter(|&id| Some(id) != own).collect();
            for id in dead {
                reg.remove(&id);
                ID_BASES[id as usize].store(BASE_LIMIT + 1, Ordering::Relaxed);
            }
        }
    });
    crate::asyncs::forked(own);
}

/// pthread_atfork "parent" and "child": release what `fork_prepare` took.
pub extern "C" fn fork_release() {
    FORK_GUARDS.with(|g| {
        let mut g = g.borrow_mut();
        // remote guards first: they borrow from the registry's Arcs (and the Vec's buffer
        // goes: nothing may be left for a destructor this thread-local does not have)
        g.1 = Vec::new();
        g.0 = None;
    });
    crate::signals::fork_release();
}
