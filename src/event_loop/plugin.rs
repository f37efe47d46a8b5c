//! The `plugin` backend: a backend a C program brings (eventlet's third-party hub
//! module), adapted to the `Backend` trait like the built-in ones.
//!
//! The C side is a table of functions (`gh_backend` in the header, whose comment is the
//! contract a plug-in must meet). This module owns:
//! * the table's layout (`VtableV1`, asserted field by field against `gh_backend` in
//!   `ffi::backend`), its validation (version, mandatory functions, name) and the
//!   process-wide registry of plug-ins by name;
//! * `GREENHUB_BACKEND_PLUGIN`: shared objects dlopen()ed once per process whose
//!   `gh_backend_plugin` entry returns a table to register (how the C suite runs under
//!   a plug-in without being rebuilt);
//! * the adapter (`PluginBackend`), which keeps the plug-in simple and the loop safe:
//!   it knows which fds it handed over and their tokens, so `EEXIST` / `ENOENT` and
//!   `EBADF` on add are decided here; a plug-in only maps fds to readiness.
//!
//! A plug-in that fails its poll or breaks the contract (an event for an fd it was
//! never given, unknown event bits, more events than room) is *broken*: one line on
//! stderr, every fd it held is reported ready once (so parked waits wake and retry),
//! and from then on greenhub calls nothing of it but `destroy`: registrations fail with
//! `GH_EBACKEND` (so every later fd wait returns that code at once) and polls wait on
//! the hub's wake-up fd alone (timers, callbacks, async and thread-pool wake-ups keep
//! working; nothing spins).

use super::{Backend, Ready, READ, WAKE_TOKEN, WRITE};
use crate::error::{Error, Result, EBACKEND};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::{Arc, Mutex};

/// The only table version this library reads.
pub(crate) const VERSION: c_uint = 1;
/// Longest accepted name, in bytes.
const NAME_MAX: usize = 63;
/// Names the built-in backends hold (a plug-in cannot take them).
pub(crate) const BUILTIN: [&str; 4] = ["epoll", "polling", "poll", "select"];
/// `EBACKEND` as the positive "errno" the `Backend` methods return.
const BROKEN: i32 = -EBACKEND;

/// One ready fd as a plug-in reports it: the layout of `gh_backend_event`.
#[repr(C)]
#[derive(Copy, Clone, Default, Debug)]
pub(crate) struct Event {
    pub fd: c_int,
    pub events: c_int,
}

/// A version-1 function table: the layout of `gh_backend`.
#[repr(C)]
#[derive(Copy, Clone)]
pub(crate) struct VtableV1 {
    pub version: c_uint,
    pub name: *const c_char,
    pub arg: *mut c_void,
    pub create: Option<unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> c_int>,
    pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    pub add: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub modify: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub remove: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub poll: Option<unsafe extern "C" fn(*mut c_void, *mut Event, c_int, c_int) -> c_int>,
    pub backend_fd: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub fork_child: Option<unsafe extern "C" fn(*mut c_void)>,
}

type CreateFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> c_int;
type DestroyFn = unsafe extern "C" fn(*mut c_void);
type CtlFn = unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int;
type RemoveFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type PollFn = unsafe extern "C" fn(*mut c_void, *mut Event, c_int, c_int) -> c_int;

/// A validated copy of a plug-in's table.
pub struct Plugin {
    name: &'static CStr,
    arg: *mut c_void,
    create: CreateFn,
    destroy: DestroyFn,
    add: CtlFn,
    modify: CtlFn,
    remove: RemoveFn,
    poll: PollFn,
    backend_fd: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    fork_child: Option<DestroyFn>,
}

// SAFETY: the contract at gh_backend makes a plug-in's functions callable from any
// thread that creates a hub (each call passes that hub's own instance), and `arg` is
// only passed back to `create`; the table itself is immutable once copied.
unsafe impl Send for Plugin {}
// SAFETY: as above: shared only to read the copied function pointers.
unsafe impl Sync for Plugin {}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plugin({:?})", self.name)
    }
}

/// Names given to plug-ins, each leaked once (bounded by the distinct names a process
/// uses), so `gh_hub_backend` can return a string that outlives any hub.
fn intern(name: &CStr) -> &'static CStr {
    static NAMES: Mutex<Vec<&'static CStr>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static CStr = Box::leak(name.to_owned().into_boxed_c_str());
    names.push(n);
    n
}

impl Plugin {
    /// Validates and copies a table: `ENOTSUP` for a version other than 1, `EINVAL` for a
    /// NULL table, a missing name (empty, longer than 63 bytes, not UTF-8) or a missing
    /// mandatory function.
    ///
    /// # Safety
    /// `vt` must be NULL or point to a readable table of its `version`'s layout, whose
    /// `name` is NULL or NUL-terminated.
    pub(crate) unsafe fn from_raw(vt: *const VtableV1) -> Result<Arc<Plugin>> {
        if vt.is_null() {
            return Err(Error::INVAL);
        }
        // SAFETY: readable per the contract; `version` comes first in every layout.
        let version = unsafe { std::ptr::addr_of!((*vt).version).read() };
        if version != VERSION {
            return Err(Error::NOTSUP);
        }
        // SAFETY: a version-1 table, readable per the contract.
        let t = unsafe { vt.read() };
        if t.name.is_null() {
            return Err(Error::INVAL);
        }
        // SAFETY: NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(t.name) };
        let ok = name
            .to_str()
            .is_ok_and(|s| !s.is_empty() && s.len() <= NAME_MAX);
        let (Some(create), Some(destroy), Some(add), Some(modify), Some(remove), Some(poll), true) =
            (t.create, t.destroy, t.add, t.modify, t.remove, t.poll, ok)
        else {
            return Err(Error::INVAL);
        };
        Ok(Arc::new(Plugin {
            name: intern(name),
            arg: t.arg,
            create,
            destroy,
            add,
            modify,
            remove,
            poll,
            backend_fd: t.backend_fd,
            fork_child: t.fork_child,
        }))
    }

    pub fn name(&self) -> &'static str {
        self.name.to_str().unwrap_or("plugin")
    }
}

static REGISTRY: Mutex<Vec<Arc<Plugin>>> = Mutex::new(Vec::new());

/// Registers `p` under its name: `EEXIST` if a built-in or another plug-in has it.
pub fn register(p: Arc<Plugin>) -> Result<()> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if BUILTIN.contains(&p.name()) || reg.iter().any(|q| q.name == p.name) {
        return Err(Error::EXIST);
    }
    reg.push(p);
    Ok(())
}

/// The plug-in registered as `name` (after loading `GREENHUB_BACKEND_PLUGIN`).
pub fn lookup(name: &str) -> Result<Option<Arc<Plugin>>> {
    load_env()?;
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    Ok(reg.iter().find(|p| p.name() == name).cloned())
}

/// Loads the shared objects named by `GREENHUB_BACKEND_PLUGIN` (`:`-separated) once per
/// process and registers the table each one's `gh_backend_plugin()` returns. A failure
/// (one line on stderr) is `EINVAL` from every hub creation that needs a plug-in.
fn load_env() -> Result<()> {
    static LOADED: std::sync::OnceLock<Result<()>> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        let Ok(list) = std::env::var("GREENHUB_BACKEND_PLUGIN") else {
            return Ok(());
        };
        for path in list.split(':').filter(|p| !p.is_empty()) {
            load(path).inspect_err(|e| {
                eprintln!(
                    "greenhub: GREENHUB_BACKEND_PLUGIN={list:?}: {path} not loaded ({}): hubs needing a plug-in fail with it",
                    crate::error::name(e.0).to_string_lossy()
                );
            })?;
        }
        Ok(())
    })
}

fn load(path: &str) -> Result<()> {
    let c = std::ffi::CString::new(path).map_err(|_| Error::INVAL)?;
    // SAFETY: dlopen with a NUL-terminated path; the object stays loaded for the
    // process's lifetime (its functions are called by hubs created later).
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message.
        let why = unsafe { libc::dlerror() };
        if !why.is_null() {
            // SAFETY: as above.
            let why = unsafe { CStr::from_ptr(why) };
            eprintln!("greenhub: dlopen: {}", why.to_string_lossy());
        }
        return Err(Error::INVAL);
    }
    // SAFETY: dlsym on a live handle with a NUL-terminated symbol name.
    let sym = unsafe { libc::dlsym(h, c"gh_backend_plugin".as_ptr()) };
    if sym.is_null() {
        eprintln!("greenhub: {path} has no gh_backend_plugin() entry");
        return Err(Error::INVAL);
    }
    // SAFETY: the documented entry: `const gh_backend *gh_backend_plugin(void)`.
    let entry: unsafe extern "C" fn() -> *const VtableV1 = unsafe { std::mem::transmute(sym) };
    // SAFETY: the entry returns NULL or a table valid for the process's lifetime.
    let p = unsafe { Plugin::from_raw(entry()) }?;
    let name = p.name();
    match register(p) {
        // The program registered that name itself: its own backend stays in use.
        Err(Error::EXIST) if !BUILTIN.contains(&name) => {
            eprintln!("greenhub: {path}: a backend named {name:?} is registered already: kept");
            Ok(())
        }
        r => r,
    }
}

/// A hub's instance of a plug-in.
pub struct PluginBackend {
    plugin: Arc<Plugin>,
    state: *mut c_void,
    /// Token per fd handed to the plug-in (None: not registered).
    tokens: Vec<Option<u64>>,
    buf: Vec<Event>,
    wake_fd: i32,
    /// `BROKEN` once broken (then only `destroy` is ever called again).
    broken: i32,
    /// Let go of in a forked child: never destroyed here.
    abandoned: bool,
}

impl PluginBackend {
    pub fn new(plugin: Arc<Plugin>) -> std::result::Result<PluginBackend, i32> {
        let mut state = std::ptr::null_mut();
        // SAFETY: the plug-in's create with its own arg and a live out-pointer.
        let rc = unsafe { (plugin.create)(plugin.arg, &mut state) };
        if let Err(e) = Self::rc(rc) {
            eprintln!(
                "greenhub: backend {:?}: create failed ({})",
                plugin.name(),
                crate::error::name(-e).to_string_lossy()
            );
            return Err(e);
        }
        Ok(PluginBackend {
            plugin,
            state,
            tokens: Vec::new(),
            buf: vec![Event::default(); 256],
            wake_fd: -1,
            broken: 0,
            abandoned: false,
        })
    }

    fn token(&self, fd: i32) -> Option<u64> {
        self.tokens.get(fd as usize).copied().flatten()
    }

    /// A plug-in call's return: 0, or a negative errno; anything else (a positive value,
    /// or INT_MIN, which has no positive errno) breaks the contract.
    fn rc(rc: c_int) -> std::result::Result<(), i32> {
        match rc {
            0 => Ok(()),
            r if r < 0 && r != c_int::MIN => Err(-r),
            _ => Err(BROKEN),
        }
    }

    /// The plug-in failed or broke the contract: say so (the one loud failure: the poll
    /// itself then reports success, so the loop adds no line of its own), hand every fd
    /// it held to the loop as ready (their waits wake and retry, and then fail with
    /// `GH_EBACKEND`), and stop calling it.
    #[cold]
    fn breaks(
        &mut self,
        why: std::fmt::Arguments,
        out: &mut Vec<Ready>,
    ) -> std::result::Result<(), i32> {
        eprintln!(
            "greenhub: backend {:?}: {why}; the hub's fd waits fail with GH_EBACKEND from now on",
            self.plugin.name()
        );
        self.broken = BROKEN;
        for (fd, t) in self.tokens.iter_mut().enumerate() {
            if let Some(token) = t.take() {
                if fd as i32 != self.wake_fd {
                    out.push(Ready {
                        token,
                        events: READ | WRITE,
                    });
                }
            }
        }
        Ok(())
    }

    /// Broken: wait on the wake-up fd alone, for at most `timeout_ms`.
    fn wait_wake(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) {
        let mut p = libc::pollfd {
            fd: self.wake_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let n = (self.wake_fd >= 0) as libc::nfds_t;
        // SAFETY: one live pollfd (or none with n = 0).
        if unsafe { libc::poll(&mut p, n, timeout_ms) } > 0 && p.revents != 0 {
            out.push(Ready {
                token: WAKE_TOKEN,
                events: READ,
            });
        }
    }
}

impl Backend for PluginBackend {
    fn name(&self) -> &'static str {
        self.plugin.name()
    }

    fn c_name(&self) -> &'static CStr {
        self.plugin.name
    }

    fn fd(&self) -> i32 {
        match self.plugin.backend_fd {
            // SAFETY: the plug-in's optional getter on its live instance.
            Some(f) if self.broken == 0 => unsafe { f(self.state) },
            _ => -1,
        }
    }

    fn add(&mut self, fd: i32, token: u64, events: u8) -> std::result::Result<(), i32> {
        if self.broken != 0 {
            return Err(self.broken);
        }
        if fd < 0 {
            return Err(libc::EBADF);
        }
        if self.token(fd).is_some() {
            return Err(libc::EEXIST);
        }
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(libc::EBADF);
        }
        // SAFETY: the plug-in's add on its live instance.
        Self::rc(unsafe { (self.plugin.add)(self.state, fd, events as c_int) })?;
        if self.tokens.len() <= fd as usize {
            self.tokens.resize(fd as usize + 1, None);
        }
        self.tokens[fd as usize] = Some(token);
        if token == WAKE_TOKEN {
            self.wake_fd = fd;
        }
        Ok(())
    }

    fn modify(&mut self, fd: i32, token: u64, events: u8) -> std::result::Result<(), i32> {
        if self.broken != 0 {
            return Err(self.broken);
        }
        if self.token(fd).is_none() {
            return Err(libc::ENOENT);
        }
        // SAFETY: the plug-in's modify on its live instance, for an fd it holds.
        Self::rc(unsafe { (self.plugin.modify)(self.state, fd, events as c_int) })?;
        self.tokens[fd as usize] = Some(token);
        Ok(())
    }

    fn delete(&mut self, fd: i32) -> std::result::Result<(), i32> {
        if self.token(fd).is_none() {
            return Err(libc::ENOENT);
        }
        self.tokens[fd as usize] = None;
        if self.broken != 0 {
            return Ok(());
        }
        // SAFETY: the plug-in's remove on its live instance, for an fd it holds.
        Self::rc(unsafe { (self.plugin.remove)(self.state, fd) })
    }

    fn poll(&mut self, out: &mut Vec<Ready>, timeout_ms: i32) -> std::result::Result<(), i32> {
        if self.broken != 0 {
            self.wait_wake(out, timeout_ms);
            return Ok(());
        }
        let cap = self.buf.len() as c_int;
        // SAFETY: the plug-in's poll on its live instance, with room for `cap` events.
        let n = unsafe { (self.plugin.poll)(self.state, self.buf.as_mut_ptr(), cap, timeout_ms) };
        if n == -libc::EINTR {
            return Ok(());
        }
        if n < 0 {
            let name = crate::error::name(n).to_string_lossy();
            return self.breaks(format_args!("poll failed ({name})"), out);
        }
        if n > cap {
            return self.breaks(
                format_args!("poll returned {n} events with room for {cap}"),
                out,
            );
        }
        let start = out.len();
        for i in 0..n as usize {
            let Event { fd, events } = self.buf[i];
            let token = match self.token(fd) {
                Some(t) if events & !((READ | WRITE) as c_int) == 0 => t,
                Some(_) => {
                    out.truncate(start);
                    return self.breaks(
                        format_args!("poll returned events {events:#x} for fd {fd} (only GH_READ | GH_WRITE exist)"),
                        out,
                    );
                }
                None => {
                    out.truncate(start);
                    return self.breaks(
                        format_args!("poll returned an event for fd {fd}, which it does not hold"),
                        out,
                    );
                }
            };
            if events != 0 {
                out.push(Ready {
                    token,
                    events: events as u8,
                });
            }
        }
        if n == cap && self.buf.len() < 4096 {
            let len = self.buf.len() * 2;
            self.buf.resize(len, Event::default());
        }
        Ok(())
    }

    /// A new instance of the plug-in (the old one destroyed): every registration gone.
    fn reset(&mut self) -> std::result::Result<(), i32> {
        if self.broken != 0 {
            return Err(self.broken);
        }
        let fresh = PluginBackend::new(self.plugin.clone())?;
        let old = std::mem::replace(self, fresh);
        drop(old);
        Ok(())
    }

    fn abandon(mut self: Box<Self>) {
        self.abandoned = true;
        if let Some(f) = self.plugin.fork_child {
            // SAFETY: the plug-in's optional fork-child release on the inherited instance.
            unsafe { f(self.state) };
        }
    }

    fn fresh(&self) -> std::result::Result<Box<dyn Backend>, i32> {
        Ok(Box::new(PluginBackend::new(self.plugin.clone())?))
    }
}

impl Drop for PluginBackend {
    fn drop(&mut self) {
        if !self.abandoned {
            // SAFETY: the plug-in's destroy, once, on the instance its create gave.
            unsafe { (self.plugin.destroy)(self.state) };
        }
    }
}
