//! # greenhub — gevent's hub, for C
//!
//! The model in one page:
//!
//! * Each OS thread that uses greenhub gets one **hub**, created lazily on the first
//!   call (gevent's `get_hub()`). The thread's own stack is the **main greenlet**.
//! * A **greenlet** is a C function running on its own stack (a corosensei coroutine).
//!   `gh_spawn` schedules it to start in the hub's next loop iteration; its parent is
//!   the hub: when the function returns, control goes back to the hub.
//! * The **hub** runs the event loop (epoll). A blocking call (`gh_sleep`,
//!   `gh_wait_read`, `gh_join`, …) is gevent's `Hub.wait`: arm a watcher whose callback
//!   switches back to the caller, switch to the hub, disarm on return
//!   (`hub::wait::wait_for`). Watcher callbacks run in the hub and must not block.
//! * When nothing referenced is left in the loop while main waits, main's wait ends
//!   with `GH_ELOOPEXIT` (gevent's LoopExit) instead of hanging.
//!
//! Module map (one concept per module; the FFI is a thin shell):
//!
//! ```text
//! ffi/          extern "C" functions, one file per header section; no logic. The core
//!               never imports it (the monitor hands it Rust reports and hooks)
//! asyncs        async watchers' pending flags, lock-free (gh_async_send is signal-safe)
//! error         Error <-> GH_E* codes, names and messages
//! handle        generation-checked handles: ids and tables
//! remote        what other threads touch: the registry of live hubs, each hub's shared
//!               part (wake-up fd, cross-thread calls, the monitor's view), fork locks
//! hub/          the Hub: thread-local creation (mod), the loop (run), Hub.wait (wait),
//!               greenlet operations (greenlets), watcher lifecycle (watchers)
//! io            cooperative fd operations (read, write with a byte count, accept, connect, close, waitpid)
//! io_ext        recvfrom/sendto, readv/writev, recvmsg/sendmsg, sendfile
//! net           address strings, listen, connect_to (tries each resolved address)
//! pool          greenlet pools and groups (spawn into, wait for a place, join, kill)
//! server        StreamServer: accept loop, a handler greenlet per connection, stop
//! stream        buffered reader over an fd (read_until, read_exact)
//! greenlet      the greenlet record and coroutine types
//! stack         stacks carved from reserved regions, guard pages, the per-hub pool
//! overflow      SIGSEGV/SIGBUS handler naming the greenlet that overflowed its stack
//! fault         test-only fault injection (cargo feature `fault-injection`)
//! event_loop/   backend seam (epoll, polling, poll, select, C plug-ins), fd registry, timer heap, watcher records
//! signals       process-wide signal handler feeding each watching hub's eventfd
//! threadpool    worker threads for blocking calls; results back through the eventfd
//! tsan          greenlet switches announced to ThreadSanitizer (cargo feature `tsan`)
//! sync/         events, results, semaphores, queues (FIFO, LIFO, priority; task_done/join),
//!               waiters, timeouts (on Hub.wait); wait_many: gh_wait_many over all of them
//! ```

pub mod asyncs;
pub mod error;
pub mod event_loop;
pub mod fault;
pub mod ffi;
pub mod greenlet;
pub mod handle;
pub mod hub;
pub mod io;
pub mod io_ext;
pub mod monitor;
pub mod net;
pub mod overflow;
pub mod pool;
pub mod remote;
pub mod server;
pub mod signals;
pub mod stack;
pub mod stream;
pub mod sync;
pub mod threadpool;
pub mod tsan;
