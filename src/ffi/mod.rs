//! The C ABI: `extern "C"` functions only. Each body has the same three steps
//! (rustls-ffi's shape): enter the panic boundary, turn raw arguments into checked
//! Rust values (or return a code), call the core and map the result. No logic here.
//!
//! Files mirror the sections of `include/greenhub.h`, in the same order.

#![allow(non_camel_case_types)]

pub mod backend;
pub mod context;
pub mod debug;
pub mod error;
pub mod greenlet;
pub mod hub;
pub mod io;
pub mod io_ext;
pub mod local;
pub mod net;
pub mod pool;
pub mod server;
pub mod stream;
pub mod sync;
pub mod threadpool;
pub mod wait_many;
pub mod watcher;
// Last in the header: diagnostics.
pub mod diag;

use crate::error::{Error, Result, EINTERNAL};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A greenlet handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_greenlet {
    pub id: u64,
}

/// A watcher handle (a value; the id encodes hub, slot and generation).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_watcher {
    pub id: u64,
}

/// A reference to a thread's hub (a value).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct gh_hub_ref {
    pub id: u64,
}

/// The panic boundary for functions returning `int`.
#[inline(always)]
pub(crate) fn guard(f: impl FnOnce() -> Result<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(|| crate::error::no_foreign_unwind(f))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => e.code(),
        Err(_) => EINTERNAL,
    }
}

/// The panic boundary for functions returning `ssize_t`.
#[inline(always)]
pub(crate) fn guard_ssize(f: impl FnOnce() -> Result<isize>) -> libc::ssize_t {
    match catch_unwind(AssertUnwindSafe(|| crate::error::no_foreign_unwind(f))) {
        Ok(Ok(n)) => n as libc::ssize_t,
        Ok(Err(e)) => e.code() as libc::ssize_t,
        Err(_) => EINTERNAL as libc::ssize_t,
    }
}

/// Writes `v` through an out-pointer that may be NULL only if `optional`.
///
/// # Safety
/// `out` must be NULL or valid for writes of `T`.
#[inline(always)]
pub(crate) unsafe fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: non-null and valid for writes per this function's contract.
        unsafe { out.write(v) };
    }
}

/// `EINVAL` for a NULL required pointer.
#[inline(always)]
pub(crate) fn need<T>(p: *const T) -> Result<()> {
    if p.is_null() {
        Err(Error::INVAL)
    } else {
        Ok(())
    }
}
