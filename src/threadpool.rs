//! The thread pool (gevent.threadpool): run a blocking function on a worker thread
//! while only the calling greenlet waits; the hub keeps serving the others.
//!
//! Workers are started lazily, up to the pool size (default 10, gevent's), and told to
//! end when the hub is destroyed (they finish the job at hand first; they are detached,
//! and own everything they touch through `Arc`s, so nothing dangles). A finished job
//! posts its result to the hub's shared completion list and wakes the hub through its
//! eventfd; the hub hands the result to the waiting greenlet. If that greenlet stopped
//! waiting (killed, timed out, hub destroyed), the result is dropped — with the job's
//! `discard` hook for results that own memory (getaddrinfo's list).

use crate::remote::HubShared;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CString};
use std::sync::{Arc, Condvar, Mutex};

/// A job's function, its argument and result as plain words.
pub type JobFn = unsafe extern "C" fn(*mut std::ffi::c_void) -> *mut std::ffi::c_void;
/// Frees what a job owns when nobody will take its result: called with the result,
/// or with the argument for a job that never ran (greenhub's own jobs pass one
/// boxed record as both).
pub type DiscardFn = unsafe fn(usize);

pub struct Job {
    pub f: JobFn,
    pub arg: usize,
    pub id: u64,
    pub discard: Option<DiscardFn>,
    pub hub: Arc<HubShared>,
}

/// A finished job as the hub receives it.
pub struct Done {
    pub id: u64,
    pub result: usize,
    pub discard: Option<DiscardFn>,
}

struct State {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    shutdown: bool,
}

struct Inner {
    st: Mutex<State>,
    cv: Condvar,
}

pub(crate) const DEFAULT_SIZE: usize = 10;

pub struct Pool {
    inner: Arc<Inner>,
    pub size: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// How long hub teardown waits for workers to end before leaving busy ones detached
/// (idle workers end within microseconds).
const JOIN_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

impl Pool {
    pub fn new(size: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                st: Mutex::new(State {
                    jobs: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    shutdown: false,
                }),
                cv: Condvar::new(),
            }),
            size,
            workers: Vec::new(),
        }
    }

    /// Queues a job, starting a worker if none is idle and the pool is not full.
    pub fn submit(&mut self, job: Job) -> std::io::Result<()> {
        let mut st = self.inner.st.lock().unwrap_or_else(|p| p.into_inner());
        st.jobs.push_back(job);
        if st.idle >= st.jobs.len() || st.threads >= self.size {
            self.inner.cv.notify_one();
            return Ok(());
        }
        let inner = self.inner.clone();
        let spawned = match crate::fault::fail(crate::fault::Site::Thread) {
            Some(e) => Err(std::io::Error::from_raw_os_error(e)),
            None => std::thread::Builder::new()
                .name("greenhub-pool".into())
                .spawn(move || worker(inner)),
        };
        match spawned {
            Ok(handle) => {
                st.threads += 1;
                drop(st);
                self.workers.retain(|w| !w.is_finished());
                self.workers.push(handle);
                Ok(())
            }
            Err(e) if st.threads > 0 => {
                // Existing workers will get to it.
                drop(e);
                self.inner.cv.notify_one();
                Ok(())
            }
            Err(e) => {
                st.jobs.pop_back();
                Err(e)
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut st = self.inner.st.lock().unwrap_or_else(|p| p.into_inner());
        st.shutdown = true;
        // Jobs not started never run; their results would have nobody to go to.
        for job in st.jobs.drain(..) {
            if let Some(d) = job.discard {
                // SAFETY: the job never ran, so its argument is still owned by it.
                unsafe { d(job.arg) };
            }
        }
        self.inner.cv.notify_all();
        drop(st);
        // Idle workers end at once; join them (so their thread resources are freed).
        // A worker still running a long job is left detached: it owns what it uses.
        let deadline = std::time::Instant::now() + JOIN_GRACE;
        while self.workers.iter().any(|w| !w.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for w in self.workers.drain(..) {
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

fn worker(inner: Arc<Inner>) {
    loop {
        let job = {
            let mut st = inner.st.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if st.shutdown {
                    st.threads -= 1;
                    return;
                }
                if let Some(j) = st.jobs.pop_front() {
                    break j;
                }
                st.idle += 1;
                st = inner.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle -= 1;
            }
        };
        // SAFETY: f/arg come from gh_threadpool_apply's caller (or greenhub's own
        // getaddrinfo job), who promised f may run with arg on another thread.
        let result = unsafe { (job.f)(job.arg as *mut std::ffi::c_void) } as usize;
        let mut r = job.hub.remote.lock().unwrap_or_else(|p| p.into_inner());
        if r.wake_fd >= 0 {
            r.done.push(Done {
                id: job.id,
                result,
                discard: job.discard,
            });
            HubShared::wake_locked(&mut r);
        } else if let Some(d) = job.discard {
            drop(r);
            // SAFETY: the hub is gone: nobody will take this result.
            unsafe { d(result) };
        }
    }
}

/// A job in flight as the hub sees it: the wait it ends, and its result once it came
/// (kept until the waiter has run, so a waiter that gives up at the same moment — timed
/// out, killed — still frees a result that owns memory).
pub struct JobSlot {
    pub wait: crate::hub::wait::WaitId,
    pub done: Option<Done>,
}

/// Frees a finished job's result through its discard hook, if it has one.
pub(crate) fn discard(d: Done) {
    if let Some(f) = d.discard {
        // SAFETY: called once, for a result nobody will take.
        unsafe { f(d.result) };
    }
}

impl crate::hub::Hub {
    /// Runs `f(arg)` on a worker thread; only the calling greenlet waits.
    pub fn threadpool_apply(
        &self,
        f: JobFn,
        arg: usize,
        discard_fn: Option<DiscardFn>,
    ) -> crate::error::Result<usize> {
        use crate::error::Error;
        let mut job = None;
        let r = self.wait_for(crate::greenlet::WaitOn::Job, None, |st, w| {
            let (slot, gen) = st.jobs.insert(JobSlot {
                wait: w,
                done: None,
            })?;
            let id = (slot as u64) | ((gen as u64) << 32);
            let size = st.pool_size;
            let pool = st.pool.get_or_insert_with(|| Pool::new(size));
            let submitted = pool.submit(Job {
                f,
                arg,
                id,
                discard: discard_fn,
                hub: self.shared.clone(),
            });
            if submitted.is_err() {
                st.jobs.remove(slot);
                return Err(Error::NOMEM);
            }
            st.alive += 1;
            job = Some((slot, gen));
            Ok(())
        });
        let Some((slot, gen)) = job else {
            // Never submitted: the job's resources are still ours to free.
            if let Some(d) = discard_fn {
                // SAFETY: the job never ran; its argument is handed to its discard hook once.
                unsafe { d(arg) };
            }
            return r.map(|m| m.value as usize);
        };
        let entry = {
            let mut st = self.st.borrow_mut();
            let present = st.jobs.get(slot, gen).is_some();
            let entry = if present { st.jobs.remove(slot) } else { None };
            if let Some(JobSlot { done: None, .. }) = entry {
                st.alive -= 1; // still running: its result is dropped when it comes
            }
            entry
        };
        match (r, entry) {
            (Ok(_), Some(JobSlot { done: Some(d), .. })) => Ok(d.result),
            (Ok(m), _) => Ok(m.value as usize),
            (Err(e), Some(JobSlot { done: Some(d), .. })) => {
                discard(d); // the result came, but we are not taking it
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Hands finished jobs' results to their waiting greenlets (in the hub).
    pub(crate) fn collect_jobs(&self) {
        let done = {
            let mut r = self.shared.remote.lock().unwrap_or_else(|p| p.into_inner());
            if r.done.is_empty() {
                return;
            }
            std::mem::take(&mut r.done)
        };
        let mut st = self.st.borrow_mut();
        for d in done {
            let (slot, gen) = (d.id as u32, (d.id >> 32) as u32);
            match st.jobs.get_mut(slot, gen) {
                Some(js) if js.done.is_none() => {
                    let w = js.wait;
                    let value = d.result as *mut std::ffi::c_void;
                    js.done = Some(d);
                    st.alive -= 1;
                    st.wake_later(w, crate::greenlet::Msg { code: 0, value });
                }
                _ => discard(d),
            }
        }
    }
}

/// getaddrinfo's arguments and result, owned by the job (it may outlive the caller).
struct Gai {
    node: Option<CString>,
    service: Option<CString>,
    hints: Option<libc::addrinfo>,
    res: *mut libc::addrinfo,
    rc: c_int,
    errno: c_int,
}

unsafe extern "C" fn gai_job(p: *mut c_void) -> *mut c_void {
    // SAFETY: p is the Box<Gai> leaked by gh_getaddrinfo; only this job touches it now.
    let g = unsafe { &mut *(p as *mut Gai) };
    let node = g.node.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let service = g.service.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let hints = g
        .hints
        .as_ref()
        .map_or(std::ptr::null(), |h| h as *const libc::addrinfo);
    // SAFETY: valid C strings / hints or NULL; res is our out-parameter.
    g.rc = unsafe { libc::getaddrinfo(node, service, hints, &mut g.res) };
    g.errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    p
}

/// Frees a Gai job nobody took (its result list too).
unsafe fn gai_discard(p: usize) {
    // SAFETY: p is the Box<Gai> leaked by gh_getaddrinfo, handed over exactly once.
    let g = unsafe { Box::from_raw(p as *mut Gai) };
    if !g.res.is_null() {
        // SAFETY: res came from getaddrinfo and was not handed out.
        unsafe { libc::freeaddrinfo(g.res) };
    }
}

impl crate::hub::Hub {
    /// getaddrinfo(3) on the thread pool: only the calling greenlet waits. The arguments
    /// are owned by the job, so a caller that is killed or times out leaves nothing
    /// dangling (the job's result is then freed by `gai_discard`). On success the list is
    /// the caller's (freeaddrinfo). Failures: `EAI_BASE + EAI_*`, or -errno for EAI_SYSTEM.
    pub fn getaddrinfo(
        &self,
        node: Option<CString>,
        service: Option<CString>,
        hints: Option<libc::addrinfo>,
    ) -> crate::error::Result<*mut libc::addrinfo> {
        use crate::error::{Error, EAI_BASE};
        let job = Box::new(Gai {
            node,
            service,
            hints,
            res: std::ptr::null_mut(),
            rc: 0,
            errno: 0,
        });
        let p = Box::into_raw(job) as usize;
        let done = self.threadpool_apply(gai_job, p, Some(gai_discard))?;
        // SAFETY: the job finished and handed its box back to us (done == p).
        let g = unsafe { Box::from_raw(done as *mut Gai) };
        match g.rc {
            0 => Ok(g.res),
            libc::EAI_SYSTEM => Err(Error(-g.errno.max(1))),
            rc => Err(Error(EAI_BASE + rc)),
        }
    }
}
