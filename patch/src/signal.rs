//! Signal handlers: a blocking call made from a signal handler must stay plain libc
//! (parking would switch stacks under the interrupted code).
//! Placeholder until handlers are wrapped: reports "not in a handler".

/// True while a signal handler installed through the patch runs on this thread.
#[inline(always)]
pub fn in_handler() -> bool {
    false
}
