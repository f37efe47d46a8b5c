//! The cell around a hub's state (issue 12, item 4).
//!
//! The discipline every use of `Hub::st` follows (the module rule of `hub`): a borrow is
//! short, never held across a switch (`suspend`/`resume`) and never across a call into C
//! (a watcher callback, a user function, a trace hook), so no two borrows of one hub's
//! state overlap unless one is shared and the other is too.
//!
//! * **Checked builds** (debug builds: `cargo test`, the fuzzer; and the sanitizer builds:
//!   the `sanitizer` and `tsan` features) keep `RefCell`'s full check, so a borrow that
//!   breaks the rule panics where it happens, in tests; the debug and ASan builds also
//!   check that borrows end innermost first, which the release build's flag relies on.
//! * **Release builds** keep one flag, `busy`: set while any borrow is alive (a borrow
//!   remembers the value it found and puts it back, so nested shared borrows are exact),
//!   with no check on the way in. The flag is the cheap re-entry guard the FFI asks
//!   (`HubCell::is_busy`): a gh_* call that finds the state borrowed was made by a signal
//!   handler that interrupted greenhub, and gets `GH_EPERM` instead of a second borrow.
//!   `try_borrow*` (the monitor's signal handler) honour it too.

#[cfg(not(any(debug_assertions, feature = "sanitizer", feature = "tsan")))]
mod imp {
    use std::cell::{Cell, UnsafeCell};
    use std::ops::{Deref, DerefMut};

    /// The hub state's cell (release build: a busy flag, no borrow check).
    pub struct HubCell<T> {
        busy: Cell<bool>,
        value: UnsafeCell<T>,
    }

    /// A borrow of the state; puts the busy flag back as it found it when dropped.
    pub struct Guard<'a, T> {
        cell: &'a HubCell<T>,
        prev: bool,
    }

    /// The state is borrowed (`try_borrow*`).
    #[derive(Debug)]
    pub struct Busy;

    impl<T> HubCell<T> {
        pub fn new(value: T) -> Self {
            HubCell {
                busy: Cell::new(false),
                value: UnsafeCell::new(value),
            }
        }

        #[inline(always)]
        pub fn borrow(&self) -> Guard<'_, T> {
            Guard {
                cell: self,
                prev: self.busy.replace(true),
            }
        }

        #[inline(always)]
        pub fn borrow_mut(&self) -> Guard<'_, T> {
            self.borrow()
        }

        #[inline]
        pub fn try_borrow(&self) -> Result<Guard<'_, T>, Busy> {
            if self.busy.get() {
                return Err(Busy);
            }
            Ok(self.borrow())
        }

        #[inline]
        pub fn try_borrow_mut(&self) -> Result<Guard<'_, T>, Busy> {
            self.try_borrow()
        }

        /// True while any borrow is alive.
        #[inline(always)]
        pub fn is_busy(&self) -> bool {
            self.busy.get()
        }

        pub fn get_mut(&mut self) -> &mut T {
            self.value.get_mut()
        }
    }

    impl<T> Drop for Guard<'_, T> {
        #[inline(always)]
        fn drop(&mut self) {
            self.cell.busy.set(self.prev);
        }
    }

    impl<T> Deref for Guard<'_, T> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            // SAFETY: the module discipline (see the module comment): no borrow of this
            // state is held across a switch or a call into C, and no code path takes a
            // mutable borrow while another borrow is alive — checked builds verify it
            // with RefCell under the whole test suite and the fuzzer. The cell is !Sync
            // (UnsafeCell), so only this thread reaches it.
            unsafe { &*self.cell.value.get() }
        }
    }

    impl<T> DerefMut for Guard<'_, T> {
        #[inline(always)]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as in `deref`: this guard is the only live borrow when it is used
            // mutably (the discipline, checked in checked builds).
            unsafe { &mut *self.cell.value.get() }
        }
    }
}

#[cfg(any(debug_assertions, feature = "sanitizer"))]
mod imp {
    use std::cell::{Cell, Ref, RefCell, RefMut};
    use std::ops::{Deref, DerefMut};

    /// The hub state's cell (checked build: a RefCell, and a depth that checks borrows
    /// end in the reverse order they began — what the release build's busy flag relies
    /// on, and what RefCell alone allows to break for shared borrows).
    pub struct HubCell<T> {
        cell: RefCell<T>,
        depth: Cell<u32>,
    }

    pub use std::cell::BorrowError as Busy;

    /// A borrow (`G`: RefCell's guard) that must end innermost first.
    pub struct Lifo<'a, G> {
        guard: G,
        depth: &'a Cell<u32>,
        index: u32,
    }

    impl<'a, G> Lifo<'a, G> {
        fn new(guard: G, depth: &'a Cell<u32>) -> Self {
            let index = depth.get();
            depth.set(index + 1);
            Lifo {
                guard,
                depth,
                index,
            }
        }
    }

    impl<G> Drop for Lifo<'_, G> {
        #[inline]
        fn drop(&mut self) {
            if self.depth.get() != self.index + 1 {
                out_of_order();
            }
            self.depth.set(self.index);
        }
    }

    /// Out of line: a panic's formatting inlined into every guard's drop made the frames
    /// of the TSan build large enough to overflow a 16 KiB greenlet stack.
    #[cold]
    #[inline(never)]
    fn out_of_order() -> ! {
        panic!("hub state borrows ended out of order (the release build's busy flag needs them nested)");
    }

    impl<G: Deref> Deref for Lifo<'_, G> {
        type Target = G::Target;
        fn deref(&self) -> &G::Target {
            &self.guard
        }
    }

    impl<G: DerefMut> DerefMut for Lifo<'_, G> {
        fn deref_mut(&mut self) -> &mut G::Target {
            &mut self.guard
        }
    }

    impl<T> HubCell<T> {
        pub fn new(value: T) -> Self {
            HubCell {
                cell: RefCell::new(value),
                depth: Cell::new(0),
            }
        }

        #[track_caller]
        pub fn borrow(&self) -> Lifo<'_, Ref<'_, T>> {
            Lifo::new(self.cell.borrow(), &self.depth)
        }

        #[track_caller]
        pub fn borrow_mut(&self) -> Lifo<'_, RefMut<'_, T>> {
            Lifo::new(self.cell.borrow_mut(), &self.depth)
        }

        pub fn try_borrow(&self) -> Result<Lifo<'_, Ref<'_, T>>, Busy> {
            self.cell.try_borrow().map(|g| Lifo::new(g, &self.depth))
        }

        pub fn try_borrow_mut(&self) -> Result<Lifo<'_, RefMut<'_, T>>, std::cell::BorrowMutError> {
            self.cell
                .try_borrow_mut()
                .map(|g| Lifo::new(g, &self.depth))
        }

        /// True while any borrow is alive.
        pub fn is_busy(&self) -> bool {
            self.cell.try_borrow_mut().is_err()
        }

        pub fn get_mut(&mut self) -> &mut T {
            self.cell.get_mut()
        }
    }
}

/// The ThreadSanitizer build (`tsan` feature, release profile): a plain RefCell, without
/// the innermost-first check — with that check this build crashed in TSan's fiber
/// instrumentation (`__tsan_func_entry` on a new greenlet's first frame, not understood
/// yet); the debug and ASan builds keep it.
#[cfg(all(feature = "tsan", not(any(debug_assertions, feature = "sanitizer"))))]
mod imp {
    use std::cell::{Ref, RefCell, RefMut};

    /// The hub state's cell (TSan build: a RefCell).
    pub struct HubCell<T>(RefCell<T>);

    pub use std::cell::BorrowError as Busy;

    impl<T> HubCell<T> {
        pub fn new(value: T) -> Self {
            HubCell(RefCell::new(value))
        }

        #[track_caller]
        pub fn borrow(&self) -> Ref<'_, T> {
            self.0.borrow()
        }

        #[track_caller]
        pub fn borrow_mut(&self) -> RefMut<'_, T> {
            self.0.borrow_mut()
        }

        pub fn try_borrow(&self) -> Result<Ref<'_, T>, Busy> {
            self.0.try_borrow()
        }

        pub fn try_borrow_mut(&self) -> Result<RefMut<'_, T>, std::cell::BorrowMutError> {
            self.0.try_borrow_mut()
        }

        /// True while any borrow is alive.
        pub fn is_busy(&self) -> bool {
            self.0.try_borrow_mut().is_err()
        }

        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
    }
}

pub use imp::HubCell;

#[cfg(test)]
mod tests {
    use super::HubCell;

    #[test]
    #[cfg(any(debug_assertions, feature = "sanitizer"))]
    #[should_panic(expected = "out of order")]
    fn checked_builds_refuse_borrows_ending_out_of_order() {
        let c = HubCell::new(1u32);
        let a = c.borrow();
        let b = c.borrow();
        drop(a);
        drop(b);
    }

    #[test]
    fn busy_while_borrowed_and_after_nested_shared_borrows() {
        let c = HubCell::new(5u32);
        assert!(!c.is_busy());
        {
            let a = c.borrow();
            assert!(c.is_busy());
            {
                let b = c.borrow();
                assert_eq!(*a + *b, 10);
            }
            // Still borrowed by `a`.
            assert!(c.is_busy());
            assert!(c.try_borrow_mut().is_err());
        }
        assert!(!c.is_busy());
        *c.borrow_mut() += 1;
        assert_eq!(*c.try_borrow().expect("free"), 6);
    }
}
