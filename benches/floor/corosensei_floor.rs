//! benches/floor — the switching layer's floor: what a hand-off costs with corosensei
//! (the switching layer greenhub's design fixes) and nothing else, for `benches/run.sh`
//! to print beside greenhub and State Threads.
//!
//! Two coroutines driven by a dispatcher loop over a run queue of indices: no handles, no
//! generation checks, no kill or timeout, no monitor, no event loop; one unchecked global
//! state. Each hand-off is two switches (the coroutine suspends to the dispatcher, which
//! resumes the other): corosensei's coroutines are asymmetric, while State Threads jumps
//! from one thread's context straight into the next (one switch). A coroutine can resume
//! only its own children, so a hub design, where any greenlet hands off to any other
//! through the dispatcher, pays these two switches per hand-off whatever else it does:
//! this is that design's floor on corosensei (give or take a few instructions: the API
//! functions stay out of line, as a library's are). What greenhub adds is its own.
//!
//! Usage: corosensei_floor handoff|handoff-cond (PEERS_N round trips, default 2,000,000)
//!   handoff       each side yields: requeues itself and suspends (gh_sleep(0)'s idiom)
//!   handoff-cond  a semaphore each, as greenhub.c and st.c: acquire own, release the
//!                 other's (a direct wake of the one waiter)
//! Prints `RESULT workload=W prog=corosensei n=N ns=NS` (ns per round trip), the peers'
//! protocol (benches/peers/peers.h).
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::time::Instant;

struct Sem {
    count: u64,
    waiter: Option<usize>,
}

struct State {
    runq: VecDeque<usize>,
    sems: [Sem; 2],
    yielders: [*const Yielder<(), ()>; 2],
    current: usize,
    done: u64,
}

struct Global(UnsafeCell<Option<State>>);
// SAFETY: only the main thread touches the state (the program starts no thread).
unsafe impl Sync for Global {}
static STATE: Global = Global(UnsafeCell::new(None));

#[allow(clippy::mut_from_ref)]
fn st() -> &'static mut State {
    // SAFETY: one thread; no reference returned here is held across a switch or while
    // another is used (each function below takes it afresh), as greenhub's own discipline.
    unsafe { (*STATE.0.get()).as_mut().expect("state set up") }
}

/// Leaves the running coroutine for the dispatcher.
fn suspend() {
    let s = st();
    let y = s.yielders[s.current];
    // SAFETY: the yielder was recorded by this coroutine when it started, lives on its
    // stack, and we run inside that coroutine.
    unsafe { (*y).suspend(()) }
}

// Out of line, as a library's API functions are.
#[inline(never)]
fn yield_now() {
    let s = st();
    s.runq.push_back(s.current);
    suspend();
}

#[inline(never)]
fn acquire(i: usize) {
    let s = st();
    if s.sems[i].count > 0 {
        s.sems[i].count -= 1;
        return;
    }
    s.sems[i].waiter = Some(s.current);
    suspend();
}

#[inline(never)]
fn release(i: usize) {
    let s = st();
    match s.sems[i].waiter.take() {
        Some(w) => s.runq.push_back(w),
        None => s.sems[i].count += 1,
    }
}

/// Runs `n` round trips of workload `cond` (false: yield, true: semaphores); seconds.
fn pass(n: u64, cond: bool) -> f64 {
    // SAFETY: no coroutine runs now, so nothing holds a reference into the state.
    unsafe {
        *STATE.0.get() = Some(State {
            runq: VecDeque::with_capacity(4),
            sems: [
                Sem {
                    count: 1,
                    waiter: None,
                },
                Sem {
                    count: 0,
                    waiter: None,
                },
            ],
            yielders: [std::ptr::null(); 2],
            current: 0,
            done: 0,
        })
    };
    let mut cos: Vec<_> = (0..2usize)
        .map(|me| {
            let stack = DefaultStack::new(64 * 1024).expect("stack");
            Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
                st().yielders[me] = y;
                for _ in 0..n {
                    if cond {
                        acquire(me);
                        st().done += 1;
                        release(1 - me);
                    } else {
                        yield_now();
                        st().done += 1;
                    }
                }
            })
        })
        .collect();
    st().runq.extend([0, 1]);
    let t0 = Instant::now();
    let mut finished = 0;
    while let Some(i) = st().runq.pop_front() {
        st().current = i;
        if let CoroutineResult::Return(()) = cos[i].resume(()) {
            finished += 1;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let done = st().done;
    assert!(
        finished == 2 && done == 2 * n,
        "floor: {done} of {} steps, {finished} of 2 coroutines finished",
        2 * n
    );
    t
}

fn main() {
    let w = std::env::args().nth(1).unwrap_or_default();
    let cond = match w.as_str() {
        "handoff" => false,
        "handoff-cond" => true,
        _ => {
            eprintln!("usage: corosensei_floor handoff|handoff-cond (PEERS_N round trips)");
            std::process::exit(2);
        }
    };
    let n: u64 = match std::env::var("PEERS_N") {
        Ok(v) if !v.is_empty() => v.parse().expect("PEERS_N: a number"),
        _ => 2_000_000,
    };
    pass(n / 10 + 1, cond);
    let t = pass(n, cond);
    println!(
        "RESULT workload={w} prog=corosensei n={n} ns={:.1}",
        t * 1e9 / n as f64
    );
}
