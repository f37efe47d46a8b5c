//! Network helpers over the cooperative fd operations (gevent's `_tcp_listener` and
//! `socket.create_connection`): addresses as strings, a listening socket in one call, a
//! connect that tries each resolved address.
//!
//! Address strings (`parse`):
//! * `"host:port"`, `"[v6addr]:port"`, `":port"` / `"*:port"` (every interface; for
//!   `listen` only). `port` is a number or a service name (`"http"`).
//! * `"unix:/path"`, `"/path"`, `"./path"` (a Unix socket path), `"@name"` /
//!   `"unix:@name"` (Linux abstract namespace).
//!
//! Numeric hosts and ports never block; a host or service name is resolved with
//! getaddrinfo on the hub's thread pool (`Hub::getaddrinfo`), so only the caller waits.

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::io::errno;
use std::ffi::{c_void, CString};
use std::net::IpAddr;

/// gh_listen flags (the C constants live in ffi/net.rs).
pub(crate) const LISTEN_REUSEPORT: i32 = 1;
pub(crate) const LISTEN_UNLINK: i32 = 2;
pub(crate) const LISTEN_UDP: i32 = 4;

/// The most resolved addresses `listen` and `connect_to` try.
const MAX_ADDRS: usize = 8;

/// A parsed address string, borrowing from it (nothing of it is on the heap: a greenlet
/// may be discarded while it waits with one on its stack).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Addr<'a> {
    /// A Unix socket path; a leading '@': the abstract namespace.
    Unix(&'a [u8]),
    /// A host (None: every interface) and a port or service name.
    Inet {
        host: Option<&'a str>,
        port: &'a str,
    },
}

/// A socket address ready for bind/connect.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl SockAddr {
    pub fn family(&self) -> i32 {
        self.storage.ss_family as i32
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }
}

/// Parses an address string (see the module doc). `EINVAL` when malformed,
/// `ENAMETOOLONG` for a Unix path longer than `sun_path`.
pub(crate) fn parse(s: &str) -> Result<Addr<'_>> {
    fn unix(p: &str) -> Result<Addr<'_>> {
        if p.is_empty() || p.contains('\0') {
            return Err(Error::INVAL);
        }
        let b = p.as_bytes();
        // sun_path is 108 bytes: a path needs its NUL; an abstract name does not.
        let max = 108 - usize::from(b[0] != b'@');
        if b.len() > max {
            return Err(Error(-libc::ENAMETOOLONG));
        }
        Ok(Addr::Unix(b))
    }
    if let Some(p) = s.strip_prefix("unix:") {
        return unix(p);
    }
    if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s.starts_with('@') {
        return unix(s);
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or(Error::INVAL)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Error::INVAL);
        }
        (Some(h), p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or(Error::INVAL)?;
        if h.contains(':') {
            return Err(Error::INVAL); // an IPv6 address needs brackets
        }
        (Some(h).filter(|h| !h.is_empty() && *h != "*"), p)
    };
    if port.is_empty() || port.contains('\0') || host.is_some_and(|h| h.contains('\0')) {
        return Err(Error::INVAL);
    }
    Ok(Addr::Inet { host, port })
}

fn from_ip(ip: IpAddr, port: u16) -> SockAddr {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from(v4).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    SockAddr {
        storage,
        len: len as libc::socklen_t,
    }
}

fn from_unix(path: &[u8]) -> SockAddr {
    // SAFETY: plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_un.
    let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sun.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let abstract_ns = path[0] == b'@';
    if abstract_ns {
        sun.sun_path[0] = 0;
    }
    // A path's length counts its NUL; an abstract name's is exactly its bytes.
    let base = std::mem::size_of::<libc::sa_family_t>();
    let len = base + path.len() + usize::from(!abstract_ns);
    SockAddr {
        storage,
        len: len as libc::socklen_t,
    }
}

impl Hub {
    /// The socket addresses of `addr` for `socktype`: numeric ones at once, names through
    /// getaddrinfo on the thread pool. `passive`: a missing host means every interface.
    pub(crate) fn resolve(
        &self,
        addr: &Addr,
        socktype: i32,
        passive: bool,
    ) -> Result<Vec<SockAddr>> {
        let (host, port) = match addr {
            Addr::Unix(p) => return Ok(vec![from_unix(p)]),
            Addr::Inet { host, port } => (*host, *port),
        };
        let ip = match host {
            None if passive => Some(IpAddr::from([0u8, 0, 0, 0])),
            None => return Err(Error::INVAL),
            Some(h) => h.parse::<IpAddr>().ok(),
        };
        if let (Some(ip), Ok(port)) = (ip, port.parse::<u16>()) {
            return Ok(vec![from_ip(ip, port)]);
        }
        // SAFETY: addrinfo is plain data; all-zero is valid hints.
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_socktype = socktype;
        hints.ai_family = libc::AF_UNSPEC;
        hints.ai_flags = if passive {
            libc::AI_PASSIVE
        } else {
            libc::AI_ADDRCONFIG
        };
        let node = host.map(CString::new).transpose();
        let service = CString::new(port);
        let (Ok(node), Ok(service)) = (node, service) else {
            return Err(Error::INVAL);
        };
        let list = self.getaddrinfo(node, Some(service), Some(hints))?;
        let mut out = Vec::new();
        let mut p = list;
        while !p.is_null() {
            // SAFETY: p walks the list getaddrinfo returned, freed below.
            let ai = unsafe { &*p };
            let len = ai.ai_addrlen as usize;
            if !ai.ai_addr.is_null() && len <= std::mem::size_of::<libc::sockaddr_storage>() {
                // SAFETY: plain data; all-zero is valid.
                let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                // SAFETY: ai_addr is readable for ai_addrlen bytes, which fit in storage.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        ai.ai_addr as *const u8,
                        &mut storage as *mut _ as *mut u8,
                        len,
                    )
                };
                out.push(SockAddr {
                    storage,
                    len: len as libc::socklen_t,
                });
            }
            p = ai.ai_next;
        }
        // SAFETY: the list came from getaddrinfo and is freed once.
        unsafe { libc::freeaddrinfo(list) };
        if out.is_empty() {
            return Err(Error(crate::error::EAI_BASE + libc::EAI_NONAME));
        }
        Ok(out)
    }

    /// `resolve`, its first `MAX_ADDRS` addresses copied into an array: plain data that
    /// may sit on a greenlet's stack across a switch (a heap `Vec` there would leak if
    /// the hub were destroyed while the greenlet waits in a connect).
    fn resolve_fixed(
        &self,
        addr: &Addr,
        socktype: i32,
        passive: bool,
    ) -> Result<([SockAddr; MAX_ADDRS], usize)> {
        let v = self.resolve(addr, socktype, passive)?;
        // SAFETY: plain data; all-zero is valid.
        let storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut out = [SockAddr { storage, len: 0 }; MAX_ADDRS];
        let n = v.len().min(MAX_ADDRS);
        out[..n].copy_from_slice(&v[..n]);
        Ok((out, n))
    }

    /// A new non-blocking, close-on-exec socket (EMFILE and the like give the hub a turn).
    fn socket(&self, family: i32, socktype: i32) -> Result<i32> {
        let ty = socktype | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain syscall.
        let fd = unsafe { libc::socket(family, ty, 0) };
        if fd < 0 {
            return Err(self.turn_then(Error(-errno())));
        }
        Ok(fd)
    }

    /// gh_listen: a bound (and, for streams, listening) socket on `address`; the first
    /// resolved address that works wins, else the last error.
    pub fn listen(&self, address: &str, backlog: i32, flags: i32) -> Result<i32> {
        if flags & !(LISTEN_REUSEPORT | LISTEN_UNLINK | LISTEN_UDP) != 0 {
            return Err(Error::INVAL);
        }
        let addr = parse(address)?;
        let socktype = if flags & LISTEN_UDP != 0 {
            libc::SOCK_DGRAM
        } else {
            libc::SOCK_STREAM
        };
        let backlog = if backlog <= 0 {
            libc::SOMAXCONN
        } else {
            backlog
        };
        let mut last = Error::INVAL;
        let (list, n) = self.resolve_fixed(&addr, socktype, true)?;
        for sa in &list[..n] {
            let fd = self.socket(sa.family(), socktype)?;
            match bind_listen(fd, sa, &addr, socktype, backlog, flags) {
                Ok(()) => return Ok(fd),
                Err(e) => {
                    // SAFETY: closes the socket created above (never waited on).
                    unsafe { libc::close(fd) };
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// gh_connect_to: resolves `address` and connects a new stream socket to each address
    /// in turn (each attempt with `timeout`) until one works; returns the connected fd.
    pub fn connect_to(&self, address: &str, timeout: Option<u64>) -> Result<i32> {
        let addr = parse(address)?;
        let mut last = Error(-libc::ECONNREFUSED);
        let (list, n) = self.resolve_fixed(&addr, libc::SOCK_STREAM, false)?;
        for sa in &list[..n] {
            let fd = self.socket(sa.family(), libc::SOCK_STREAM)?;
            // SAFETY: sa is a valid sockaddr of sa.len bytes.
            match unsafe { self.connect(fd, sa.as_ptr(), sa.len, timeout) } {
                Ok(()) => return Ok(fd),
                Err(e) => {
                    let _ = self.close_fd(fd);
                    // Only a failure of this address moves on to the next one; a kill,
                    // a throw, a hub callback (EPERM) or a library error ends the call.
                    let os = -e.0;
                    if e.0 < -1000 || matches!(os, libc::ECANCELED | libc::EPERM | libc::EINVAL) {
                        return Err(e);
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }
}

fn setopt(fd: i32, level: i32, name: i32, v: i32) -> Result<()> {
    // SAFETY: v is a live int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Error(-errno()));
    }
    Ok(())
}

fn bind_listen(
    fd: i32,
    sa: &SockAddr,
    addr: &Addr,
    socktype: i32,
    backlog: i32,
    flags: i32,
) -> Result<()> {
    if sa.family() != libc::AF_UNIX {
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if flags & LISTEN_REUSEPORT != 0 {
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if let (Addr::Unix(path), true) = (addr, flags & LISTEN_UNLINK != 0) {
        if path[0] != b'@' {
            unlink_stale_socket(path);
        }
    }
    // SAFETY: sa is a valid sockaddr of sa.len bytes.
    if unsafe { libc::bind(fd, sa.as_ptr(), sa.len) } < 0 {
        return Err(Error(-errno()));
    }
    // SAFETY: plain syscall.
    if socktype == libc::SOCK_STREAM && unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(Error(-errno()));
    }
    Ok(())
}

/// Removes `path` if it is a socket (a previous server's leftover); anything else stays.
fn unlink_stale_socket(path: &[u8]) {
    let Ok(c) = CString::new(path) else { return };
    // SAFETY: plain data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; st is a valid out-parameter.
    if unsafe { libc::lstat(c.as_ptr(), &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    {
        // SAFETY: as above.
        unsafe { libc::unlink(c.as_ptr()) };
    }
}

/// Formats a socket address as an address string `parse` reads back: `"1.2.3.4:80"`,
/// `"[::1]:80"`, `"unix:/path"`, `"unix:@name"`, `"unix:"` (unnamed).
pub(crate) fn format(sa: &libc::sockaddr_storage, len: libc::socklen_t) -> Result<String> {
    let len = len as usize;
    match sa.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says sockaddr_in; storage is large and aligned enough.
            let sin = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(format!("{ip}:{}", u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(format!("[{ip}]:{}", u16::from_be(sin6.sin6_port)))
        }
        libc::AF_UNIX => {
            // SAFETY: as above, sockaddr_un.
            let sun = unsafe { &*(sa as *const _ as *const libc::sockaddr_un) };
            let base = std::mem::size_of::<libc::sa_family_t>();
            let n = len.saturating_sub(base).min(sun.sun_path.len());
            let bytes: Vec<u8> = sun.sun_path[..n].iter().map(|c| *c as u8).collect();
            if bytes.is_empty() {
                return Ok("unix:".into());
            }
            if bytes[0] == 0 {
                return Ok(format!("unix:@{}", String::from_utf8_lossy(&bytes[1..])));
            }
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            Ok(format!("unix:{}", String::from_utf8_lossy(&bytes[..end])))
        }
        _ => Err(Error(-libc::EAFNOSUPPORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_addresses() {
        let inet = |host, port| Addr::Inet { host, port };
        assert_eq!(parse("127.0.0.1:80"), Ok(inet(Some("127.0.0.1"), "80")));
        assert_eq!(parse("localhost:http"), Ok(inet(Some("localhost"), "http")));
        assert_eq!(parse("[::1]:8080"), Ok(inet(Some("::1"), "8080")));
        assert_eq!(parse(":80"), Ok(inet(None, "80")));
        assert_eq!(parse("*:80"), Ok(inet(None, "80")));
        assert_eq!(parse("unix:/tmp/x"), Ok(Addr::Unix(b"/tmp/x")));
        assert_eq!(parse("/tmp/x"), Ok(Addr::Unix(b"/tmp/x")));
        assert_eq!(parse("@abs"), Ok(Addr::Unix(b"@abs")));
        for bad in [
            "", "80", "::1:80", "[::1]80", "[zz]:80", "host:", "unix:", "[::1]:",
        ] {
            assert_eq!(parse(bad), Err(Error::INVAL), "{bad:?}");
        }
        let long = format!("/{}", "x".repeat(200));
        assert_eq!(parse(&long), Err(Error(-libc::ENAMETOOLONG)));
    }

    #[test]
    fn format_round_trips() {
        for s in ["127.0.0.1:80", "[::1]:8080", "unix:/tmp/sock", "unix:@abs"] {
            let sa = match parse(s).unwrap() {
                Addr::Unix(p) => from_unix(p),
                Addr::Inet { host, port } => {
                    from_ip(host.unwrap().parse().unwrap(), port.parse().unwrap())
                }
            };
            assert_eq!(format(&sa.storage, sa.len).unwrap(), s);
        }
    }
}
