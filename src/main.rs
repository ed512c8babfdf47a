//! The `taxiflow` binary: parses the command line and runs it (see `taxiflow::cli`).

fn main() {
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
