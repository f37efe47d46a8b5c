//! `gh_format_run_info` (gevent.util.format_run_info): every hub, its greenlet tree in
//! gevent's layout (main, the hub under it, the hub's greenlets under the hub), states,
//! what each waits on, spawn sites and stack use.
//!
//! `format_hub` writes through `fmt::Write` without allocating, so the monitor's capture
//! can run it from a signal handler on the blocked thread (into a static buffer).
//! A hub is only ever formatted by its own thread; other hubs are asked through their
//! remote-call queue and answer from their loop (a blocked hub cannot, and says so).

use crate::event_loop::watcher::WatchKind;
use crate::greenlet::{Greenlet, Role, State, WaitOn};
use crate::handle::Kind;
use crate::hub::{Hub, HubState};
use crate::sync::Obj;
use std::fmt::{self, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A `fmt::Write` into a fixed buffer that counts what did not fit (snprintf's
/// semantics; always leaves room for the terminating NUL).
pub struct Sink<'a> {
    buf: &'a mut [u8],
    pub pos: usize,
    pub total: usize,
}

impl<'a> Sink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Sink<'a> {
        Sink {
            buf,
            pos: 0,
            total: 0,
        }
    }

    /// NUL-terminates what was written (if the buffer has any room).
    pub fn finish(&mut self) {
        if !self.buf.is_empty() {
            let at = self.pos.min(self.buf.len() - 1);
            self.buf[at] = 0;
        }
    }
}

impl Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.pos);
        let n = room.min(s.len());
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        self.total += s.len();
        Ok(())
    }
}

/// Writes bytes that may not be UTF-8 (names) without allocating.
fn bytes<W: Write>(w: &mut W, b: &[u8]) -> fmt::Result {
    match std::str::from_utf8(b) {
        Ok(s) => w.write_str(s),
        Err(_) => {
            for &c in b {
                w.write_char(if c.is_ascii() { c as char } else { '?' })?;
            }
            Ok(())
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Pages of [lo, hi) resident in memory (touched), via mincore(2).
fn touched(lo: usize, hi: usize) -> Option<usize> {
    let page = crate::stack::page_size();
    let (lo, hi) = (lo / page * page, hi.div_ceil(page) * page);
    if hi <= lo {
        return None;
    }
    let mut vec = [0u8; 256];
    let mut n = 0;
    let mut at = lo;
    while at < hi {
        let len = (hi - at).min(vec.len() * page);
        // SAFETY: mincore only reads the page tables of [at, at+len) (page-aligned) and
        // writes len/page bytes into vec, which has room for them.
        let r = unsafe { libc::mincore(at as *mut libc::c_void, len, vec.as_mut_ptr()) };
        if r != 0 {
            return None;
        }
        n += vec[..len / page].iter().filter(|&&v| v & 1 != 0).count();
        at += len;
    }
    Some(n * page)
}

fn greenlet_label<W: Write>(w: &mut W, hub: &Hub, st: &HubState, slot: u32) -> fmt::Result {
    let Some(g) = st.greenlets.at(slot) else {
        return write!(w, "<gone>");
    };
    let id = hub.handle(Kind::Greenlet, slot, st.greenlets.gen(slot));
    match (g.role, &g.name) {
        (Role::Main, _) => write!(w, "<main {id:#x}>"),
        (Role::Hub, _) => write!(w, "<hub {id:#x}>"),
        (Role::Task, Some(n)) => {
            w.write_str("<greenlet \"")?;
            bytes(w, n.to_bytes())?;
            write!(w, "\" {id:#x}>")
        }
        (Role::Task, None) => write!(w, "<greenlet {id:#x}>"),
    }
}

/// "a timer due in X s" / "... X s ago", or `unscheduled` when it is not in the heap.
fn due_desc<W: Write>(w: &mut W, at: Option<u64>, now: u64, unscheduled: &str) -> fmt::Result {
    match at {
        Some(at) if at >= now => write!(w, "a timer due in {:.3} s", secs(at - now)),
        Some(at) => write!(w, "a timer due {:.3} s ago", secs(now - at)),
        None => w.write_str(unscheduled),
    }
}

/// "fd 7 (read)", "fd 7 (read+write)".
fn fd_desc<W: Write>(w: &mut W, fd: i32, events: u8) -> fmt::Result {
    let r = events & crate::event_loop::READ != 0;
    let wr = events & crate::event_loop::WRITE != 0;
    write!(
        w,
        "fd {fd} ({}{}{})",
        if r { "read" } else { "" },
        if r && wr { "+" } else { "" },
        if wr { "write" } else { "" }
    )
}

fn wait_desc<W: Write>(w: &mut W, hub: &Hub, st: &HubState, g: &Greenlet, now: u64) -> fmt::Result {
    match g.waiting_on {
        // A plain timed wait (gh_sleep): only its timer.
        WaitOn::Nothing => due_desc(
            w,
            g.wait_timer.and_then(|t| st.timer_due(t)),
            now,
            "nothing",
        ),
        WaitOn::Yield => w.write_str("its turn (yielded)"),
        WaitOn::Switch => w.write_str("gh_switch"),
        WaitOn::Job => w.write_str("a thread-pool call"),
        WaitOn::Join(s) => {
            w.write_str("joining ")?;
            greenlet_label(w, hub, st, s)
        }
        WaitOn::Fd { fd, events } => fd_desc(w, fd, events),
        WaitOn::Watcher(ws) => match st.watchers.at(ws).map(|x| x.kind()) {
            Some(WatchKind::Io { fd, events }) => fd_desc(w, fd, events),
            Some(WatchKind::Timer { .. }) => due_desc(w, st.timer_due(ws), now, "a stopped timer"),
            Some(WatchKind::Child { pid, .. }) => write!(w, "child process {pid}"),
            Some(WatchKind::Signal { signum }) => write!(w, "signal {signum}"),
            Some(_) => write!(w, "watcher {ws}"),
            None => write!(w, "a closed watcher"),
        },
        WaitOn::Object(o) => {
            let id = hub.handle(
                st.objects.at(o).map_or(Kind::Event, |x| x.kind()),
                o,
                st.objects.gen(o),
            );
            match st.objects.at(o) {
                Some(Obj::Event { .. }) => write!(w, "event {id:#x}"),
                Some(Obj::Result { .. }) => write!(w, "result {id:#x}"),
                Some(Obj::Sem { count, .. }) => write!(w, "semaphore {id:#x} (count {count})"),
                Some(Obj::Queue(q)) => {
                    let (items, capacity) = (&q.items, &q.capacity);
                    write!(w, "queue {id:#x} ({} items", items.len())?;
                    if *capacity > 0 {
                        write!(w, ", capacity {capacity}")?;
                    }
                    w.write_str(")")
                }
                Some(Obj::Waiter { .. }) => write!(w, "waiter {id:#x}"),
                Some(Obj::RLock { owner, depth, .. }) => match owner {
                    Some((s, _)) => write!(w, "rlock {id:#x} (held by slot {s}, depth {depth})"),
                    None => write!(w, "rlock {id:#x} (free)"),
                },
                Some(Obj::Cond { .. }) => write!(w, "condition {id:#x}"),
                Some(Obj::Timeout { .. }) => write!(w, "timeout {id:#x}"),
                None => w.write_str("a freed object"),
            }
        }
    }
}

fn state_desc<W: Write>(w: &mut W, hub: &Hub, st: &HubState, slot: u32, now: u64) -> fmt::Result {
    let g = st.greenlets.at(slot).expect("listed");
    if slot == hub.current.get() {
        return w.write_str("running");
    }
    match g.role {
        Role::Hub => return w.write_str("not running (main or a greenlet runs)"),
        Role::Main if !g.blocked => return w.write_str("running the hub's loop"),
        _ => {}
    }
    match g.state {
        State::New => w.write_str("not started")?,
        State::Dead => return write!(w, "dead (result {:p})", g.result),
        State::Running => w.write_str("running")?,
        State::Ready | State::Waiting => {
            w.write_str(if g.state == State::Ready {
                "ready: "
            } else {
                "waiting on "
            })?;
            wait_desc(w, hub, st, g, now)?;
        }
    }
    if g.deadline != u64::MAX {
        if g.deadline >= now {
            write!(w, "; gh_timeout in {:.3} s", secs(g.deadline - now))?;
        } else {
            w.write_str("; gh_timeout expired")?;
        }
    }
    if g.killed {
        w.write_str("; killed")?;
    }
    Ok(())
}

/// One greenlet of the tree: `head` before its label, `pad` before its detail lines.
fn greenlet_block<W: Write>(
    w: &mut W,
    hub: &Hub,
    st: &HubState,
    slot: u32,
    (head, pad): (&str, &str),
    now: u64,
) -> fmt::Result {
    let g = st.greenlets.at(slot).expect("listed");
    w.write_str(head)?;
    greenlet_label(w, hub, st, slot)?;
    w.write_str("\n")?;
    w.write_str(pad)?;
    w.write_str("State: ")?;
    state_desc(w, hub, st, slot, now)?;
    w.write_str("\n")?;
    if g.role == Role::Task {
        w.write_str(pad)?;
        w.write_str("Spawned")?;
        if !g.spawn_file.is_null() {
            // SAFETY: GH_SPAWN's file is a string the caller keeps alive (`__FILE__`), as
            // gh_spawn_options documents.
            let f = unsafe { std::ffi::CStr::from_ptr(g.spawn_file) };
            w.write_str(" at ")?;
            bytes(w, f.to_bytes())?;
            write!(w, ":{}", g.spawn_line)?;
        }
        if st.greenlets.at(g.parent).is_some() {
            w.write_str(" by ")?;
            greenlet_label(w, hub, st, g.parent)?;
        }
        w.write_str("\n")?;
        w.write_str(pad)?;
        let kib = g.stack_size / 1024;
        // (A greenlet that never ran touched nothing: no mincore over its stack, which
        // for 57,000 1 GiB stacks took minutes: issue 15.4.)
        let ran = g.co.is_some() && g.state != State::New;
        match ran.then(|| touched(g.stack_lo, g.stack_hi)).flatten() {
            Some(t) => writeln!(
                w,
                "Stack: {} KiB touched of {kib} KiB ({}%)",
                t / 1024,
                (t * 100).checked_div(g.stack_size).unwrap_or(0)
            )?,
            _ => writeln!(w, "Stack: {kib} KiB")?,
        }
    }
    Ok(())
}

/// Writes hub `hub`'s section: its counts and the greenlet tree. Does not allocate.
pub fn format_hub<W: Write>(w: &mut W, hub: &Hub, st: &HubState) -> fmt::Result {
    let now = crate::event_loop::now_ns();
    hub_header(w, hub, st)?;
    // gevent's layout: main, the hub under it, the hub's greenlets under the hub.
    greenlet_block(w, hub, st, hub.main_slot, ("", " :    "), now)?;
    greenlet_block(w, hub, st, hub.hub_slot, (" +--- ", " :          "), now)?;
    for (slot, g) in st.greenlets.iter() {
        if g.role == Role::Task {
            greenlet_block(w, hub, st, slot, (" :    +--- ", " :    :          "), now)?;
        }
    }
    Ok(())
}

/// Timers running now. Not `st.timers.len()`: a wait's timeout timer that its wait ended
/// early leaves its heap entry behind (stopped lazily, `HubState::start`), and a timer
/// restarted for a later deadline may sit in the heap at its old one.
fn running_timers(st: &HubState) -> usize {
    st.watchers
        .iter()
        .filter(|(_, w)| w.active && w.timer_after().is_some())
        .count()
}

/// The first line of a hub's section: its counts.
fn hub_header<W: Write>(w: &mut W, hub: &Hub, st: &HubState) -> fmt::Result {
    let tid = hub.shared.tid.load(std::sync::atomic::Ordering::Relaxed);
    let tasks = st.greenlets.len().saturating_sub(2);
    writeln!(
        w,
        "Hub {} (thread {tid}, backend {}): {tasks} greenlet(s), {} referenced watcher(s), {} queued callback(s), {} timer(s), {} switches{}",
        hub.id,
        st.backend.name(),
        st.alive,
        st.queue.len(),
        running_timers(st),
        hub.switches.get(),
        if hub.monitored.get() { ", monitored" } else { "" }
    )
}

/// Greenlets a monitor report lists in full; beyond it, the blocker's ancestry and a
/// count by state (a 10,000-connection server's report was 20,000 lines: issue 15.12).
pub(crate) const REPORT_MAX: usize = 32;

/// A monitor report's tree of `hub`, with `blocked` the greenlet blocking it: the whole
/// tree up to `REPORT_MAX` greenlets, else main, the hub, the blocker with its ancestors
/// and one line counting the others by state. Does not allocate (signal handler).
pub fn format_hub_report<W: Write>(
    w: &mut W,
    hub: &Hub,
    st: &HubState,
    blocked: u32,
) -> fmt::Result {
    if st.greenlets.len().saturating_sub(2) <= REPORT_MAX {
        return format_hub(w, hub, st);
    }
    let now = crate::event_loop::now_ns();
    hub_header(w, hub, st)?;
    greenlet_block(w, hub, st, hub.main_slot, ("", " :    "), now)?;
    greenlet_block(w, hub, st, hub.hub_slot, (" +--- ", " :          "), now)?;
    // The blocker and its ancestors (spawned by), outermost first.
    let mut chain = [0u32; 8];
    let mut n = 0;
    let mut s = blocked;
    while n < chain.len() && st.greenlets.at(s).is_some_and(|g| g.role == Role::Task) {
        chain[n] = s;
        n += 1;
        s = st.greenlets.at(s).map_or(s, |g| g.parent);
    }
    for &s in chain[..n].iter().rev() {
        greenlet_block(w, hub, st, s, (" :    +--- ", " :    :          "), now)?;
    }
    let mut by_state = [0usize; 5];
    let mut others = 0;
    for (slot, g) in st.greenlets.iter() {
        if g.role == Role::Task && !chain[..n].contains(&slot) {
            by_state[g.state as usize] += 1;
            others += 1;
        }
    }
    writeln!(
        w,
        " :    ... and {others} other greenlet(s): {} not started, {} ready, {} running, {} waiting, {} dead (gh_format_run_info lists them all)",
        by_state[State::New as usize],
        by_state[State::Ready as usize],
        by_state[State::Running as usize],
        by_state[State::Waiting as usize],
        by_state[State::Dead as usize],
    )
}

/// This thread's hub section into `out` (normal context).
pub fn format_own(hub: &Hub, out: &mut String) {
    match hub.st.try_borrow() {
        Ok(st) => {
            let _ = format_hub(out, hub, &st);
        }
        Err(_) => out.push_str("Hub state busy (formatting from inside the hub)\n"),
    }
}

type Reply = Arc<(Mutex<Option<String>>, Condvar)>;

/// Runs in another hub's loop (gh_hub_call_threadsafe): formats that hub, replies.
unsafe extern "C" fn answer(arg: *mut std::ffi::c_void) {
    // SAFETY: arg is the Box<Reply> leaked by `format_all` for exactly this call.
    let reply: Box<Reply> = unsafe { Box::from_raw(arg as *mut Reply) };
    let mut s = String::new();
    if let Some(hub) = crate::hub::existing() {
        format_own(hub, &mut s);
    }
    let (m, cv) = &**reply;
    *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    cv.notify_all();
}

/// How long `format_all` waits for another hub's answer.
const ANSWER_WAIT: Duration = Duration::from_millis(250);

/// One run-info dump for GREENHUB_RUN_INFO_SIGNAL: every hub's section, collected
/// without any hub waiting for another (each answers in its own loop), printed once
/// when all have answered or `ANSWER_WAIT` is over, by a short-lived thread (or at once
/// by the hub that saw the signal, when it is the only one).
struct SignalDump {
    /// Per live hub, in id order: its section once it answered.
    parts: Mutex<Vec<(u16, Option<String>)>>,
    cv: Condvar,
}

impl SignalDump {
    fn fill(&self, id: u16, s: String) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = parts.iter_mut().find(|p| p.0 == id) {
            p.1 = Some(s);
        }
        if parts.iter().all(|p| p.1.is_some()) {
            self.cv.notify_all();
        }
    }
}

/// A signal dump is being collected (a signal arriving meanwhile is folded into it).
static DUMPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The signal's delivery count the last dump was for: every hub's watcher fires for one
/// delivery, possibly after that dump is over; the first dumps, the others see it done.
static DUMPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs in another hub's loop: its section of a signal dump.
unsafe extern "C" fn answer_dump(arg: *mut std::ffi::c_void) {
    // SAFETY: arg is the Box<Arc<SignalDump>> leaked by `dump_on_signal` for this call.
    let d: Box<Arc<SignalDump>> = unsafe { Box::from_raw(arg as *mut Arc<SignalDump>) };
    let mut s = String::new();
    if let Some(hub) = crate::hub::existing() {
        format_own(hub, &mut s);
        d.fill(hub.id, s);
    }
}

/// The run-info signal `signum` fired in `own`'s loop: one dump of every hub of the
/// process, unless this delivery was dumped already (or one is being collected).
/// Returns at once.
pub fn dump_on_signal(own: &Hub, signum: i32) {
    use std::sync::atomic::Ordering;
    let n = crate::signals::delivered(signum);
    let last = DUMPED.load(Ordering::Acquire);
    if n <= last || DUMPING.swap(true, Ordering::AcqRel) {
        return;
    }
    if DUMPED
        .compare_exchange(last, n, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        DUMPING.store(false, Ordering::Release);
        return;
    }
    let ids = crate::remote::live_hub_ids();
    let mut header = String::new();
    let _ = writeln!(
        header,
        "greenhub {} run info: process {}, {} hub(s)",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        ids.len()
    );
    let d = Arc::new(SignalDump {
        parts: Mutex::new(ids.iter().map(|&id| (id, None)).collect()),
        cv: Condvar::new(),
    });
    for &id in &ids {
        if id == own.id {
            let mut s = String::new();
            format_own(own, &mut s);
            d.fill(id, s);
            continue;
        }
        let arg = Box::into_raw(Box::new(d.clone()));
        if crate::hub::embed::call_threadsafe(id, None, answer_dump, arg as *mut _).is_err() {
            // SAFETY: not queued, so still ours.
            drop(unsafe { Box::from_raw(arg) });
            d.fill(id, String::new()); // destroyed meanwhile: no section
        }
    }
    let complete = {
        let parts = d.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.iter().all(|p| p.1.is_some())
    };
    let print = move || {
        let parts = d.parts.lock().unwrap_or_else(|p| p.into_inner());
        let (parts, _) =
            d.cv.wait_timeout_while(parts, ANSWER_WAIT, |p| p.iter().any(|p| p.1.is_none()))
                .unwrap_or_else(|p| p.into_inner());
        let mut out = header;
        for (id, s) in parts.iter() {
            match s {
                Some(s) => out.push_str(s),
                None => {
                    let tid =
                        crate::remote::lookup_hub(*id).map_or(0, |s| s.tid.load(Ordering::Relaxed));
                    let _ = writeln!(
                        out,
                        "Hub {id} (thread {tid}): did not answer within {} ms (blocked, or not running its loop)",
                        ANSWER_WAIT.as_millis()
                    );
                }
            }
        }
        drop(parts);
        eprint!("{out}");
        DUMPING.store(false, Ordering::Release);
    };
    // Every section is here already (this hub alone, or the others gone): print now.
    // Else the wait for the others' answers happens on a thread of its own, never in a hub.
    if complete {
        print();
    } else if let Err(e) = std::thread::Builder::new()
        .name("greenhub-runinfo".into())
        .spawn(print.clone())
    {
        eprintln!("greenhub: no thread for the run-info dump ({e}); the hub waits for it");
        print();
    }
}

/// Every hub of the process: this thread's directly, the others through their loop.
pub fn format_all(out: &mut String) {
    let own = crate::hub::existing();
    let ids = crate::remote::live_hub_ids();
    let _ = writeln!(
        out,
        "greenhub {} run info: process {}, {} hub(s)",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        ids.len()
    );
    for id in ids {
        match own {
            Some(h) if h.id == id => format_own(h, out),
            _ => {
                let reply: Reply = Arc::new((Mutex::new(None), Condvar::new()));
                let arg = Box::into_raw(Box::new(reply.clone()));
                if crate::hub::embed::call_threadsafe(id, None, answer, arg as *mut _).is_err() {
                    // SAFETY: not queued, so still ours.
                    drop(unsafe { Box::from_raw(arg) });
                    continue; // destroyed meanwhile
                }
                let (m, cv) = &*reply;
                let g = m.lock().unwrap_or_else(|p| p.into_inner());
                let (mut g, _) = cv
                    .wait_timeout_while(g, ANSWER_WAIT, |s| s.is_none())
                    .unwrap_or_else(|p| p.into_inner());
                match g.take() {
                    Some(s) => out.push_str(&s),
                    None => {
                        let tid = crate::remote::lookup_hub(id)
                            .map_or(0, |s| s.tid.load(std::sync::atomic::Ordering::Relaxed));
                        let _ = writeln!(
                            out,
                            "Hub {id} (thread {tid}): did not answer within {} ms (blocked, or not running its loop)",
                            ANSWER_WAIT.as_millis()
                        );
                    }
                }
            }
        }
    }
}
