//! Name lookups on greenhub's thread pool: getaddrinfo, gethostbyname,
//! gethostbyname_r. glibc's resolver talks to the DNS server through internal symbols
//! (`__poll`, `__recvmsg`…) no interposer sees — the hole libco and libgo users keep
//! falling into — so the whole lookup runs on a worker thread (which has no hub: plain
//! libc there) while only the calling greenlet waits.

use crate::gh::{self, set_errno, Gh, GH_EAI_BASE, GH_EPERM};
use crate::real;
use libc::{addrinfo, c_char, c_int, c_void, hostent, size_t};
use std::sync::atomic::{AtomicU8, Ordering};

extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

fn may_park() -> Option<&'static Gh> {
    gh::parkable().filter(|_| !crate::signal::in_handler())
}

/// getaddrinfo(3) on the thread pool: libc's return value (EAI_*), or EAI_SYSTEM with
/// errno ECANCELED (gh_kill) / ETIMEDOUT (gh_timeout) when the wait was cut short.
///
/// # Safety
/// As getaddrinfo(3).
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: hints is NULL or the caller's.
    let numeric = unsafe { hints.as_ref() }.is_some_and(|h| h.ai_flags & libc::AI_NUMERICHOST != 0);
    let both_null = node.is_null() && service.is_null();
    if !(res.is_null() || both_null || numeric) {
        if let Some(g) = may_park() {
            // SAFETY: the caller's arguments; gh_getaddrinfo copies them.
            let r = unsafe { (g.getaddrinfo)(node, service, hints, res) };
            match r {
                0 => return 0,
                GH_EPERM => {}
                r if (GH_EAI_BASE - 100..GH_EAI_BASE).contains(&r) => return r - GH_EAI_BASE,
                r => {
                    set_errno(if (-4095..0).contains(&r) {
                        -r
                    } else {
                        libc::EIO
                    });
                    return libc::EAI_SYSTEM;
                }
            }
        }
    }
    // SAFETY: passed through.
    unsafe { real::getaddrinfo()(node, service, hints, res) }
}

/// One gethostbyname_r job: owns its copies, so a caller that is killed or times out
/// can leave it to finish on the worker (whichever side finishes second frees it).
struct HostJob {
    name: std::ffi::CString,
    he: hostent,
    buf: Vec<u8>,
    result: *mut hostent,
    rc: c_int,
    herr: c_int,
    state: AtomicU8,
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const ABANDONED: u8 = 2;

unsafe extern "C" fn host_job(p: *mut c_void) -> *mut c_void {
    let job = p as *mut HostJob;
    {
        // SAFETY: p is the Box<HostJob> leaked by lookup; the caller does not touch its
        // fields while it is RUNNING.
        let j = unsafe { &mut *job };
        // SAFETY: the job's own name, hostent and buffer.
        j.rc = unsafe {
            real::gethostbyname_r()(
                j.name.as_ptr(),
                &mut j.he,
                j.buf.as_mut_ptr() as *mut c_char,
                j.buf.len(),
                &mut j.result,
                &mut j.herr,
            )
        };
    }
    // SAFETY: job stays allocated until both sides have passed this swap.
    if unsafe { &(*job).state }.swap(FINISHED, Ordering::AcqRel) == ABANDONED {
        // SAFETY: the caller left; we are the last user.
        drop(unsafe { Box::from_raw(job) });
    }
    p
}

/// Moves a pointer into `from` (len bytes) to the same offset in `to`.
fn reloc<T>(p: *mut T, from: *const u8, len: usize, to: *mut u8) -> *mut T {
    let a = p as usize;
    let base = from as usize;
    if a >= base && a < base + len {
        (to as usize + (a - base)) as *mut T
    } else {
        p
    }
}

/// gethostbyname_r on the pool; copies the answer into the caller's buffer.
///
/// # Safety
/// As gethostbyname_r(3).
unsafe fn lookup(
    g: &Gh,
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> Option<c_int> {
    // SAFETY: name is the caller's C string.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_owned();
    let job = Box::into_raw(Box::new(HostJob {
        name,
        // SAFETY: an all-zero hostent is a valid value (null pointers).
        he: unsafe { std::mem::zeroed() },
        buf: vec![0u8; buflen],
        result: std::ptr::null_mut(),
        rc: 0,
        herr: 0,
        state: AtomicU8::new(RUNNING),
    }));
    let mut out = std::ptr::null_mut();
    // SAFETY: host_job takes the leaked job; only it touches it until it finishes.
    let r = unsafe { (g.threadpool_apply)(host_job, job as *mut c_void, &mut out) };
    if r == GH_EPERM && out.is_null() {
        // Not run (cannot park after all): free it and let the caller go plain.
        // SAFETY: the job never started.
        drop(unsafe { Box::from_raw(job) });
        return None;
    }
    if r != 0 {
        // SAFETY: the job is alive until both sides passed the swap.
        if unsafe { &(*job).state }.swap(ABANDONED, Ordering::AcqRel) == FINISHED {
            // SAFETY: the worker is done with it.
            drop(unsafe { Box::from_raw(job) });
        }
        // SAFETY: the caller's out-pointers.
        unsafe {
            *result = std::ptr::null_mut();
            *h_errnop = 3 /* NO_RECOVERY */;
        }
        return Some(if (-4095..0).contains(&r) {
            -r
        } else {
            libc::EIO
        });
    }
    // SAFETY: the worker finished (apply returned its value); we own the job now.
    let j = unsafe { Box::from_raw(job) };
    let from = j.buf.as_ptr();
    let to = buf as *mut u8;
    // SAFETY: the caller's buffer holds buflen bytes, as the job's.
    unsafe { std::ptr::copy_nonoverlapping(from, to, buflen) };
    let mut he = j.he;
    he.h_name = reloc(he.h_name, from, buflen, to);
    he.h_aliases = reloc(he.h_aliases, from, buflen, to);
    he.h_addr_list = reloc(he.h_addr_list, from, buflen, to);
    for list in [he.h_aliases, he.h_addr_list] {
        let mut p = list;
        // SAFETY: NULL-terminated arrays inside the caller's copy of the buffer.
        unsafe {
            while !p.is_null() && !(*p).is_null() {
                *p = reloc(*p, from, buflen, to);
                p = p.add(1);
            }
        }
    }
    // SAFETY: the caller's out-pointers.
    unsafe {
        *ret = he;
        *result = if j.result.is_null() {
            std::ptr::null_mut()
        } else {
            ret
        };
        *h_errnop = j.herr;
    }
    Some(j.rc)
}

/// gethostbyname_r(3) on the thread pool. A kill or gh_timeout returns ECANCELED /
/// ETIMEDOUT with `*result` NULL and `*h_errnop` NO_RECOVERY.
///
/// # Safety
/// As gethostbyname_r(3).
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: size_t,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !name.is_null()
        && !ret.is_null()
        && !buf.is_null()
        && !result.is_null()
        && !h_errnop.is_null()
    {
        if let Some(g) = may_park() {
            // SAFETY: the caller's arguments.
            if let Some(r) = unsafe { lookup(g, name, ret, buf, buflen, result, h_errnop) } {
                return r;
            }
        }
    }
    // SAFETY: passed through.
    unsafe { real::gethostbyname_r()(name, ret, buf, buflen, result, h_errnop) }
}

struct Static {
    he: hostent,
    buf: Vec<u8>,
}

thread_local! {
    static HOST: std::cell::RefCell<Option<Box<Static>>> = const { std::cell::RefCell::new(None) };
}

/// gethostbyname(3) on the thread pool (through gethostbyname_r). The result lives in
/// per-thread storage until this thread's next call, as libc's static buffer does.
///
/// # Safety
/// As gethostbyname(3).
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    if !name.is_null() {
        if let Some(g) = may_park() {
            let out = HOST.with(|h| {
                // Another greenlet of this thread inside gethostbyname: plain libc.
                let Ok(mut h) = h.try_borrow_mut() else {
                    return None;
                };
                let s = h.get_or_insert_with(|| {
                    Box::new(Static {
                        // SAFETY: an all-zero hostent is valid.
                        he: unsafe { std::mem::zeroed() },
                        buf: vec![0u8; 8192],
                    })
                });
                loop {
                    let mut result = std::ptr::null_mut();
                    let mut herr = 0;
                    let len = s.buf.len();
                    // SAFETY: the thread's own hostent and buffer; the RefCell borrow
                    // keeps a re-entrant call from another greenlet out (it goes plain).
                    let r = unsafe {
                        lookup(
                            g,
                            name,
                            &mut s.he,
                            s.buf.as_mut_ptr() as *mut c_char,
                            len,
                            &mut result,
                            &mut herr,
                        )
                    };
                    match r {
                        None => return None,
                        Some(libc::ERANGE) if len < 1 << 20 => s.buf.resize(len * 2, 0),
                        Some(r) => {
                            // SAFETY: this thread's h_errno.
                            unsafe { *__h_errno_location() = herr };
                            if r != 0 && result.is_null() {
                                set_errno(r);
                            }
                            return Some(result);
                        }
                    }
                }
            });
            if let Some(p) = out {
                return p;
            }
        }
    }
    // SAFETY: passed through.
    unsafe { real::gethostbyname()(name) }
}
