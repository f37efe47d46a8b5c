//! Core behaviour through the crate's own API (each #[test] runs on its own thread,
//! hence its own hub).

#![allow(clippy::undocumented_unsafe_blocks)]
// Test code: every unsafe call passes valid pointers to the C API

use greenhub::ffi::error::*;
use greenhub::ffi::greenlet::*;
use greenhub::ffi::hub::*;
use greenhub::ffi::watcher::*;
use greenhub::ffi::{gh_greenlet, gh_watcher};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

unsafe extern "C" fn ret_arg(arg: *mut c_void) -> *mut c_void {
    arg
}

unsafe extern "C" fn sleep_then_ret(arg: *mut c_void) -> *mut c_void {
    if gh_sleep(0.01) != GH_OK {
        return ptr::null_mut();
    }
    arg
}

unsafe extern "C" fn sleep_forever(_: *mut c_void) -> *mut c_void {
    let rc = gh_sleep(-1.0);
    rc as isize as *mut c_void
}

#[test]
fn spawn_join_returns_result() {
    let mut g = gh_greenlet::default();
    unsafe {
        assert_eq!(
            gh_spawn(&mut g, Some(ret_arg), 42usize as *mut c_void),
            GH_OK
        );
        assert_eq!(gh_greenlet_state(g), GH_STATE_NEW);
        let mut r: *mut c_void = ptr::null_mut();
        assert_eq!(gh_join(g, -1.0, &mut r), GH_OK);
        assert_eq!(r as usize, 42);
        assert_eq!(gh_greenlet_state(g), GH_STATE_DEAD);
        assert_eq!(gh_release(g), GH_OK);
        assert_eq!(gh_release(g), GH_EBADHANDLE);
    }
    assert_eq!(gh_hub_destroy(), GH_OK);
}

#[test]
fn join_after_sleep_and_join_timeout() {
    let mut g = gh_greenlet::default();
    unsafe {
        assert_eq!(
            gh_spawn(&mut g, Some(sleep_then_ret), 7usize as *mut c_void),
            GH_OK
        );
        assert_eq!(gh_join(g, 0.0, ptr::null_mut()), GH_ETIMEDOUT);
        let mut r: *mut c_void = ptr::null_mut();
        assert_eq!(gh_join(g, 5.0, &mut r), GH_OK);
        assert_eq!(r as usize, 7);
    }
    assert_eq!(gh_hub_destroy(), GH_OK);
}

#[test]
fn loop_exit_when_nothing_can_wake_main() {
    assert_eq!(gh_sleep(-1.0), GH_ELOOPEXIT);
    let mut g = gh_greenlet::default();
    unsafe {
        assert_eq!(
            gh_spawn(&mut g, Some(sleep_forever), ptr::null_mut()),
            GH_OK
        );
        assert_eq!(gh_join(g, -1.0, ptr::null_mut()), GH_ELOOPEXIT);
        // Kill wakes it with ECANCELED, which it returns.
        let mut r: *mut c_void = ptr::null_mut();
        assert_eq!(gh_kill(g, 0.0), GH_OK);
        assert_eq!(gh_join(g, -1.0, &mut r), GH_OK);
        assert_eq!(r as isize as i32, GH_ECANCELED);
    }
    assert_eq!(gh_hub_destroy(), GH_OK);
}

#[test]
fn destroy_discards_parked_greenlets_and_handles_go_stale() {
    let mut gs = [gh_greenlet::default(); 4];
    for g in gs.iter_mut() {
        unsafe { assert_eq!(gh_spawn(g, Some(sleep_forever), ptr::null_mut()), GH_OK) };
    }
    assert_eq!(gh_sleep(0.0), GH_OK); // let them park
    assert_eq!(gh_greenlet_state(gs[0]), GH_STATE_WAITING);
    assert_eq!(gh_hub_destroy(), GH_OK);
    for g in gs {
        assert_eq!(gh_greenlet_state(g), GH_EBADHANDLE);
    }
    // A new hub works.
    let mut g = gh_greenlet::default();
    unsafe {
        assert_eq!(gh_spawn(&mut g, Some(ret_arg), ptr::null_mut()), GH_OK);
        assert_eq!(gh_join(g, -1.0, ptr::null_mut()), GH_OK);
    }
    assert_eq!(gh_hub_destroy(), GH_OK);
}

static FIRED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_and_sleep(w: gh_watcher, revents: i32, _: *mut c_void) {
    assert_eq!(revents, GH_TIMER);
    FIRED.fetch_add(1, Ordering::SeqCst);
    // Blocking in a callback is refused.
    assert_eq!(gh_sleep(0.0), GH_EPERM);
    assert_eq!(gh_watcher_stop(w), GH_OK);
}

#[test]
fn timer_callback_runs_in_hub_and_may_not_block() {
    let mut w = gh_watcher::default();
    unsafe {
        assert_eq!(gh_timer_new(&mut w, 0.001, 0.001), GH_OK);
        assert_eq!(
            gh_watcher_start(w, Some(count_and_sleep), ptr::null_mut()),
            GH_OK
        );
        assert_eq!(
            gh_watcher_start(w, Some(count_and_sleep), ptr::null_mut()),
            GH_EBUSY
        );
    }
    assert_eq!(gh_hub_run(), GH_OK);
    assert_eq!(FIRED.load(Ordering::SeqCst), 1);
    assert_eq!(gh_watcher_close(w), GH_OK);
    assert_eq!(gh_watcher_close(w), GH_EBADHANDLE);
    assert_eq!(gh_hub_destroy(), GH_OK);
}

#[test]
fn other_thread_handles_are_refused() {
    let mut g = gh_greenlet::default();
    unsafe { assert_eq!(gh_spawn(&mut g, Some(ret_arg), ptr::null_mut()), GH_OK) };
    let id = g.id;
    let code = std::thread::spawn(move || gh_greenlet_state(gh_greenlet { id }))
        .join()
        .unwrap();
    assert_eq!(code, GH_EWRONGTHREAD);
    assert_eq!(gh_hub_destroy(), GH_OK);
    assert_eq!(gh_greenlet_state(g), GH_EBADHANDLE);
}
