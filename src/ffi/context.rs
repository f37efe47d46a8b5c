//! Header section "Hub", continued: where the calling code runs. For code that decides
//! at run time whether it may park the caller — the cooperative libc
//! (`libgreenhub_patch.so`) asks this on every interposed call.

use super::guard;
use crate::hub;
use std::ffi::c_int;

/// gh_hub_context: this thread has no hub (no greenhub call made it one yet).
pub const GH_CONTEXT_NONE: c_int = 0;
/// gh_hub_context: the caller is this thread's main greenlet, outside the hub.
pub const GH_CONTEXT_MAIN: c_int = 1;
/// gh_hub_context: the caller is a spawned greenlet.
pub const GH_CONTEXT_GREENLET: c_int = 2;
/// gh_hub_context: the caller runs in the hub (the loop itself, a watcher callback, a
/// gh_run_callback function, greenhub's own code): it must not block.
pub const GH_CONTEXT_HUB: c_int = 3;

/// Where the calling code runs: GH_CONTEXT_NONE (the thread has no hub),
/// GH_CONTEXT_MAIN, GH_CONTEXT_GREENLET (both may make blocking greenhub calls) or
/// GH_CONTEXT_HUB (they would return GH_EPERM). Never creates a hub, never switches.
///
/// *Threads*: any thread; answers for the calling thread. *Blocking*: never; allowed in
/// a hub callback. *Errors*: GH_EINTERNAL only (a bug).
#[no_mangle]
pub extern "C" fn gh_hub_context() -> c_int {
    guard(|| {
        Ok(match hub::existing() {
            None => GH_CONTEXT_NONE,
            Some(h) => {
                let cur = h.current.get();
                if cur == h.hub_slot {
                    GH_CONTEXT_HUB
                } else if cur == h.main_slot {
                    GH_CONTEXT_MAIN
                } else {
                    GH_CONTEXT_GREENLET
                }
            }
        })
    })
}
