//! ThreadSanitizer's view of greenlet switches (cargo feature `tsan`; scripts/tsan.sh).
//!
//! TSan keeps a shadow call stack and a clock per thread. A greenlet switch changes the
//! stack under it, so without help its shadow stack grows by every parked greenlet's
//! frames until it overflows (a crash after a few thousand parked greenlets), and the
//! frames it reports mix greenlets. TSan's fiber API fixes both: each task gets a fiber
//! (`__tsan_create_fiber`), every switch is announced (`__tsan_switch_to_fiber`, which
//! also orders the two fibers: everything before the switch happens before everything
//! after it), and a dead task's fiber goes (`__tsan_destroy_fiber`).
//!
//! All switches pass through `Hub::run_task` (the hub resumes a task; the task suspends
//! or returns back into it), so both announcements are made there, by the hub:
//!
//! ```text
//!   hub (thread's fiber F)         task (its fiber T)
//!   enter: F = current, switch to T
//!   resume ───────────────────────▶ runs ... suspend / return
//!   ◀────────────────────────────── (still announced as T)
//!   leave: switch to F
//! ```
//!
//! Announcing both on the hub's side keeps each fiber's shadow stack balanced however
//! corosensei's `resume`/`suspend` are inlined: the frames `resume` enters before the
//! stack switch and leaves after it are both counted on T, and T's `suspend` frames are
//! entered and left on T; the hub's fiber sees none of them. The price is that the few
//! instructions of `resume` around the stack switch are attributed to T — ordered with
//! the hub's own code by the two announcements, so no report can come of it. A task's
//! fiber is created on its first resume and destroyed with its coroutine
//! (`Greenlet::take_co`), always from the hub's side.
//!
//! Without the feature every function here is an empty inline stand-in.

#[cfg(feature = "tsan")]
mod imp {
    use std::ffi::{c_uint, c_void};

    extern "C" {
        fn __tsan_get_current_fiber() -> *mut c_void;
        fn __tsan_create_fiber(flags: c_uint) -> *mut c_void;
        fn __tsan_destroy_fiber(fiber: *mut c_void);
        fn __tsan_switch_to_fiber(fiber: *mut c_void, flags: c_uint);
    }

    /// A task's TSan fiber; null until its first resume.
    pub struct Fiber(*mut c_void);

    impl Fiber {
        /// No fiber yet.
        pub const fn none() -> Fiber {
            Fiber(std::ptr::null_mut())
        }

        /// The fiber, created on first use.
        pub fn get(&mut self) -> *mut c_void {
            if self.0.is_null() {
                // SAFETY: the TSan runtime is linked in (the feature requires it); flags 0.
                self.0 = unsafe { __tsan_create_fiber(0) };
            }
            self.0
        }

        /// Destroys the fiber (its task died or is discarded; it is not running).
        pub fn destroy(&mut self) {
            let f = std::mem::replace(&mut self.0, std::ptr::null_mut());
            if !f.is_null() {
                // SAFETY: `f` came from __tsan_create_fiber and is not the current fiber
                // (only the hub's side destroys, after `Switch::leave`).
                unsafe { __tsan_destroy_fiber(f) };
            }
        }
    }

    /// An announced switch into a task: `leave` announces the way back.
    pub struct Switch(*mut c_void);

    /// Announces the switch into the task whose fiber is `to`; returns the way back.
    #[inline]
    pub fn enter(to: *mut c_void) -> Switch {
        // SAFETY: plain calls into the TSan runtime; `to` is a live fiber.
        unsafe {
            let from = __tsan_get_current_fiber();
            __tsan_switch_to_fiber(to, 0);
            Switch(from)
        }
    }

    impl Switch {
        /// Announces the switch back to the hub (the task suspended or returned).
        #[inline]
        pub fn leave(self) {
            // SAFETY: `self.0` is the fiber that resumed the task, still alive.
            unsafe { __tsan_switch_to_fiber(self.0, 0) }
        }
    }
}

#[cfg(not(feature = "tsan"))]
mod imp {
    /// Without the `tsan` feature: nothing.
    pub struct Fiber;

    impl Fiber {
        #[inline(always)]
        pub const fn none() -> Fiber {
            Fiber
        }

        #[inline(always)]
        pub fn destroy(&mut self) {}
    }

    /// Without the `tsan` feature: nothing.
    pub struct Switch;

    impl Switch {
        #[inline(always)]
        pub fn leave(self) {}
    }
}

pub use imp::{Fiber, Switch};

impl crate::hub::Hub {
    /// Announces the hub's switch into task `slot` (creating its fiber on first use);
    /// `Switch::leave` announces the way back. Hub context only.
    #[cfg(feature = "tsan")]
    #[inline]
    pub(crate) fn tsan_enter(&self, slot: u32) -> Switch {
        let to = self
            .st
            .borrow_mut()
            .greenlets
            .at_mut(slot)
            .expect("resumed greenlet has a record")
            .tsan
            .get();
        imp::enter(to)
    }

    /// Without the `tsan` feature: nothing.
    #[cfg(not(feature = "tsan"))]
    #[inline(always)]
    pub(crate) fn tsan_enter(&self, _slot: u32) -> Switch {
        Switch
    }
}
