//! Header section "Thread pool".

use super::{guard, need, put};
use crate::error::Error;
use crate::hub;
use std::ffi::{c_char, c_int, c_void, CStr};

/// A function run on a pool thread: `void *fn(void *arg)`.
pub type gh_pool_fn = Option<unsafe extern "C" fn(arg: *mut c_void) -> *mut c_void>;

/// Base of the gh_getaddrinfo codes for getaddrinfo(3) failures: such a failure is
/// returned as GH_EAI_BASE + its EAI_* value (e.g. GH_EAI_BASE + EAI_NONAME);
/// gh_strerror gives gai_strerror's text for them.
pub const GH_EAI_BASE: c_int = -2000;

/// Runs `fn(arg)` on one of this hub's worker threads while only the calling greenlet
/// waits (the hub serves the others meanwhile), and stores its return value in
/// `*result`. Workers are started on demand up to the pool size (gh_threadpool_set_size,
/// default 10) and end when the hub is destroyed.
///
/// If the caller stops waiting (gh_kill, a gh_timeout) while `fn` runs, `fn` still runs
/// to completion on its thread and its return value is dropped: do not return memory
/// only the caller would free, or accept that it leaks in that case. gh_hub_destroy lets
/// running jobs finish (their results are dropped; it waits at most 0.1 s for idle
/// workers to end) and discards jobs that have not started: those never run.
///
/// *Ownership*: `arg` must stay valid until `fn` has run (beware stack memory when the
/// caller may be killed). *Threads*: `fn` runs on another thread: it must not touch this
/// hub's objects (it may use greenhub on its own, with that thread's own hub).
/// *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`fn` NULL), GH_ENOMEM (no worker could be started),
/// GH_ETIMEDOUT (a gh_timeout expired), GH_ECANCELED, a gh_throw code, GH_EPERM.
///
/// # Safety
/// `result` NULL or writable; `fn` safe to call with `arg` on another thread.
#[no_mangle]
pub unsafe extern "C" fn gh_threadpool_apply(
    r#fn: gh_pool_fn,
    arg: *mut c_void,
    result: *mut *mut c_void,
) -> c_int {
    guard(|| {
        let f = r#fn.ok_or(Error::INVAL)?;
        let v = hub::current()?.threadpool_apply(f, arg as usize, None)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put(result, v as *mut c_void) };
        Ok(0)
    })
}

/// Sets the most worker threads this thread's hub starts (default 10, gevent's).
/// Lowering it does not stop workers already running; it bounds new starts.
///
/// *Threads*: this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`size` 0 or above 1024).
#[no_mangle]
pub extern "C" fn gh_threadpool_set_size(size: usize) -> c_int {
    guard(|| {
        if size == 0 || size > 1024 {
            return Err(Error::INVAL);
        }
        let hub = hub::current()?;
        let mut st = hub.st.borrow_mut();
        st.pool_size = size;
        if let Some(p) = st.pool.as_mut() {
            p.size = size;
        }
        Ok(0)
    })
}

/// getaddrinfo(3) run on the thread pool, cooperatively: only the caller waits.
/// `node`, `service` and `hints` are copied, so the lookup may safely outlive a caller
/// that is killed or times out (its result is then freed by greenhub).
///
/// *Ownership*: on GH_OK, `*res` is the caller's: free it with freeaddrinfo.
/// *Threads*: this thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EAI_BASE + EAI_* for lookup failures (e.g. an unknown host), -errno for
/// EAI_SYSTEM, GH_EINVAL (`res` NULL, or both `node` and `service` NULL), GH_ENOMEM,
/// GH_ETIMEDOUT (a gh_timeout expired), GH_ECANCELED, a gh_throw code, GH_EPERM.
///
/// # Safety
/// `node`/`service` NULL or NUL-terminated; `hints` NULL or readable; `res` writable.
#[no_mangle]
pub unsafe extern "C" fn gh_getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    guard(|| {
        need(res)?;
        if node.is_null() && service.is_null() {
            return Err(Error::INVAL);
        }
        // SAFETY: NUL-terminated or NULL per the contract.
        let cstr =
            |p: *const c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned());
        let mut h = None;
        if !hints.is_null() {
            // SAFETY: readable per the contract; only the flag/family/type/protocol
            // fields matter to getaddrinfo, the pointers must be NULL in hints.
            let mut c = unsafe { *hints };
            c.ai_addr = std::ptr::null_mut();
            c.ai_canonname = std::ptr::null_mut();
            c.ai_next = std::ptr::null_mut();
            c.ai_addrlen = 0;
            h = Some(c);
        }
        let r = hub::current()?.getaddrinfo(cstr(node), cstr(service), h)?;
        // SAFETY: non-null and writable per the contract.
        unsafe { put(res, r) };
        Ok(0)
    })
}
