//! The real libc functions, resolved once with `dlsym(RTLD_NEXT, name)`: the next
//! definition after this library in the lookup order, i.e. libc's. The patch never
//! calls `libc::read` & co. directly — inside this library those names are the
//! interposers themselves.

use libc::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

/// The address of the next definition of `name` (NUL-terminated), or abort: a libc
/// without the symbol cannot be patched safely.
#[cold]
fn resolve(name: &'static str) -> *mut c_void {
    // SAFETY: name is NUL-terminated (the macro appends "\0"); RTLD_NEXT is valid from
    // a shared object.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) };
    if p.is_null() {
        let msg =
            b"greenhub_patch: dlsym(RTLD_NEXT) found no libc definition of a patched function\n";
        // SAFETY: raw syscalls with valid arguments; no libc symbol (it could be ours).
        unsafe {
            libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len());
            libc::abort();
        }
    }
    p
}

/// Loads (resolving on first use) one function pointer.
#[inline(always)]
fn load(slot: &AtomicPtr<c_void>, name: &'static str) -> *mut c_void {
    let p = slot.load(Relaxed);
    if !p.is_null() {
        return p;
    }
    let p = resolve(name);
    slot.store(p, Relaxed);
    p
}

/// `real!(name: fn(args) -> ret)` defines `real::name()`, the libc function.
macro_rules! real {
    ($($name:ident : fn($($a:ty),*) -> $r:ty;)*) => {$(
        #[inline(always)]
        pub fn $name() -> unsafe extern "C" fn($($a),*) -> $r {
            static SLOT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let p = load(&SLOT, concat!(stringify!($name), "\0"));
            // SAFETY: p is libc's definition of this very symbol, whose C prototype is
            // the one spelled here.
            unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($a),*) -> $r>(p) }
        }
    )*};
}

use libc::{
    addrinfo, epoll_event, fd_set, hostent, iovec, msghdr, nfds_t, pollfd, sigset_t, size_t,
    sockaddr, socklen_t, ssize_t, timespec, timeval,
};

real! {
    read: fn(c_int, *mut c_void, size_t) -> ssize_t;
    write: fn(c_int, *const c_void, size_t) -> ssize_t;
    readv: fn(c_int, *const iovec, c_int) -> ssize_t;
    writev: fn(c_int, *const iovec, c_int) -> ssize_t;
    recv: fn(c_int, *mut c_void, size_t, c_int) -> ssize_t;
    recvfrom: fn(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    recvmsg: fn(c_int, *mut msghdr, c_int) -> ssize_t;
    send: fn(c_int, *const c_void, size_t, c_int) -> ssize_t;
    sendto: fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
    sendmsg: fn(c_int, *const msghdr, c_int) -> ssize_t;
    accept: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    accept4: fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    connect: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    poll: fn(*mut pollfd, nfds_t, c_int) -> c_int;
    ppoll: fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int;
    select: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int;
    pselect: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *const timespec, *const sigset_t) -> c_int;
    epoll_wait: fn(c_int, *mut epoll_event, c_int, c_int) -> c_int;
    epoll_pwait: fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int;
    sleep: fn(u32) -> u32;
    usleep: fn(libc::useconds_t) -> c_int;
    nanosleep: fn(*const timespec, *mut timespec) -> c_int;
    clock_nanosleep: fn(libc::clockid_t, c_int, *const timespec, *mut timespec) -> c_int;
    getaddrinfo: fn(*const c_char, *const c_char, *const addrinfo, *mut *mut addrinfo) -> c_int;
    gethostbyname: fn(*const c_char) -> *mut hostent;
    gethostbyname_r: fn(*const c_char, *mut hostent, *mut c_char, size_t, *mut *mut hostent, *mut c_int) -> c_int;
    close: fn(c_int) -> c_int;
    fcntl: fn(c_int, c_int, libc::c_ulong) -> c_int;
    dup: fn(c_int) -> c_int;
    dup2: fn(c_int, c_int) -> c_int;
    dup3: fn(c_int, c_int, c_int) -> c_int;
    socket: fn(c_int, c_int, c_int) -> c_int;
    socketpair: fn(c_int, c_int, c_int, *mut c_int) -> c_int;
    pipe2: fn(*mut c_int, c_int) -> c_int;
    dlopen: fn(*const c_char, c_int) -> *mut c_void;
    sigaction: fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
    __read_chk: fn(c_int, *mut c_void, size_t, size_t) -> ssize_t;
    __recv_chk: fn(c_int, *mut c_void, size_t, size_t, c_int) -> ssize_t;
    __recvfrom_chk: fn(c_int, *mut c_void, size_t, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    __poll_chk: fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int;
    __ppoll_chk: fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t, size_t) -> c_int;
}
