//! The process's allocator at run time: mimalloc 2, the global allocator of `src/main.rs`, and how long it keeps
//! memory freed by the job before it returns it to the system (its `purge_delay`, mimalloc's `mimalloc.h` and
//! "Environment Options" of its README: `MIMALLOC_PURGE_DELAY`, default 10 ms in mimalloc 2).
//!
//! A delay trades page faults (CPU) for peak RSS: on the page-view bench log (2M lines, `-w 2`) this job's delay of
//! 0, set here at start, measured 53.5–54.7 instead of 69.4–72.5 MiB of peak RSS in 2.02–2.05 instead of
//! 1.80–1.94 s (3 alternating runs each); on the alerts bench file (2M events) mimalloc 3 with a 10 ms delay
//! instead of its 1 s peaked at 337 instead of 430 MiB, and took 3.49 instead of 3.04 s. So a job whose answer is its
//! memory (the page-view job's, whose state is small) purges at once, and one whose answer is its throughput (the
//! alerts job) keeps the default. The environment variable, when set, wins over both.

/// mimalloc's `mi_option_purge_delay`: in mimalloc 2's `mimalloc.h` the option after `mi_option_eager_commit_delay`
/// (14), which the Rust bindings (`libmimalloc-sys` 0.1.49) name while they do not name this one.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// The environment variable that sets the delay for the whole process (read by mimalloc at start).
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// How long (ms) mimalloc keeps freed memory before it returns it to the system: 0 at once, −1 never.
#[allow(clippy::useless_conversion)] // c_long: i64 on 64-bit Linux, i32 on other targets
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads one of mimalloc's options (an array indexed by the option, bounds-checked by mimalloc).
    i64::from(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) })
}

/// Sets the purge delay (ms, see [`purge_delay_ms`]) for the rest of the process, unless [`PURGE_DELAY_ENV`] is
/// set (the user's choice wins); returns the delay in effect. mimalloc reads the option at each purge it
/// schedules, so the new value applies from the next one.
pub fn set_purge_delay_ms(ms: i64) -> i64 {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        // SAFETY: sets one of mimalloc's options (an atomic store in mimalloc).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, ms as std::ffi::c_long) };
    }
    purge_delay_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is mimalloc 2's purge delay: its default is 10 ms (`eager_commit_delay`, the option before
    /// it, defaults to 1 or 0), and a value set is read back.
    #[test]
    fn the_purge_delay_option() {
        if std::env::var_os(PURGE_DELAY_ENV).is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 10, "mimalloc 2's default purge delay");
        assert_eq!(set_purge_delay_ms(0), 0);
        assert_eq!(set_purge_delay_ms(10), 10);
    }
}
