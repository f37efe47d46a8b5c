//! Diagnostics (gevent 1.3's monitoring, for C): the blocking monitor, `gh_settrace`,
//! `gh_assert_switches_*` and `gh_format_run_info`.
//!
//! The hub pays one relaxed store per switch (`Hub::switched` publishes the switch
//! count and the running slot in `HubShared::active`) and a test of `Hub::diag`, which
//! is non-zero only while a trace hook or a timed assert_switches is active. The clock
//! is read by the monitor thread, not on the switch path.
//!
//! The monitor thread (one per process, started with the first monitored hub, gone when
//! the last one stops) samples every monitored hub's `active` word a few times per
//! threshold. A word that has not changed for the threshold, outside the hub's poll,
//! means the running greenlet (or a hub callback) has kept the thread for that long:
//! one report, then one line when the word changes again. The monitor never reads a
//! hub's tables (they belong to the hub's thread); what it reports comes from the names
//! the hub publishes while monitored (at spawn, rename and death) and from a capture on
//! the blocked thread itself (`capture`).

pub mod capture;
pub mod runinfo;

use crate::error::{Error, Result};
use crate::handle::Kind;
use crate::hub::{Hub, HubState};
use crate::remote::{HubShared, POLLING};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a trace hook is told (the C API's GH_TRACE_* values).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum TraceEvent {
    Switch = 1,
    Throw = 2,
}

/// A trace hook as the core keeps it (the core knows no C types): `call` is the FFI's
/// adapter, which calls the user's function; `user` is that function and its argument,
/// opaque here and handed back by gh_gettrace.
#[derive(Copy, Clone, Debug)]
pub struct TraceHook {
    pub call: fn(&TraceHook, TraceEvent, u64, u64),
    pub user: (*const (), *mut c_void),
}

/// A blocking report, as the monitor hands it to the report sink (the FFI converts it
/// for its C callback). Borrowed strings live while the sink runs.
pub struct BlockReport<'a> {
    pub thread_id: u64,
    /// The greenlet handle (raw id).
    pub greenlet: u64,
    pub name: &'a CStr,
    pub spawn_file: Option<&'a CStr>,
    pub spawn_line: c_int,
    /// The blockage ended (else: it was detected).
    pub ended: bool,
    pub blocked_for: f64,
    pub text: &'a CStr,
}

/// Where reports go instead of stderr (`gh_monitor_set_callback`, adapted by the FFI).
pub type ReportSink = Arc<dyn Fn(&BlockReport) + Send + Sync>;

/// `Hub::diag` bits.
pub(crate) const DIAG_TRACE: u8 = 1;
pub(crate) const DIAG_ASSERT: u8 = 2;
/// Set for good when the process has a C++ runtime: `Hub::swap_cxx` at every switch.
pub(crate) const DIAG_CXX: u8 = 4;

/// A greenlet as published for the monitor thread.
#[derive(Clone, Debug, Default)]
pub struct PubGreenlet {
    pub gen: u32,
    pub name: Option<CString>,
    /// `GH_SPAWN`'s `__FILE__` (a pointer to a string the caller keeps alive), as usize.
    pub file: usize,
    pub line: i32,
    pub parent: u32,
    pub stack_size: usize,
}

/// What a monitored hub publishes (behind `HubShared::published`).
#[derive(Default)]
pub struct Published {
    pub greenlets: HashMap<u32, PubGreenlet>,
    pub main_slot: u32,
    pub main_gen: u32,
    pub hub_slot: u32,
    pub hub_gen: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Publishes greenlet `slot`'s name and spawn site (monitored hubs only).
pub(crate) fn publish(hub: &Hub, st: &HubState, slot: u32) {
    let Some(g) = st.greenlets.at(slot) else {
        return;
    };
    let p = PubGreenlet {
        gen: st.greenlets.gen(slot),
        name: g.name.clone(),
        file: g.spawn_file as usize,
        line: g.spawn_line,
        parent: g.parent,
        stack_size: g.stack_size,
    };
    lock(&hub.shared.published).greenlets.insert(slot, p);
}

pub(crate) fn unpublish(hub: &Hub, slot: u32) {
    lock(&hub.shared.published).greenlets.remove(&slot);
}

// ---------------------------------------------------------------------------------
// The monitor thread.

struct Watched {
    shared: Arc<HubShared>,
    /// What its reports read under /proc, kept open (`capture::ProcFiles`).
    files: Arc<capture::ProcFiles>,
    threshold: Duration,
    last: u64,
    since: Instant,
    /// The blockage reported and not ended yet: who, and the report's facts.
    reported: Option<Blocked>,
}

#[derive(Clone)]
struct Blocked {
    slot: u32,
    greenlet: u64,
    name: CString,
    file: Option<CString>,
    line: i32,
}

#[derive(Default)]
struct Registry {
    hubs: Vec<Watched>,
    running: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    hubs: Vec::new(),
    running: false,
});
static WAKE: Condvar = Condvar::new();
static CALLBACK: Mutex<Option<ReportSink>> = Mutex::new(None);

/// Starts monitoring `hub` (threshold in seconds, > 0); updates the threshold if it is
/// monitored already.
pub(crate) fn start(hub: &Hub, threshold: f64) -> Result<()> {
    if !(threshold > 0.0 && threshold.is_finite() && threshold < 1e9) {
        return Err(Error::INVAL);
    }
    capture::prepare();
    {
        let mut p = lock(&hub.shared.published);
        p.main_slot = hub.main_slot;
        p.main_gen = hub.main_gen;
        p.hub_slot = hub.hub_slot;
        p.hub_gen = hub.hub_gen;
        p.greenlets.clear();
    }
    let st = hub.st.borrow();
    for (slot, _) in st.greenlets.iter() {
        if slot != hub.main_slot && slot != hub.hub_slot {
            publish(hub, &st, slot);
        }
    }
    drop(st);
    hub.monitored.set(true);
    register_atfork();
    let mut reg = lock(&REGISTRY);
    let threshold = Duration::from_secs_f64(threshold);
    if let Some(w) = reg.hubs.iter_mut().find(|w| w.shared.id == hub.id) {
        w.threshold = threshold;
    } else {
        let tid = hub.shared.tid.load(std::sync::atomic::Ordering::Relaxed);
        reg.hubs.push(Watched {
            shared: hub.shared.clone(),
            files: Arc::new(capture::ProcFiles::open(tid)),
            threshold,
            last: u64::MAX,
            since: Instant::now(),
            reported: None,
        });
    }
    if !reg.running {
        let spawned = std::thread::Builder::new()
            .name("greenhub-monitor".into())
            .stack_size(256 * 1024)
            .spawn(run);
        if spawned.is_err() {
            reg.hubs.retain(|w| w.shared.id != hub.id);
            drop(reg);
            hub.monitored.set(false);
            return Err(Error::NOMEM);
        }
        reg.running = true;
    }
    WAKE.notify_all();
    Ok(())
}

/// Stops monitoring `hub` (nothing if it is not monitored).
pub(crate) fn stop(hub: &Hub) {
    if !hub.monitored.replace(false) {
        return;
    }
    lock(&REGISTRY).hubs.retain(|w| w.shared.id != hub.id);
    lock(&hub.shared.published).greenlets.clear();
    WAKE.notify_all();
}

/// In a forked child: the hub's thread has a new tid, and the monitor thread did not
/// survive the fork; monitoring resumes for the hub that did.
pub(crate) fn after_fork(hub: &Hub) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    hub.shared
        .tid
        .store(tid, std::sync::atomic::Ordering::Relaxed);
    if hub.monitored.replace(false) {
        let t = {
            let mut reg = lock(&REGISTRY);
            let t = reg
                .hubs
                .iter()
                .find(|w| w.shared.id == hub.id)
                .map(|w| w.threshold.as_secs_f64());
            reg.hubs.clear(); // the parent's other hubs do not exist in this child
            t
        };
        if let Some(t) = t {
            if let Err(e) = start(hub, t) {
                eprintln!("greenhub: monitor: cannot restart after fork: {}", e.code());
            }
        }
    }
}

/// Sends reports to `sink` (None: stderr again).
pub(crate) fn set_callback(sink: Option<ReportSink>) {
    *lock(&CALLBACK) = sink;
}

thread_local! {
    // ManuallyDrop: no destructor, usable during teardown (see signals::FORK_GUARD).
    static FORK_GUARD: std::mem::ManuallyDrop<std::cell::RefCell<Option<MutexGuard<'static, Registry>>>> =
        const { std::mem::ManuallyDrop::new(std::cell::RefCell::new(None)) };
}

extern "C" fn fork_prepare() {
    let g = lock(&REGISTRY);
    FORK_GUARD.with(|f| *f.borrow_mut() = Some(g));
}

extern "C" fn fork_parent() {
    FORK_GUARD.with(|f| f.borrow_mut().take());
}

extern "C" fn fork_child() {
    FORK_GUARD.with(|f| {
        if let Some(mut g) = f.borrow_mut().take() {
            // The monitor thread is not in the child; hubs re-register in `after_fork`.
            g.running = false;
            for w in g.hubs.iter_mut() {
                w.reported = None;
            }
        }
    });
}

fn register_atfork() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers plain extern "C" functions without arguments.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
}

/// A change the monitor saw: a new blockage or the end of one.
struct Event {
    shared: Arc<HubShared>,
    files: Arc<capture::ProcFiles>,
    slot: u32,
    blocked_for: Duration,
    threshold: Duration,
    ended: Option<Blocked>,
}

fn run() {
    let mut reg = lock(&REGISTRY);
    loop {
        if reg.hubs.is_empty() {
            reg.running = false;
            return;
        }
        let now = Instant::now();
        let mut period = Duration::from_millis(250);
        let mut events = Vec::new();
        for w in reg.hubs.iter_mut() {
            period = period.min(w.threshold / 4);
            let a = w.shared.active.load(std::sync::atomic::Ordering::Relaxed);
            if a != w.last {
                if let Some(b) = w.reported.take() {
                    events.push(Event {
                        shared: w.shared.clone(),
                        files: w.files.clone(),
                        slot: b.slot,
                        blocked_for: now - w.since,
                        threshold: w.threshold,
                        ended: Some(b),
                    });
                }
                w.last = a;
                w.since = now;
            } else if w.reported.is_none() && a & POLLING == 0 && now - w.since >= w.threshold {
                let slot = (a & 0xFF_FFFF) as u32;
                let b = blocked_identity(&w.shared, slot);
                w.reported = Some(b);
                events.push(Event {
                    shared: w.shared.clone(),
                    files: w.files.clone(),
                    slot,
                    blocked_for: now - w.since,
                    threshold: w.threshold,
                    ended: None,
                });
            }
        }
        drop(reg);
        for ev in events {
            deliver(ev);
        }
        reg = lock(&REGISTRY);
        reg = WAKE
            .wait_timeout(reg, period.max(Duration::from_millis(1)))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn blocked_identity(shared: &HubShared, slot: u32) -> Blocked {
    let p = lock(&shared.published);
    let (name, file, line, gen) = if slot == p.main_slot {
        (c"main".to_owned(), None, 0, 0)
    } else if slot == p.hub_slot {
        (c"hub (callbacks)".to_owned(), None, 0, 0)
    } else if let Some(g) = p.greenlets.get(&slot) {
        let file = if g.file == 0 {
            None
        } else {
            // SAFETY: GH_SPAWN's file argument is a string the caller keeps alive
            // (`__FILE__`), as gh_spawn_options documents.
            Some(unsafe { CStr::from_ptr(g.file as *const c_char) }.to_owned())
        };
        (
            g.name.clone().unwrap_or_else(|| c"".to_owned()),
            file,
            g.line,
            g.gen,
        )
    } else {
        (c"?".to_owned(), None, 0, 0)
    };
    let gen = if slot == p.main_slot {
        p.main_gen
    } else if slot == p.hub_slot {
        p.hub_gen
    } else {
        gen
    };
    let greenlet = crate::handle::Id::encode(shared.id, Kind::Greenlet, gen, slot);
    Blocked {
        slot,
        greenlet,
        name,
        file,
        line,
    }
}

fn deliver(ev: Event) {
    let tid = ev.shared.tid.load(std::sync::atomic::Ordering::Relaxed);
    let b = match &ev.ended {
        Some(b) => b.clone(),
        None => blocked_identity(&ev.shared, ev.slot),
    };
    let who = describe(&b);
    let text = match ev.ended {
        Some(_) => format!(
            "greenhub: monitor: hub {} (thread {tid}): {who} let the hub run again after blocking it for {:.3} s\n",
            ev.shared.id,
            ev.blocked_for.as_secs_f64()
        ),
        None => {
            let mut t = format!(
                "greenhub: monitor: {} hub {} (thread {tid}) is blocked: {who} has run for {:.3} s without a switch (max_blocking_time {:.3} s)\n",
                capture::timestamp(),
                ev.shared.id,
                ev.blocked_for.as_secs_f64(),
                ev.threshold.as_secs_f64()
            );
            capture::report_body(&ev.shared, ev.slot, Some(&ev.files), &mut t);
            t
        }
    };
    let ctext = CString::new(text.replace('\0', "?")).unwrap_or_default();
    let report = BlockReport {
        thread_id: tid as u64,
        greenlet: b.greenlet,
        name: &b.name,
        spawn_file: b.file.as_deref(),
        spawn_line: b.line,
        ended: ev.ended.is_some(),
        blocked_for: ev.blocked_for.as_secs_f64(),
        text: &ctext,
    };
    // Not under the lock: the sink may call gh_monitor_set_callback.
    let sink = lock(&CALLBACK).clone();
    match sink {
        Some(sink) => sink(&report),
        None => eprint!("{text}"),
    }
}

fn describe(b: &Blocked) -> String {
    let name = b.name.to_string_lossy();
    let mut s = if b.slot == u32::MAX {
        String::from("?")
    } else if name == "main" || name.starts_with("hub") {
        format!("the {name} greenlet")
    } else if name.is_empty() {
        format!("greenlet {:#x}", b.greenlet)
    } else {
        format!("greenlet \"{name}\" ({:#x})", b.greenlet)
    };
    if let Some(f) = &b.file {
        s.push_str(&format!(" spawned at {}:{}", f.to_string_lossy(), b.line));
    }
    s
}

// ---------------------------------------------------------------------------------
// Trace hook and assert_switches.

/// A `gh_assert_switches_begin` token.
pub struct Token {
    switches: u32,
    began: u64,
    /// 0: only "did it switch at all".
    max_ns: u64,
    last: u64,
    longest: u64,
}

/// The slow half of `Hub::switched`: the trace hook, assert_switches clocks.
#[cold]
pub(crate) fn on_switch(hub: &Hub, from: u32, to: u32) {
    let d = hub.diag.get();
    if d & DIAG_ASSERT != 0 {
        let now = crate::event_loop::now_ns();
        let mut st = hub.st.borrow_mut();
        for t in st.tokens.values_mut() {
            if t.max_ns > 0 {
                t.longest = t.longest.max(now.saturating_sub(t.last));
                t.last = now;
            }
        }
    }
    if d & DIAG_TRACE != 0 {
        call_trace(hub, TraceEvent::Switch, from, to);
    }
}

/// GH_TRACE_THROW: `gh_throw`/`gh_kill` from the current greenlet to `to`.
pub(crate) fn on_throw(hub: &Hub, to: u32) {
    if hub.diag.get() & DIAG_TRACE != 0 {
        call_trace(hub, TraceEvent::Throw, hub.current.get(), to);
    }
}

fn call_trace(hub: &Hub, event: TraceEvent, from: u32, to: u32) {
    let Some(hook) = hub.trace.get() else {
        return;
    };
    let (gf, gt) = {
        let st = hub.st.borrow();
        (st.greenlets.gen(from), st.greenlets.gen(to))
    };
    let origin = hub.handle(Kind::Greenlet, from, gf);
    let target = hub.handle(Kind::Greenlet, to, gt);
    // The hook runs as the hub (a blocking call from it is GH_EPERM).
    let cur = hub.current.replace(hub.hub_slot);
    (hook.call)(&hook, event, origin, target);
    hub.current.set(cur);
}

pub(crate) fn settrace(hub: &Hub, hook: Option<TraceHook>) {
    let on = hook.is_some();
    hub.trace.set(hook);
    let d = hub.diag.get() & !DIAG_TRACE;
    hub.diag.set(if on { d | DIAG_TRACE } else { d });
}

pub(crate) fn assert_begin(hub: &Hub, max_blocking: f64) -> Result<u64> {
    if max_blocking.is_nan() || max_blocking < 0.0 {
        return Err(Error::INVAL);
    }
    let max_ns = if max_blocking.is_infinite() || max_blocking > 1e9 {
        u64::MAX
    } else {
        (max_blocking * 1e9) as u64
    };
    let now = crate::event_loop::now_ns();
    let (slot, gen) = hub.st.borrow_mut().tokens.insert(Token {
        switches: hub.switches.get(),
        began: now,
        max_ns,
        last: now,
        longest: 0,
    })?;
    if max_ns > 0 {
        hub.diag.set(hub.diag.get() | DIAG_ASSERT);
    }
    Ok(hub.handle(Kind::SwitchToken, slot, gen))
}

pub(crate) fn assert_end(hub: &Hub, raw: u64) -> Result<()> {
    let (slot, gen) = hub.check(raw, Kind::SwitchToken)?;
    let now = crate::event_loop::now_ns();
    let t = {
        let mut st = hub.st.borrow_mut();
        if st.tokens.get(slot, gen).is_none() {
            return Err(Error::BADHANDLE);
        }
        let t = st.tokens.remove(slot).expect("checked");
        if !st.tokens.values_mut().any(|t| t.max_ns > 0) {
            hub.diag.set(hub.diag.get() & !DIAG_ASSERT);
        }
        t
    };
    let switched = hub.switches.get() != t.switches;
    let longest = t.longest.max(now.saturating_sub(t.last));
    let why = if t.max_ns == 0 {
        if switched {
            return Ok(());
        }
        format!(
            "no switch in {:.6} s between gh_assert_switches_begin and _end",
            (now - t.began) as f64 / 1e9
        )
    } else {
        if longest <= t.max_ns {
            return Ok(());
        }
        format!(
            "{:.6} s without a switch (max_blocking_time {:.6} s)",
            longest as f64 / 1e9,
            t.max_ns as f64 / 1e9
        )
    };
    let mut text = format!("greenhub: assert_switches failed: {why}\n");
    runinfo::format_own(hub, &mut text);
    eprint!("{text}");
    Err(Error::NOSWITCH)
}

/// GREENHUB_RUN_INFO_SIGNAL's signal, if set; `EINVAL` (said once) if it is not a signal
/// name or number: the hub is not created, like for the other GREENHUB_* variables.
pub(crate) fn run_info_signal() -> crate::error::Result<Option<i32>> {
    let Ok(v) = std::env::var("GREENHUB_RUN_INFO_SIGNAL") else {
        return Ok(None);
    };
    capture::parse_signal(&v).map(Some).ok_or_else(|| {
        crate::hub::bad_env(crate::hub::BAD_RUN_INFO_SIGNAL, || {
            format!("GREENHUB_RUN_INFO_SIGNAL={v:?} is not a signal name or number")
        })
    })
}

/// Installs the run-info dump on `signum` (GREENHUB_RUN_INFO_SIGNAL: a name like
/// `SIGUSR2` or a number) for a new hub: the hub writes `gh_format_run_info` to stderr
/// when it gets it (one dump for the process: `runinfo::dump_on_signal`).
pub(crate) fn install_dump_signal(hub: &Hub, signum: i32) {
    unsafe extern "C" fn dump(_w: crate::event_loop::watcher::RawHandle, _r: i32, a: *mut c_void) {
        if let Some(hub) = crate::hub::existing() {
            runinfo::dump_on_signal(hub, a as usize as i32);
        }
    }
    let mut st = hub.st.borrow_mut();
    let r = st
        .new_watcher(
            crate::event_loop::watcher::WatchKind::Signal { signum },
            true,
        )
        .and_then(|(w, _)| {
            st.set_ref(w, false);
            st.start_watcher(
                w,
                crate::event_loop::watcher::Action::User {
                    f: dump,
                    arg: signum as usize as *mut c_void,
                },
            )
        });
    if let Err(e) = r {
        eprintln!(
            "greenhub: cannot watch signal {signum} for run-info dumps: {}",
            e.code()
        );
    }
}
