//! Crash loops: a job killed with SIGKILL again and again, at moments chosen by what its log shows (after its
//! N-th checkpoint commit since it started), never by a fraction of a measured run time, so the test behaves the
//! same on a fast and a busy machine.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills wanted per crash loop.
pub const KILLS: usize = 10;

/// The line every checkpoint commit logs (at `info`).
const COMMITTED: &str = "checkpoint committed";

/// How long one start may take to reach its commits before the test gives up (a hung job, not a slow one).
const PATIENCE: Duration = Duration::from_secs(180);

/// The last 40 lines of `log`.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Occurrences of `needle` in `log` after byte `from`.
fn count_after(log: &Path, from: u64, needle: &str) -> usize {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        use std::io::Seek;
        let _ = file.seek(std::io::SeekFrom::Start(from));
        let _ = file.read_to_string(&mut text);
    }
    text.matches(needle).count()
}

/// Runs `command(workers, last)` until it exits 0, killing it with SIGKILL [`KILLS`] times first. Each start draws
/// its worker count from 1–3 and a number of commits from 1–3 (seeded with `seed`); the job is killed once its log
/// shows that many checkpoint commits since it started, and a random 0–`jitter` later, so kills land anywhere
/// between two commits. `last` is true for the start that is not killed (e.g. to leave out a rate limit).
/// `after_kill(kills)` runs after each kill (to look at what the job left). Returns the worker counts used.
///
/// # Panics
/// A start that ends by itself before it is killed, does not reach its commits within 3 minutes, a last run that
/// fails, or fewer restores from a checkpoint than kills.
pub fn crash_loop(seed: u64, jitter: Duration, log: &Path, mut after_kill: impl FnMut(usize), mut command: impl FnMut(usize, bool) -> Command) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut workers_used = Vec::new();
    let mut kills = 0;
    loop {
        let workers = 1 + rng.usize(..3);
        workers_used.push(workers);
        let last = kills == KILLS;
        let from = std::fs::metadata(log).map_or(0, |m| m.len());
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = command(workers, last).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(Stdio::from(err)).spawn().expect("taxiflow starts");
        if last {
            let status = child.wait().unwrap();
            assert!(status.success(), "the last run failed ({status}); log: {}", tail(log));
            // Every restart resumed from a checkpoint (each start was killed after a commit), or, when the sink had
            // not committed the only checkpoint's epoch (Kafka transactions), from the beginning.
            let text = std::fs::read_to_string(log).unwrap();
            let restores = text.matches("restored checkpoint").count() + text.matches("nothing committed yet").count();
            assert!(restores >= KILLS, "only {restores} restarts restored a checkpoint; log: {}", tail(log));
            return workers_used;
        }
        let commits = 1 + rng.usize(..3);
        let started = Instant::now();
        while count_after(log, from, COMMITTED) < commits {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the job ended ({status}) after only {kills} kills; log: {}", tail(log));
            }
            assert!(started.elapsed() < PATIENCE, "no {commits} commits within {PATIENCE:?}; log: {}", tail(log));
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.u64(..=jitter.as_micros() as u64)));
        // SAFETY: signals our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = child.wait().unwrap();
        assert!(!status.success(), "the job ended by itself before it was killed ({status}); log: {}", tail(log));
        kills += 1;
        after_kill(kills);
    }
}
