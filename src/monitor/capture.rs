//! The native half of a monitor report, taken at the moment of detection.
//!
//! * The blocked thread is running (a CPU loop): the monitor sends it a real-time signal
//!   (`CAPTURE_SIGNAL`, installed only if nobody else handles it); the handler, on the
//!   blocked thread itself, records its backtrace (glibc `backtrace`, which unwinds
//!   through the signal frame and the greenlet's stack) and formats its hub's greenlet
//!   tree into a static buffer without allocating — no other thread ever reads a hub's
//!   tables.
//! * The thread sleeps in a system call (`sleep`, a blocking `read`, ...): a signal would
//!   cut `nanosleep`/`poll` short (EINTR, whatever SA_RESTART says), so it is left alone.
//!   `/proc/self/task/TID/syscall` gives the call and its stack and instruction
//!   pointers, and the stack above the stack pointer is scanned for return addresses
//!   (words pointing into executable code right after a call instruction), read with
//!   process_vm_readv so nothing can fault. The tree then comes from the names the hub
//!   published (states are not readable from another thread).
//!
//! Addresses are symbolised with dladdr (exported symbols; `module+offset` otherwise, for
//! addr2line).

use crate::monitor::runinfo::{format_hub_report, Sink, REPORT_MAX};
use crate::remote::HubShared;
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void, CStr};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MAX_FRAMES: usize = 64;
const TREE_CAP: usize = 64 * 1024;

const IDLE: u32 = 0;
const REQUESTED: u32 = 1;
const WRITING: u32 = 2;
const DONE: u32 = 3;

struct Capture {
    state: AtomicU32,
    tid: AtomicI32,
    pc: AtomicUsize,
    nframes: AtomicUsize,
    tree_len: AtomicUsize,
    tree_total: AtomicUsize,
    /// The hub state was borrowed when the signal came (the thread is inside greenhub).
    busy: AtomicBool,
    frames: UnsafeCell<[usize; MAX_FRAMES]>,
    tree: UnsafeCell<[u8; TREE_CAP]>,
}

// SAFETY: `frames` and `tree` are written only by the handler between REQUESTED->WRITING
// and DONE, and read only by the monitor thread after it saw DONE (acquire) and before it
// sets IDLE; the state machine serialises every access.
unsafe impl Sync for Capture {}

static CAP: Capture = Capture {
    state: AtomicU32::new(IDLE),
    tid: AtomicI32::new(0),
    pc: AtomicUsize::new(0),
    nframes: AtomicUsize::new(0),
    tree_len: AtomicUsize::new(0),
    tree_total: AtomicUsize::new(0),
    busy: AtomicBool::new(false),
    frames: UnsafeCell::new([0; MAX_FRAMES]),
    tree: UnsafeCell::new([0; TREE_CAP]),
};

static HANDLER: AtomicBool = AtomicBool::new(false);

#[cfg(target_env = "gnu")]
extern "C" {
    fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
}

#[cfg(target_env = "gnu")]
fn native_backtrace(out: &mut [usize]) -> usize {
    // SAFETY: out has room for out.len() pointers.
    let n = unsafe { backtrace(out.as_mut_ptr() as *mut *mut c_void, out.len() as c_int) };
    n.max(0) as usize
}

#[cfg(not(target_env = "gnu"))]
fn native_backtrace(_out: &mut [usize]) -> usize {
    0
}

/// The signal the monitor captures running threads with.
pub(crate) fn capture_signal() -> c_int {
    libc::SIGRTMIN() + 7
}

/// Once per process: installs the capture handler (if the signal is free) and loads the
/// unwinder (glibc's first `backtrace` call dlopens libgcc_s, which a handler must not).
pub(crate) fn prepare() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut frames = [0usize; 4];
        native_backtrace(&mut frames);
        let sig = capture_signal();
        // SAFETY: sigaction with a zeroed struct is a query; the result is checked.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                return;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_capture as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0 {
                HANDLER.store(true, Ordering::Release);
            }
        }
    });
}

extern "C" fn on_capture(_sig: c_int, _info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: errno is thread-local; saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    if CAP.tid.load(Ordering::Acquire) == me
        && CAP
            .state
            .compare_exchange(REQUESTED, WRITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        CAP.pc.store(interrupted_pc(ctx), Ordering::Relaxed);
        // SAFETY: we own the buffers in the WRITING state (see `Capture`).
        let (frames, tree) = unsafe { (&mut *CAP.frames.get(), &mut *CAP.tree.get()) };
        CAP.nframes
            .store(native_backtrace(frames), Ordering::Relaxed);
        let hub = crate::hub::published();
        let mut sink = Sink::new(tree);
        let mut busy = false;
        // SAFETY: the published hub of this thread lives while the thread runs code that
        // can be interrupted here (destroy unpublishes it before freeing).
        if let Some(hub) = unsafe { hub.as_ref() } {
            match hub.st.try_borrow() {
                // Borrows are never held across a call into C, so a free state is a
                // consistent one; formatting does not allocate.
                Ok(st) => {
                    let _ = format_hub_report(&mut sink, hub, &st, hub.current.get());
                }
                Err(_) => busy = true,
            }
        }
        CAP.tree_len.store(sink.pos, Ordering::Relaxed);
        CAP.tree_total.store(sink.total, Ordering::Relaxed);
        CAP.busy.store(busy, Ordering::Relaxed);
        CAP.state.store(DONE, Ordering::Release);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn interrupted_pc(ctx: *mut c_void) -> usize {
    // SAFETY: with SA_SIGINFO the third argument is the interrupted context.
    unsafe {
        (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as usize
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn interrupted_pc(_ctx: *mut c_void) -> usize {
    0
}

struct Captured {
    frames: Vec<usize>,
    tree: Option<String>,
    busy: bool,
}

/// Asks thread `tid` for its backtrace and tree; None if it did not answer in time.
fn capture_running(tid: i32) -> Option<Captured> {
    if !HANDLER.load(Ordering::Acquire) {
        return None;
    }
    CAP.tid.store(tid, Ordering::Release);
    CAP.state.store(REQUESTED, Ordering::Release);
    // SAFETY: tgkill on our own process; a thread that is gone gives ESRCH.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, capture_signal()) };
    if r != 0 {
        CAP.state.store(IDLE, Ordering::Release);
        return None;
    }
    let t0 = Instant::now();
    loop {
        match CAP.state.load(Ordering::Acquire) {
            DONE => break,
            REQUESTED if t0.elapsed() > Duration::from_millis(200) => {
                if CAP
                    .state
                    .compare_exchange(REQUESTED, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return None;
                }
            }
            _ => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    // SAFETY: DONE seen with acquire: the handler finished writing (see `Capture`).
    let (frames, tree) = unsafe { (&*CAP.frames.get(), &*CAP.tree.get()) };
    let n = CAP.nframes.load(Ordering::Relaxed).min(MAX_FRAMES);
    let pc = CAP.pc.load(Ordering::Relaxed);
    let mut frames: Vec<usize> = frames[..n].to_vec();
    // Drop the handler's own frames: keep from the interrupted instruction on.
    if let Some(i) = frames.iter().position(|&f| f == pc) {
        frames.drain(..i);
    } else if pc != 0 {
        frames.insert(0, pc);
    }
    let len = CAP.tree_len.load(Ordering::Relaxed);
    let total = CAP.tree_total.load(Ordering::Relaxed);
    let busy = CAP.busy.load(Ordering::Relaxed);
    let mut t = String::from_utf8_lossy(&tree[..len]).into_owned();
    if total > len {
        t.push_str(&format!("... ({} more bytes)\n", total - len));
    }
    CAP.state.store(IDLE, Ordering::Release);
    Some(Captured {
        frames,
        tree: (len > 0).then_some(t),
        busy,
    })
}

/// A /proc file kept open, re-read from its start with pread(2).
struct ProcFile {
    fd: i32,
    /// `event_loop::file_id` at open: closed only if the number still holds it (after
    /// fork the child may have closed it and reused the number).
    id: Option<(u64, u64)>,
}

impl ProcFile {
    fn open(path: &str) -> ProcFile {
        let fd = std::ffi::CString::new(path).map_or(-1, |p| {
            // SAFETY: a NUL-terminated path; the result is checked by its users.
            unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
        });
        ProcFile {
            fd,
            id: crate::event_loop::file_id(fd),
        }
    }

    /// The whole file, read now (procfs regenerates it when read from offset 0).
    fn read(&self) -> Option<String> {
        if self.fd < 0 {
            return None;
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length.
            let r = unsafe {
                libc::pread(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    out.len() as i64,
                )
            };
            if r < 0 {
                return None;
            }
            if r == 0 {
                return String::from_utf8(out).ok();
            }
            out.extend_from_slice(&buf[..r as usize]);
        }
    }
}

impl Drop for ProcFile {
    fn drop(&mut self) {
        if self.fd >= 0 && crate::event_loop::file_id(self.fd) == self.id {
            // SAFETY: the fd this value opened, still at its number.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// The /proc files a report of a monitored hub reads, opened when the monitor starts
/// watching it: a process out of fds (a spinning accept loop at EMFILE, exactly what
/// needs diagnosing) could not open them at report time (issue 15.12).
pub(crate) struct ProcFiles {
    stat: ProcFile,
    syscall: ProcFile,
    maps: ProcFile,
}

impl ProcFiles {
    /// The files of thread `tid` of this process.
    pub(crate) fn open(tid: i32) -> ProcFiles {
        ProcFiles {
            stat: ProcFile::open(&format!("/proc/self/task/{tid}/stat")),
            syscall: ProcFile::open(&format!("/proc/self/task/{tid}/syscall")),
            maps: ProcFile::open("/proc/self/maps"),
        }
    }
}

/// `f`'s content, or (not kept open) `path`'s.
fn proc_read(f: Option<&ProcFile>, path: &str) -> Option<String> {
    f.and_then(|f| f.read())
        .or_else(|| std::fs::read_to_string(path).ok())
}

fn thread_state(files: Option<&ProcFiles>, tid: i32) -> Option<char> {
    let path = format!("/proc/self/task/{tid}/stat");
    let s = proc_read(files.map(|f| &f.stat), &path)?;
    s.rsplit_once(") ")?.1.chars().next()
}

/// (syscall number, stack pointer, instruction pointer) of a thread in a system call.
fn in_syscall(files: Option<&ProcFiles>, tid: i32) -> Option<(i64, usize, usize)> {
    let path = format!("/proc/self/task/{tid}/syscall");
    let s = proc_read(files.map(|f| &f.syscall), &path)?;
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() < 9 {
        return None;
    }
    let hex = |x: &str| usize::from_str_radix(x.trim_start_matches("0x"), 16).ok();
    Some((f[0].parse().ok()?, hex(f[7])?, hex(f[8])?))
}

fn syscall_name(nr: i64) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        match nr {
            0 => "read",
            1 => "write",
            7 => "poll",
            17 => "pread64",
            18 => "pwrite64",
            19 => "readv",
            20 => "writev",
            23 => "select",
            34 => "pause",
            35 => "nanosleep",
            42 => "connect",
            43 => "accept",
            44 => "sendto",
            45 => "recvfrom",
            46 => "sendmsg",
            47 => "recvmsg",
            61 => "wait4",
            72 => "fcntl",
            73 => "flock",
            74 => "fsync",
            128 => "rt_sigtimedwait",
            202 => "futex",
            230 => "clock_nanosleep",
            232 => "epoll_wait",
            257 => "openat",
            270 => "pselect6",
            271 => "ppoll",
            281 => "epoll_pwait",
            288 => "accept4",
            _ => "?",
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = nr;
        "?"
    }
}

/// Executable mappings of the process.
fn exec_ranges(files: Option<&ProcFiles>) -> Vec<(usize, usize)> {
    let Some(maps) = proc_read(files.map(|f| &f.maps), "/proc/self/maps") else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let range = it.next()?;
            let perms = it.next()?;
            if !perms.contains('x') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// Reads our own memory without faulting (None where it is not mapped).
fn peek(addr: usize, out: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr() as *mut c_void,
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: out.len(),
    };
    // SAFETY: process_vm_readv writes at most out.len() bytes into out and reports an
    // unmapped source as an error instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == out.len() as isize
}

/// Does the instruction before `ret` look like a call (x86-64 encodings)?
fn after_call(ret: usize) -> bool {
    if !cfg!(target_arch = "x86_64") {
        return true;
    }
    let mut b = [0u8; 7];
    if ret < 7 || !peek(ret - 7, &mut b) {
        return false;
    }
    // call rel32 (E8 xx xx xx xx); call r/m64 (FF /2) in its 2, 3, 6 and 7-byte forms.
    b[2] == 0xE8
        || (b[5] == 0xFF && b[6] & 0x38 == 0x10)
        || (b[4] == 0xFF && b[5] & 0x38 == 0x10)
        || (b[1] == 0xFF && b[2] & 0x38 == 0x10)
        || (b[0] == 0xFF && b[1] & 0x38 == 0x10)
}

/// Return addresses found on the stack above `sp` (at most 32 KiB scanned).
fn scan_stack(files: Option<&ProcFiles>, sp: usize) -> Vec<usize> {
    let exec = exec_ranges(files);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut at = sp & !7;
    let end = at + 32 * 1024;
    while at < end && out.len() < 24 {
        let len = (4096 - (at & 4095)).min(end - at);
        if !peek(at, &mut chunk[..len]) {
            break;
        }
        for w in chunk[..len].chunks_exact(8) {
            let v = usize::from_ne_bytes(w.try_into().expect("8 bytes"));
            if exec.iter().any(|&(a, b)| v > a && v < b) && after_call(v) {
                out.push(v);
                if out.len() >= 24 {
                    break;
                }
            }
        }
        at += len;
    }
    out
}

/// `symbol+0xoff (module)` or `module+0xoff` for a code address.
pub(crate) fn symbolise(addr: usize, is_return: bool) -> String {
    let probe = if is_return {
        addr.saturating_sub(1)
    } else {
        addr
    };
    // SAFETY: dladdr only reads loader state; info is a plain out-struct.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::dladdr(probe as *const c_void, &mut info) } == 0 {
        return format!("{addr:#x}");
    }
    let module = if info.dli_fname.is_null() {
        String::from("?")
    } else {
        // SAFETY: dladdr returned a NUL-terminated module path.
        let p = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
        p.rsplit('/').next().unwrap_or("?").to_owned()
    };
    let off = addr.wrapping_sub(info.dli_fbase as usize);
    if info.dli_sname.is_null() {
        format!("{addr:#x} {module}+{off:#x}")
    } else {
        // SAFETY: dladdr returned a NUL-terminated symbol name.
        let s = unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy();
        format!(
            "{addr:#x} {s}+{:#x} ({module}+{off:#x})",
            addr.wrapping_sub(info.dli_saddr as usize)
        )
    }
}

/// The tree as the hub published it (names, ids, spawn sites, parents; no states).
fn published_tree(shared: &HubShared, blocked: u32, out: &mut String) {
    let p = shared.published.lock().unwrap_or_else(|e| e.into_inner());
    let id = |slot: u32, gen: u32| {
        crate::handle::Id::encode(shared.id, crate::handle::Kind::Greenlet, gen, slot)
    };
    let label = |slot: u32| -> String {
        if slot == p.main_slot {
            format!("<main {:#x}>", id(slot, p.main_gen))
        } else if slot == p.hub_slot {
            format!("<hub {:#x}>", id(slot, p.hub_gen))
        } else if let Some(g) = p.greenlets.get(&slot) {
            match &g.name {
                Some(n) => format!(
                    "<greenlet \"{}\" {:#x}>",
                    n.to_string_lossy(),
                    id(slot, g.gen)
                ),
                None => format!("<greenlet {:#x}>", id(slot, g.gen)),
            }
        } else {
            String::from("<gone>")
        }
    };
    let mark = |slot: u32| {
        if slot == blocked {
            "  <== blocking the hub"
        } else {
            ""
        }
    };
    let _ = writeln!(out, "{}{}", label(p.main_slot), mark(p.main_slot));
    let _ = writeln!(out, " +--- {}{}", label(p.hub_slot), mark(p.hub_slot));
    let mut slots: Vec<u32> = p.greenlets.keys().copied().collect();
    slots.sort_unstable();
    let all = slots.len();
    if all > REPORT_MAX {
        // The blocker and its ancestors only (runinfo::REPORT_MAX).
        let mut chain = Vec::new();
        let mut s = blocked;
        while chain.len() < 8 && p.greenlets.contains_key(&s) {
            chain.push(s);
            s = p.greenlets[&s].parent;
        }
        chain.reverse();
        slots = chain;
    }
    let shown = slots.len();
    for &slot in &slots {
        let g = &p.greenlets[&slot];
        let _ = writeln!(out, " :    +--- {}{}", label(slot), mark(slot));
        let _ = write!(out, " :    :          Spawned");
        if g.file != 0 {
            // SAFETY: GH_SPAWN's file is a string the caller keeps alive (`__FILE__`).
            let f = unsafe { CStr::from_ptr(g.file as *const std::ffi::c_char) };
            let _ = write!(out, " at {}:{}", f.to_string_lossy(), g.line);
        }
        let _ = writeln!(
            out,
            " by {}; stack {} KiB",
            label(g.parent),
            g.stack_size / 1024
        );
    }
    if shown < all {
        let _ = writeln!(
            out,
            " :    ... and {} other greenlet(s) (gh_format_run_info lists them all)",
            all - shown
        );
    }
}

/// The greenlet tree and the native backtrace of the blocked thread of `shared`.
pub(crate) fn report_body(
    shared: &HubShared,
    slot: u32,
    files: Option<&ProcFiles>,
    out: &mut String,
) {
    let tid = shared.tid.load(Ordering::Relaxed);
    let state = thread_state(files, tid);
    let captured = match state {
        Some('R') => capture_running(tid),
        _ => None,
    };
    match &captured {
        Some(Captured { tree: Some(t), .. }) => {
            out.push_str("Greenlet tree (taken on the blocked thread):\n");
            out.push_str(t);
        }
        Some(Captured { busy: true, .. }) => {
            out.push_str("Greenlet tree: the thread is inside greenhub; published names:\n");
            published_tree(shared, slot, out);
        }
        _ => {
            out.push_str(
                "Greenlet tree (published names; states are read on the hub's own thread only):\n",
            );
            published_tree(shared, slot, out);
        }
    }
    match captured {
        Some(c) if !c.frames.is_empty() => {
            let _ = writeln!(
                out,
                "Native backtrace of thread {tid} (taken at detection):"
            );
            for (i, &f) in c.frames.iter().enumerate() {
                let _ = writeln!(out, "  #{i:<2} {}", symbolise(f, i > 0));
            }
        }
        _ => match in_syscall(files, tid) {
            Some((nr, sp, pc)) => {
                let _ = writeln!(
                    out,
                    "Native stack of thread {tid}: in system call {nr} ({}), not interrupted (a signal would cut it short)",
                    syscall_name(nr)
                );
                let _ = writeln!(out, "  #0  {}", symbolise(pc, false));
                for (i, r) in scan_stack(files, sp).into_iter().enumerate() {
                    let _ = writeln!(out, "  #{:<2} {}  (stack scan)", i + 1, symbolise(r, true));
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "Native backtrace of thread {tid}: not available (thread state {})",
                    state.unwrap_or('?')
                );
            }
        },
    }
}

/// UTC wall-clock time, ISO 8601 with milliseconds.
pub(crate) fn timestamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A signal given as `SIGUSR2`, `USR2` or a number.
pub(crate) fn parse_signal(s: &str) -> Option<c_int> {
    let s = s.trim();
    if let Ok(n) = s.parse::<c_int>() {
        return (1..=crate::signals::MAX_SIGNAL).contains(&n).then_some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => return None,
    })
}
