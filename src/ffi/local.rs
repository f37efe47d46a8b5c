//! Greenlet-local storage: gh_local_key_* (gevent.local; pthread keys for greenlets).

use super::{guard, need};
use crate::hub;
use std::ffi::{c_int, c_void};

/// A greenlet-local storage key (a value; gh_local_key_create).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_local_key {
    pub id: u64,
}

/// A greenlet-local value's destructor: `void dtor(void *value)`.
pub type gh_local_dtor_fn = Option<unsafe extern "C" fn(value: *mut c_void)>;

/// Creates a key for greenlet-local values (gevent.local; `pthread_key_create` for
/// greenlets): each greenlet (main and, in callbacks, the hub included) has its own value
/// for it, NULL until set. When a greenlet ends, `dtor` (may be NULL) runs with each
/// non-NULL value it had, as a hub callback in a later iteration (it must not block);
/// when the hub is destroyed, it runs first for every value still set (main's too), in
/// up to 4 rounds if destructors set values again.
///
/// *Ownership*: `*out` is the caller's: gh_local_key_delete it. The values are the
/// caller's; greenhub only hands them to `dtor`. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`out` NULL), GH_ENOMEM.
///
/// # Safety
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_local_key_create(
    out: *mut gh_local_key,
    dtor: gh_local_dtor_fn,
) -> c_int {
    guard(|| {
        need(out)?;
        let id = hub::current()?.local_key_create(dtor)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(gh_local_key { id }) };
        Ok(0)
    })
}

/// Deletes `key` (as `pthread_key_delete`): no destructor runs; values set with it are
/// forgotten. The handle is stale from now on.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE (zero, forged, deleted), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_local_key_delete(key: gh_local_key) -> c_int {
    guard(|| hub::for_handle(key.id)?.local_key_delete(key.id).map(|_| 0))
}

/// Sets the calling greenlet's value for `key` (NULL clears it: no destructor runs for
/// it then).
///
/// *Ownership*: `value` stays the caller's until `key`'s destructor gets it.
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD, GH_ENOMEM.
#[no_mangle]
pub extern "C" fn gh_local_set(key: gh_local_key, value: *mut c_void) -> c_int {
    guard(|| hub::for_handle(key.id)?.local_set(key.id, value).map(|_| 0))
}

/// Gets the calling greenlet's value for `key` into `*value` (NULL if it set none).
///
/// *Ownership*: writes the caller's pointer. *Threads*: this thread's hub.
/// *Blocking*: never. *Errors*: GH_EINVAL (`value` NULL), GH_EBADHANDLE,
/// GH_EWRONGTHREAD.
///
/// # Safety
/// `value` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_local_get(key: gh_local_key, value: *mut *mut c_void) -> c_int {
    guard(|| {
        need(value)?;
        let v = hub::for_handle(key.id)?.local_get(key.id)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { value.write(v) };
        Ok(0)
    })
}
