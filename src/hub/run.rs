//! The loop, read top to bottom in the order it runs (libuv's `uv_run`):
//!
//! ```text
//! run_for_main:  loop {
//!     pending gh_switch from main          -> resume that greenlet
//!     main woken?                          -> return to main
//!     run queued callbacks (FIFO; those queued meanwhile wait for the next pass)
//!     more queued and budget left?         -> next pass without polling
//!     nothing referenced left?             -> return GH_ELOOPEXIT to main
//!     prepare watchers
//!     apply fd interest changes, poll (timeout: 0 if work is pending, else next timer)
//!     io watchers (and the wake-up eventfd -> async watchers)
//!     due timers
//!     check watchers
//!     idle watchers (when nothing else happened)
//! }
//! ```
//!
//! The loop runs on main's stack, as the hub greenlet (`current == hub_slot`). It
//! returns only at the top of an iteration, so no iteration state survives a return.
//! Yield storms: up to `POLL_BUDGET` callbacks run between polls, then the loop polls
//! (timeout 0) and runs due timers, so IO is never starved.

use super::wait::WaitId;
use super::{Callback, Hub, SwitchTo};
use crate::error::Error;
use crate::event_loop::fds::{self, Verdict, NO_PARK, PARK_EVENTS};
use crate::event_loop::watcher::{
    Action, RawHandle, WatchKind, EV_ASYNC, EV_CHECK, EV_CHILD, EV_IDLE, EV_PREPARE, EV_SIGNAL,
    EV_TIMER,
};
use crate::event_loop::{now_ns, READ, WAKE_TOKEN, WRITE};
use crate::greenlet::{Co, Msg, State, WaitOn};
use crate::handle::Kind;
use corosensei::CoroutineResult;
use std::ffi::c_void;

/// `dispatch_io`'s verdict on one event (`Hub::one_parked`).
enum Fast {
    /// Nothing to do (a stale registration, or the parked wait had ended).
    Done,
    /// Run this task with this message (it was checked and entered).
    Run(u32, *mut Co, Msg),
    /// The general dispatch (fd, events).
    No(i32, u8),
}

/// What an fd event fires: a watcher (slot, generation), or a greenlet wait parked on
/// the fd's entry; with the revents.
#[derive(Copy, Clone)]
pub(crate) enum FdFire {
    Watcher(u32, u32, i32),
    Wait(WaitId, i32),
}

/// Callbacks run between two polls at most, when callbacks keep coming.
const POLL_BUDGET: u32 = 1024;
/// ... and time: a yield storm of slow greenlets polls (and runs due timers) at least
/// every 5 ms (gevent's switch interval), reading the clock once per `CLOCK_EVERY`
/// callbacks.
const SLICE_NS: u64 = 5_000_000;
pub(crate) const CLOCK_EVERY: u32 = 64;

/// When a repeating timer scheduled at `at` and fired at `now` is due next: one period
/// after `at` (libev's rule: a late loop does not delay the timer's later periods, so it
/// keeps time), and if the loop was so late that periods went by entirely, the first
/// period boundary after `now` (missed periods are skipped, not fired in a burst).
fn rearm_at(at: u64, repeat: u64, now: u64) -> u64 {
    let next = at.saturating_add(repeat);
    if next > now || at > now {
        return next;
    }
    now.saturating_add(repeat - (now - at) % repeat)
}

#[derive(Copy, Clone)]
enum List {
    Prepare,
    Check,
    Idle,
}

impl Hub {
    /// Runs the loop as the hub until the main greenlet is woken; returns main's message.
    pub(crate) fn run_for_main(&self) -> Msg {
        self.current.set(self.hub_slot);
        self.switched(self.main_slot, self.hub_slot);
        let msg = self.run_loop();
        self.current.set(self.main_slot);
        self.switched(self.hub_slot, self.main_slot);
        msg
    }

    /// Records a switch `from` -> `to` (both already decided; `current` is the hub):
    /// the switch count and running slot for the monitor (one relaxed store), and the
    /// trace hook / assert_switches clocks when any is active.
    #[inline(always)]
    pub(crate) fn switched(&self, from: u32, to: u32) {
        self.publish_active(to, 0);
        if self.diag.get() & !crate::monitor::DIAG_CXX != 0 {
            crate::monitor::on_switch(self, from, to);
        }
    }

    /// Exchanges the thread's C++ exception globals (the caught-exception stack and the
    /// uncaught count) with those kept beside coroutine `co` (`stack::cxa_of`), when the
    /// process has a C++ runtime: called when a task is switched in, it gives the task its
    /// own and keeps the hub's (main's: one stack); when it is switched out, the reverse.
    /// So each greenlet has its own, as each thread has, and a greenlet that blocks inside
    /// a `catch` handler shares them with no other.
    #[cold]
    #[inline(never)]
    fn swap_cxx(&self, co: *mut Co) {
        if let Some(g) = self.cxa_globals {
            // SAFETY: g is this thread's __cxa_get_globals() (the hub is this thread's),
            // valid for the thread's life; cxa_of(co) is the task's area beside its
            // coroutine, mapped while the coroutine lives (it does: the hub just resumed
            // it or is about to); neither is touched by anything else during the swap.
            unsafe { std::ptr::swap(g.as_ptr(), crate::stack::cxa_of(co)) };
        }
    }

    /// Bumps the switch count and publishes `count << 32 | slot | flags` for the monitor
    /// (`HubShared::active`): a new value each time, so the monitor restarts its clock.
    #[inline(always)]
    fn publish_active(&self, slot: u32, flags: u64) {
        let n = self.switches.get().wrapping_add(1);
        self.switches.set(n);
        self.shared.active.store(
            ((n as u64) << 32) | slot as u64 | flags,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn run_loop(&self) -> Msg {
        loop {
            // fork() inside a greenlet or callback: rebuild before touching the backend.
            self.check_fork();
            let sw = self.take_switch();
            if let Some(sw) = sw {
                self.resume_switch(sw);
            }
            let queued = {
                let mut st = self.st.borrow_mut();
                if let Some(m) = st.main_wake.take() {
                    return m;
                }
                !st.queue.is_empty()
            };
            if queued {
                self.run_callbacks(true);
            }
            {
                let st = self.st.borrow();
                let more = st.main_wake.is_some() || st.switch_to.is_some() || !st.queue.is_empty();
                if more && st.since_poll < POLL_BUDGET && !self.slice_over(&st) {
                    continue;
                }
                if !more && st.alive == 0 {
                    return Msg::code(Error::LOOPEXIT.0);
                }
            }

            self.iterate_io(None);
        }
    }

    /// One iteration without a return to main: callbacks, then the IO half
    /// (`gh_hub_run_once`).
    pub(crate) fn iterate(&self, cap_ms: Option<i32>) {
        self.check_fork();
        let sw = self.take_switch();
        if let Some(sw) = sw {
            self.resume_switch(sw);
        }
        self.run_callbacks(false);
        self.iterate_io(cap_ms);
    }

    /// The IO half of an iteration: prepare, poll (at most `cap_ms`), io, timers,
    /// check, idle.
    fn iterate_io(&self, cap_ms: Option<i32>) {
        if !self.st.borrow().prepare.is_empty() {
            self.fire_list(List::Prepare);
        }
        let mut busy = self.poll(cap_ms);
        busy |= self.dispatch_io();
        busy |= self.run_timers();
        let (check, idle) = {
            let st = self.st.borrow();
            (
                !st.check.is_empty(),
                !st.idle.is_empty() && !busy && st.queue.is_empty(),
            )
        };
        if check {
            self.fire_list(List::Check);
        }
        if idle && self.st.borrow().queue.is_empty() {
            self.fire_list(List::Idle);
        }
    }

    /// True when callbacks have run for `SLICE_NS` since the last poll (checked every
    /// `CLOCK_EVERY` callbacks, so a fast yield storm reads no clock).
    #[inline]
    fn slice_over(&self, st: &super::HubState) -> bool {
        if st.since_poll < self.clock_next.get() {
            return false;
        }
        self.clock_next.set(st.since_poll + CLOCK_EVERY);
        now_ns().saturating_sub(st.now) >= SLICE_NS
    }

    /// True when the loop must not sleep in its poll.
    pub(crate) fn work_pending(&self, st: &super::HubState) -> bool {
        !st.queue.is_empty()
            || st.main_wake.is_some()
            || st.switch_to.is_some()
            || !st.idle.is_empty()
            || st.async_recheck
            || st.child_recheck
            || !st.failed.is_empty()
            || st.fds.any_always_ready()
    }

    /// Runs the callbacks queued now, in order. With `chain`, when that pass is over and
    /// the loop would only start the next pass (nothing for main or a gh_switch, poll
    /// budget and time slice left, no fork), the next pass runs here: the same order
    /// as going round the loop, without its overhead per pass (a hand-off between two
    /// greenlets is one callback per pass).
    fn run_callbacks(&self, chain: bool) {
        let mut n = self.st.borrow().queue.len();
        loop {
            while n > 0 {
                n -= 1;
                let cb = {
                    let mut guard = self.st.borrow_mut();
                    let st = &mut *guard;
                    st.since_poll += 1;
                    let cb = match st.queue.pop_front() {
                        Some(cb) => cb,
                        None => return,
                    };
                    // The common callback, a task's wake-up: checked and entered under
                    // this borrow (resume_wait's work), then run.
                    if let Callback::Wake {
                        slot,
                        gen,
                        seq,
                        msg,
                    } = cb
                    {
                        if slot != self.main_slot {
                            let co = match st.greenlets.get_mut(slot, gen) {
                                Some(g) if g.blocked && g.seq == seq => {
                                    g.blocked = false;
                                    g.enter()
                                }
                                _ => None,
                            };
                            drop(guard);
                            if let Some(co) = co {
                                self.run_task(slot, co, msg);
                            }
                            continue;
                        }
                    }
                    cb
                };
                match cb {
                    Callback::Start { slot, gen } => self.start_greenlet(slot, gen),
                    Callback::Wake {
                        slot,
                        gen,
                        seq,
                        msg,
                    } => self.wake(slot, gen, seq, msg, true),
                    Callback::User { f, arg }
                    | Callback::Remote { f, arg }
                    | Callback::Dtor { f, arg } => {
                        // SAFETY: f and arg come from the caller of gh_run_callback,
                        // gh_hub_call_threadsafe or gh_local_key_create (+ gh_local_set), who
                        // promised f is a valid function for arg; it runs in the hub like any
                        // watcher callback.
                        unsafe { f(arg) }
                    }
                    // SAFETY: f and arg come from gh_link's caller, who promised f is a valid
                    // function for arg; it runs in the hub like any callback.
                    Callback::Link { f, g, arg } => unsafe {
                        f(crate::event_loop::watcher::RawHandle { id: g }, arg)
                    },
                }
            }
            if !chain {
                return;
            }
            let st = self.st.borrow();
            if st.queue.is_empty()
                || st.main_wake.is_some()
                || st.switch_to.is_some()
                || st.since_poll >= POLL_BUDGET
                // Time to read the clock for the slice: the loop does that (slice_over).
                || st.since_poll >= self.clock_next.get()
                || self.fork_gen.get() != super::FORK_GEN.load(std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            n = st.queue.len();
        }
    }

    /// Applies interest changes and polls (at most `cap_ms` if given). Returns true if
    /// something was ready.
    fn poll(&self, cap_ms: Option<i32>) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        st.failed.clear();
        st.fds.reify(&mut *st.backend, &mut st.failed);
        let immediate = self.work_pending(st);
        let timeout_ms = if immediate {
            0
        } else {
            match st.timers.next() {
                Some(at) => {
                    let now = now_ns();
                    if at <= now {
                        0
                    } else {
                        (at - now).div_ceil(1_000_000).min(i32::MAX as u64) as i32
                    }
                }
                None => -1,
            }
        };
        let timeout_ms = match cap_ms {
            Some(cap) if timeout_ms < 0 || cap < timeout_ms => cap.max(0),
            _ => timeout_ms,
        };
        // The last poll found something: the loop is busy.
        let busy = !st.ready.is_empty();
        st.ready.clear();
        // Unverified registrations (fd closed and reused behind our back?): verify the
        // ones quiet for VERIFY_QUIET_NS, and sleep no longer than until the next one is.
        let mut timeout_ms = timeout_ms;
        if st.fds.has_unverified() {
            let now = st.now;
            let next = st.fds.verify_due(&mut *st.backend, now, &mut st.failed);
            if timeout_ms != 0 {
                if let Some(due) = next {
                    // Rounded up (+1 ms at most: a cap, not a deadline); `min` keeps it an
                    // i32 (`due` is within VERIFY_QUIET_NS of `now` anyway).
                    let ms = (due.saturating_sub(now).min(1 << 40) / 1_000_000) as i32 + 1;
                    // "Forever" (-1) compares as u32::MAX.
                    if (ms as u32) < (timeout_ms as u32) {
                        timeout_ms = ms;
                    }
                }
            }
            if !st.failed.is_empty() {
                timeout_ms = 0;
            }
        }
        // A positive timeout costs the kernel clock reads in epoll_wait even when something
        // is ready at once (a bare epoll ping-pong on this machine kind: ~2,650 ns per
        // round trip with -1 or 0, ~2,800 with 19 ms), and a busy loop finds something
        // ready most times: then it looks without waiting first, and waits only if that
        // finds nothing (one more syscall when a busy loop goes idle).
        // (A failed peek has the backend rebuilt next: no wait either.)
        let peeked = timeout_ms > 0 && busy && st.backend.peek_is_cheap() && {
            Self::poll_backend(st, 0);
            !st.ready.is_empty() || st.fds.rebuild
        };
        if peeked {
            // Found something without waiting.
        } else if timeout_ms != 0 {
            // About to sleep: give back the pages of stacks freed in a burst.
            st.stacks.trim();
            // Idle in the poll is not blocked: tell the monitor, if one watches this hub
            // (the store is only read by it; `monitor::start` runs on this thread).
            let monitored = self.monitored.get();
            if monitored {
                self.publish_active(self.hub_slot, crate::remote::POLLING);
            }
            Self::poll_backend(st, timeout_ms);
            if monitored {
                self.publish_active(self.hub_slot, 0);
            }
        } else {
            Self::poll_backend(st, 0);
        }
        st.now = now_ns();
        st.since_poll = 0;
        self.clock_next.set(CLOCK_EVERY);
        !st.ready.is_empty()
    }

    fn poll_backend(st: &mut super::HubState, timeout_ms: i32) {
        if let Err(e) = st.backend.poll(&mut st.ready, timeout_ms) {
            Self::backend_failed(st, e, timeout_ms);
        }
    }

    /// The backend's poll failed: its fd was closed (or replaced) behind greenhub's back.
    /// Say so once per hub, let go of the fd without closing it (the number may be
    /// someone else's now) and have the loop recreate the backend and register everything
    /// again. A failure that persists (no fd for a new backend) waits out the poll's
    /// timeout, capped at 50 ms, instead of spinning (issue 15.11).
    #[cold]
    fn backend_failed(st: &mut super::HubState, e: i32, timeout_ms: i32) {
        if !st.backend_failed {
            st.backend_failed = true;
            eprintln!(
                "greenhub: the {} backend failed (errno {e}: its fd closed behind greenhub's back?); recreating it",
                st.backend.name()
            );
        } else {
            let ms = if timeout_ms < 0 {
                50
            } else {
                timeout_ms.min(50)
            };
            // SAFETY: poll(2) with no fds is a plain sleep.
            unsafe { libc::poll(std::ptr::null_mut(), 0, ms) };
        }
        st.backend.disown(e);
        st.fds.rebuild = true;
    }

    /// Recreates the backend empty and registers everything again (stale registration).
    fn rebuild_backend(&self) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Err(e) = st.backend.reset() {
            eprintln!(
                "greenhub: cannot recreate the {} backend: errno {e}",
                st.backend.name()
            );
            st.fds.rebuild = false;
            return;
        }
        if let Err(e) = st
            .backend
            .add(self.wake_fd.get(), WAKE_TOKEN, crate::event_loop::READ)
        {
            eprintln!("greenhub: cannot register the wake-up fd again: errno {e}");
        }
        st.fds.rebuild_all(&mut *st.backend, &mut st.failed);
    }

    /// Dispatches what the poll returned, always-ready fds and failed registrations.
    fn dispatch_io(&self) -> bool {
        let n = self.st.borrow().ready.len();
        let mut busy = n > 0;
        let in_hub = self.in_hub();
        for i in 0..n {
            // Under one borrow: the event judged, and the common case (one greenlet
            // parked on the fd, nothing else watching it) checked and entered.
            let fast = {
                let mut guard = self.st.borrow_mut();
                let st = &mut *guard;
                let ev = st.ready[i];
                if ev.token == WAKE_TOKEN {
                    None
                } else {
                    let (fd, gen) = fds::split(ev.token);
                    match st.fds.check(&mut *st.backend, fd, gen, &mut st.failed) {
                        Verdict::Stale => Some(Fast::Done),
                        Verdict::Dispatch if in_hub => {
                            Some(Self::one_parked(st, self.main_slot, fd, ev.events))
                        }
                        Verdict::Dispatch => Some(Fast::No(fd, ev.events)),
                    }
                }
            };
            match fast {
                None => self.on_wake(true),
                Some(Fast::Done) => {}
                Some(Fast::Run(slot, co, msg)) => self.run_task(slot, co, msg),
                Some(Fast::No(fd, got)) => self.dispatch_fd(fd, got, true),
            }
        }
        let (rebuild, rest) = {
            let st = self.st.borrow();
            (
                st.fds.rebuild,
                !st.failed.is_empty()
                    || !st.fds.always_ready.is_empty()
                    || st.async_recheck
                    || st.child_recheck,
            )
        };
        if rebuild {
            self.rebuild_backend();
        } else if !rest {
            return busy;
        }
        let extra: Vec<i32> = {
            let mut st = self.st.borrow_mut();
            if st.failed.is_empty() && st.fds.always_ready.is_empty() {
                Vec::new()
            } else {
                st.fds.prune_always_ready();
                let mut v = std::mem::take(&mut st.failed);
                v.extend(st.fds.always_ready.iter().copied());
                v
            }
        };
        for fd in extra {
            busy = true;
            self.dispatch_fd(
                fd,
                crate::event_loop::READ | crate::event_loop::WRITE,
                false,
            );
        }
        if self.st.borrow().async_recheck {
            busy = true;
            self.on_wake(false);
        }
        if self.st.borrow().child_recheck {
            busy = true;
            self.check_children();
        }
        busy
    }

    /// An event for `fd` (`got`): when one greenlet is parked on the fd's entry and
    /// nothing else watches it, and nothing unwanted fired (then `settle` would change
    /// nothing), resume_wait's check and entry, for the caller to run; `Done` if that
    /// wait had ended already. Else `No`: `dispatch_fd`'s work.
    #[inline(always)]
    fn one_parked(st: &mut super::HubState, main_slot: u32, fd: i32, got: u8) -> Fast {
        let Some(e) = st.fds.get(fd) else {
            return Fast::No(fd, got);
        };
        let want = e.wanted;
        if !e.watchers.is_empty()
            || !(want == READ || want == WRITE)
            || got & want == 0
            || got & !want & (READ | WRITE) != 0
        {
            return Fast::No(fd, got);
        }
        let (slot, gen, seq) = e.parked[usize::from(want == WRITE)];
        if slot == main_slot {
            return Fast::No(fd, got);
        }
        let revents = (want & got) as i32;
        match st.greenlets.get_mut(slot, gen) {
            Some(g) if g.blocked && g.seq == seq => {
                g.blocked = false;
                match g.enter() {
                    Some(co) => Fast::Run(slot, co, Msg::code(revents)),
                    None => Fast::Done,
                }
            }
            _ => Fast::Done,
        }
    }

    /// Fires the active io watchers of `fd` interested in `got`, and the waits parked on
    /// its entry.
    #[inline(never)]
    fn dispatch_fd(&self, fd: i32, got: u8, from_kernel: bool) {
        let wanted_then;
        let mut list = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let mut list = std::mem::take(&mut st.scratch_fd);
            list.clear();
            wanted_then = st.fds.wanted(fd);
            if let Some(e) = st.fds.get(fd) {
                // The waits parked on the entry are taken as they are now: one that
                // parks again meanwhile is a new wait, not woken by this event.
                for (side, ev) in PARK_EVENTS.into_iter().enumerate() {
                    let (slot, gen, seq) = e.parked[side];
                    if ev & got != 0 && (slot, gen, seq) != NO_PARK {
                        list.push(FdFire::Wait(WaitId { slot, gen, seq }, (ev & got) as i32));
                    }
                }
                for &(slot, ev) in &e.watchers {
                    if ev & got != 0 {
                        let revents = (ev & got) as i32;
                        list.push(FdFire::Watcher(slot, st.watchers.gen(slot), revents));
                    }
                }
            }
            list
        };
        for f in &list {
            match *f {
                FdFire::Watcher(slot, gen, revents) => self.fire(slot, gen, revents),
                FdFire::Wait(w, revents) => {
                    let msg = Msg::code(revents);
                    if w.slot != self.main_slot && self.in_hub() {
                        self.resume_wait(w.slot, w.gen, w.seq, msg)
                    } else {
                        self.wake(w.slot, w.gen, w.seq, msg, true)
                    }
                }
            }
        }
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        list.clear();
        st.scratch_fd = list;
        if from_kernel {
            st.fds.settle(&mut *st.backend, fd, got, wanted_then);
        }
    }

    /// The wake-up eventfd fired (or an async watcher was started while pending).
    fn on_wake(&self, drain: bool) {
        let list = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            st.async_recheck = false;
            if drain {
                let mut buf = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
                unsafe { libc::read(self.wake_fd.get(), &mut buf as *mut u64 as *mut c_void, 8) };
            }
            let mut list = std::mem::take(&mut st.scratch_io);
            list.clear();
            let mut r = self.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            if drain {
                r.woken = false;
                crate::asyncs::drained(self.id);
            }
            let jobs_done = !r.done.is_empty();
            drop(r);
            for &slot in &st.asyncs {
                let gen = st.watchers.gen(slot);
                if crate::asyncs::pending(self.id, slot, gen, true) {
                    list.push((slot, gen, EV_ASYNC));
                }
            }
            (list, jobs_done)
        };
        let (mut list, jobs_done) = list;
        if jobs_done {
            self.collect_jobs();
        }
        self.take_remote_calls();
        let sig_slot = self.st.borrow().sig_slot;
        if let Some(slot) = sig_slot {
            let pending = crate::signals::take_pending(slot);
            if pending != 0 {
                self.fire_signals(pending);
            }
        }
        for &(slot, gen, revents) in &list {
            self.fire(slot, gen, revents);
        }
        list.clear();
        self.st.borrow_mut().scratch_io = list;
    }

    /// Fires due timers. Returns true if any fired.
    fn run_timers(&self) -> bool {
        let mut any = false;
        loop {
            let (slot, gen, action) = {
                let mut st = self.st.borrow_mut();
                let st = &mut *st;
                let now = st.now;
                let at = st.timers.next().unwrap_or(u64::MAX);
                let Some(slot) = st.timers.pop_due(now) else {
                    break;
                };
                let (gen, w) = st
                    .watchers
                    .at_mut_gen(slot)
                    .expect("timers hold live watchers");
                if w.lazy() {
                    if !w.active {
                        continue; // its wait ended early: the entry was left (lazy stop)
                    }
                    if w.deferred() {
                        // Restarted for a later deadline than this old entry's.
                        w.set_deferred(false);
                        if let Some(after) = w.timer_after().filter(|&a| a > now) {
                            st.timers.insert(slot, after);
                            continue;
                        }
                    }
                }
                let action = w.action();
                match w.kind() {
                    WatchKind::Timer { repeat, .. } if repeat > 0 => {
                        st.timers.insert(slot, rearm_at(at, repeat, now));
                    }
                    _ => {
                        w.active = false;
                        w.set_action(Action::None);
                        if w.referenced() {
                            st.alive -= 1;
                        }
                    }
                }
                (slot, gen, action)
            };
            any = true;
            self.run_action(slot, gen, action, EV_TIMER);
        }
        any
    }

    fn fire_list(&self, which: List) {
        let mut list = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let (src, bit) = match which {
                List::Prepare => (&st.prepare, EV_PREPARE),
                List::Check => (&st.check, EV_CHECK),
                List::Idle => (&st.idle, EV_IDLE),
            };
            if src.is_empty() {
                return;
            }
            let mut list = std::mem::take(&mut st.scratch_io);
            list.clear();
            list.extend(src.iter().map(|&s| (s, st.watchers.gen(s), bit)));
            list
        };
        for &(slot, gen, revents) in &list {
            self.fire(slot, gen, revents);
        }
        list.clear();
        self.st.borrow_mut().scratch_io = list;
    }

    /// Fires watcher (slot, gen) if it is still active.
    fn fire(&self, slot: u32, gen: u32, revents: i32) {
        let (action, kind) = match self.st.borrow().watchers.get(slot, gen) {
            Some(w) if w.active => (w.action(), w.kind()),
            _ => return,
        };
        if let WatchKind::Child { pid, .. } = kind {
            return self.reap_child(slot, gen, pid, action);
        }
        self.run_action(slot, gen, action, revents);
    }

    /// A child watcher's child may have exited: reap it and fire once if so.
    fn reap_child(&self, slot: u32, gen: u32, pid: i32, action: Action) {
        let mut status = 0;
        // SAFETY: status is a valid out-parameter.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != pid {
            if r < 0 {
                // Reaped by someone else (or not our child): report it as exited.
                status = -1;
            } else {
                return;
            }
        }
        {
            let mut st = self.st.borrow_mut();
            if let Some(w) = st.watchers.get_mut(slot, gen) {
                w.set_status(status);
            }
            st.stop_watcher(slot);
        }
        self.run_action(slot, gen, action, EV_CHILD);
    }

    /// Checks the child watchers that have no pidfd (SIGCHLD arrived, or just started).
    fn check_children(&self) {
        let list: Vec<(u32, u32)> = {
            let mut st = self.st.borrow_mut();
            st.child_recheck = false;
            st.children
                .iter()
                .map(|&s| (s, st.watchers.gen(s)))
                .collect()
        };
        for (slot, gen) in list {
            self.fire(slot, gen, EV_CHILD);
        }
    }

    /// Fires the signal watchers of the signals in `pending` (bit signum - 1).
    fn fire_signals(&self, pending: u64) {
        let list: Vec<(u32, u32)> = {
            let st = self.st.borrow();
            st.signals
                .iter()
                .filter(|&&s| match st.watchers.at(s).map(|w| w.kind()) {
                    Some(WatchKind::Signal { signum }) => pending & (1 << (signum - 1)) != 0,
                    _ => false,
                })
                .map(|&s| (s, st.watchers.gen(s)))
                .collect()
        };
        for (slot, gen) in list {
            self.fire(slot, gen, EV_SIGNAL);
        }
        if pending & (1 << (libc::SIGCHLD - 1)) != 0 {
            self.check_children();
        }
    }

    fn run_action(&self, slot: u32, gen: u32, action: Action, revents: i32) {
        match action {
            Action::None => {}
            Action::User { f, arg } => {
                let h = RawHandle {
                    id: self.handle(Kind::Watcher, slot, gen),
                };
                // SAFETY: f/arg were given to gh_watcher_start by the user for this watcher.
                unsafe { f(h, revents, arg) }
            }
            Action::Resume {
                slot,
                gen,
                seq,
                code,
            } => {
                let code = if code == 0 { revents } else { code };
                if slot != self.main_slot && self.in_hub() {
                    self.resume_wait(slot, gen, seq, Msg::code(code))
                } else {
                    self.wake(slot, gen, seq, Msg::code(code), true)
                }
            }
            Action::Start { slot, gen } => self.start_greenlet(slot, gen),
        }
    }

    /// First run of a spawned greenlet, unless it was killed or started meanwhile.
    pub(crate) fn start_greenlet(&self, slot: u32, gen: u32) {
        {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let Some(g) = st.greenlets.get_mut(slot, gen) else {
                return;
            };
            if g.state != State::New {
                return;
            }
            if let Some(t) = g.start_timer.take() {
                st.close_watcher(t);
            }
        }
        self.resume(slot, Msg::OK);
    }

    /// Performs a `gh_switch` to a task if the target still accepts it.
    fn resume_switch(&self, sw: SwitchTo) {
        let ok = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            match st.greenlets.get_mut(sw.slot, sw.gen) {
                Some(g) if g.state == State::New => {
                    if let Some(t) = g.start_timer.take() {
                        st.close_watcher(t);
                    }
                    true
                }
                Some(g) if g.blocked && g.waiting_on == WaitOn::Switch => {
                    g.blocked = false;
                    true
                }
                _ => false,
            }
        };
        if ok {
            self.resume(sw.slot, sw.msg);
        }
    }

    /// Runs task `slot` until it parks or dies; then performs any `gh_switch` it asked
    /// for. Hub context only.
    pub(crate) fn resume(&self, slot: u32, msg: Msg) {
        let co = {
            let mut st = self.st.borrow_mut();
            let g = st
                .greenlets
                .at_mut(slot)
                .expect("resumed greenlet has a record");
            g.enter()
        };
        if let Some(co) = co {
            self.run_task(slot, co, msg);
        }
    }

    /// Wakes and runs task (slot, gen) now if it is still parked in wait `seq` (one
    /// record lookup: the check and the coroutine). Hub context only.
    #[inline]
    pub(crate) fn resume_wait(&self, slot: u32, gen: u32, seq: u32, msg: Msg) {
        let co = {
            let mut st = self.st.borrow_mut();
            let Some(g) = st.greenlets.get_mut(slot, gen) else {
                return;
            };
            if !g.blocked || g.seq != seq {
                return;
            }
            g.blocked = false;
            g.enter()
        };
        if let Some(co) = co {
            self.run_task(slot, co, msg);
        }
    }

    /// Takes the pending `gh_switch`, if any (no borrow when there is none).
    #[inline]
    fn take_switch(&self) -> Option<SwitchTo> {
        if !self.switch_pending.get() {
            return None;
        }
        self.switch_pending.set(false);
        self.st.borrow_mut().switch_to.take()
    }

    /// Switches into task `slot` (its boxed coroutine `co`) until it parks or dies;
    /// then performs any `gh_switch` it asked for.
    #[inline]
    fn run_task(&self, slot: u32, co: *mut Co, msg: Msg) {
        debug_assert!(self.in_hub(), "tasks are resumed by the hub only");
        self.switched(self.hub_slot, slot);
        self.current.set(slot);
        let cxx = self.diag.get() & crate::monitor::DIAG_CXX != 0;
        if cxx {
            self.swap_cxx(co);
        }
        // ThreadSanitizer: announce this switch and the way back (src/tsan.rs).
        let tsan = self.tsan_enter(slot);
        // SAFETY: `co` points at the task's coroutine in its own stack slot, which never
        // moves and stays valid until the task dies (take_co reads it out only then, or
        // when a never-started or discarded task goes); only the hub resumes tasks, one at
        // a time (the hub runs no task now: `current` was the hub), so this is the only
        // reference.
        let r = unsafe { (*co).resume(msg) };
        tsan.leave();
        if cxx {
            self.swap_cxx(co);
        }
        self.current.set(self.hub_slot);
        self.switched(slot, self.hub_slot);
        if let CoroutineResult::Return(result) = r {
            self.finish(slot, result);
        }
        let sw = self.take_switch();
        if let Some(sw) = sw {
            self.resume_switch(sw);
        }
    }

    /// A task returned: recycle its stack, keep its result, wake its joiners.
    fn finish(&self, slot: u32, result: *mut c_void) {
        let mut st = self.st.borrow_mut();
        let g = st
            .greenlets
            .at_mut(slot)
            .expect("finished greenlet has a record");
        g.result = result;
        let co = g.take_co().expect("a finished task had its coroutine");
        st.stacks.give(co.into_stack());
        drop(st);
        self.mark_dead(slot);
    }

    /// Marks `slot` dead, wakes its joiners (queued), frees the record if released.
    pub(crate) fn mark_dead(&self, slot: u32) {
        {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let mut joiners = std::mem::take(&mut st.scratch_joiners);
            st.drop_kept_timers(slot);
            let gen = st.greenlets.gen(slot);
            let g = st.greenlets.at_mut(slot).expect("greenlet has a record");
            g.state = State::Dead;
            g.blocked = false;
            g.entry = None;
            g.joiners.take_all(&mut joiners);
            let has_locals = std::mem::take(&mut g.has_locals);
            if std::mem::take(&mut g.linked) {
                let id = self.handle(Kind::Greenlet, slot, gen);
                let (queue, links) = (&mut st.queue, &mut st.links);
                links.retain(|&(s, f, arg)| {
                    if s == slot {
                        queue.push_back(super::Callback::Link { f, g: id, arg });
                    }
                    s != slot
                });
            }
            let released = g.released;
            if has_locals {
                st.queue_local_dtors(slot);
            }
            if self.monitored.get() {
                crate::monitor::unpublish(self, slot);
            }
            if released {
                st.greenlets.discard(slot);
            }
            // Queued (or main marked woken), under this borrow: nothing runs now.
            for &(j, jg, js) in &joiners {
                st.wake_later(
                    super::wait::WaitId {
                        slot: j,
                        gen: jg,
                        seq: js,
                    },
                    Msg::OK,
                );
            }
            joiners.clear();
            st.scratch_joiners = joiners;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rearm_at;

    #[test]
    fn repeating_timers_rearm_from_their_schedule() {
        // On time or a little late: the next period, from the scheduled time.
        assert_eq!(rearm_at(100, 10, 100), 110);
        assert_eq!(rearm_at(100, 10, 107), 110);
        // Periods missed entirely are skipped, keeping the phase.
        assert_eq!(rearm_at(100, 10, 110), 120);
        assert_eq!(rearm_at(100, 10, 125), 130);
        assert_eq!(rearm_at(100, 10, 1_000_005), 1_000_010);
        // No overflow near the end of time.
        assert_eq!(rearm_at(u64::MAX - 5, 10, u64::MAX - 5), u64::MAX);
        assert_eq!(rearm_at(u64::MAX - 25, 10, u64::MAX - 1), u64::MAX);
    }
}
