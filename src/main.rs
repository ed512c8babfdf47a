//! The `taxiflow` binary: parses the command line and runs it (see `taxiflow::cli`).

/// The process's allocator: mimalloc (Microsoft's, per-thread free lists) instead of glibc's malloc, which took
/// ~30% of the alert job's time in a perf profile (records, rows and their strings are allocated on one worker and
/// often freed on another after an exchange). Vector and Arroyo replace the system allocator for the same reason
/// (jemalloc). Its version 2 (the crate's `v2` feature), not 3: version 3 keeps freed memory for 1 s before it
/// returns it to the system (`purge_delay` 1000 ms, against 10 ms), which measured, in one run of each alternately
/// on this machine, 79.5–87.0 instead of 69.4–73.8 MiB of peak RSS for the page-view bench log (`-w 2`) and
/// 397.4–403.3 instead of 353.3–370.2 MiB for the alerts bench file (`-w 2`), at the same speed (alerts: 3.77–3.85 s
/// against 3.29–4.44 s). A job may shorten the delay when it starts (`taxiflow::runtime::allocator`: the page-view
/// job, measured by its memory, purges at once).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // No transparent huge pages for this process (what MIMALLOC_ALLOW_THP=0 does at start): mimalloc purges freed
    // memory in small pieces, and on huge pages every purge and refault cleared 2 MiB. Measured on 2M device
    // events, `-w 1`: 2.3 s of system time (a quarter of the run, the kernel's clear_page) became 0.6 s, and peak
    // RSS 500 MB became 340 MB. The flag is checked at each page fault, so it also covers what was mapped before.
    // SAFETY: prctl with PR_SET_THP_DISABLE reads no memory; a kernel without it returns an error, ignored.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
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
