//! benches/floor — the switching layer's floor: what a hand-off costs with corosensei
//! (the switching layer greenhub's design fixes) and nothing else, for `benches/run.sh`
//! to print beside greenhub and State Threads.
//!
//! Two coroutines driven by a dispatcher loop over a run queue of indices: no handles, no
//! generation checks, no kill or timeout, no monitor, no event loop; one unchecked global
//! state. Each hand-off is two switches (the coroutine suspends to the dispatcher, which
//! resumes the other): corosensei's coroutines are asymmetric, while State Threads jumps
//! from one thread's context straight into the next (one switch). A hub design, where
//! every wake goes through the dispatcher (greenhub's, as gevent's), pays these two
//! switches per hand-off whatever else it does: this is that design's floor on corosensei
//! (give or take a few instructions: the API functions stay out of line, as a library's
//! are). What greenhub adds is its own.
//!
//! `FLOOR_DESIGN=nested` (handoff-cond only) measures another design instead: no
//! dispatcher in between. A parking coroutine resumes the next ready one itself, and one
//! whose resumer runs next suspends back to it, so a hand-off between two is one switch.
//! A corosensei coroutine may resume any suspended one, which returns to whoever resumed
//! it. That is the floor of a scheduler where a blocking call dispatches by itself
//! (issue 12's "tight dispatch"), at the price of resumes nested on the parking
//! greenlets' stacks, which must unwind in order.
//!
//! Usage: corosensei_floor handoff|handoff-cond (PEERS_N round trips, default 2,000,000)
//!   handoff       each side yields: requeues itself and suspends (gh_sleep(0)'s idiom)
//!   handoff-cond  a semaphore each, as greenhub.c and st.c: acquire own, release the
//!                 other's (a direct wake of the one waiter)
//! Prints `RESULT workload=W prog=corosensei n=N ns=NS` (ns per round trip; prog
//! corosensei-nested with FLOOR_DESIGN=nested), the peers' protocol
//! (benches/peers/peers.h).
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::time::Instant;

struct Sem {
    count: u64,
    waiter: Option<usize>,
}

type Co = Coroutine<(), (), (), DefaultStack>;

struct State {
    runq: VecDeque<usize>,
    sems: [Sem; 2],
    yielders: [*const Yielder<(), ()>; 2],
    current: usize,
    done: u64,
    // The nested design: who is ready to run, who resumed whom (None: the dispatcher),
    // which coroutine has returned, and where each coroutine lives.
    ready: [bool; 2],
    parent: [Option<usize>; 2],
    finished: [bool; 2],
    cos: [*mut Co; 2],
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

/// A semaphore's acquire: takes a free permit, or lists the running coroutine as the
/// waiter and parks it with `park` (inlined into each design's out-of-line function, so
/// neither pays for a choice per call).
#[inline(always)]
fn take_or_park(i: usize, park: impl FnOnce(usize)) {
    let s = st();
    if s.sems[i].count > 0 {
        s.sems[i].count -= 1;
        return;
    }
    s.sems[i].waiter = Some(s.current);
    park(s.current);
}

/// A semaphore's release: wakes the waiter with `wake`, or keeps the permit.
#[inline(always)]
fn wake_or_keep(i: usize, wake: impl FnOnce(&mut State, usize)) {
    let s = st();
    match s.sems[i].waiter.take() {
        Some(w) => wake(s, w),
        None => s.sems[i].count += 1,
    }
}

#[inline(never)]
fn acquire(i: usize) {
    take_or_park(i, |_| suspend());
}

#[inline(never)]
fn release(i: usize) {
    wake_or_keep(i, |s, w| s.runq.push_back(w));
}

// The nested design's pair: parking and waking without a run queue.
#[inline(never)]
fn acquire_nested(i: usize) {
    take_or_park(i, park_nested);
}

#[inline(never)]
fn release_nested(i: usize) {
    wake_or_keep(i, |s, w| s.ready[w] = true);
}

/// The nested design's park: until `me` is ready again, resume the other coroutine when
/// it is ready (it comes back here when it parks or returns), else suspend to whoever
/// resumed `me` (the other, when it is the one ready, or the dispatcher).
fn park_nested(me: usize) {
    st().ready[me] = false;
    loop {
        let s = st();
        if s.ready[me] {
            return;
        }
        let other = 1 - me;
        if s.ready[other] && !s.finished[other] && s.parent[me] != Some(other) {
            s.parent[other] = Some(me);
            s.current = other;
            let co = s.cos[other];
            // SAFETY: `co` points at the other coroutine, alive for the whole pass; it is
            // suspended (not running, not resuming anyone: it is not our resumer), so this
            // is the only reference in use.
            let r = unsafe { (*co).resume(()) };
            let s = st();
            s.parent[other] = None;
            s.current = me;
            if let CoroutineResult::Return(()) = r {
                s.finished[other] = true;
            }
        } else {
            suspend();
        }
    }
}

/// Runs `n` round trips of workload `cond` (false: yield, true: semaphores), in the
/// nested design with `nested`; seconds.
fn pass(n: u64, cond: bool, nested: bool) -> f64 {
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
            ready: [true; 2],
            parent: [None; 2],
            finished: [false; 2],
            cos: [std::ptr::null_mut(); 2],
        })
    };
    let mut cos: Vec<Co> = (0..2usize)
        .map(|me| {
            let stack = DefaultStack::new(64 * 1024).expect("stack");
            Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
                st().yielders[me] = y;
                // One loop per workload: no choice made per round trip.
                if nested {
                    for _ in 0..n {
                        acquire_nested(me);
                        st().done += 1;
                        release_nested(1 - me);
                    }
                } else if cond {
                    for _ in 0..n {
                        acquire(me);
                        st().done += 1;
                        release(1 - me);
                    }
                } else {
                    for _ in 0..n {
                        yield_now();
                        st().done += 1;
                    }
                }
            })
        })
        .collect();
    for (i, co) in cos.iter_mut().enumerate() {
        st().cos[i] = co;
    }
    st().runq.extend([0, 1]);
    let t0 = Instant::now();
    let mut finished = 0;
    if nested {
        // The dispatcher only starts the first and takes back whoever suspends to it.
        loop {
            let s = st();
            let Some(i) = (0..2).find(|&i| s.ready[i] && !s.finished[i]) else {
                break;
            };
            s.current = i;
            s.parent[i] = None;
            let co = s.cos[i];
            // SAFETY: `co` points into `cos`, alive and not moved; nothing runs now.
            if let CoroutineResult::Return(()) = unsafe { (*co).resume(()) } {
                st().finished[i] = true;
            }
        }
        finished = st().finished.iter().filter(|&&f| f).count();
    } else {
        while let Some(i) = st().runq.pop_front() {
            st().current = i;
            if let CoroutineResult::Return(()) = cos[i].resume(()) {
                finished += 1;
            }
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
    let nested = std::env::var_os("FLOOR_DESIGN").is_some_and(|v| v == "nested");
    if nested && !cond {
        eprintln!("corosensei_floor: FLOOR_DESIGN=nested measures handoff-cond only");
        std::process::exit(2);
    }
    let n: u64 = match std::env::var("PEERS_N") {
        Ok(v) if !v.is_empty() => v.parse().expect("PEERS_N: a number"),
        _ => 2_000_000,
    };
    pass(n / 10 + 1, cond, nested);
    let t = pass(n, cond, nested);
    let prog = if nested {
        "corosensei-nested"
    } else {
        "corosensei"
    };
    println!(
        "RESULT workload={w} prog={prog} n={n} ns={:.1}",
        t * 1e9 / n as f64
    );
}
