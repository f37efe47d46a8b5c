//! Embedding the hub in a loop that belongs to someone else (GLib, Qt, libuv, a plain
//! poll(2) loop), like libuv's `uv_backend_fd`/`uv_backend_timeout`; threads
//! (`gh_hub_call_threadsafe`); and fork (a fresh loop in the child).

use super::{Callback, Hub};
use crate::error::{Error, Result, ECLOSED};
use crate::event_loop::{now_ns, WAKE_TOKEN};
use crate::greenlet::Msg;
use crate::remote::HubShared;
use std::ffi::c_void;

impl Hub {
    /// One loop iteration from the main greenlet, polling at most `cap_ms` (0 = don't
    /// wait). Returns whether anything referenced is left.
    pub fn run_once(&self, cap_ms: i32) -> Result<bool> {
        if !self.is_main() {
            return Err(Error::PERM);
        }
        let idle = {
            let st = self.st.borrow();
            st.alive == 0 && st.queue.is_empty() && st.switch_to.is_none()
        };
        self.current.set(self.hub_slot);
        self.switched(self.main_slot, self.hub_slot);
        // Nothing referenced left: do not sleep (libuv's UV_RUN_ONCE returns at once too).
        self.iterate(Some(if idle { 0 } else { cap_ms }));
        self.current.set(self.main_slot);
        self.switched(self.hub_slot, self.main_slot);
        let st = self.st.borrow();
        Ok(st.alive > 0 || !st.queue.is_empty())
    }

    /// Applies pending interest changes (so the backend fd reflects every watcher) and
    /// returns how long a host loop may sleep: `Some(0)` when work is pending, `None`
    /// when only IO can wake the hub.
    pub fn backend_timeout(&self) -> Option<u64> {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        st.failed.clear();
        st.fds.reify(&mut *st.backend, &mut st.failed);
        st.fds.verify_all(&mut *st.backend, &mut st.failed);
        if self.work_pending(st) {
            return Some(0);
        }
        st.timers.next().map(|at| at.saturating_sub(now_ns()))
    }

    pub fn backend_fd(&self) -> i32 {
        self.st.borrow().backend.fd()
    }

    /// Queues the calls other threads posted with gh_hub_call_threadsafe.
    pub(crate) fn take_remote_calls(&self) {
        let calls = {
            let st = self.st.borrow();
            let mut r = st.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            if r.calls.is_empty() {
                return;
            }
            std::mem::take(&mut r.calls)
        };
        let mut st = self.st.borrow_mut();
        for (f, arg) in calls {
            st.queue.push_back(Callback::Remote {
                f,
                arg: arg as *mut c_void,
            });
        }
    }

    /// The hub is being destroyed: stops accepting gh_hub_call_threadsafe calls (they
    /// return GH_EBADHANDLE from now on) and runs every call it accepted and has not run
    /// yet, in order, as hub callbacks (blocking calls in them get GH_EPERM; a call they
    /// post to this hub is refused). Main greenlet, hub still published.
    pub(crate) fn run_remote_calls_at_destroy(&self) {
        let calls = {
            let mut r = self.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            r.wake_fd = -1;
            std::mem::take(&mut r.calls)
        };
        let mut pending: std::collections::VecDeque<(
            unsafe extern "C" fn(*mut c_void),
            *mut c_void,
        )> = {
            let st = self.st.borrow();
            st.queue
                .iter()
                .filter_map(|cb| match *cb {
                    Callback::Remote { f, arg } => Some((f, arg)),
                    _ => None,
                })
                .collect()
        };
        self.st
            .borrow_mut()
            .queue
            .retain(|cb| !matches!(cb, Callback::Remote { .. }));
        pending.extend(calls.into_iter().map(|(f, arg)| (f, arg as *mut c_void)));
        if pending.is_empty() {
            return;
        }
        let was = self.current.replace(self.hub_slot);
        while let Some((f, arg)) = pending.pop_front() {
            // SAFETY: f and arg come from gh_hub_call_threadsafe's caller, who promised f is
            // a valid function for arg; it runs in the hub like any callback.
            unsafe { f(arg) };
        }
        self.current.set(was);
    }

    /// Rebuilds the loop if the process forked since this hub last looked.
    #[inline]
    pub(crate) fn check_fork(&self) {
        if self.fork_gen.get() != super::FORK_GEN.load(std::sync::atomic::Ordering::Relaxed) {
            self.after_fork();
        }
    }

    /// In a forked child: a new backend and wake-up fd (the parent's are shared kernel
    /// objects and must not be touched), every watched fd registered again, the thread
    /// pool (whose threads did not survive the fork) abandoned: its waiters get
    /// `ECLOSED`.
    pub(crate) fn after_fork(&self) {
        let mut st_ref = self.st.borrow_mut();
        let st = &mut *st_ref;
        // The backend's name (a failed attempt left an fd-less placeholder in its place:
        // then the name it had).
        if self.fork_error.get() == 0 {
            self.fork_backend.set(st.backend.name());
        }
        let name = self.fork_backend.get();
        // Let go of the parent's backend and eventfd first: the child must never use
        // them, even when it cannot make its own (issue 15.5). Their fds are closed only if the numbers still
        // hold them (the child may have closed them and opened its own: issue 15.6).
        // A new backend of the same kind is asked of the parent's before it goes (a C
        // plug-in passed in gh_hub_config has no name to be made again by); if that
        // fails (EMFILE), it is made by name once the parent's fds are let go.
        let placeholder = Box::new(crate::event_loop::poll::Poll::default());
        let parents = std::mem::replace(&mut st.backend, placeholder);
        let fresh = if self.fork_error.get() == 0 {
            parents.fresh().ok()
        } else {
            None
        };
        parents.abandon();
        let old = self.wake_fd.replace(-1);
        if old >= 0 && crate::event_loop::file_id(old) == self.wake_id.get() {
            // SAFETY: closes this process's copy of the old eventfd, still at its number.
            unsafe { libc::close(old) };
        }
        // (Made after letting go: at EMFILE the numbers freed may be what it needs.)
        let made = match fresh {
            Some(b) => Ok(b),
            None => super::make_backend(&super::Config {
                backend: Some(name.to_string()),
                ..Default::default()
            }),
        }
        .and_then(|b| {
            let fd = crate::fault::eventfd(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if fd < 0 {
                return Err(Error::last_os());
            }
            Ok((b, fd))
        });
        let (backend, wake_fd) = match made {
            Ok(m) => m,
            Err(e) => {
                // Retried at the next call (fork_gen stays behind); `current` answers e.
                if self.fork_error.replace(e.0) == 0 {
                    eprintln!(
                        "greenhub: cannot make this forked process's own {name} loop (error {}); greenhub calls fail until it can",
                        e.0
                    );
                }
                st.wake_fd = -1;
                st.shared
                    .remote
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .wake_fd = -1;
                crate::asyncs::hub_started(self.id, -1);
                if let Some(slot) = st.sig_slot {
                    crate::signals::set_wake_fd(slot, -1);
                }
                return;
            }
        };
        self.fork_error.set(0);
        self.fork_gen
            .set(super::FORK_GEN.load(std::sync::atomic::Ordering::Relaxed));
        st.backend = backend;
        if let Err(e) = st.backend.add(wake_fd, WAKE_TOKEN, crate::event_loop::READ) {
            eprintln!("greenhub: cannot register the wake-up fd after fork: errno {e}");
        }
        self.wake_fd.set(wake_fd);
        self.wake_id.set(crate::event_loop::file_id(wake_fd));
        st.wake_fd = wake_fd;
        {
            let mut r = st.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            r.wake_fd = wake_fd;
            r.woken = false;
            r.done.clear();
        }
        if let Some(slot) = st.sig_slot {
            crate::signals::set_wake_fd(slot, wake_fd);
        }
        crate::asyncs::hub_started(self.id, wake_fd);
        // Signals that arrived between fork and now are pending: look at them at once.
        let one: u64 = 1;
        // SAFETY: 8 bytes from a live u64 to our new eventfd.
        unsafe { libc::write(wake_fd, &one as *const u64 as *const c_void, 8) };
        let mut failed = std::mem::take(&mut st.failed);
        st.fds.rebuild_all(&mut *st.backend, &mut failed);
        st.failed = failed;
        std::mem::forget(st.pool.take());
        for js in st.jobs.drain() {
            match js.done {
                None => st.alive -= 1,
                Some(d) => crate::threadpool::discard(d),
            }
            st.wake_later(js.wait, Msg::code(ECLOSED));
        }
        drop(st_ref);
        crate::monitor::after_fork(self);
    }
}

/// gh_hub_call_threadsafe: queue `f(arg)` in the hub `id` from any thread (`gen`: the
/// gh_hub_ref's generation, which must be that hub's base; None: any hub with that id).
pub fn call_threadsafe(
    id: u16,
    gen: Option<u32>,
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) -> Result<()> {
    if let Some(hub) = super::existing() {
        if hub.id == id && gen.is_none_or(|g| g == hub.shared.base) {
            // Our own hub: queue it directly (no eventfd round trip; it runs in the next
            // pass of the callback queue, like gh_run_callback).
            if hub
                .shared
                .remote
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .wake_fd
                < 0
            {
                return Err(Error::BADHANDLE); // being destroyed
            }
            hub.st
                .borrow_mut()
                .queue
                .push_back(Callback::Remote { f, arg });
            return Ok(());
        }
    }
    let shared = crate::remote::lookup_hub(id)
        .filter(|s| gen.is_none_or(|g| g == s.base))
        .ok_or(Error::BADHANDLE)?;
    let mut r = shared.remote.lock().unwrap_or_else(|p| p.into_inner());
    if r.wake_fd < 0 {
        return Err(Error::BADHANDLE);
    }
    r.calls.push((f, arg as usize));
    HubShared::wake_locked(&mut r);
    Ok(())
}
