//! The hub: one per thread, created lazily; it owns the loop and every greenlet and
//! watcher of its thread.
//!
//! Switching (asymmetric coroutines mapped onto greenlet semantics):
//! * The hub's loop runs on the main greenlet's stack: when main blocks, it calls
//!   into the loop (`run::run_for_main`), which returns when main is woken. Main ⇄
//!   hub is therefore a function call, not a stack switch.
//! * Tasks are corosensei coroutines resumed by the loop; a task "switching to the
//!   hub" is a `suspend`. A task ⇄ task switch (`gh_switch`) goes through the hub.
//! * Watcher callbacks run in the loop with the hub as the current greenlet, so a
//!   blocking call from a callback is `GH_EPERM`.
//!
//! All mutable state sits in one `HubCell<HubState>` (`cell.rs`: a RefCell in checked
//! builds, an unchecked cell with a busy flag in release builds); borrows are short and
//! never held across a switch or a call into C.

pub mod cell;
pub mod embed;
pub mod greenlets;
pub mod locals;
pub mod run;
pub mod wait;
pub mod watchers;

use crate::error::{Error, Result};
use crate::event_loop::epoll::Epoll;
use crate::event_loop::fds::Fds;
use crate::event_loop::timers::Timers;
use crate::event_loop::watcher::Watcher;
use crate::event_loop::{Backend, Ready, WAKE_TOKEN};
use crate::greenlet::{Greenlet, Msg, Role};
use crate::handle::{Id, Kind, Table};
use crate::remote::HubShared;
use crate::stack::{self, StackPool};
use cell::HubCell;
use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

/// Work queued for the hub's next iteration (gevent's `loop.run_callback`).
#[derive(Copy, Clone, Debug)]
pub enum Callback {
    /// First run of a spawned greenlet.
    Start { slot: u32, gen: u32 },
    /// Wake a parked greenlet if it is still in wait `seq`.
    Wake {
        slot: u32,
        gen: u32,
        seq: u32,
        msg: Msg,
    },
    /// `gh_run_callback`.
    User {
        f: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
    },
    /// A greenlet-local value's destructor (its greenlet died).
    Dtor { f: locals::DtorFn, arg: *mut c_void },
    /// A gh_link function of greenlet `g` (its handle), which died.
    Link {
        f: crate::greenlet::LinkFn,
        g: u64,
        arg: *mut c_void,
    },
    /// `gh_hub_call_threadsafe`: like `User`, and run at the latest when the hub is
    /// destroyed (`GH_OK` from the call means it runs).
    Remote {
        f: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
    },
}

/// A pending `gh_switch` to a task, performed by the hub after the switcher parks.
#[derive(Copy, Clone, Debug)]
pub struct SwitchTo {
    pub slot: u32,
    pub gen: u32,
    pub msg: Msg,
}

/// Hub settings (`gh_hub_config` and the environment).
#[derive(Clone, Debug)]
pub struct Config {
    pub backend: Option<String>,
    /// A plug-in backend passed directly (`gh_hub_config.backend_plugin`): wins over
    /// `backend`.
    pub plugin: Option<Arc<crate::event_loop::plugin::Plugin>>,
    pub stack_size: usize,
    pub monitor: bool,
    pub max_blocking_time: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: None,
            plugin: None,
            stack_size: 0,
            monitor: false,
            max_blocking_time: 0.1,
        }
    }
}

impl Config {
    /// Defaults overridden by GREENHUB_* environment variables.
    pub fn from_env() -> Result<Config> {
        let mut c = Config::default();
        if let Ok(b) = std::env::var("GREENHUB_BACKEND") {
            if !b.is_empty() {
                c.backend = Some(b);
            }
        }
        if let Ok(s) = std::env::var("GREENHUB_STACK_SIZE") {
            c.stack_size = parse_size(&s).ok_or_else(|| {
                bad_env(BAD_STACK_SIZE, || format!("GREENHUB_STACK_SIZE={s:?} is not a size (bytes, or a number with K/M suffix)"))
            })?;
        }
        if let Ok(s) = std::env::var("GREENHUB_MAX_BLOCKING_TIME") {
            c.max_blocking_time = s
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| *v > 0.0 && v.is_finite())
                .ok_or_else(|| {
                    bad_env(BAD_BLOCKING_TIME, || {
                        format!(
                            "GREENHUB_MAX_BLOCKING_TIME={s:?} is not a positive number of seconds"
                        )
                    })
                })?;
        }
        if let Ok(s) = std::env::var("GREENHUB_MONITOR_THREAD_ENABLE") {
            c.monitor = matches!(s.trim(), "1" | "true" | "TRUE" | "True" | "yes" | "on");
        }
        Ok(c)
    }
}

pub(crate) const BAD_STACK_SIZE: u32 = 1;
pub(crate) const BAD_BLOCKING_TIME: u32 = 2;
pub(crate) const BAD_RUN_INFO_SIGNAL: u32 = 4;

/// A bad GREENHUB_* value: said once per variable for the process's life (every call
/// that would create the hub fails with it: issue 15.13), then `EINVAL`.
pub(crate) fn bad_env(var: u32, what: impl FnOnce() -> String) -> Error {
    static SAID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if SAID.fetch_or(var, std::sync::atomic::Ordering::Relaxed) & var == 0 {
        eprintln!("greenhub: {}", what());
    }
    Error::INVAL
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mul)
}

/// Everything of a hub that changes; behind one `HubCell`.
pub struct HubState {
    pub greenlets: Table<Greenlet>,
    pub watchers: Table<Watcher, true>,
    /// Events, results, semaphores, queues, waiters and timeouts.
    pub objects: Table<crate::sync::Obj>,
    /// Thread-pool jobs in flight: the wait each one ends.
    pub jobs: Table<crate::threadpool::JobSlot>,
    pub pool: Option<crate::threadpool::Pool>,
    pub pool_size: usize,
    pub queue: VecDeque<Callback>,
    pub timers: Timers,
    pub fds: Fds,
    pub backend: Box<dyn Backend>,
    pub ready: Vec<Ready>,
    pub failed: Vec<i32>,
    pub prepare: Vec<u32>,
    pub check: Vec<u32>,
    pub idle: Vec<u32>,
    pub asyncs: Vec<u32>,
    pub async_recheck: bool,
    /// Active signal watchers; per signal, how many of them (and internal SIGCHLD users).
    pub signals: Vec<u32>,
    pub sig_counts: [u32; crate::signals::MAX_SIGNAL as usize + 1],
    /// This hub's slot in the process-wide signal tables, once it watches a signal.
    pub sig_slot: Option<usize>,
    /// Active child watchers without a pidfd (checked on SIGCHLD).
    pub children: Vec<u32>,
    /// Child watchers to check at the next dispatch (a child may have exited already).
    pub child_recheck: bool,
    pub wake_fd: i32,
    /// Cached monotonic time of this iteration (ns).
    pub now: u64,
    /// Active, referenced watchers (what keeps the loop alive besides the queue).
    pub alive: usize,
    pub stacks: StackPool,
    pub default_stack: usize,
    /// The alternate signal stack greenhub gave this thread (None: it had one).
    pub altstack: Option<crate::overflow::AltStack>,
    /// Set when the main greenlet was woken; the loop returns it to main.
    pub main_wake: Option<Msg>,
    pub switch_to: Option<SwitchTo>,
    /// Callbacks run since the loop last polled (yield storms must not starve IO).
    pub since_poll: u32,
    pub shared: Arc<HubShared>,
    pub main_slot: u32,
    /// Scratch lists for dispatch snapshots (kept to avoid allocating per iteration).
    pub scratch_io: Vec<(u32, u32, i32)>,
    pub(crate) scratch_fd: Vec<run::FdFire>,
    pub scratch_joiners: Vec<crate::greenlet::Joiner>,
    /// gh_link's links of live greenlets, in link order (a side table: the greenlet
    /// record only says it has some).
    pub links: Vec<crate::greenlet::Link>,
    /// Greenlet-local values per greenlet slot: (key slot, key generation, value).
    pub locals: std::collections::HashMap<u32, Vec<(u32, u32, *mut c_void)>>,
    pub local_keys: Table<locals::LocalKey>,
    /// gh_assert_switches_begin tokens in use.
    pub tokens: Table<crate::monitor::Token>,
    /// fds opened for a wait in progress (gh_waitpid's pidfds): a greenlet's stack must
    /// not own them, so teardown closes what a discarded greenlet left (issue 15.2).
    pub wait_fds: Vec<i32>,
    /// The backend failed once already (`run::backend_failed`: said once, then no spin).
    pub backend_failed: bool,
    /// gh_server_* servers, the connections they handle, gh_stream_* streams.
    pub net: crate::server::Net,
}

pub struct Hub {
    pub id: u16,
    pub shared: Arc<HubShared>,
    pub st: HubCell<HubState>,
    /// Slot of the running greenlet (main, hub or a task).
    pub current: Cell<u32>,
    pub main_slot: u32,
    pub main_gen: u32,
    pub hub_slot: u32,
    pub hub_gen: u32,
    pub wake_fd: Cell<i32>,
    /// `file_id` of `wake_fd` (after fork it is closed only if the number still holds it).
    pub wake_id: Cell<Option<(u64, u64)>>,
    /// `FORK_GEN` when this hub last checked (a fork makes it rebuild its loop).
    pub fork_gen: Cell<u64>,
    /// Why the loop could not be rebuilt after fork (0: it was): `current` answers it
    /// until a retry succeeds.
    pub fork_error: Cell<i32>,
    /// The backend to make again after fork (kept while `fork_error` is set).
    pub fork_backend: Cell<&'static str>,
    /// Switches so far (wrapping); published with the running slot in `shared.active`.
    pub switches: Cell<u32>,
    /// Diagnostics that want to see every switch (`monitor::DIAG_*`); 0 on the fast path.
    pub diag: Cell<u8>,
    /// gh_settrace's hook.
    pub trace: Cell<Option<crate::monitor::TraceHook>>,
    /// The blocking monitor watches this hub.
    pub monitored: Cell<bool>,
    /// `HubState::switch_to` is set (read without a borrow after every task switch).
    pub switch_pending: Cell<bool>,
    /// `since_poll` value at which the loop next reads the clock to bound the time
    /// between polls (`run::SLICE_NS`).
    pub clock_next: Cell<u32>,
    /// This thread's C++ exception globals (`__cxa_get_globals()`: the caught-exception
    /// stack and the uncaught count), when the process has a C++ runtime: swapped with
    /// the greenlet's own at every switch into and out of a task (`Hub::swap_cxx`).
    pub cxa_globals: Option<std::ptr::NonNull<crate::greenlet::CxaGlobals>>,
}

/// Bumped in the child of every fork(); hubs compare it on each use.
pub static FORK_GEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn fork_child() {
    FORK_GEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::signals::forget_wake_fds_after_fork();
    // SAFETY: a published hub is alive (see `existing`); only its id is read.
    let own = unsafe { published().as_ref() }.map(|h| h.id);
    crate::remote::fork_child_hubs(own);
    crate::remote::fork_release();
}

thread_local! {
    static HUB: Cell<*const Hub> = const { Cell::new(ptr::null()) };
    static GUARD: ThreadGuard = const { ThreadGuard };
}

/// Destroys the thread's hub when the thread exits (after running the cross-thread calls it
/// accepted and the greenlet-local destructors, as gh_hub_destroy does).
struct ThreadGuard;

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        let p = HUB.with(|h| h.replace(ptr::null()));
        // SAFETY: p came from Box::into_raw in `create` and was just unpublished.
        if let Some(hub) = unsafe { p.as_ref() } {
            if hub.current.get() != hub.main_slot {
                // exit() called on a greenlet's (or from a callback in the hub's) stack: the
                // process is ending, and freeing the hub would unmap the stack we run on.
                // Left published (and so reachable: not a leak to valgrind).
                HUB.with(|h| h.set(p));
                return;
            }
            // Accepted cross-thread calls run before the hub goes (published meanwhile,
            // so the greenhub calls they make find it).
            HUB.with(|h| h.set(p));
            hub.run_remote_calls_at_destroy();
            hub.run_local_dtors_at_destroy();
            HUB.with(|h| h.set(ptr::null()));
            // SAFETY: as above; no greenlet runs, so nothing on a live stack uses it.
            drop(unsafe { Box::from_raw(p as *mut Hub) });
        }
    }
}

/// A hub created during thread teardown, after `GUARD` was destroyed (a gh_* call from
/// an atexit handler after exit() ran the main thread's destructors, or from a
/// pthread-key destructor of another library): a pthread key destroys it instead, in a
/// later round of the thread's key destructors. At process exit (no key destructors run)
/// it lives until the end, reachable (issue 15.7).
fn late_guard(p: *const Hub) {
    static KEY: std::sync::OnceLock<Option<libc::pthread_key_t>> = std::sync::OnceLock::new();
    unsafe extern "C" fn destroy_late(_: *mut c_void) {
        let _ = std::panic::catch_unwind(|| {
            let _ = destroy();
        });
    }
    let key = KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: k is a valid out-parameter; the destructor is a plain extern "C" fn.
        (unsafe { libc::pthread_key_create(&mut k, Some(destroy_late)) } == 0).then_some(k)
    });
    if let Some(k) = *key {
        // SAFETY: a key created above; the value is only a non-NULL marker.
        unsafe { libc::pthread_setspecific(k, p as *const c_void) };
    }
}

/// This thread's published hub, without the fork check.
#[inline(always)]
fn published_ref() -> Option<&'static Hub> {
    let p = HUB.with(|h| h.get());
    // SAFETY: a published hub stays alive until `destroy` or thread exit, which
    // unpublish it first; neither can run while a caller of this function is active
    // on this thread's greenlets except through `destroy`, which only main may call.
    unsafe { p.as_ref() }
}

/// This thread's hub if it exists (rebuilt first if the process forked since).
#[inline]
pub fn existing() -> Option<&'static Hub> {
    let hub = published_ref()?;
    hub.check_fork();
    Some(hub)
}

/// This thread's hub, created with the environment's settings if needed.
/// `EPERM` when the hub is in the middle of something (see `usable`).
#[inline]
pub fn current() -> Result<&'static Hub> {
    match published_ref() {
        Some(h) => usable(h),
        None => create(Config::from_env()?),
    }
}

/// The hub, if it can be used now (the fork check first: rebuilt if the process forked):
/// * `EPERM` if this thread's hub state is borrowed right now. No borrow is ever held
///   across a call into C (module rule), so a gh_* call that finds one was made by a
///   signal handler that interrupted greenhub (issue 15.10): refuse it, never panic.
/// * the error that kept a forked child from making its own loop (`EMFILE`, …): the
///   parent's must not be used (issue 15.5); it is retried at every call.
///
/// One compare of the fork generation and one flag test on the way through.
#[inline(always)]
fn usable(h: &'static Hub) -> Result<&'static Hub> {
    if h.fork_gen.get() == FORK_GEN.load(std::sync::atomic::Ordering::Relaxed) && !h.st.is_busy() {
        return Ok(h);
    }
    usable_slow(h)
}

#[cold]
#[inline(never)]
fn usable_slow(h: &'static Hub) -> Result<&'static Hub> {
    if h.st.is_busy() {
        return Err(Error::PERM);
    }
    h.check_fork();
    if h.fork_gen.get() != FORK_GEN.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error(h.fork_error.get().min(-1)));
    }
    Ok(h)
}

/// Creates this thread's hub with `cfg`; `EBUSY` if it exists.
pub fn configure(cfg: Config) -> Result<&'static Hub> {
    if existing().is_some() {
        return Err(Error::BUSY);
    }
    create(cfg)
}

/// The backend `cfg` names: a plug-in passed directly, else by name a built-in one or a
/// registered plug-in (`GREENHUB_BACKEND_PLUGIN` loaded first), else the default.
fn make_backend(cfg: &Config) -> Result<Box<dyn Backend>> {
    use crate::event_loop::plugin::{self, PluginBackend};
    let os = |e: i32| Error(-e);
    if let Some(p) = &cfg.plugin {
        return Ok(Box::new(PluginBackend::new(p.clone()).map_err(os)?));
    }
    match cfg.backend.as_deref().unwrap_or("epoll") {
        "epoll" => Ok(Box::new(Epoll::new().map_err(os)?)),
        "polling" => Ok(Box::new(
            crate::event_loop::portable::Portable::new().map_err(os)?,
        )),
        "poll" => Ok(Box::new(crate::event_loop::poll::Poll::default())),
        "select" => Ok(Box::new(crate::event_loop::select::Select::default())),
        other => {
            if let Some(p) = plugin::lookup(other)? {
                return Ok(Box::new(PluginBackend::new(p).map_err(os)?));
            }
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::INVAL);
            }
            eprintln!(
                "greenhub: unknown backend {other:?} (GREENHUB_BACKEND / gh_hub_config.backend); known: epoll, polling, poll, select, and plug-ins registered with gh_backend_register or GREENHUB_BACKEND_PLUGIN"
            );
            Err(Error::INVAL)
        }
    }
}

fn create(cfg: Config) -> Result<&'static Hub> {
    if cfg.monitor && !(cfg.max_blocking_time > 0.0 && cfg.max_blocking_time.is_finite()) {
        return Err(Error::INVAL);
    }
    let default_stack =
        stack::normalize(cfg.stack_size, stack::DEFAULT_STACK).inspect_err(|_| {
            eprintln!(
                "greenhub: stack size {} is too large (max {} bytes)",
                cfg.stack_size,
                stack::MAX_STACK
            );
        })?;
    let run_info_signal = crate::monitor::run_info_signal()?;
    crate::overflow::install_handler();
    let altstack = crate::overflow::AltStack::for_this_thread()?;
    let mut backend = make_backend(&cfg)?;
    let wake_fd = crate::fault::eventfd(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
    if wake_fd < 0 {
        return Err(Error::last_os());
    }
    if let Err(e) = backend.add(wake_fd, WAKE_TOKEN, crate::event_loop::READ) {
        // SAFETY: closes the eventfd we just created.
        unsafe { libc::close(wake_fd) };
        return Err(Error(-e));
    }
    let shared = match crate::remote::register_hub(wake_fd) {
        Ok(s) => s,
        Err(e) => {
            // SAFETY: closes the eventfd we just created.
            unsafe { libc::close(wake_fd) };
            return Err(e);
        }
    };
    let base = shared.base;
    crate::asyncs::hub_started(shared.id, wake_fd);
    let mut greenlets = Table::with_base(base);
    let (main_slot, main_gen) = greenlets.insert(Greenlet::new(Role::Main))?;
    let (hub_slot, hub_gen) = greenlets.insert(Greenlet::new(Role::Hub))?;
    let cxa_globals = crate::greenlet::cxa_globals();
    let hub = Box::new(Hub {
        id: shared.id,
        shared: shared.clone(),
        st: HubCell::new(HubState {
            greenlets,
            watchers: Table::with_base(base),
            objects: Table::with_base(base),
            jobs: Table::default(),
            pool: None,
            pool_size: crate::threadpool::DEFAULT_SIZE,
            queue: VecDeque::with_capacity(64),
            timers: Timers::default(),
            fds: Fds::default(),
            backend,
            ready: Vec::with_capacity(256),
            failed: Vec::new(),
            prepare: Vec::new(),
            check: Vec::new(),
            idle: Vec::new(),
            asyncs: Vec::new(),
            async_recheck: false,
            signals: Vec::new(),
            sig_counts: [0; crate::signals::MAX_SIGNAL as usize + 1],
            sig_slot: None,
            children: Vec::new(),
            child_recheck: false,
            wake_fd,
            now: crate::event_loop::now_ns(),
            alive: 0,
            stacks: StackPool::default(),
            default_stack,
            altstack,
            main_wake: None,
            switch_to: None,
            since_poll: 0,
            shared,
            main_slot,
            scratch_io: Vec::with_capacity(64),
            scratch_fd: Vec::with_capacity(16),
            scratch_joiners: Vec::with_capacity(8),
            tokens: Table::with_base(base),
            wait_fds: Vec::new(),
            backend_failed: false,
            links: Vec::new(),
            locals: std::collections::HashMap::new(),
            local_keys: Table::with_base(base),
            net: Default::default(),
        }),
        current: Cell::new(main_slot),
        main_slot,
        main_gen,
        hub_slot,
        hub_gen,
        wake_fd: Cell::new(wake_fd),
        wake_id: Cell::new(crate::event_loop::file_id(wake_fd)),
        fork_error: Cell::new(0),
        fork_backend: Cell::new("epoll"),
        fork_gen: Cell::new(FORK_GEN.load(std::sync::atomic::Ordering::Relaxed)),
        switches: Cell::new(0),
        diag: Cell::new(if cxa_globals.is_some() {
            crate::monitor::DIAG_CXX
        } else {
            0
        }),
        trace: Cell::new(None),
        monitored: Cell::new(false),
        clock_next: Cell::new(run::CLOCK_EVERY),
        cxa_globals,
        switch_pending: Cell::new(false),
    });
    hub.shared
        .active
        .store(main_slot as u64, std::sync::atomic::Ordering::Relaxed);
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers plain extern "C" functions without arguments.
        unsafe {
            libc::pthread_atfork(
                Some(crate::remote::fork_prepare),
                Some(crate::remote::fork_release),
                Some(fork_child),
            )
        };
    });
    let p = Box::into_raw(hub);
    HUB.with(|h| h.set(p));
    if GUARD.try_with(|_| ()).is_err() {
        late_guard(p);
    }
    // SAFETY: just published; see `existing`.
    let hub = unsafe { &*p };
    if let Some(signum) = run_info_signal {
        crate::monitor::install_dump_signal(hub, signum);
    }
    if cfg.monitor {
        if let Err(e) = crate::monitor::start(hub, cfg.max_blocking_time) {
            eprintln!("greenhub: cannot start the blocking monitor: {}", e.code());
        }
    }
    Ok(hub)
}

/// This thread's hub pointer as published, without the fork check (signal handlers).
pub(crate) fn published() -> *const Hub {
    HUB.with(|h| h.get())
}

/// Tears down this thread's hub. Only from the main greenlet (`EPERM` otherwise).
pub fn destroy() -> Result<()> {
    let Some(hub) = existing() else { return Ok(()) };
    if hub.current.get() != hub.main_slot {
        return Err(Error::PERM);
    }
    hub.run_remote_calls_at_destroy();
    hub.run_local_dtors_at_destroy();
    let p = HUB.with(|h| h.replace(ptr::null()));
    // SAFETY: p came from Box::into_raw in `create`, is unpublished now, and no task is
    // running (main is), so nothing on any live stack will touch it again.
    drop(unsafe { Box::from_raw(p as *mut Hub) });
    Ok(())
}

impl Drop for Hub {
    fn drop(&mut self) {
        let st = self.st.get_mut();
        // Every generation a handle of this hub can carry (before anything is drained).
        let max_gen = [
            st.greenlets.max_gen(),
            st.watchers.max_gen(),
            st.objects.max_gen(),
            st.tokens.max_gen(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(self.shared.base);
        // Discard every greenlet without running or unwinding its frames.
        for mut g in st.greenlets.drain() {
            if let Some(mut co) = g.take_co() {
                // SAFETY: nothing Rust-owned lives on a greenlet's stack across a switch
                // (module invariant of `greenlet`), so skipping its frames leaks nothing
                // of ours; C frames are discarded as documented for gh_hub_destroy.
                unsafe { co.force_reset() };
                drop(co.into_stack());
            }
        }
        if let Some(slot) = st.sig_slot.take() {
            crate::signals::detach_hub(slot);
        }
        for fd in st.wait_fds.drain(..) {
            // SAFETY: opened by a wait of this hub whose greenlet was just discarded.
            unsafe { libc::close(fd) };
        }
        for (_, w) in st.watchers.iter() {
            if let crate::event_loop::watcher::WatchKind::Child { pidfd, .. } = w.kind() {
                if pidfd >= 0 {
                    // SAFETY: the pidfd belongs to this watcher.
                    unsafe { libc::close(pidfd) };
                }
            }
        }
        st.pool = None; // tells the workers to end
        for js in st.jobs.drain() {
            if let Some(d) = js.done {
                crate::threadpool::discard(d);
            }
        }
        let done = {
            let mut r = self.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            r.wake_fd = -1;
            // No gh_async_send can write to the eventfd after this (signal-safe senders
            // do not take the lock).
            crate::asyncs::hub_gone(self.id);
            // SAFETY: closes our eventfd; senders check wake_fd under this lock.
            unsafe { libc::close(self.wake_fd.get()) };
            std::mem::take(&mut r.done)
        };
        for d in done {
            if let Some(f) = d.discard {
                // SAFETY: nobody will take this result any more.
                unsafe { f(d.result) };
            }
        }
        crate::monitor::stop(self);
        crate::remote::unregister_hub(self.id, max_gen);
    }
}

impl Hub {
    /// Encodes a handle of this hub.
    pub fn handle(&self, kind: Kind, slot: u32, gen: u32) -> u64 {
        Id::encode(self.id, kind, gen, slot)
    }

    /// Decodes a handle of `kind` that must belong to this hub.
    pub fn check(&self, raw: u64, kind: Kind) -> Result<(u32, u32)> {
        let id = Id::decode(raw);
        if id.hub != self.id {
            return Err(crate::remote::foreign(id.hub));
        }
        if id.kind != kind as u8 {
            return Err(Error::BADHANDLE);
        }
        Ok((id.slot, id.gen))
    }

    pub fn in_hub(&self) -> bool {
        self.current.get() == self.hub_slot
    }

    pub fn is_main(&self) -> bool {
        self.current.get() == self.main_slot
    }

    pub fn backend_name(&self) -> &'static str {
        self.st.borrow().backend.name()
    }

    /// The backend's name, NUL-terminated (static for built-ins; a plug-in's name lives
    /// as long as the process).
    pub fn backend_c_name(&self) -> &'static std::ffi::CStr {
        self.st.borrow().backend.c_name()
    }

    /// Queues `gh_run_callback` work.
    pub fn run_callback(&self, f: unsafe extern "C" fn(*mut c_void), arg: *mut c_void) {
        self.st
            .borrow_mut()
            .queue
            .push_back(Callback::User { f, arg });
    }

    /// Runs the loop until nothing referenced is left (`gh_hub_run`). Main only.
    pub fn run(&self) -> Result<()> {
        if !self.is_main() {
            return Err(Error::PERM);
        }
        match self.wait_for(crate::greenlet::WaitOn::Nothing, None, |_, _| Ok(())) {
            Err(Error::LOOPEXIT) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }
}

/// Resolves a handle to this thread's hub without creating one.
pub fn for_handle(raw: u64) -> Result<&'static Hub> {
    match published_ref() {
        Some(h) if Id::decode(raw).hub == h.id => usable(h),
        _ => Err(crate::remote::foreign(Id::decode(raw).hub)),
    }
}
