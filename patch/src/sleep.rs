//! The sleep family: sleep, usleep, nanosleep, clock_nanosleep park the caller on the
//! hub (gh_sleep) instead of the thread. A zero duration yields (gh_sleep(0)). A kill
//! or a gh_timeout ends the sleep early like a signal would: the time not slept is
//! reported where libc reports it, with errno ECANCELED/ETIMEDOUT.

use crate::gh::{self, set_errno, Gh, Stop};
use crate::real;
use libc::{c_int, c_uint, clockid_t, timespec};

fn may_park() -> Option<&'static Gh> {
    gh::parkable().filter(|_| !crate::signal::in_handler())
}

/// Sleeps `secs` cooperatively: Ok, or the stop with the seconds not slept.
fn nap(g: &Gh, secs: f64) -> Result<(), (Stop, f64)> {
    if secs <= 0.0 {
        // SAFETY: a plain value; gh_sleep(0) yields to the other greenlets.
        let r = unsafe { (g.sleep)(0.0) };
        return if r == 0 {
            Ok(())
        } else {
            Err((gh::stop_of(r, None), 0.0))
        };
    }
    let d = gh::now() + secs;
    match gh::sleep_until(g, Some(d)) {
        Ok(()) | Err(Stop::Own) => Ok(()),
        Err(s) => Err((s, (d - gh::now()).max(0.0))),
    }
}

fn to_ts(secs: f64) -> timespec {
    timespec {
        tv_sec: secs.trunc() as _,
        tv_nsec: ((secs.fract() * 1e9) as i64).min(999_999_999) as _,
    }
}

/// sleep(3), cooperative: 0, or the whole seconds not slept (rounded up) when a kill
/// (errno ECANCELED) or a gh_timeout (ETIMEDOUT) ended it.
///
/// # Safety
/// None beyond sleep(3)'s.
#[no_mangle]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if let Some(g) = may_park() {
        match nap(g, secs as f64) {
            Ok(()) => return 0,
            Err((Stop::Errno(e), left)) => {
                set_errno(e);
                return (left.ceil() as c_uint).max(1);
            }
            Err(_) => {}
        }
    }
    // SAFETY: passed through.
    unsafe { real::sleep()(secs) }
}

/// usleep(3), cooperative: 0, or -1 with errno ECANCELED/ETIMEDOUT.
///
/// # Safety
/// None beyond usleep(3)'s.
#[no_mangle]
pub unsafe extern "C" fn usleep(usec: libc::useconds_t) -> c_int {
    if let Some(g) = may_park() {
        match nap(g, usec as f64 * 1e-6) {
            Ok(()) => return 0,
            Err((Stop::Errno(e), _)) => {
                set_errno(e);
                return -1;
            }
            Err(_) => {}
        }
    }
    // SAFETY: passed through.
    unsafe { real::usleep()(usec) }
}

fn valid(ts: &timespec) -> bool {
    ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec)
}

/// nanosleep(2), cooperative: 0, or -1 with errno ECANCELED/ETIMEDOUT and `*rem` the
/// time not slept.
///
/// # Safety
/// As nanosleep(2).
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    // SAFETY: req is NULL or the caller's timespec.
    if let (Some(ts), Some(g)) = (unsafe { req.as_ref() }, may_park()) {
        if valid(ts) {
            match nap(g, ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9) {
                Ok(()) => return 0,
                Err((Stop::Errno(e), left)) => {
                    // SAFETY: rem is NULL or the caller's timespec.
                    if let Some(rem) = unsafe { rem.as_mut() } {
                        *rem = to_ts(left);
                    }
                    set_errno(e);
                    return -1;
                }
                Err(_) => {}
            }
        }
    }
    // SAFETY: passed through.
    unsafe { real::nanosleep()(req, rem) }
}

/// clock_nanosleep(2), cooperative for the wall and monotonic clocks (relative or
/// TIMER_ABSTIME): 0, or the error number ECANCELED/ETIMEDOUT (and `*rem` for a
/// relative sleep). CPU-time clocks: plain libc.
///
/// # Safety
/// As clock_nanosleep(2).
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let ok_clock = matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME | libc::CLOCK_TAI
    );
    // SAFETY: req is NULL or the caller's timespec.
    if let (true, Some(ts), Some(g)) = (ok_clock, unsafe { req.as_ref() }, may_park()) {
        if valid(ts) {
            let mut secs = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
            let abs = flags & libc::TIMER_ABSTIME != 0;
            if abs {
                let mut now = timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: now is a valid out-pointer.
                unsafe { libc::clock_gettime(clock, &mut now) };
                secs -= now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9;
            }
            match nap(g, secs) {
                Ok(()) => return 0,
                Err((Stop::Errno(e), left)) => {
                    if !abs {
                        // SAFETY: rem is NULL or the caller's timespec.
                        if let Some(rem) = unsafe { rem.as_mut() } {
                            *rem = to_ts(left);
                        }
                    }
                    return e;
                }
                Err(_) => {}
            }
        }
    }
    // SAFETY: passed through.
    unsafe { real::clock_nanosleep()(clock, flags, req, rem) }
}
