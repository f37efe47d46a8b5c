//! Greenlet operations: spawn, join, kill, throw, switch, sleep, names, release.
//!
//! gevent semantics: every greenlet's parent is the hub; kill is cooperative
//! (GreenletExit becomes `GH_ECANCELED` from the current and every later blocking
//! call); a greenlet killed before it started never runs.

use super::wait::WaitId;
use super::{Callback, Hub, SwitchTo};
use crate::error::{Error, Result};
use crate::event_loop::watcher::{Action, WatchKind};
use crate::event_loop::{duration_ns, now_ns};
use crate::greenlet::{Co, Entry, Greenlet, Msg, Role, State, TaskYielder, WaitOn, KEPT_SLEEP};
use crate::stack;
use std::ffi::{c_char, c_void, CStr, CString};

/// How to spawn (`gh_spawn_options` plus the spawn site).
pub struct SpawnOpts {
    pub stack_size: usize,
    pub name: Option<CString>,
    pub file: *const c_char,
    pub line: i32,
    /// Start after this many ns instead of the next iteration.
    pub delay: Option<u64>,
    /// Nobody holds a handle: the record goes at death.
    pub detached: bool,
}

impl Default for SpawnOpts {
    fn default() -> Self {
        SpawnOpts {
            stack_size: 0,
            name: None,
            file: std::ptr::null(),
            line: 0,
            delay: None,
            detached: false,
        }
    }
}

/// The body of every task coroutine: record the yielder, run the C function.
fn task_main(slot: u32, y: &TaskYielder) -> *mut c_void {
    let hub = super::existing().expect("a task only runs inside its hub");
    let (entry, arg) = {
        let mut st = hub.st.borrow_mut();
        let g = st
            .greenlets
            .at_mut(slot)
            .expect("running greenlet has a record");
        g.yielder = y;
        (g.entry.expect("a task has an entry"), g.arg)
    };
    // Called as "C-unwind" (the same ABI; only the unwind assumption differs), so that an
    // unwind out of the C function reaches no_foreign_unwind's sentinel.
    type EntryUnwind = unsafe extern "C-unwind" fn(*mut c_void) -> *mut c_void;
    // SAFETY: a function pointer to the same signature with the C ABI, called as C-unwind.
    let entry = unsafe { std::mem::transmute::<Entry, EntryUnwind>(entry) };
    crate::error::no_foreign_unwind(|| {
        // SAFETY: entry/arg were given to gh_spawn* by the user, who promised that entry is
        // a valid `void *(*)(void *)` for arg.
        unsafe { entry(arg) }
    })
}

impl Hub {
    /// Creates a greenlet that starts in the next iteration (or after `opts.delay`).
    pub fn spawn(&self, entry: Entry, arg: *mut c_void, opts: SpawnOpts) -> Result<(u32, u32)> {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let size = stack::normalize(opts.stack_size, st.default_stack)?;
        let mut stack = st.stacks.take(size)?;
        stack.set_name(opts.name.as_deref());
        let mut g = Greenlet::new(Role::Task);
        g.stack_top = stack.top();
        g.entry = Some(entry);
        g.arg = arg;
        g.name = opts.name;
        g.spawn_file = opts.file;
        g.spawn_line = opts.line;
        g.stack_size = size;
        g.released = opts.detached;
        g.parent = self.current.get();
        {
            use corosensei::stack::Stack;
            g.stack_lo = stack.limit().get();
            g.stack_hi = stack.base().get();
        }
        let (slot, gen) = match st.greenlets.insert_inline(g) {
            Ok(x) => x,
            Err(e) => {
                st.stacks.give(stack);
                return Err(e);
            }
        };
        stack.set_owner(self.handle(crate::handle::Kind::Greenlet, slot, gen));
        let at = stack.co_slot();
        let co = Co::with_stack(stack, move |y: &TaskYielder, _first: Msg| {
            task_main(slot, y)
        });
        // SAFETY: `at` is this stack's coroutine area: CO_AREA bytes, aligned, mapped while
        // the stack lives, used by nothing else (the stack's base is below it); the value
        // written here is read out exactly once (Greenlet::take_co) before the stack goes
        // back to the pool.
        unsafe { at.write(co) };
        // SAFETY: cxa_of(at) is the rest of that area (16 aligned bytes above the
        // coroutine): a new greenlet has no C++ exception state (a reused stack may hold
        // its last greenlet's).
        unsafe { crate::stack::cxa_of(at).write(Default::default()) };
        st.greenlets.at_mut(slot).expect("just inserted").co = std::ptr::NonNull::new(at);
        match opts.delay {
            None => st.queue.push_back(Callback::Start { slot, gen }),
            Some(ns) => {
                let started = st
                    .new_watcher(
                        WatchKind::Timer {
                            after: ns,
                            repeat: 0,
                        },
                        true,
                    )
                    .and_then(|(t, _)| {
                        st.greenlets
                            .at_mut(slot)
                            .expect("just inserted")
                            .start_timer = Some(t);
                        st.start_watcher(t, Action::Start { slot, gen })
                    });
                if let Err(e) = started {
                    drop_unstarted(st, slot);
                    st.greenlets.discard(slot);
                    return Err(e);
                }
            }
        }
        if self.monitored.get() {
            crate::monitor::publish(self, st, slot);
        }
        Ok((slot, gen))
    }

    /// The record of (slot, gen) if the handle is live (not released).
    pub fn greenlet_ok(&self, slot: u32, gen: u32) -> Result<()> {
        match self.st.borrow().greenlets.get(slot, gen) {
            Some(g) if !g.released => Ok(()),
            _ => Err(Error::BADHANDLE),
        }
    }

    fn role(&self, slot: u32) -> Role {
        self.st
            .borrow()
            .greenlets
            .at(slot)
            .map_or(Role::Task, |g| g.role)
    }

    /// Waits until (slot, gen) is dead; returns its result.
    pub fn join(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<*mut c_void> {
        self.greenlet_ok(slot, gen)?;
        let cur = self.current.get();
        if slot == cur {
            return Err(Error::DEADLK);
        }
        {
            let st = self.st.borrow();
            let g = st.greenlets.at(slot).expect("checked");
            if g.role != Role::Task {
                return Err(Error::INVAL);
            }
            if g.is_dead() {
                return Ok(g.result);
            }
            // A join cycle: the target (transitively) joins us.
            let mut t = slot;
            for _ in 0..st.greenlets.len() {
                match st.greenlets.at(t).and_then(|g| g.joining) {
                    Some(n) if n == cur => return Err(Error::DEADLK),
                    Some(n) => t = n,
                    None => break,
                }
            }
        }
        if timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        let r = self.wait_for(WaitOn::Join(slot), timeout, |st, w: WaitId| {
            st.greenlets
                .at_mut(slot)
                .expect("checked")
                .joiners
                .push((w.slot, w.gen, w.seq));
            st.greenlets.at_mut(cur).expect("current").joining = Some(slot);
            Ok(())
        });
        let mut st = self.st.borrow_mut();
        st.greenlets.at_mut(cur).expect("current").joining = None;
        let target = st.greenlets.get_mut(slot, gen);
        match (r, target) {
            (Ok(_), Some(g)) if g.is_dead() => Ok(g.result),
            (Ok(_), _) => Err(Error::BADHANDLE),
            (Err(e), Some(g)) => {
                g.joiners.remove(cur);
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Waits for every greenlet of `list` (with one deadline); returns how many are dead.
    ///
    /// `list` is the caller's own memory (the C array, decoded by `at` — nothing Rust-owned
    /// may live on a greenlet's stack across the waits: issue 15.2).
    pub fn joinall(
        &self,
        n: usize,
        at: impl Fn(usize) -> (u32, u32),
        timeout: Option<u64>,
    ) -> (Result<()>, usize) {
        let list = || (0..n).map(&at);
        for (slot, gen) in list() {
            if let Err(e) = self.greenlet_ok(slot, gen) {
                return (Err(e), 0);
            }
            if self.role(slot) != Role::Task {
                return (Err(Error::INVAL), 0);
            }
        }
        let deadline = timeout.map(|t| now_ns().saturating_add(t));
        let mut result = Ok(());
        for (slot, gen) in list() {
            let left = deadline.map(|d| d.saturating_sub(now_ns()));
            if let Err(e) = self.join(slot, gen, left) {
                if self.is_dead(slot, gen) {
                    continue;
                }
                result = Err(e);
                break;
            }
        }
        let done = list().filter(|&(s, g)| self.is_dead(s, g)).count();
        (result, done)
    }

    fn is_dead(&self, slot: u32, gen: u32) -> bool {
        self.st
            .borrow()
            .greenlets
            .get(slot, gen)
            .is_some_and(|g| g.is_dead())
    }

    /// GreenletExit: the target's current and later blocking calls return `ECANCELED`.
    /// A never-started greenlet is discarded (it never runs). `timeout` 0: return at
    /// once; otherwise wait up to `timeout` for it to die (`ETIMEDOUT` if it lives on).
    pub fn kill(&self, slot: u32, gen: u32, timeout: Option<u64>) -> Result<()> {
        self.greenlet_ok(slot, gen)?;
        enum Then {
            Discarded,
            Wake(u32),
            Nothing,
        }
        let then = {
            let mut st = self.st.borrow_mut();
            let st = &mut *st;
            let g = st.greenlets.at_mut(slot).expect("checked");
            match g.role {
                Role::Hub => return Err(Error::INVAL),
                _ if g.is_dead() => return Ok(()),
                Role::Task if g.state == State::New => {
                    drop_unstarted(st, slot);
                    Then::Discarded
                }
                _ => {
                    g.killed = true;
                    if g.blocked {
                        Then::Wake(g.seq)
                    } else {
                        Then::Nothing
                    }
                }
            }
        };
        crate::monitor::on_throw(self, slot);
        match then {
            Then::Discarded => self.mark_dead(slot),
            Then::Wake(seq) => self.wake(slot, gen, seq, Msg::code(Error::CANCELED.0), false),
            Then::Nothing => {}
        }
        if slot == self.current.get()
            || timeout == Some(0)
            || self.role(slot) != Role::Task
            || self.is_dead(slot, gen)
        {
            return Ok(());
        }
        self.join(slot, gen, timeout).map(|_| ())
    }

    /// gh_throw: the target's current (or next) blocking call returns `code` once.
    pub fn throw(&self, slot: u32, gen: u32, code: i32) -> Result<()> {
        if code >= 0 {
            return Err(Error::INVAL);
        }
        self.greenlet_ok(slot, gen)?;
        let wake = {
            let mut st = self.st.borrow_mut();
            let g = st.greenlets.at_mut(slot).expect("checked");
            if g.role == Role::Hub {
                return Err(Error::INVAL);
            }
            if g.is_dead() {
                return Err(Error::DEAD);
            }
            g.throw = code;
            if g.blocked {
                Some(g.seq)
            } else {
                None
            }
        };
        crate::monitor::on_throw(self, slot);
        if let Some(seq) = wake {
            self.wake(slot, gen, seq, Msg::code(code), false);
        }
        Ok(())
    }

    /// Raw greenlet switch: park the current greenlet and run (slot, gen) with `value`.
    /// The target must be new, parked in `gh_switch`, or the hub (then the current
    /// greenlet just parks). Returns the value the current greenlet is switched back with.
    pub fn switch(&self, slot: u32, gen: u32, value: *mut c_void) -> Result<*mut c_void> {
        self.greenlet_ok(slot, gen)?;
        let cur = self.current.get();
        if self.in_hub() {
            return Err(Error::PERM);
        }
        if slot == cur {
            return Err(Error::INVAL);
        }
        {
            let st = self.st.borrow();
            let g = st.greenlets.at(slot).expect("checked");
            if g.is_dead() {
                return Err(Error::DEAD);
            }
            let accepts = g.role == Role::Hub
                || (g.role == Role::Task && g.state == State::New)
                || (g.blocked && g.waiting_on == WaitOn::Switch);
            if !accepts {
                return Err(Error::BUSY);
            }
        }
        let msg = Msg { code: 0, value };
        let role = self.role(slot);
        let main_slot = self.main_slot;
        let r = self.wait_for(WaitOn::Switch, None, |st, _| {
            match role {
                Role::Hub => {}
                Role::Main => {
                    let m = st.greenlets.at_mut(main_slot).expect("main");
                    m.blocked = false;
                    m.state = State::Ready;
                    st.main_wake = Some(msg);
                }
                Role::Task => {
                    st.switch_to = Some(SwitchTo { slot, gen, msg });
                    self.switch_pending.set(true);
                }
            }
            Ok(())
        })?;
        Ok(r.value)
    }

    /// Cooperative sleep; 0 yields to the other greenlets; forever parks until killed.
    pub fn sleep(&self, seconds: f64) -> Result<()> {
        let dur = if seconds == 0.0 {
            Some(0)
        } else {
            duration_ns(seconds)?
        };
        match dur {
            Some(0) => {
                // wait_for marks a Yield wait READY.
                self.wait_for(WaitOn::Yield, None, |st, w| {
                    st.queue.push_back(Callback::Wake {
                        slot: w.slot,
                        gen: w.gen,
                        seq: w.seq,
                        msg: Msg::OK,
                    });
                    Ok(())
                })?;
            }
            Some(ns) => {
                let mut timer = None;
                let r = self.wait_for(WaitOn::Nothing, None, |st, w| {
                    let (t, kept) = st.take_kept_timer(w.slot, KEPT_SLEEP)?;
                    timer = Some((t, kept));
                    st.greenlets.at_mut(w.slot).expect("current").waiting_on = WaitOn::Watcher(t);
                    st.start_timer_at(t, w.action(0), now_ns().saturating_add(ns))
                });
                if let Some((t, kept)) = timer {
                    self.st.borrow_mut().put_kept_timer(t, kept);
                }
                r?;
            }
            None => {
                self.wait_for(WaitOn::Nothing, None, |_, _| Ok(()))?;
            }
        }
        Ok(())
    }

    /// Waits until `fd` is ready for `events`; returns the ready events.
    pub fn wait_fd(&self, fd: i32, events: u8, timeout: Option<u64>) -> Result<i32> {
        self.wait_fd_as(fd, events, timeout, false)
    }

    /// `wait_fd`; with `own`, as the fd's one reader (READ) or writer (WRITE) of
    /// gh_recv-like calls: `EBUSY` if another greenlet is one now (`FdEntry::reader` /
    /// `writer`, taken and given back under the wait's own borrows).
    #[inline(never)]
    pub(crate) fn wait_fd_as(
        &self,
        fd: i32,
        events: u8,
        timeout: Option<u64>,
        own: bool,
    ) -> Result<i32> {
        if fd < 0 {
            return Err(Error::BADF);
        }
        if timeout == Some(0) {
            return poll_once(fd, events);
        }
        let reader = events == crate::event_loop::READ;
        let mut owned = false;
        let mut parked = None;
        let mut watcher = None;
        let r = self.wait_for(WaitOn::Fd { fd, events }, timeout, |st, w| {
            if own {
                let owner = st.fds.owner_mut(fd, reader).ok_or(Error::BADF)?;
                if *owner != u32::MAX && *owner != w.slot {
                    return Err(Error::BUSY);
                }
                *owner = w.slot;
                owned = true;
            }
            // The common case: parked on the fd's entry, no watcher record.
            if st.park_fd(fd, events, w)? {
                parked = Some(w);
                return Ok(());
            }
            // READ|WRITE, or a second waiter on the same side: a watcher of its own.
            let (t, _) = st.new_watcher(WatchKind::Io { fd, events }, true)?;
            watcher = Some(t);
            st.start_watcher(t, w.action(0))?;
            st.greenlets.at_mut(w.slot).expect("current").waiting_on = WaitOn::Watcher(t);
            Ok(())
        });
        let mut st = self.st.borrow_mut();
        if let Some(w) = parked {
            st.unpark_fd(fd, events, w);
        } else if let Some(t) = watcher {
            st.close_watcher(t);
        }
        if owned {
            // gh_close may have reset it (and another greenlet taken it since).
            let me = self.current.get();
            if let Some(owner) = st.fds.owner_mut(fd, reader) {
                if *owner == me {
                    *owner = u32::MAX;
                }
            }
        }
        drop(st);
        r.map(|m| m.code)
    }

    /// gh_hub_wait: start watcher `slot` so that it resumes us, park, stop it.
    pub fn hub_wait(&self, slot: u32, gen: u32) -> Result<()> {
        {
            let st = self.st.borrow();
            let w = st.watchers.get(slot, gen).ok_or(Error::BADHANDLE)?;
            if w.active {
                return Err(Error::BUSY);
            }
        }
        let r = self.wait_for(WaitOn::Watcher(slot), None, |st, w| {
            st.start_watcher(slot, w.action(0))
        });
        let mut st = self.st.borrow_mut();
        if st.watchers.get(slot, gen).is_some() {
            st.stop_watcher(slot);
        }
        r.map(|_| ())
    }

    pub fn state(&self, slot: u32, gen: u32) -> Result<State> {
        self.greenlet_ok(slot, gen)?;
        let st = self.st.borrow();
        let g = st.greenlets.at(slot).expect("checked");
        Ok(match g.role {
            Role::Hub if self.in_hub() => State::Running,
            Role::Hub => State::Waiting,
            _ if slot == self.current.get() => State::Running,
            _ => g.state,
        })
    }

    /// Calls `f` with the greenlet's name ("main", "hub", or the spawn name; "" if none).
    pub fn with_name<R>(&self, slot: u32, gen: u32, f: impl FnOnce(&CStr) -> R) -> Result<R> {
        self.greenlet_ok(slot, gen)?;
        let st = self.st.borrow();
        let g = st.greenlets.at(slot).expect("checked");
        Ok(match (&g.name, g.role) {
            (Some(n), _) => f(n),
            (None, Role::Main) => f(c"main"),
            (None, Role::Hub) => f(c"hub"),
            (None, Role::Task) => f(c""),
        })
    }

    pub fn set_name(&self, slot: u32, gen: u32, name: CString) -> Result<()> {
        self.greenlet_ok(slot, gen)?;
        let mut st = self.st.borrow_mut();
        let g = st.greenlets.at_mut(slot).expect("checked");
        if g.stack_top != 0 && !g.is_dead() {
            // SAFETY: a task that is not dead still owns the stack it was spawned with
            // (the stack goes back to the pool only when it dies).
            unsafe { stack::rename(g.stack_top, &name) };
        }
        g.name = Some(name);
        if self.monitored.get() {
            crate::monitor::publish(self, &st, slot);
        }
        Ok(())
    }

    /// Gives up the handle; the record goes now if dead, else at death.
    pub fn release(&self, slot: u32, gen: u32) -> Result<()> {
        self.greenlet_ok(slot, gen)?;
        let mut st = self.st.borrow_mut();
        let g = st.greenlets.at_mut(slot).expect("checked");
        if g.role != Role::Task {
            return Err(Error::INVAL);
        }
        if g.is_dead() {
            st.greenlets.discard(slot);
        } else {
            g.released = true;
        }
        Ok(())
    }

    /// gh_link: `f(g, arg)` runs in the hub when (slot, gen) dies (in link order), or in
    /// the next iteration if it is dead already. Tasks only (`EINVAL` for main and hub).
    pub fn link(
        &self,
        slot: u32,
        gen: u32,
        f: crate::greenlet::LinkFn,
        arg: *mut c_void,
    ) -> Result<()> {
        self.greenlet_ok(slot, gen)?;
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let g = st.greenlets.at_mut(slot).expect("checked");
        if g.role != Role::Task {
            return Err(Error::INVAL);
        }
        if g.is_dead() {
            let id = self.handle(crate::handle::Kind::Greenlet, slot, gen);
            st.queue.push_back(Callback::Link { f, g: id, arg });
        } else {
            st.links.try_reserve(1).map_err(|_| Error::NOMEM)?;
            st.links.push((slot, f, arg));
            st.greenlets.at_mut(slot).expect("checked").linked = true;
        }
        Ok(())
    }

    /// gh_unlink: removes the first link (f, arg) of (slot, gen) that has not run yet
    /// (pending, or queued because it died); returns how many were removed (0 or 1).
    pub fn unlink(
        &self,
        slot: u32,
        gen: u32,
        f: crate::greenlet::LinkFn,
        arg: *mut c_void,
    ) -> Result<usize> {
        self.greenlet_ok(slot, gen)?;
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let same =
            |lf: crate::greenlet::LinkFn, la: *mut c_void| std::ptr::fn_addr_eq(lf, f) && la == arg;
        if let Some(i) = st
            .links
            .iter()
            .position(|&(s, lf, la)| s == slot && same(lf, la))
        {
            st.links.remove(i);
            return Ok(1);
        }
        let id = self.handle(crate::handle::Kind::Greenlet, slot, gen);
        let queued = st.queue.iter().position(
            |cb| matches!(*cb, Callback::Link { f: lf, g, arg: la } if g == id && same(lf, la)),
        );
        Ok(match queued {
            Some(i) => {
                st.queue.remove(i);
                1
            }
            None => 0,
        })
    }

    /// (slot, gen) of the running greenlet.
    pub fn current_id(&self) -> (u32, u32) {
        let slot = self.current.get();
        (slot, self.st.borrow().greenlets.gen(slot))
    }
}

/// Discards a never-started task: recycle its stack, mark it dead (no joiner wake-up
/// here: the caller does that once the borrow is released).
fn drop_unstarted(st: &mut super::HubState, slot: u32) {
    let (co, timer) = {
        let g = st.greenlets.at_mut(slot).expect("greenlet has a record");
        g.state = State::Dead;
        g.result = std::ptr::null_mut();
        (g.take_co(), g.start_timer.take())
    };
    if let Some(t) = timer {
        st.close_watcher(t);
    }
    if let Some(mut co) = co {
        // SAFETY: the coroutine never ran, so its stack holds only the closure, which
        // captures a plain u32: skipping its drop leaks nothing.
        unsafe { co.force_reset() };
        st.stacks.give(co.into_stack());
    }
}

/// One non-blocking readiness check (timeout 0: "do not wait").
fn poll_once(fd: i32, events: u8) -> Result<i32> {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    if events & crate::event_loop::READ != 0 {
        p.events |= libc::POLLIN;
    }
    if events & crate::event_loop::WRITE != 0 {
        p.events |= libc::POLLOUT;
    }
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n < 0 {
        return Err(Error::last_os());
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(Error::BADF);
    }
    let mut r = 0;
    if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        r |= crate::event_loop::READ as i32;
    }
    if p.revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
        r |= crate::event_loop::WRITE as i32;
    }
    r &= events as i32;
    if r == 0 {
        return Err(Error::TIMEDOUT);
    }
    Ok(r)
}
