//! Greenlets: a coroutine on its own stack, plus the small record the hub keeps about it.
//!
//! The record (state, result, name, spawn site, wait bookkeeping) lives in the hub's
//! greenlet table; the coroutine owns only its stack. Nothing Rust-owned lives on a
//! greenlet's stack across a switch: the coroutine closure captures only its slot
//! number, so a suspended greenlet can be discarded (`force_reset` + `into_stack`)
//! without running or unwinding any of its frames.
//!
//! Invariants:
//! * `co` is `Some` for every task until it dies: the coroutine object lives in its own
//!   stack slot's top (`GhStack::co_slot`), is resumed in place through that pointer and
//!   read out when the task dies or is discarded (`take_co`); `None` for the main and
//!   hub greenlets and once DEAD. A record whose task runs is never removed (release only
//!   marks it).
//! * `blocked` is true exactly while the greenlet is parked in wait number `seq`;
//!   a wake-up carries the `seq` it was meant for, so a late wake-up is ignored.

use crate::stack::GhStack;
use corosensei::Coroutine;
use std::ffi::{c_char, c_void, CString};

/// A greenlet's C entry point: `void *fn(void *arg)`.
pub type Entry = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

/// What a switch into a greenlet carries: a code (>= 0: revents / success,
/// < 0: an error the blocking call returns) and a value (`gh_switch`).
#[derive(Copy, Clone, Debug)]
pub struct Msg {
    pub code: i32,
    pub value: *mut c_void,
}

impl Msg {
    pub const OK: Msg = Msg {
        code: 0,
        value: std::ptr::null_mut(),
    };

    pub fn code(code: i32) -> Msg {
        Msg {
            code,
            value: std::ptr::null_mut(),
        }
    }
}

pub type Co = Coroutine<Msg, (), *mut c_void, GhStack>;
pub type TaskYielder = corosensei::Yielder<Msg, ()>;

/// The C API's GH_STATE_* values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    New = 0,
    Ready = 1,
    Running = 2,
    Waiting = 3,
    Dead = 4,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Main,
    Hub,
    Task,
}

/// What a parked greenlet waits on (diagnostics and switch rules).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitOn {
    Nothing,
    Yield,
    Watcher(u32),
    /// Parked on an fd's entry for READ or WRITE (`HubState::park_fd`).
    Fd {
        fd: i32,
        events: u8,
    },
    Join(u32),
    Switch,
    /// An event, result, semaphore, queue or waiter (object slot).
    Object(u32),
    /// A thread-pool job.
    Job,
}

/// `Greenlet::kept_timers`: gh_sleep's timer, and a wait's timeout timer.
pub(crate) const KEPT_SLEEP: usize = 0;
pub(crate) const KEPT_TIMEOUT: usize = 1;

/// A greenlet waiting for another one to die: (slot, generation, wait seq).
pub type Joiner = (u32, u32, u32);

pub struct Greenlet {
    pub role: Role,
    pub state: State,
    /// The coroutine, kept at the top of its own stack slot (`GhStack::co_slot`): it never
    /// moves, and the hub resumes it through this pointer.
    pub co: Option<std::ptr::NonNull<Co>>,
    pub yielder: *const TaskYielder,
    pub entry: Option<Entry>,
    pub arg: *mut c_void,
    pub result: *mut c_void,
    pub name: Option<CString>,
    pub spawn_file: *const c_char,
    pub spawn_line: i32,
    pub stack_size: usize,
    /// `GhStack::top` of its stack while alive (0 for main and the hub): where the
    /// overflow reporter's copy of its name lives.
    pub stack_top: usize,
    pub seq: u32,
    pub blocked: bool,
    pub waiting_on: WaitOn,
    /// gh_kill was called: every blocking call returns GH_ECANCELED from now on.
    pub killed: bool,
    /// gh_throw's code, delivered once by the current or next blocking call.
    pub throw: i32,
    /// The handle was given up; the record goes when the greenlet dies.
    pub released: bool,
    pub joiners: Joiners,
    /// The greenlet this one is joining (join-cycle detection).
    pub joining: Option<u32>,
    /// spawn_later's start timer (watcher slot).
    pub start_timer: Option<u32>,
    /// Active gh_timeouts: (object slot, deadline ns), and the earliest deadline
    /// (u64::MAX: none).
    pub timeouts: Vec<(u32, u64)>,
    pub deadline: u64,
    /// The timer of the wait in progress (its own timeout folded with `deadline`), and
    /// the wait's own deadline: re-armed when a gh_timeout is cancelled meanwhile.
    pub wait_timer: Option<u32>,
    pub call_deadline: u64,
    /// Internal timer watchers this greenlet keeps between waits (`KEPT_SLEEP`,
    /// `KEPT_TIMEOUT`; u32::MAX: none yet): a timed wait starts and stops one instead of
    /// creating and freeing a record. Closed when the greenlet dies.
    pub kept_timers: [u32; 2],
    /// The greenlet that spawned this one (slot; diagnostics' tree).
    pub parent: u32,
    /// Its stack's usable range [lo, hi) (0, 0 for main and the hub): stack-use reports.
    pub stack_lo: usize,
    pub stack_hi: usize,
    /// It has gh_link functions (in `HubState::links`), run in the hub when it dies.
    pub linked: bool,
    /// It has greenlet-local values (in `HubState::locals`).
    pub has_locals: bool,
    /// Its ThreadSanitizer fiber (cargo feature `tsan`; nothing without it).
    pub tsan: crate::tsan::Fiber,
}

/// A gh_link: the greenlet (slot), its function and argument.
pub type Link = (u32, LinkFn, *mut c_void);
/// `void fn(gh_greenlet g, void *arg)` (a greenlet handle has RawHandle's layout).
pub type LinkFn = unsafe extern "C" fn(crate::event_loop::watcher::RawHandle, *mut c_void);

/// The C++ runtime's per-thread exception globals (`__cxa_eh_globals` of the Itanium
/// C++ ABI, as libstdc++'s libsupc++ and LLVM's libc++abi lay it out on x86-64 and
/// AArch64: the caught-exception stack, then the uncaught-exception count).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CxaGlobals {
    pub caught: usize,
    pub uncaught: usize,
}

/// This thread's `__cxa_get_globals()`, if the process has a C++ runtime (looked up
/// once, without linking one); None in a C-only process.
pub fn cxa_globals() -> Option<std::ptr::NonNull<CxaGlobals>> {
    type Get = unsafe extern "C" fn() -> *mut CxaGlobals;
    static GET: std::sync::OnceLock<Option<Get>> = std::sync::OnceLock::new();
    let get = GET.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; a non-NULL result is the C++ ABI's
        // `__cxa_eh_globals *__cxa_get_globals(void)`.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__cxa_get_globals".as_ptr()) };
        (!p.is_null()).then(|| {
            // SAFETY: p is that function (see above).
            unsafe { std::mem::transmute::<*mut libc::c_void, Get>(p) }
        })
    });
    // SAFETY: __cxa_get_globals returns this thread's globals (allocating them once).
    std::ptr::NonNull::new(unsafe { (*get)?() })
}

impl Greenlet {
    /// Marks the task running and returns its coroutine to resume (None: not a task, or
    /// dead).
    #[inline]
    pub fn enter(&mut self) -> Option<*mut Co> {
        let co = self.co?;
        self.state = State::Running;
        Some(co.as_ptr())
    }

    /// Ends a wait of this greenlet: it runs again, parked on nothing.
    #[inline(always)]
    pub fn running_again(&mut self) {
        self.blocked = false;
        self.state = State::Running;
        self.waiting_on = WaitOn::Nothing;
    }

    /// Moves the coroutine out of its stack slot (the task died or is discarded).
    pub fn take_co(&mut self) -> Option<Co> {
        let p = self.co.take()?;
        self.tsan.destroy();
        // SAFETY: `p` was written by spawn into this task's stack slot and has not been
        // read out since (`co` was Some); nothing runs on that stack now (the task
        // returned, or never runs again), and the slot stays mapped until the stack goes
        // back to the pool, which happens only through the value read here.
        Some(unsafe { p.as_ptr().read() })
    }

    pub fn new(role: Role) -> Greenlet {
        Greenlet {
            role,
            state: if role == Role::Task {
                State::New
            } else {
                State::Running
            },
            co: None,
            yielder: std::ptr::null(),
            entry: None,
            arg: std::ptr::null_mut(),
            result: std::ptr::null_mut(),
            name: None,
            spawn_file: std::ptr::null(),
            spawn_line: 0,
            stack_size: 0,
            stack_top: 0,
            seq: 0,
            blocked: false,
            waiting_on: WaitOn::Nothing,
            killed: false,
            throw: 0,
            released: false,
            joiners: Joiners::default(),
            joining: None,
            start_timer: None,
            timeouts: Vec::new(),
            deadline: u64::MAX,
            wait_timer: None,
            call_deadline: u64::MAX,
            kept_timers: [u32::MAX; 2],
            parent: u32::MAX,
            stack_lo: 0,
            stack_hi: 0,
            linked: false,
            has_locals: false,
            tsan: crate::tsan::Fiber::none(),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.state == State::Dead
    }
}

/// The greenlets joining one greenlet: the first inline (the common case, no
/// allocation on the spawn+join path), the rest in a vector.
#[derive(Default)]
pub struct Joiners {
    first: Option<Joiner>,
    rest: Vec<Joiner>,
}

impl Joiners {
    pub fn push(&mut self, j: Joiner) {
        if self.first.is_none() {
            self.first = Some(j);
        } else {
            self.rest.push(j);
        }
    }

    /// Removes every entry of greenlet `slot`.
    pub fn remove(&mut self, slot: u32) {
        self.rest.retain(|j| j.0 != slot);
        if self.first.is_some_and(|j| j.0 == slot) {
            self.first = if self.rest.is_empty() {
                None
            } else {
                Some(self.rest.remove(0))
            };
        }
    }

    /// Takes every entry out (oldest first), leaving the list empty.
    pub fn take_all(&mut self, out: &mut Vec<Joiner>) {
        out.extend(self.first.take());
        out.append(&mut self.rest);
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}
