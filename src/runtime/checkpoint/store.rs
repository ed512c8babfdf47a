//! The checkpoint files of `--checkpoint-dir`: one `redb` database per checkpoint, `checkpoint-EPOCH.redb`, in a
//! local directory or under an S3 prefix (`--checkpoint-dir s3://BUCKET/PREFIX`, so that processes on several
//! machines share checkpoints, as Flink's checkpoint storage on S3).
//!
//! # Layout
//! Tables `meta` (`epoch`, `job`, `sink`, `created_ms`, `checksum`), `sources` (partition key → bincode
//! [`SourcePosition`]) and `windows` (`OPERATOR/WORKER` → bincode window state). `checksum` is the CRC-32 of
//! every other row (table, key, value, with lengths), in key order.
//!
//! # Atomicity
//! Directory: a checkpoint is written to `.checkpoint-EPOCH.redb.tmp`, committed (redb syncs the file), renamed,
//! and the directory is synced. S3: the file is built locally, gzip-compressed (redb preallocates at least 1 MiB)
//! and uploaded as `checkpoint-EPOCH.redb.gz` with one PUT (an object is visible complete or not at all) with
//! `If-None-Match: *`, so a checkpoint is never overwritten. Only then are
//! checkpoints older than the previous one removed, so the previous complete checkpoint exists until the new one
//! is complete. A leftover `.tmp` file is a checkpoint whose writing was interrupted; it is removed with a
//! warning.
//!
//! # Corruption
//! A file that redb cannot open (e.g. truncated) or whose checksum does not match (e.g. a flipped bit) is
//! skipped with a warning and the previous one is used. If checkpoint files exist but none is usable, [`load`]
//! fails: the job must not silently start from scratch (`--checkpoint-reset` starts over explicitly).
//!
//! [`load`]: CheckpointStore::load

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Checkpoint, CheckpointLocation, SourcePosition};
use crate::connectors::s3::S3Location;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
const WINDOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("windows");

/// Checkpoints kept: the newest complete one and the one before it.
pub const KEPT: usize = 2;

/// Where the checkpoint files are.
enum Backend {
    Dir(PathBuf),
    S3 { client: object_store::aws::AmazonS3, location: S3Location, runtime: tokio::runtime::Runtime },
}

/// The checkpoint store: a directory or an S3 prefix.
pub struct CheckpointStore {
    backend: Backend,
    /// Where downloaded (S3) checkpoints are read and new ones built.
    scratch: tempfile::TempDir,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStore({})", self.describe())
    }
}

/// What [`CheckpointStore::load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The newest usable checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoint files that could not be used, with the reason.
    pub skipped: Vec<(String, String)>,
}

fn file_name(epoch: u64) -> String {
    format!("checkpoint-{epoch:012}.redb")
}

fn epoch_of(name: &str) -> Option<u64> {
    name.strip_prefix("checkpoint-").and_then(|n| n.strip_suffix(".redb").or_else(|| n.strip_suffix(".redb.gz"))).and_then(|n| n.parse::<u64>().ok())
}

impl CheckpointStore {
    /// The store at `location`: a directory (created if missing) or an S3 prefix (checked to answer).
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory cannot be created, or the bucket cannot be listed.
    pub fn open(location: &CheckpointLocation) -> anyhow::Result<CheckpointStore> {
        let scratch = tempfile::tempdir().context("--checkpoint-dir: cannot create a temporary directory")?;
        let backend = match location {
            CheckpointLocation::Dir(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--checkpoint-dir: cannot create {}", dir.display()))?;
                Backend::Dir(dir.clone())
            }
            CheckpointLocation::S3(s3, aws) => {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the I/O runtime")?;
                let client = runtime.block_on(crate::connectors::s3::client(s3, aws))?;
                let store = CheckpointStore { backend: Backend::S3 { client, location: s3.clone(), runtime }, scratch };
                store.files().with_context(|| format!("--checkpoint-dir {}", s3.url()))?;
                return Ok(store);
            }
        };
        Ok(CheckpointStore { backend, scratch })
    }

    /// `DIR` or `s3://BUCKET/PREFIX`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Dir(dir) => dir.display().to_string(),
            Backend::S3 { location, .. } => location.url(),
        }
    }

    /// Complete checkpoint files, newest first, with their epochs and names.
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory or prefix cannot be listed.
    pub fn files(&self) -> anyhow::Result<Vec<(u64, String)>> {
        let mut files = Vec::new();
        match &self.backend {
            Backend::Dir(dir) => {
                for entry in std::fs::read_dir(dir).with_context(|| format!("--checkpoint-dir: cannot read {}", dir.display()))? {
                    let path = entry?.path();
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                    if let Some(epoch) = epoch_of(&name) {
                        files.push((epoch, name));
                    }
                }
            }
            Backend::S3 { client, location, runtime } => {
                let prefix = location.listing_prefix()?;
                let objects: Vec<_> = runtime.block_on(client.list(prefix.as_ref()).try_collect()).with_context(|| format!("--checkpoint-dir: cannot list {}", location.url()))?;
                for o in objects {
                    // Checkpoints directly under the prefix only.
                    let Some(name) = o.location.filename() else { continue };
                    if let (Some(epoch), true) = (epoch_of(name), location.key(name).is_ok_and(|k| k == o.location)) {
                        files.push((epoch, name.to_string()));
                    }
                }
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(files)
    }

    /// A local path of checkpoint `name` to read: the file itself, or an S3 object downloaded to scratch space.
    fn fetch(&self, name: &str) -> anyhow::Result<PathBuf> {
        match &self.backend {
            Backend::Dir(dir) => Ok(dir.join(name)),
            Backend::S3 { client, location, runtime } => {
                let bytes = runtime.block_on(async { client.get(&location.key(name)?).await?.bytes().await.map_err(anyhow::Error::from) }).with_context(|| format!("cannot download {name}"))?;
                let path = self.scratch.path().join(name.trim_end_matches(".gz"));
                let mut file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
                std::io::copy(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut file).map_err(|e| anyhow!("cannot decompress: {e}"))?;
                Ok(path)
            }
        }
    }

    /// Removes interrupted writes (`.tmp` files), then reads the newest checkpoint that opens and whose
    /// checksum matches, skipping (and reporting) newer ones that do not.
    ///
    /// # Errors
    /// `--checkpoint-dir`: the directory cannot be read.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        if let Backend::Dir(dir) = &self.backend {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "tmp") {
                    tracing::warn!(file = %path.display(), "removing an interrupted checkpoint write");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let mut skipped = Vec::new();
        for (_, name) in self.files()? {
            match self.fetch(&name).and_then(|path| read(&path)) {
                Ok(checkpoint) => return Ok(Loaded { checkpoint: Some(checkpoint), skipped }),
                Err(e) => {
                    tracing::warn!(file = %name, error = %format!("{e:#}"), "checkpoint unusable, trying the previous one");
                    skipped.push((name, format!("{e:#}")));
                }
            }
        }
        Ok(Loaded { checkpoint: None, skipped })
    }

    /// Reads the checkpoint of `epoch`.
    ///
    /// # Errors
    /// There is none, or it is unusable (corrupt).
    pub fn load_epoch(&self, epoch: u64) -> anyhow::Result<Checkpoint> {
        let Some((_, name)) = self.files()?.into_iter().find(|(e, _)| *e == epoch) else {
            bail!("no checkpoint of epoch {epoch} in {}", self.describe());
        };
        read(&self.fetch(&name)?)
    }

    /// Removes the checkpoints newer than `epoch` (their output was never committed by the sink; the run writes
    /// them again).
    ///
    /// # Errors
    /// A file or object cannot be removed.
    pub fn discard_after(&self, epoch: u64) -> anyhow::Result<()> {
        for (e, name) in self.files()? {
            if e > epoch {
                tracing::info!(file = %name, "removing a checkpoint whose output the sink did not commit");
                self.remove(&name).with_context(|| format!("--checkpoint-dir: cannot remove {name}"))?;
            }
        }
        Ok(())
    }

    /// Removes every checkpoint file (`--checkpoint-reset`).
    ///
    /// # Errors
    /// A file cannot be removed.
    pub fn reset(&self) -> anyhow::Result<()> {
        for (_, name) in self.files()? {
            self.remove(&name).with_context(|| format!("--checkpoint-reset: cannot remove {name}"))?;
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Dir(dir) => Ok(std::fs::remove_file(dir.join(name))?),
            Backend::S3 { client, location, runtime } => Ok(runtime.block_on(client.delete(&location.key(name)?))?),
        }
    }

    /// Writes `checkpoint` atomically and removes the checkpoints before the previous one. Returns the file's
    /// size in bytes.
    ///
    /// # Errors
    /// The file cannot be written, synced, renamed or uploaded (an object of the same epoch exists already).
    pub fn write(&self, checkpoint: &Checkpoint) -> anyhow::Result<u64> {
        let name = file_name(checkpoint.epoch);
        let size = match &self.backend {
            Backend::Dir(dir) => {
                let tmp = dir.join(format!(".{name}.tmp"));
                build(&tmp, checkpoint)?;
                let path = dir.join(&name);
                std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
                std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))?;
                std::fs::metadata(&path)?.len()
            }
            Backend::S3 { client, location, runtime } => {
                let tmp = self.scratch.path().join(format!(".{name}.tmp"));
                build(&tmp, checkpoint)?;
                // gzip: redb preallocates (a checkpoint file is at least 1 MiB, mostly zeros).
                let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::copy(&mut std::fs::File::open(&tmp)?, &mut gzip)?;
                let bytes = gzip.finish()?;
                let _ = std::fs::remove_file(&tmp);
                let size = bytes.len() as u64;
                let options = PutOptions { mode: PutMode::Create, ..Default::default() };
                let key = location.key(&format!("{name}.gz"))?;
                runtime.block_on(client.put_opts(&key, PutPayload::from(bytes), options)).with_context(|| format!("cannot upload {}/{name}.gz", location.url()))?;
                size
            }
        };
        for (_, old) in self.files()?.into_iter().skip(KEPT) {
            let _ = self.remove(&old);
        }
        Ok(size)
    }
}

/// Writes `checkpoint` as a redb database at `path` (committed and synced by redb).
fn build(path: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let db = Database::create(path).with_context(|| format!("cannot create {}", path.display()))?;
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
    Ok(())
}

/// Every row of `checkpoint` but the checksum: (table, key, value), in table and key order.
fn rows(checkpoint: &Checkpoint) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut rows = vec![
        ("meta", "created_ms".to_string(), checkpoint.created_ms.to_le_bytes().to_vec()),
        ("meta", "epoch".to_string(), checkpoint.epoch.to_le_bytes().to_vec()),
        ("meta", "job".to_string(), checkpoint.job.as_bytes().to_vec()),
        ("meta", "sink".to_string(), checkpoint.sink.clone()),
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
        sink: meta.get("sink").ok_or_else(|| anyhow!("meta.sink missing"))?.to_vec(),
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
