#!/usr/bin/env python3
"""Writes the hand-made seed corpus of fuzz_targets/api_sequence.rs into
corpus/api_sequence/seed-*: one small scenario per file, spelled with the opcodes of
`step()` (the byte layout is documented there). Run it again after changing opcodes."""
import os

# timeouts (index into TIMEOUTS): 0 = 0 s, 2 = 0.2 ms, 3 = 1 ms, 4 = GH_FOREVER, 7 = NaN
T0, T02MS, T1MS, FOREVER, NAN = 0, 2, 3, 4, 7
# greenlet entries (op of `entry`)
RETURN, YIELD, SLEEP, EVENT, QGET, QPUT, SEM, WAITER, READ, SWITCH, JOIN, STUBBORN, TMO, HUBWAIT = range(14)
LIVE0, STALE, ZERO = 0, 5, 6  # pick(): first live handle, a stale one, zero

def spawn(entry, k=0, t=FOREVER, detached=False): return [0, 0x80 if detached else 0, entry, k, t]
def join(t=FOREVER): return [1, 2, LIVE0, t]           # the first kept greenlet
def join_main(): return [1, 0, FOREVER]                # gh_join(main): GH_EINVAL
def kill(t=1): return [2, 2, LIVE0, t]                 # t: 0 s / 0.5 ms / NaN / forever
def sleep(t=T0): return [3, t]
def switch_to(): return [4, 2, LIVE0]
def throw(): return [5, 2, LIVE0, 0]
def release(pick=LIVE0): return [6, 2, pick]
def names(): return [7, 2, LIVE0]
def timer(after=T02MS, repeat=1): return [8, 2, after, repeat]
def idle(): return [8, 5]
def async_new(): return [8, 6]
def io_read_end(): return [8, 0, 0, 0]               # io watcher, first pipe's read end, GH_READ
def start(what=0, pick=LIVE0): return [9, pick, what]  # what: 1 blocks (EPERM), 2 stops, 3 closes, 4 spawns, 5 sets event
def stop(pick=LIVE0): return [10, pick]
def wclose(pick=LIVE0): return [11, pick]
def send(pick=LIVE0): return [12, pick, 1]
def hub_wait(pick=LIVE0): return [13, pick]
def event_new(): return [14, 0]
def event_set(pick=LIVE0): return [14, 1, pick]
def event_clear(pick=LIVE0): return [14, 2, pick]
def event_close(pick=LIVE0): return [14, 4, pick]
def event_wait(t=T1MS, pick=LIVE0): return [15, pick, t]
def queue_new(cap=0): return [16, 7 * cap]
def queue_put(t=T1MS): return [16, 1, LIVE0, t]
def queue_get(t=T1MS): return [16, 2, LIVE0, t]
def queue_close(): return [16, 5, LIVE0, 0]
def queue_free(): return [16, 6, LIVE0, 0]
def sem_new(v=1): return [17, 4 * v]
def sem_acquire(t=T1MS): return [17, 1, LIVE0, t]
def sem_release(): return [17, 2, LIVE0]
def waiter_new(): return [18, 0]
def waiter_switch(): return [18, 1, LIVE0]
def waiter_get(t=T1MS): return [18, 2, LIVE0, t]
def result_new(): return [19, 0]
def result_set(): return [19, 1, LIVE0]
def result_get(t=T1MS): return [19, 3, LIVE0, t]
def timeout_start(t=T02MS): return [20, 0, t]
def timeout_cancel(): return [20, 1, LIVE0]
def pipe(): return [21]
def wait_read(t=T1MS): return [22, 0, t, 0]            # first pipe's read end, GH_READ
def write_pipe(n=5): return [23, 0x80, T0, n]          # first pipe's write end
def read_pipe(t=T1MS): return [24, 0, t]
def gh_close_pipe(): return [25, 0]                    # gh_close both ends of the first pipe
def raw_close_pipe(): return [25, 1]                   # close(2) behind greenhub's back
def run_once(t=0): return [26, t]
def run_callback(what=1): return [27, what]
def joinall(n=2): return [28, n] + [2, LIVE0] * n + [FOREVER]
def destroy(): return [29]

SEEDS = {
    "spawn-join": [0] + spawn(YIELD, 3) + join() + release(),
    "event-wakes-waiter": [1] + event_new() + spawn(EVENT) + sleep() + event_set() + join() + event_close(),
    "queue-handoff": [2] + queue_new(1) + spawn(QGET) + spawn(QPUT) + run_once() + queue_put() + queue_get() + joinall(2) + queue_close() + queue_free(),
    "kill-sleeper": [3] + spawn(SLEEP) + sleep() + kill(1) + join() + kill(0) + release(),
    "pipe-read": [0] + pipe() + spawn(READ) + sleep() + write_pipe(5) + join() + read_pipe(T0),
    "gh-close-wakes-reader": [1] + pipe() + spawn(READ) + sleep() + gh_close_pipe() + join() + wait_read(),
    "raw-close-watched-fd": [2] + pipe() + io_read_end() + start(0) + raw_close_pipe() + pipe() + write_pipe(1) + run_once(1) + wait_read(),
    "watchers-and-callbacks": [0] + timer() + start(1) + sleep(T1MS) + stop() + idle() + start(2, 8) + run_once() + async_new() + start(4, 16) + send(16) + run_once() + run_callback(6) + run_once() + wclose() + wclose(8) + wclose(16),
    "semaphore": [3] + sem_new(1) + spawn(SEM) + spawn(SEM) + sem_acquire(T0) + joinall(2) + sem_release(),
    "waiter-switch": [1] + waiter_new() + spawn(WAITER) + sleep() + waiter_switch() + join() + waiter_get(T0),
    "switch-and-throw": [2] + spawn(SWITCH) + switch_to() + throw() + spawn(STUBBORN) + sleep() + kill(1) + join() + names(),
    "timeouts": [0] + timeout_start(T02MS) + sleep(FOREVER) + timeout_cancel() + spawn(TMO) + join() + event_new() + event_wait(NAN) + join_main(),
    "destroy-then-stale": [1] + spawn(SLEEP) + event_new() + timer() + start(0) + pipe() + spawn(READ) + sleep() + destroy() + event_set(STALE) + release(STALE) + stop(STALE) + spawn(RETURN) + join(),
    "result-and-hub-wait": [2] + result_new() + result_set() + result_get() + timer(T02MS, 0) + hub_wait() + spawn(HUBWAIT) + sleep(T1MS) + join(),
}

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "api_sequence")
os.makedirs(here, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(here, "seed-" + name), "wb") as f:
        f.write(bytes(b & 0xFF for b in data))
print(f"{len(SEEDS)} seeds in {here}")
