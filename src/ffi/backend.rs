//! Header section "Backends": a hub backend plugged in from C (eventlet's
//! `use_hub(module)`). The adapter and the registry are in `event_loop::plugin`.

use crate::event_loop::plugin::{self, Event, Plugin, VtableV1};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::mem::{align_of, offset_of, size_of};

/// The version of gh_backend this header describes; put it in gh_backend.version.
pub const GH_BACKEND_VERSION: c_uint = 1;

/// One ready fd, as a plug-in backend's poll reports it.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct gh_backend_event {
    /// An fd the backend holds (given to it by `add` and not removed since).
    pub fd: c_int,
    /// GH_READ | GH_WRITE (errors and hang-ups: both); no other bits.
    pub events: c_int,
}

/// A hub backend written in C: the functions greenhub's loop calls to watch fds for
/// readiness (what epoll, poll(2) and select(2) do for the built-in backends).
/// Register it by name with gh_backend_register (then GREENHUB_BACKEND=name or
/// gh_hub_config.backend = "name" choose it, like a built-in one), or pass it directly
/// in gh_hub_config.backend_plugin. A shared object named in GREENHUB_BACKEND_PLUGIN
/// (`:`-separated paths) is dlopen()ed when a hub first needs a backend that is not
/// built in, and the table its `const gh_backend *gh_backend_plugin(void)` returns is
/// registered (a name the program registered already keeps the program's backend, with a
/// line on stderr): how a program runs on a plug-in without being changed
/// (examples-c/backend_libev.c is one, on libev).
///
/// The contract (what the built-in backends meet; greenhub checks what it can):
/// * **Instances.** `create(arg, &state)` makes one instance per hub, in that hub's
///   thread (any thread that creates a hub); every other call passes that `state`, in
///   the same thread. `destroy(state)` ends it (hub destroyed, thread exit, or the loop
///   rebuilding its registrations). Return 0 or a negative errno (`-ENOMEM`, ...): a
///   failed create makes the hub creation fail with that code.
/// * **Interest.** `add(state, fd, events)` starts watching `fd` for `events`
///   (GH_READ | GH_WRITE, possibly 0), `modify` changes the events of an fd it holds,
///   `remove` stops watching it. greenhub never adds an fd twice, nor modifies or
///   removes one it did not add, nor adds a closed fd (it answers EEXIST, ENOENT and
///   EBADF itself). Each returns 0 or a negative errno; the code reaches the greenhub
///   call that needed the registration (e.g. gh_wait_read). Return -EPERM for an fd the
///   backend cannot watch but that is always ready (a regular file, as epoll does):
///   greenhub then treats it as always ready. greenhub calls `remove` before it closes
///   an fd (gh_close); an fd closed behind its back may stay registered: a later
///   `modify` on that number must watch whatever file the number names now.
/// * **Poll.** `poll(state, events, capacity, timeout_ms)` waits until at least one
///   held fd is ready or `timeout_ms` passes (-1: no limit, 0: do not wait), writes up
///   to `capacity` events and returns their count (0 on timeout). Readiness is
///   **level-triggered**: an fd still ready is reported again by the next poll. A
///   **spurious** event (readiness that is gone when the caller acts, or events that
///   were not asked for) costs a retry, never a lost wake-up: greenhub's I/O treats
///   EAGAIN as "wait again". Errors and hang-ups are reported as GH_READ | GH_WRITE.
///   An interrupted wait returns 0 or -EINTR.
/// * **Errors.** A negative return from poll (other than -EINTR), a count above
///   `capacity`, an event for an fd the backend does not hold, or bits other than
///   GH_READ | GH_WRITE break the backend: one line on stderr, every fd it held is reported ready once, and greenhub
///   calls nothing of it but `destroy` from then on: the hub's fd waits fail with
///   GH_EBACKEND, while timers, callbacks and cross-thread wake-ups keep working.
/// * **Embedding.** `backend_fd(state)` (optional, may be NULL) returns an fd that is
///   readable whenever poll would report something (epoll's fd), for
///   gh_hub_backend_fd; without it that call is GH_ENOTSUP.
/// * **fork.** In a forked child greenhub lets go of the instance it inherited and
///   creates a new one. It calls `fork_child(state)` (optional, may be NULL) instead of
///   `destroy`: free what the instance holds without changing kernel objects the parent
///   still uses (no epoll_ctl on an inherited epoll fd; closing this process's copy of
///   an fd is fine). Without it the inherited instance is leaked in the child.
/// * **Threads.** The table and its name are copied on registration (or configure);
///   `arg` is kept as a pointer: it must stay valid while hubs may be created with the
///   backend. The functions must not call greenhub.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct gh_backend {
    /// GH_BACKEND_VERSION (another value: GH_ENOTSUP).
    pub version: c_uint,
    /// Its name: 1 to 63 bytes of UTF-8, not a built-in backend's name; what
    /// GREENHUB_BACKEND selects and gh_hub_backend() returns.
    pub name: *const c_char,
    /// Passed to `create` as is.
    pub arg: *mut c_void,
    /// Mandatory: makes an instance, stored through the second argument; 0 or -errno.
    pub create: Option<unsafe extern "C" fn(arg: *mut c_void, state: *mut *mut c_void) -> c_int>,
    /// Mandatory: ends an instance.
    pub destroy: Option<unsafe extern "C" fn(state: *mut c_void)>,
    /// Mandatory: starts watching `fd` for `events`; 0 or -errno (-EPERM: always ready).
    pub add: Option<unsafe extern "C" fn(state: *mut c_void, fd: c_int, events: c_int) -> c_int>,
    /// Mandatory: changes the events watched on a held fd; 0 or -errno.
    pub modify: Option<unsafe extern "C" fn(state: *mut c_void, fd: c_int, events: c_int) -> c_int>,
    /// Mandatory: stops watching a held fd; 0 or -errno.
    pub remove: Option<unsafe extern "C" fn(state: *mut c_void, fd: c_int) -> c_int>,
    /// Mandatory: waits at most `timeout_ms` (-1: no limit) and fills `events`; returns
    /// how many (0 to `capacity`) or -errno.
    pub poll: Option<
        unsafe extern "C" fn(
            state: *mut c_void,
            events: *mut gh_backend_event,
            capacity: c_int,
            timeout_ms: c_int,
        ) -> c_int,
    >,
    /// Optional: an fd readable when poll has something to report (embedding).
    pub backend_fd: Option<unsafe extern "C" fn(state: *mut c_void) -> c_int>,
    /// Optional: lets go of an instance inherited across fork() (see above).
    pub fork_child: Option<unsafe extern "C" fn(state: *mut c_void)>,
}

// The core reads gh_backend as `VtableV1` and gh_backend_event as `Event`: same layout.
const _: () = {
    assert!(size_of::<gh_backend>() == size_of::<VtableV1>());
    assert!(align_of::<gh_backend>() == align_of::<VtableV1>());
    assert!(offset_of!(gh_backend, version) == offset_of!(VtableV1, version));
    assert!(offset_of!(gh_backend, name) == offset_of!(VtableV1, name));
    assert!(offset_of!(gh_backend, arg) == offset_of!(VtableV1, arg));
    assert!(offset_of!(gh_backend, create) == offset_of!(VtableV1, create));
    assert!(offset_of!(gh_backend, destroy) == offset_of!(VtableV1, destroy));
    assert!(offset_of!(gh_backend, add) == offset_of!(VtableV1, add));
    assert!(offset_of!(gh_backend, modify) == offset_of!(VtableV1, modify));
    assert!(offset_of!(gh_backend, remove) == offset_of!(VtableV1, remove));
    assert!(offset_of!(gh_backend, poll) == offset_of!(VtableV1, poll));
    assert!(offset_of!(gh_backend, backend_fd) == offset_of!(VtableV1, backend_fd));
    assert!(offset_of!(gh_backend, fork_child) == offset_of!(VtableV1, fork_child));
    assert!(size_of::<gh_backend_event>() == size_of::<Event>());
    assert!(offset_of!(gh_backend_event, fd) == offset_of!(Event, fd));
    assert!(offset_of!(gh_backend_event, events) == offset_of!(Event, events));
    assert!(GH_BACKEND_VERSION == plugin::VERSION);
};

/// Checks and copies a table (`backend` may be NULL: `GH_EINVAL`).
///
/// # Safety
/// `backend` must be NULL or point to a readable gh_backend whose `name` is NULL or
/// NUL-terminated.
pub(crate) unsafe fn to_plugin(
    backend: *const gh_backend,
) -> crate::error::Result<std::sync::Arc<Plugin>> {
    // SAFETY: same layout (asserted above); readable per the contract.
    unsafe { Plugin::from_raw(backend.cast::<VtableV1>()) }
}

/// Registers a C backend under its name, for every thread of the process: hubs created
/// afterwards use it when GREENHUB_BACKEND or gh_hub_config.backend names it. The
/// contract a backend meets is written at gh_backend. Hubs that exist keep their
/// backend (a hub's backend is chosen once, when it is created).
///
/// *Ownership*: the table is copied; `backend->name` and `backend->arg` are not (the
/// name is copied, `arg` must stay valid while hubs may be created with it).
/// *Threads*: thread-safe. *Blocking*: never.
/// *Errors*: GH_EINVAL (NULL `backend`, NULL/empty/over 63 bytes/non-UTF-8 name, a
/// mandatory function NULL), GH_ENOTSUP (`version` is not GH_BACKEND_VERSION),
/// GH_EEXIST (a built-in backend or another registered one has that name).
///
/// # Safety
/// `backend` must be NULL or point to a readable gh_backend whose `name` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gh_backend_register(backend: *const gh_backend) -> c_int {
    super::guard(|| {
        // SAFETY: forwarded contract.
        let p = unsafe { to_plugin(backend) }?;
        plugin::register(p).map(|_| 0)
    })
}
