//! Header section "Greenlets".

use super::{gh_greenlet, guard, need, put};
use crate::error::{Error, Result};
use crate::event_loop::duration_ns;
use crate::handle::Kind;
use crate::hub::greenlets::SpawnOpts;
use crate::hub::{self, Hub};
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// A greenlet's function: `void *fn(void *arg)`; its return value is what gh_join reports.
pub type gh_fn = Option<unsafe extern "C" fn(arg: *mut c_void) -> *mut c_void>;

/// A function gh_link runs when greenlet `g` ends: `void fn(gh_greenlet g, void *arg)`.
pub type gh_link_fn = Option<unsafe extern "C" fn(g: gh_greenlet, arg: *mut c_void)>;

/// gh_link_fn's function as the core calls it (`gh_greenlet` and `RawHandle` are both a
/// `#[repr(C)]` struct of one u64: the same ABI).
fn link_fn(f: gh_link_fn) -> Result<crate::greenlet::LinkFn> {
    let f = f.ok_or(Error::INVAL)?;
    // SAFETY: the two function pointer types differ only in a by-value parameter of the
    // same layout (see above).
    Ok(unsafe {
        std::mem::transmute::<unsafe extern "C" fn(gh_greenlet, *mut c_void), crate::greenlet::LinkFn>(
            f,
        )
    })
}

/// Options for gh_spawn_ex. Zero-initialise it (`gh_spawn_options o = {0};`).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct gh_spawn_options {
    /// Stack size in bytes; 0 = the hub's default (256 KiB or GREENHUB_STACK_SIZE).
    /// Rounded up to whole pages and to at least 16 KiB; above 1 GiB is GH_EINVAL.
    /// Only the pages a greenlet touches cost memory.
    pub stack_size: usize,
    /// Name for diagnostics (copied); NULL = unnamed.
    pub name: *const c_char,
}

/// gh_greenlet_state: spawned, has not run yet (killing it now means it never runs).
pub const GH_STATE_NEW: c_int = 0;
/// gh_greenlet_state: has run, and a wake-up is queued (e.g. after gh_sleep(0)).
pub const GH_STATE_READY: c_int = 1;
/// gh_greenlet_state: the calling greenlet (or the hub, inside a callback).
pub const GH_STATE_RUNNING: c_int = 2;
/// gh_greenlet_state: parked in a blocking call or gh_switch.
pub const GH_STATE_WAITING: c_int = 3;
/// gh_greenlet_state: its function returned, or it was killed before it started.
pub const GH_STATE_DEAD: c_int = 4;

/// Decodes a greenlet handle of this thread's hub. The record itself is checked once,
/// by the core function the caller hands (slot, gen) to (each starts with
/// `greenlet_ok`), not here as well.
fn lookup(g: gh_greenlet) -> Result<(&'static Hub, u32, u32)> {
    let hub = hub::for_handle(g.id)?;
    let (slot, gen) = hub.check(g.id, Kind::Greenlet)?;
    Ok((hub, slot, gen))
}

fn timeout(seconds: f64) -> Result<Option<u64>> {
    duration_ns(seconds)
}

/// Spawns with options and a spawn site; the common body of every gh_spawn* function.
///
/// # Safety
/// Pointers as documented on gh_spawn_at.
unsafe fn spawn_common(
    out: *mut gh_greenlet,
    f: gh_fn,
    arg: *mut c_void,
    opts: *const gh_spawn_options,
    file: *const c_char,
    line: c_int,
    delay: Option<u64>,
) -> Result<c_int> {
    let f = f.ok_or(Error::INVAL)?;
    let hub = hub::current()?;
    let mut o = SpawnOpts {
        file,
        line,
        delay,
        detached: out.is_null(),
        ..SpawnOpts::default()
    };
    if !opts.is_null() {
        // SAFETY: non-null and readable per the contract.
        let op = unsafe { *opts };
        o.stack_size = op.stack_size;
        if !op.name.is_null() {
            // SAFETY: NUL-terminated per the contract.
            o.name = Some(unsafe { CStr::from_ptr(op.name) }.to_owned());
        }
    }
    let (slot, gen) = hub.spawn(f, arg, o)?;
    // SAFETY: out is NULL or writable per the contract.
    unsafe {
        put(
            out,
            gh_greenlet {
                id: hub.handle(Kind::Greenlet, slot, gen),
            },
        )
    };
    Ok(0)
}

/// Spawns a greenlet running `fn(arg)`, scheduled to start in the hub's next loop
/// iteration (it runs once the caller blocks or yields). Its parent is the hub.
///
/// *Ownership*: `*out` receives a handle the caller owns: release it with gh_release
/// once done with it (the greenlet's small record stays until then, so gh_join can
/// report the result). `out` NULL = detached: the record goes when the greenlet dies.
/// `arg` is passed through untouched.
/// *Threads*: the calling thread's hub (created if needed).
/// *Blocking*: never; allowed from greenlets, main and hub callbacks.
/// *Errors*: GH_EINVAL (`fn` NULL), GH_ENOMEM (no memory or stack mapping left),
/// errors creating the hub.
///
/// # Safety
/// `out` must be NULL or writable; `fn` must be safe to call with `arg` on a greenlet stack.
#[no_mangle]
pub unsafe extern "C" fn gh_spawn(out: *mut gh_greenlet, r#fn: gh_fn, arg: *mut c_void) -> c_int {
    // SAFETY: forwarded contract.
    guard(|| unsafe { spawn_common(out, r#fn, arg, std::ptr::null(), std::ptr::null(), 0, None) })
}

/// gh_spawn with options (stack size, name); `opts` NULL = defaults.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_spawn; `opts` and its name are copied.
/// *Errors*: as gh_spawn, plus GH_EINVAL for a stack size above 1 GiB.
///
/// # Safety
/// As gh_spawn; `opts` NULL or readable with `name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gh_spawn_ex(
    out: *mut gh_greenlet,
    r#fn: gh_fn,
    arg: *mut c_void,
    opts: *const gh_spawn_options,
) -> c_int {
    // SAFETY: forwarded contract.
    guard(|| unsafe { spawn_common(out, r#fn, arg, opts, std::ptr::null(), 0, None) })
}

/// gh_spawn_ex recording a spawn site for diagnostics; what GH_SPAWN and GH_SPAWN_EX
/// expand to with `__FILE__` and `__LINE__`.
///
/// *Ownership*: `file` is kept as a pointer, not copied: pass a string that lives for
/// the whole program (a literal such as `__FILE__`). Otherwise as gh_spawn_ex.
/// *Errors*: as gh_spawn_ex.
///
/// # Safety
/// As gh_spawn_ex; `file` NULL or a static NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gh_spawn_at(
    out: *mut gh_greenlet,
    r#fn: gh_fn,
    arg: *mut c_void,
    opts: *const gh_spawn_options,
    file: *const c_char,
    line: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    guard(|| unsafe { spawn_common(out, r#fn, arg, opts, file, line, None) })
}

/// Spawns a greenlet that starts `seconds` from now (gevent's spawn_later). Until then
/// its state is GH_STATE_NEW; gh_kill before then means it never runs.
///
/// *Ownership*, *Threads*, *Blocking*: as gh_spawn.
/// *Errors*: as gh_spawn, plus GH_EINVAL for NaN or negative `seconds`.
///
/// # Safety
/// As gh_spawn.
#[no_mangle]
pub unsafe extern "C" fn gh_spawn_later(
    out: *mut gh_greenlet,
    seconds: f64,
    r#fn: gh_fn,
    arg: *mut c_void,
) -> c_int {
    guard(|| {
        if seconds.is_nan() || seconds < 0.0 {
            return Err(Error::INVAL);
        }
        let delay = timeout(seconds)?.unwrap_or(u64::MAX / 4);
        // SAFETY: forwarded contract.
        unsafe {
            spawn_common(
                out,
                r#fn,
                arg,
                std::ptr::null(),
                std::ptr::null(),
                0,
                Some(delay),
            )
        }
    })
}

/// The running greenlet: the main greenlet, a spawned one, or the hub inside a callback.
///
/// *Ownership*: a borrowed handle; do not gh_release it unless it is your own spawn.
/// *Threads*: the calling thread (its hub is created if needed). *Blocking*: never.
/// *Errors*: none; `{0}` if the hub cannot be created.
#[no_mangle]
pub extern "C" fn gh_current() -> gh_greenlet {
    let r = std::panic::catch_unwind(|| {
        hub::current().map(|h| {
            let (slot, gen) = h.current_id();
            h.handle(Kind::Greenlet, slot, gen)
        })
    });
    gh_greenlet {
        id: r.ok().and_then(|r| r.ok()).unwrap_or(0),
    }
}

/// This thread's main greenlet (the thread's own stack).
///
/// *Ownership*: borrowed; gh_release on it is GH_EINVAL.
/// *Threads*: the calling thread. *Blocking*: never. *Errors*: none; `{0}` on failure.
#[no_mangle]
pub extern "C" fn gh_main() -> gh_greenlet {
    let r = std::panic::catch_unwind(|| {
        hub::current().map(|h| h.handle(Kind::Greenlet, h.main_slot, h.main_gen))
    });
    gh_greenlet {
        id: r.ok().and_then(|r| r.ok()).unwrap_or(0),
    }
}

/// Waits until `g` is dead and stores its function's return value in `*result`
/// (NULL if it was killed before it started). A dead greenlet is reported at once.
///
/// *Ownership*: `result` may be NULL. The handle stays valid (release it after).
/// *Threads*: `g` of this thread's hub. *Blocking*: yes (`timeout` 0 = just check).
/// *Errors*: GH_ETIMEDOUT, GH_EDEADLK (`g` is the caller, or `g` joins the caller,
/// directly or through a chain), GH_EINVAL (NaN timeout; `g` is the main greenlet or the
/// hub, which never finish), GH_EBADHANDLE, GH_EWRONGTHREAD, GH_EPERM (blocking in a hub
/// callback), GH_ECANCELED (the caller was killed), a gh_throw code, GH_ELOOPEXIT
/// (main greenlet, and nothing left could let `g` finish).
///
/// # Safety
/// `result` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_join(g: gh_greenlet, timeout: f64, result: *mut *mut c_void) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        let r = hub.join(slot, gen, self::timeout(timeout)?)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put(result, r) };
        Ok(0)
    })
}

/// Waits until every greenlet of `gs[0..n]` is dead, or `timeout` (one deadline for
/// all) expires. `*ndone` (if not NULL) receives how many are dead on return.
///
/// *Threads*, *Blocking*: as gh_join.
/// *Errors*: GH_OK when all are dead; GH_ETIMEDOUT; GH_EINVAL (`gs` NULL with n > 0, NaN
/// timeout, the main greenlet or hub in the list); GH_EBADHANDLE / GH_EWRONGTHREAD (any
/// handle; nothing is waited for then); and the other codes of gh_join.
///
/// # Safety
/// `gs` readable for `n` handles; `ndone` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_joinall(
    gs: *const gh_greenlet,
    n: usize,
    timeout: f64,
    ndone: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or writable per the contract.
        unsafe { put(ndone, 0) };
        // The timeout is checked before the empty-list shortcut: NaN is GH_EINVAL
        // whatever `n` is (found by fuzz/api_sequence).
        let t = self::timeout(timeout)?;
        if n == 0 {
            return Ok(0);
        }
        need(gs)?;
        // SAFETY: readable for n handles per the contract.
        let list = unsafe { std::slice::from_raw_parts(gs, n) };
        let hub = hub::for_handle(list[0].id)?;
        for g in list {
            hub.check(g.id, Kind::Greenlet)?;
        }
        // No Vec of the ids: it would live on this greenlet's stack across the waits
        // (and leak if the hub were destroyed meanwhile); the C array is decoded in place.
        let at = |i: usize| hub.check(list[i].id, Kind::Greenlet).unwrap_or((0, 0));
        let (r, done) = hub.joinall(n, at, t);
        // SAFETY: NULL or writable per the contract.
        unsafe { put(ndone, done) };
        r.map(|_| 0)
    })
}

/// Kills `g` the gevent way (GreenletExit): `g`'s current and every later blocking
/// call return GH_ECANCELED, so its C code can clean up and return; a greenlet that
/// has not started is discarded and never runs. Kill is cooperative: a greenlet that
/// never blocks again runs on. Killing a dead greenlet, or twice, is harmless.
/// `timeout` 0: deliver the kill and return at once; > 0: then wait up to `timeout`
/// for `g` to die; negative / GH_FOREVER: wait until it dies. Killing the caller itself
/// only marks it (its next blocking call returns GH_ECANCELED).
///
/// *Threads*: `g` of this thread's hub. *Blocking*: only with a non-zero timeout.
/// *Errors*: GH_ETIMEDOUT (still alive after `timeout`), GH_EINVAL (the hub, NaN timeout),
/// GH_EBADHANDLE, GH_EWRONGTHREAD, and when waiting the codes of gh_join.
#[no_mangle]
pub extern "C" fn gh_kill(g: gh_greenlet, timeout: f64) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        let t = self::timeout(timeout)?;
        hub.kill(slot, gen, t).map(|_| 0)
    })
}

/// Makes `g`'s current (or, if it is not blocked, next) blocking call return `code`
/// once (gevent's Greenlet.throw). Works on greenlets that have not started yet.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`code` >= 0, or `g` is the hub), GH_EDEAD (`g` is dead),
/// GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_throw(g: gh_greenlet, code: c_int) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        hub.throw(slot, gen, code).map(|_| 0)
    })
}

/// Raw greenlet switch: parks the caller and runs `g` at once, handing it `value`.
/// `g` must be new (it starts now; `value` is dropped, it gets its spawn arg), parked in
/// gh_switch (its gh_switch returns with `*received = value`), the main greenlet parked
/// in gh_switch, or the hub (then the caller just parks until someone switches to it).
/// Returns when another greenlet switches back; `*received` (if not NULL) gets the value.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (`g` is the caller), GH_EDEAD (`g` is dead), GH_EBUSY (`g` is
/// blocked in another call: wake it through what it waits on), GH_EPERM (from a hub
/// callback), GH_EBADHANDLE, GH_EWRONGTHREAD, GH_ECANCELED (the caller was killed while
/// parked), GH_ETIMEDOUT (a gh_timeout of the caller expired), a gh_throw code,
/// GH_ELOOPEXIT (main: nothing left could switch back).
///
/// # Safety
/// `received` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn gh_switch(
    g: gh_greenlet,
    value: *mut c_void,
    received: *mut *mut c_void,
) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        let v = hub.switch(slot, gen, value)?;
        // SAFETY: NULL or writable per the contract.
        unsafe { put(received, v) };
        Ok(0)
    })
}

/// Sleeps cooperatively: other greenlets run meanwhile. 0 yields (runs every other
/// ready greenlet once, and IO is still polled regularly under a storm of yields);
/// negative or GH_FOREVER sleeps until killed or thrown at.
///
/// *Threads*: the calling thread's hub. *Blocking*: yes; not from a hub callback.
/// *Errors*: GH_EINVAL (NaN), GH_EPERM (hub callback), GH_ECANCELED (killed),
/// GH_ETIMEDOUT (a gh_timeout of the caller expired), a gh_throw code, GH_ELOOPEXIT
/// (main greenlet sleeping forever with nothing else alive).
#[no_mangle]
pub extern "C" fn gh_sleep(seconds: f64) -> c_int {
    guard(|| hub::current()?.sleep(seconds).map(|_| 0))
}

/// The state of `g`: GH_STATE_NEW, _READY, _RUNNING, _WAITING or _DEAD (>= 0), or a
/// negative code.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_greenlet_state(g: gh_greenlet) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        hub.state(slot, gen).map(|s| s as c_int)
    })
}

/// Copies `g`'s name ("main", "hub", the spawn name, or "" when unnamed) into `buf`
/// (always NUL-terminated, truncated to `len - 1` bytes) and returns the name's full
/// length, like snprintf: call with `buf` NULL and `len` 0 to learn the size.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`buf` NULL with `len` > 0), GH_EBADHANDLE, GH_EWRONGTHREAD.
///
/// # Safety
/// `buf` writable for `len` bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn gh_greenlet_name(g: gh_greenlet, buf: *mut c_char, len: usize) -> c_int {
    guard(|| {
        if buf.is_null() && len > 0 {
            return Err(Error::INVAL);
        }
        let (hub, slot, gen) = lookup(g)?;
        hub.with_name(slot, gen, |name| {
            let bytes = name.to_bytes();
            if len > 0 {
                let n = bytes.len().min(len - 1);
                // SAFETY: buf is writable for len > n bytes per the contract.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, buf, n);
                    *buf.add(n) = 0;
                }
            }
            bytes.len().min(c_int::MAX as usize) as c_int
        })
    })
}

/// Sets `g`'s name (copied) for diagnostics.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`name` NULL), GH_EBADHANDLE, GH_EWRONGTHREAD, GH_ENOMEM.
///
/// # Safety
/// `name` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn gh_greenlet_set_name(g: gh_greenlet, name: *const c_char) -> c_int {
    guard(|| {
        need(name)?;
        let (hub, slot, gen) = lookup(g)?;
        // SAFETY: NUL-terminated per the contract.
        let n: CString = unsafe { CStr::from_ptr(name) }.to_owned();
        hub.set_name(slot, gen, n).map(|_| 0)
    })
}

/// Links `fn` to greenlet `g` (gevent's `rawlink`): when `g` ends — its function
/// returns, or it is killed, before or after it started — `fn(g, arg)` runs in the hub,
/// in the next loop iteration, links in the order they were made; linking a greenlet that
/// has already ended queues `fn` at once. `fn` runs as a hub callback: it must not block
/// (blocking calls return GH_EPERM there). A greenlet may be linked several times, to the
/// same function too. Links of greenlets still alive when their hub is destroyed never
/// run. Links survive gh_release (then `g` is stale in `fn`: use `arg`).
///
/// *Ownership*: `arg` is passed through untouched. *Threads*: `g` of this thread's hub.
/// *Blocking*: never.
/// *Errors*: GH_EINVAL (`fn` NULL; `g` is the main greenlet or the hub), GH_EBADHANDLE,
/// GH_EWRONGTHREAD, GH_ENOMEM.
#[no_mangle]
pub extern "C" fn gh_link(g: gh_greenlet, r#fn: gh_link_fn, arg: *mut c_void) -> c_int {
    guard(|| {
        let f = link_fn(r#fn)?;
        let (hub, slot, gen) = lookup(g)?;
        hub.link(slot, gen, f, arg).map(|_| 0)
    })
}

/// Removes the first link of `g` to `fn` with `arg` that has not run yet (made by
/// gh_link; also one queued because `g` has ended). Returns 1 if one was removed, 0 if
/// none matched.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (`fn` NULL), GH_EBADHANDLE, GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_unlink(g: gh_greenlet, r#fn: gh_link_fn, arg: *mut c_void) -> c_int {
    guard(|| {
        let f = link_fn(r#fn)?;
        let (hub, slot, gen) = lookup(g)?;
        hub.unlink(slot, gen, f, arg).map(|n| n as c_int)
    })
}

/// Gives up the handle `g`: it is stale from now on. The greenlet itself keeps running
/// (detached); its small record is freed at once if it is dead, else when it dies.
///
/// *Threads*: `g` of this thread's hub. *Blocking*: never.
/// *Errors*: GH_EINVAL (the main greenlet or the hub), GH_EBADHANDLE (already released,
/// zero, forged), GH_EWRONGTHREAD.
#[no_mangle]
pub extern "C" fn gh_release(g: gh_greenlet) -> c_int {
    guard(|| {
        let (hub, slot, gen) = lookup(g)?;
        hub.release(slot, gen).map(|_| 0)
    })
}
