//! What other threads touch of a hub: the process-wide registry of live hubs (ids,
//! generation bases so a reused id never revives a stale handle), each hub's shared part
//! (`HubShared`: its wake-up fd, cross-thread calls, finished thread-pool jobs, the
//! running slot the blocking monitor reads), and the locks taken around fork().
//! Everything here is behind a lock or an atomic; the rest of a hub is its own thread's.

use crate::error::{Error, Result};
use crate::handle::GEN_BITS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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
