//! Timely worker configuration from taxiflow's flags, which use timely's own names: `-w/--threads`,
//! `-n/--processes`, `-p/--process` and `--hostfile` (timely's `-h` would clash with `--help`).

use std::path::PathBuf;

use anyhow::{bail, Context};

/// The workers of a run: `peers` in all, `threads` per process; worker `w` is thread `w % threads` of process
/// `w / threads` (timely's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Workers of all processes.
    pub peers: usize,
    /// Workers per process.
    pub threads: usize,
}

impl Topology {
    /// The topology of `config`.
    pub fn of(config: &timely::Config) -> Topology {
        match &config.communication {
            timely::CommunicationConfig::Thread => Topology { peers: 1, threads: 1 },
            timely::CommunicationConfig::Process(n) | timely::CommunicationConfig::ProcessBinary(n) => Topology { peers: *n, threads: *n },
            timely::CommunicationConfig::Cluster { threads, addresses, .. } => Topology { peers: threads * addresses.len(), threads: *threads },
        }
    }

    /// Processes.
    pub fn processes(&self) -> usize {
        self.peers / self.threads.max(1)
    }
}

/// Worker flags of `taxiflow run`.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "threads", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,
    /// Number of processes of the cluster.
    #[arg(short = 'n', long = "processes", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub processes: u64,
    /// Index of this process, 0 to processes − 1.
    #[arg(short = 'p', long = "process", default_value_t = 0)]
    pub process: u64,
    /// File of `host:port` lines, one per process in process order (default: localhost:2101, 2102, …).
    #[arg(long = "hostfile")]
    pub hostfile: Option<PathBuf>,
}

impl WorkerArgs {
    /// The timely configuration: one thread, one process with threads, or a cluster.
    ///
    /// # Errors
    /// `--process` out of range, or a `--hostfile` that cannot be read or has fewer lines than `--processes`.
    pub fn timely_config(&self) -> anyhow::Result<timely::Config> {
        let threads = self.threads as usize;
        let processes = self.processes as usize;
        if self.process >= self.processes {
            bail!("--process {} must be less than --processes {}", self.process, self.processes);
        }
        let communication = if processes > 1 {
            let addresses: Vec<String> = match &self.hostfile {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("--hostfile {}: cannot read", path.display()))?;
                    let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).take(processes).collect();
                    if lines.len() < processes {
                        bail!("--hostfile {}: {} addresses for --processes {}", path.display(), lines.len(), processes);
                    }
                    lines
                }
                None => (0..processes).map(|i| format!("localhost:{}", 2101 + i)).collect(),
            };
            timely::CommunicationConfig::Cluster { threads, process: self.process as usize, addresses, report: false, zerocopy: false }
        } else if threads > 1 {
            timely::CommunicationConfig::Process(threads)
        } else {
            timely::CommunicationConfig::Thread
        };
        Ok(timely::Config { communication, worker: timely::WorkerConfig::default() })
    }
}
