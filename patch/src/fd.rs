//! The fd-table interposers: close, dup, dup2, dup3, fcntl, socket, socketpair, pipe,
//! pipe2 (and dlopen, which only tells `gh` about a late libgreenhub). They are libc's
//! calls; they keep the patch's per-fd kind cache (`fdkind`) in step with the fd numbers.
//!
//! The patch never changes an fd's flags for longer than one syscall made while no
//! other code of the program can run, so `fcntl(F_GETFL)` and `ioctl(FIONBIO)` need no
//! emulation: the program's view is the kernel's. ioctl, setsockopt and getsockopt are
//! therefore not interposed (SO_RCVTIMEO/SO_SNDTIMEO are read from the kernel when a
//! call must wait).
//!
//! close is libc's too: as with threads, closing an fd another greenlet is blocked on
//! does not wake that greenlet (call gh_close for that).

use crate::fdkind;
use crate::real;
use libc::{c_int, c_ulong};

/// close(2): forgets the fd's kind, then libc's close.
///
/// # Safety
/// As close(2).
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    fdkind::forget(fd);
    // SAFETY: passed through.
    unsafe { real::close()(fd) }
}

/// dup(2): the new fd has the old one's kind.
///
/// # Safety
/// As dup(2).
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::dup()(fd) };
    if r >= 0 {
        fdkind::copy(fd, r);
    }
    r
}

/// dup2(2): `new` takes `old`'s kind.
///
/// # Safety
/// As dup2(2).
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::dup2()(old, new) };
    if r >= 0 && old != new {
        fdkind::copy(old, new);
    }
    r
}

/// dup3(2): `new` takes `old`'s kind.
///
/// # Safety
/// As dup3(2).
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::dup3()(old, new, flags) };
    if r >= 0 {
        fdkind::copy(old, new);
    }
    r
}

/// fcntl(2) (declared variadic in C; its one optional argument is an int or a pointer,
/// passed in the same register on the ABIs this builds for: x86-64 and AArch64 Linux).
/// F_DUPFD/F_DUPFD_CLOEXEC copy the kind; everything else is libc's.
///
/// # Safety
/// As fcntl(2).
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::fcntl()(fd, cmd, arg) };
    if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
        fdkind::copy(fd, r);
    }
    r
}

/// fcntl64: the name fcntl has under _FILE_OFFSET_BITS=64 (glibc >= 2.28).
///
/// # Safety
/// As fcntl(2).
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: the same call.
    unsafe { fcntl(fd, cmd, arg) }
}

/// socket(2): the new fd is known to be a socket (no fstat on its first use, and no
/// stale kind left by a close the patch did not see — fclose, a raw syscall).
///
/// # Safety
/// As socket(2).
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::socket()(domain, ty, proto) };
    fdkind::set(r, fdkind::Kind::Socket);
    r
}

/// socketpair(2): both fds are sockets.
///
/// # Safety
/// As socketpair(2).
#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    proto: c_int,
    sv: *mut c_int,
) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::socketpair()(domain, ty, proto, sv) };
    if r == 0 {
        // SAFETY: libc filled sv[0..2].
        unsafe {
            fdkind::set(*sv, fdkind::Kind::Socket);
            fdkind::set(*sv.add(1), fdkind::Kind::Socket);
        }
    }
    r
}

/// pipe(2): both fds are streams.
///
/// # Safety
/// As pipe(2).
#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    // SAFETY: the same call.
    unsafe { pipe2(fds, 0) }
}

/// pipe2(2): both fds are streams.
///
/// # Safety
/// As pipe2(2).
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: passed through.
    let r = unsafe { real::pipe2()(fds, flags) };
    if r == 0 {
        // SAFETY: libc filled fds[0..2].
        unsafe {
            fdkind::set(*fds, fdkind::Kind::Stream);
            fdkind::set(*fds.add(1), fdkind::Kind::Stream);
        }
    }
    r
}

/// dlopen(3): libc's; a successful load makes a patch that found no libgreenhub look
/// for it again (a program that loads libgreenhub late, like the Python binding).
///
/// # Safety
/// As dlopen(3).
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const libc::c_char, mode: c_int) -> *mut libc::c_void {
    // SAFETY: passed through.
    let h = unsafe { real::dlopen()(file, mode) };
    if !h.is_null() {
        crate::gh::library_loaded(h);
    }
    h
}
