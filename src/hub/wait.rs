//! `Hub.wait` in one screen: park the current greenlet until something wakes it.
//!
//! Every blocking call is `wait_for`: arm what will wake us (a watcher whose action
//! resumes this greenlet, a joiner entry, a queued yield), optionally a timeout timer,
//! switch to the hub, and on return disarm the timeout and report why we woke.
//! A wake-up names the wait (`seq`) it was meant for, so one that arrives after the
//! wait ended (a timer racing an io event, a kill racing a wake) is ignored: no
//! greenlet is ever resumed twice for one wait.

use super::{Callback, Hub, HubState};
use crate::error::{Error, Result};
use crate::event_loop::watcher::Action;
use crate::greenlet::{Msg, State, WaitOn, KEPT_TIMEOUT};

/// Identifies one wait of one greenlet: (slot, generation, seq).
#[derive(Copy, Clone, Debug)]
pub struct WaitId {
    pub slot: u32,
    pub gen: u32,
    pub seq: u32,
}

impl WaitId {
    /// The watcher action that ends this wait with `code` (0 = pass the revents).
    pub fn action(self, code: i32) -> Action {
        Action::Resume {
            slot: self.slot,
            gen: self.gen,
            seq: self.seq,
            code,
        }
    }
}

impl Hub {
    /// Fails with the pending kill or throw of the current greenlet, if any.
    fn take_pending(st: &mut HubState, slot: u32) -> Result<()> {
        let g = st
            .greenlets
            .at_mut(slot)
            .expect("current greenlet has a record");
        if g.killed {
            return Err(Error::CANCELED);
        }
        if g.throw != 0 {
            return Err(Error(std::mem::take(&mut g.throw)));
        }
        Ok(())
    }

    /// Parks the current greenlet until woken. `setup` arms the wake-up source(s) for
    /// the wait it is given; `timeout` (ns, `Some(0)` = don't wait) adds a timer that
    /// ends the wait with `GH_ETIMEDOUT`. Returns the message the wait ended with
    /// (code >= 0), or the error: `EPERM` in the hub, `ECANCELED` when killed, a thrown
    /// code, `ETIMEDOUT`, `ELOOPEXIT` (main, nothing left to wake it).
    ///
    /// gevent's `Hub.wait`: arm, switch to the hub, disarm.
    pub fn wait_for(
        &self,
        on: WaitOn,
        timeout: Option<u64>,
        setup: impl FnOnce(&mut HubState, WaitId) -> Result<()>,
    ) -> Result<Msg> {
        let slot = self.current.get();
        if slot == self.hub_slot {
            return Err(Error::PERM);
        }
        let (timer, yielder) = self.arm(slot, on, timeout, setup)?;
        let msg = if slot == self.main_slot {
            self.run_for_main()
        } else {
            // SAFETY: `yielder` points at the TaskYielder on this running task's own stack,
            // recorded when it started; it stays valid while the coroutine lives, and we
            // are inside it.
            unsafe { (*yielder).suspend(()) }
        };
        self.disarm(slot, timer)?;
        if msg.code < 0 {
            return Err(Error(msg.code));
        }
        Ok(msg)
    }

    /// `wait_for`'s first half, under one borrow: fails with a pending kill or throw, or
    /// at once when the deadline (the call's own or the greenlet's `gh_timeout`: one
    /// clock read, one timer) has passed; else marks the greenlet parked in a new wait,
    /// runs `setup` and starts the timeout timer. Returns that timer (and whether it is
    /// the greenlet's kept one) and the task's yielder.
    #[inline(always)]
    fn arm(
        &self,
        slot: u32,
        on: WaitOn,
        timeout: Option<u64>,
        setup: impl FnOnce(&mut HubState, WaitId) -> Result<()>,
    ) -> Result<(Option<(u32, bool)>, *const crate::greenlet::TaskYielder)> {
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let (gen, g) = st
            .greenlets
            .at_mut_gen(slot)
            .expect("current greenlet has a record");
        if g.killed || g.throw != 0 {
            let e = Self::take_pending(st, slot).expect_err("a kill or throw is pending");
            drop(guard);
            if e == Error::CANCELED {
                // A killed greenlet that ignores GH_ECANCELED and keeps calling
                // blocking functions must not starve the hub: pass through it once.
                self.yield_once(slot);
            }
            return Err(e);
        }
        // `own` 0: no timeout of its own. (A plain number, not an Option: optimised code
        // computed `now + t` from a None's undefined payload and discarded it, which
        // valgrind reports as a jump on an uninitialised value.)
        let own = timeout.unwrap_or_default();
        let deadline = g.deadline;
        let now = if own != 0 || deadline != u64::MAX {
            crate::event_loop::now_ns()
        } else {
            0
        };
        if now >= deadline || timeout == Some(0) {
            return Err(Error::TIMEDOUT);
        }
        let call_deadline = if own != 0 {
            now.saturating_add(own)
        } else {
            u64::MAX
        };
        let at = call_deadline.min(deadline);
        g.seq = g.seq.wrapping_add(1);
        g.blocked = true;
        g.state = if on == WaitOn::Yield {
            State::Ready
        } else {
            State::Waiting
        };
        g.waiting_on = on;
        g.call_deadline = call_deadline;
        let yielder = g.yielder;
        let w = WaitId {
            slot,
            gen,
            seq: g.seq,
        };
        let armed = setup(st, w).and_then(|()| {
            if at == u64::MAX {
                return Ok(None);
            }
            let (t, kept) = st.take_kept_timer(slot, KEPT_TIMEOUT)?;
            match st.start_timer_at(t, w.action(Error::TIMEDOUT.0), at) {
                Ok(()) => Ok(Some((t, kept))),
                Err(e) => {
                    st.put_kept_timer(t, kept);
                    Err(e)
                }
            }
        });
        match armed {
            Ok(None) => Ok((None, yielder)),
            Ok(Some((t, kept))) => {
                st.greenlets
                    .at_mut(slot)
                    .expect("current greenlet has a record")
                    .wait_timer = Some(t);
                Ok((Some((t, kept)), yielder))
            }
            Err(e) => {
                let g = st
                    .greenlets
                    .at_mut(slot)
                    .expect("current greenlet has a record");
                g.running_again();
                g.call_deadline = u64::MAX;
                Err(e)
            }
        }
    }

    /// `wait_for`'s second half: the timer stopped, the greenlet running again, and the
    /// kill or throw that ended the wait (if one did) taken.
    #[inline(always)]
    fn disarm(&self, slot: u32, timer: Option<(u32, bool)>) -> Result<()> {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some((t, kept)) = timer {
            st.put_kept_timer(t, kept);
        }
        let g = st
            .greenlets
            .at_mut(slot)
            .expect("current greenlet has a record");
        g.running_again();
        g.wait_timer = None;
        if g.killed || g.throw != 0 {
            Self::take_pending(st, slot)?;
        }
        Ok(())
    }

    /// Lets every other ready greenlet and the loop run once, ignoring pending kills.
    fn yield_once(&self, slot: u32) {
        {
            let mut st = self.st.borrow_mut();
            let gen = st.greenlets.gen(slot);
            let g = st
                .greenlets
                .at_mut(slot)
                .expect("current greenlet has a record");
            g.seq = g.seq.wrapping_add(1);
            g.blocked = true;
            g.state = State::Ready;
            g.waiting_on = WaitOn::Yield;
            let seq = g.seq;
            st.queue.push_back(Callback::Wake {
                slot,
                gen,
                seq,
                msg: Msg::OK,
            });
        }
        self.switch_out();
        let mut st = self.st.borrow_mut();
        let g = st
            .greenlets
            .at_mut(slot)
            .expect("current greenlet has a record");
        g.running_again();
    }

    /// Leaves the current greenlet for the hub; returns what it is resumed with.
    #[inline]
    fn switch_out(&self) -> Msg {
        let slot = self.current.get();
        if slot == self.main_slot {
            return self.run_for_main();
        }
        let y = self
            .st
            .borrow()
            .greenlets
            .at(slot)
            .expect("current greenlet has a record")
            .yielder;
        // SAFETY: y points at the TaskYielder on this running task's own stack, recorded when
        // it started; it stays valid while the coroutine lives, and we are inside it.
        unsafe { (*y).suspend(()) }
    }

    /// Wakes greenlet (slot, gen) if it is still parked in wait `seq`. With `direct`
    /// (only honoured in the hub) the greenlet runs now; otherwise the wake-up is queued
    /// for the hub's next iteration.
    pub fn wake(&self, slot: u32, gen: u32, seq: u32, msg: Msg, direct: bool) {
        let mut st = self.st.borrow_mut();
        if direct && slot != self.main_slot && self.in_hub() {
            drop(st);
            self.resume_wait(slot, gen, seq, msg);
        } else {
            st.wake_later(WaitId { slot, gen, seq }, msg);
        }
    }
}

impl HubState {
    /// Wakes wait `w` without running it now: main is marked woken, a task gets a
    /// queued wake-up. Returns false if `w` is no longer a live wait.
    pub fn wake_later(&mut self, w: WaitId, msg: Msg) -> bool {
        wake_split(
            &mut self.greenlets,
            &mut self.queue,
            &mut self.main_wake,
            self.main_slot,
            w,
            msg,
        )
    }
}

/// Wakes wait `w` without running it now (split borrows, so callers can hold
/// `objects` meanwhile): main is marked woken, a task gets a queued wake-up.
/// Returns false if `w` is no longer a live wait.
#[inline]
pub(crate) fn wake_split(
    greenlets: &mut crate::handle::Table<crate::greenlet::Greenlet>,
    queue: &mut std::collections::VecDeque<Callback>,
    main_wake: &mut Option<Msg>,
    main_slot: u32,
    w: WaitId,
    msg: Msg,
) -> bool {
    let Some(g) = greenlets.get_mut(w.slot, w.gen) else {
        return false;
    };
    if !g.blocked || g.seq != w.seq {
        return false;
    }
    g.state = crate::greenlet::State::Ready;
    if w.slot == main_slot {
        g.blocked = false;
        *main_wake = Some(msg);
    } else {
        queue.push_back(Callback::Wake {
            slot: w.slot,
            gen: w.gen,
            seq: w.seq,
            msg,
        });
    }
    true
}
