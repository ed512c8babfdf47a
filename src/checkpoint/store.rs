//! The checkpoint files of `--checkpoint-dir`: one `redb` database per checkpoint, `checkpoint-EPOCH.redb`.
//!
//! # Layout
//! Tables `meta` (`epoch`, `job`, `sink`, `created_ms`, `checksum`), `sources` (partition key → bincode
//! [`SourcePosition`]) and `windows` (`OPERATOR/WORKER` → bincode window state). `checksum` is the CRC-32 of
//! every other row (table, key, value, with lengths), in key order.
//!
//! # Atomicity
//! A checkpoint is written to `.checkpoint-EPOCH.redb.tmp`, committed (redb syncs the file), renamed, and the
//! directory is synced; only then are checkpoints older than the previous one removed, so the previous
//! complete checkpoint exists until the new one is complete. A leftover `.tmp` file is a checkpoint whose
//! writing was interrupted; it is removed with a warning.
//!
//! # Corruption
//! A file that redb cannot open (e.g. truncated) or whose checksum does not match (e.g. a flipped bit) is
//! skipped with a warning and the previous one is used. If checkpoint files exist but none is usable, [`load`]
//! fails: the job must not silently start from scratch (`--checkpoint-reset` starts over explicitly).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Checkpoint, SinkPosition, SourcePosition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
const WINDOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("windows");

/// Checkpoints kept: the newest complete one and the one before it.
pub const KEPT: usize = 2;

/// The checkpoint directory.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

/// What [`CheckpointStore::load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The newest usable checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoint files that could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn file_name(epoch: u64) -> String {
    format!("checkpoint-{epoch:012}.redb")
}

impl CheckpointStore {
    /// The store in `dir`, created if missing.
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory cannot be created.
    pub fn open(dir: &Path) -> anyhow::Result<CheckpointStore> {
        std::fs::create_dir_all(dir).with_context(|| format!("--checkpoint-dir: cannot create {}", dir.display()))?;
        Ok(CheckpointStore { dir: dir.to_path_buf() })
    }

    /// Complete checkpoint files, newest first, with their epochs.
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory cannot be read.
    pub fn files(&self) -> anyhow::Result<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).with_context(|| format!("--checkpoint-dir: cannot read {}", self.dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(epoch) = name.strip_prefix("checkpoint-").and_then(|n| n.strip_suffix(".redb")).and_then(|n| n.parse::<u64>().ok()) {
                files.push((epoch, path));
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(files)
    }

    /// Removes interrupted writes (`.tmp` files), then reads the newest checkpoint that opens and whose
    /// checksum matches, skipping (and reporting) newer ones that do not.
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory cannot be read.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                tracing::warn!(file = %path.display(), "removing an interrupted checkpoint write");
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut skipped = Vec::new();
        for (_, path) in self.files()? {
            match read(&path) {
                Ok(checkpoint) => return Ok(Loaded { checkpoint: Some(checkpoint), skipped }),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "checkpoint unusable, trying the previous one");
                    skipped.push((path, format!("{e:#}")));
                }
            }
        }
        Ok(Loaded { checkpoint: None, skipped })
    }

    /// Removes every checkpoint file (`--checkpoint-reset`).
    ///
    /// # Errors
    /// A file cannot be removed.
    pub fn reset(&self) -> anyhow::Result<()> {
        for (_, path) in self.files()? {
            std::fs::remove_file(&path).with_context(|| format!("--checkpoint-reset: cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes `checkpoint` atomically and removes the checkpoints before the previous one. Returns the file's
    /// size in bytes.
    ///
    /// # Errors
    /// The file cannot be written, synced or renamed.
    pub fn write(&self, checkpoint: &Checkpoint) -> anyhow::Result<u64> {
        let name = file_name(checkpoint.epoch);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let db = Database::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let txn = db.begin_write()?;
        {
            let rows = rows(checkpoint);
            let checksum = checksum(&rows);
            let mut meta = txn.open_table(META)?;
            let mut sources = txn.open_table(SOURCES)?;
            let mut windows = txn.open_table(WINDOWS)?;
            for (table, key, value) in &rows {
                match *table {
                    "meta" => meta.insert(key.as_str(), value.as_slice())?,
                    "sources" => sources.insert(key.as_str(), value.as_slice())?,
                    _ => windows.insert(key.as_str(), value.as_slice())?,
                };
            }
            meta.insert("checksum", checksum.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        drop(db);
        let path = self.dir.join(&name);
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", self.dir.display()))?;
        let size = std::fs::metadata(&path)?.len();
        for (_, old) in self.files()?.into_iter().skip(KEPT) {
            let _ = std::fs::remove_file(old);
        }
        Ok(size)
    }
}

/// Every row of `checkpoint` but the checksum: (table, key, value), in table and key order.
fn rows(checkpoint: &Checkpoint) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut rows = vec![
        ("meta", "created_ms".to_string(), checkpoint.created_ms.to_le_bytes().to_vec()),
        ("meta", "epoch".to_string(), checkpoint.epoch.to_le_bytes().to_vec()),
        ("meta", "job".to_string(), checkpoint.job.as_bytes().to_vec()),
        ("meta", "sink".to_string(), bincode::serialize(&checkpoint.sink).expect("sink position serializes")),
    ];
    for (key, position) in &checkpoint.sources {
        rows.push(("sources", key.clone(), bincode::serialize(position).expect("positions serialize")));
    }
    for (i, (operator, state)) in checkpoint.windows.iter().enumerate() {
        rows.push(("windows", format!("{operator}/{i:06}"), state.clone()));
    }
    rows
}

/// CRC-32 over rows (table, key and value, each with its length).
fn checksum(rows: &[(&str, String, Vec<u8>)]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for (table, key, value) in rows {
        for part in [table.as_bytes(), key.as_bytes(), value.as_slice()] {
            crc.update(&(part.len() as u64).to_le_bytes());
            crc.update(part);
        }
    }
    crc.finalize()
}

/// Reads and verifies one checkpoint file.
///
/// # Errors
/// The file cannot be opened by redb, a table or row is missing or does not decode, or the checksum differs.
pub fn read(path: &Path) -> anyhow::Result<Checkpoint> {
    // Read-only: a shared lock, so every process of a job can read the same file at once. A file locked by a
    // writer is not corrupt: wait for it (checkpoints are written under another name, so this is brief).
    let mut attempts = 0;
    let db = loop {
        match ReadOnlyDatabase::open(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => break result.map_err(|e| anyhow!("cannot open: {e}"))?,
        }
    };
    let txn = db.begin_read()?;
    let mut rows: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut stored_checksum = None;
    for (name, table) in [("meta", META), ("sources", SOURCES), ("windows", WINDOWS)] {
        let table = txn.open_table(table).map_err(|e| anyhow!("table {name}: {e}"))?;
        for row in table.iter()? {
            let (key, value) = row?;
            if name == "meta" && key.value() == "checksum" {
                stored_checksum = Some(value.value().to_vec());
            } else {
                rows.push((name, key.value().to_string(), value.value().to_vec()));
            }
        }
    }
    let stored = stored_checksum.ok_or_else(|| anyhow!("no checksum"))?;
    let computed = checksum(&rows);
    if stored.as_slice() != computed.to_le_bytes() {
        bail!("checksum mismatch (stored {}, computed {computed:08x})", hex(&stored));
    }
    let meta: BTreeMap<&str, &[u8]> = rows.iter().filter(|r| r.0 == "meta").map(|r| (r.1.as_str(), r.2.as_slice())).collect();
    let u64_of = |key: &str| -> anyhow::Result<u64> {
        let bytes = meta.get(key).ok_or_else(|| anyhow!("meta.{key} missing"))?;
        Ok(u64::from_le_bytes(<[u8; 8]>::try_from(*bytes).map_err(|_| anyhow!("meta.{key} malformed"))?))
    };
    let mut checkpoint = Checkpoint {
        epoch: u64_of("epoch")?,
        created_ms: u64_of("created_ms")?,
        job: String::from_utf8(meta.get("job").ok_or_else(|| anyhow!("meta.job missing"))?.to_vec())?,
        sink: bincode::deserialize::<SinkPosition>(meta.get("sink").ok_or_else(|| anyhow!("meta.sink missing"))?)?,
        ..Checkpoint::default()
    };
    for (table, key, value) in rows {
        match table {
            "sources" => {
                let position: SourcePosition = bincode::deserialize(&value).with_context(|| format!("source {key}"))?;
                checkpoint.sources.insert(key, position);
            }
            "windows" => {
                let operator = key.rsplit_once('/').map_or(key.as_str(), |(o, _)| o).to_string();
                checkpoint.windows.push((operator, value));
            }
            _ => {}
        }
    }
    Ok(checkpoint)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|b| format!("{b:02x}")).collect()
}
