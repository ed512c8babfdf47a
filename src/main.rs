//! The `taxiflow` binary: parses the command line and runs it (see `taxiflow::cli`).

/// The process's allocator: mimalloc (Microsoft's, per-thread free lists) instead of glibc's malloc, which took
/// ~30% of the alert job's time in a perf profile (records, rows and their strings are allocated on one worker and
/// often freed on another after an exchange). Vector and Arroyo replace the system allocator for the same reason
/// (jemalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc v3's `include/mimalloc.h` (the 16th option; libmimalloc-sys has no constant
/// for it): how long freed memory stays committed before it is given back to the OS, ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is kept 1 s instead of mimalloc's 10 ms: with 10 ms, the rows buffered for a 5 s event-time bound
/// were given back and faulted in again, and the kernel's page clearing took a quarter of the alert job's time
/// (perf); with 1 s the job ran 10% faster at the same peak RSS.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

fn main() {
    // SAFETY: mi_option_set only stores the value; mimalloc reads this option each time it considers a purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = taxiflow::cli::main(std::env::args_os()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
