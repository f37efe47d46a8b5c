//! Greenlet-local storage (gevent.local; `pthread_key_create` for greenlets).
//!
//! A key is a handle of its hub (`Kind::LocalKey`) with an optional destructor. Values
//! live in a side table, per greenlet slot, as (key slot, key generation, value): the
//! greenlet record only says it has some (`Greenlet::has_locals`). When a greenlet dies,
//! each non-NULL value whose key still exists is handed to the key's destructor as a
//! queued hub callback (`Callback::Dtor`); when the hub is destroyed, the destructors of
//! every greenlet's values (main's and the hub's too) and those still queued run first,
//! in rounds, as pthread runs its key destructors at thread exit.

use super::{Callback, Hub, HubState};
use crate::error::{Error, Result};
use crate::handle::Kind;
use std::ffi::c_void;

/// A key's destructor: `void dtor(void *value)`.
pub type DtorFn = unsafe extern "C" fn(*mut c_void);

/// A key: its destructor.
pub struct LocalKey {
    pub dtor: Option<DtorFn>,
}

/// Rounds of destructors at hub destroy (a destructor may set values again), as
/// PTHREAD_DESTRUCTOR_ITERATIONS.
const DESTROY_ROUNDS: usize = 4;

impl HubState {
    /// Takes greenlet `slot`'s values and queues the destructor of each non-NULL one
    /// whose key still exists (it died).
    pub(crate) fn queue_local_dtors(&mut self, slot: u32) {
        let Some(values) = self.locals.remove(&slot) else {
            return;
        };
        for (k, kgen, v) in values {
            if let Some(LocalKey { dtor: Some(f) }) = self.local_keys.get(k, kgen) {
                if !v.is_null() {
                    self.queue.push_back(Callback::Dtor { f: *f, arg: v });
                }
            }
        }
    }
}

impl Hub {
    /// gh_local_key_create.
    pub fn local_key_create(&self, dtor: Option<DtorFn>) -> Result<u64> {
        let (slot, gen) = self.st.borrow_mut().local_keys.insert(LocalKey { dtor })?;
        Ok(self.handle(Kind::LocalKey, slot, gen))
    }

    fn local_key(&self, raw: u64) -> Result<(u32, u32)> {
        let (slot, gen) = self.check(raw, Kind::LocalKey)?;
        match self.st.borrow().local_keys.get(slot, gen) {
            Some(_) => Ok((slot, gen)),
            None => Err(Error::BADHANDLE),
        }
    }

    /// gh_local_key_delete: the key goes (no destructor runs; values set with it are
    /// forgotten when their greenlets end).
    pub fn local_key_delete(&self, raw: u64) -> Result<()> {
        let (slot, _) = self.local_key(raw)?;
        self.st.borrow_mut().local_keys.discard(slot);
        Ok(())
    }

    /// gh_local_set: the running greenlet's value for the key (NULL: none).
    pub fn local_set(&self, raw: u64, value: *mut c_void) -> Result<()> {
        let (k, kgen) = self.local_key(raw)?;
        let g = self.current.get();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let values = st.locals.entry(g).or_default();
        match values.iter().position(|&(s, sg, _)| s == k && sg == kgen) {
            Some(i) if value.is_null() => {
                values.swap_remove(i);
            }
            Some(i) => values[i].2 = value,
            None if value.is_null() => {}
            None => {
                values.try_reserve(1).map_err(|_| Error::NOMEM)?;
                values.push((k, kgen, value));
                if let Some(rec) = st.greenlets.at_mut(g) {
                    rec.has_locals = true;
                }
            }
        }
        Ok(())
    }

    /// gh_local_get: the running greenlet's value for the key (NULL if none).
    pub fn local_get(&self, raw: u64) -> Result<*mut c_void> {
        let (k, kgen) = self.local_key(raw)?;
        let g = self.current.get();
        let st = self.st.borrow();
        Ok(st
            .locals
            .get(&g)
            .and_then(|v| v.iter().find(|&&(s, sg, _)| s == k && sg == kgen))
            .map_or(std::ptr::null_mut(), |e| e.2))
    }

    /// The hub is being destroyed: runs the destructors of every value still set (every
    /// greenlet's, main's and the hub's) and those queued for greenlets that died, as hub
    /// callbacks, in up to `DESTROY_ROUNDS` rounds. Main greenlet, hub still published.
    pub(crate) fn run_local_dtors_at_destroy(&self) {
        for _ in 0..DESTROY_ROUNDS {
            let pending: Vec<(DtorFn, *mut c_void)> = {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                if st.locals.is_empty()
                    && !st
                        .queue
                        .iter()
                        .any(|cb| matches!(cb, Callback::Dtor { .. }))
                {
                    return;
                }
                let slots: Vec<u32> = st.locals.keys().copied().collect();
                for s in slots {
                    st.queue_local_dtors(s);
                }
                let mut out = Vec::new();
                st.queue.retain(|cb| match *cb {
                    Callback::Dtor { f, arg } => {
                        out.push((f, arg));
                        false
                    }
                    _ => true,
                });
                out
            };
            let was = self.current.replace(self.hub_slot);
            for (f, arg) in pending {
                // SAFETY: f is the destructor gh_local_key_create's caller gave for values
                // like arg, which that caller set; it runs in the hub like any callback.
                unsafe { f(arg) };
            }
            self.current.set(was);
        }
    }
}
