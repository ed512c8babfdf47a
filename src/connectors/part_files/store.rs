//! Where part files are written: a local directory or an S3 prefix, each with a way to stage a file invisibly
//! and publish it later (see the module documentation of [`super`]).
//!
//! * Local: a file is staged as `DIR/<partition>/.part-….inprogress` (written and `fsync`ed), and published by
//!   renaming it to its name (atomic on one filesystem; the directory is synced). A visible file is written the
//!   same way at once.
//! * S3 (`object_store`): a file is staged as an open multipart upload of one part (invisible until completed),
//!   published by completing it; completing it again, or finding the object already there, counts as published,
//!   so a restart can publish a checkpoint's files again. A visible file is one PUT.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::connectors::s3::S3Location;

/// Where a part-file sink writes.
#[derive(Clone, Debug)]
pub enum Target {
    /// `file://DIR`.
    Local(PathBuf),
    /// `s3://BUCKET/PREFIX` with the AWS settings.
    S3(S3Location, crate::aws::AwsArgs),
}

impl Target {
    /// `file://DIR` or `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        match self {
            Target::Local(dir) => format!("file://{}", dir.display()),
            Target::S3(location, _) => location.url(),
        }
    }
}

/// A part file staged for a checkpoint, not visible yet. Paths are relative to the sink's root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Staged {
    /// A hidden local file to rename.
    Local {
        /// The part file's path.
        path: String,
        /// The hidden staged file's path.
        staging: String,
    },
    /// An open S3 multipart upload to complete.
    S3 {
        /// The part file's key (relative to the prefix).
        path: String,
        /// The upload id.
        upload_id: String,
        /// The ETags of its parts, in order.
        parts: Vec<String>,
    },
}

impl Staged {
    /// The part file's path, relative to the sink's root.
    pub fn path(&self) -> &str {
        match self {
            Staged::Local { path, .. } | Staged::S3 { path, .. } => path,
        }
    }
}

/// An open store.
pub enum Store {
    /// A local directory.
    Local(PathBuf),
    /// An S3 prefix.
    S3 {
        /// The client.
        client: AmazonS3,
        /// Bucket and prefix.
        location: S3Location,
    },
}

impl Store {
    /// Opens `target`: creates the directory, or checks that the bucket answers.
    ///
    /// # Errors
    /// `--sink`: the directory cannot be created, or the bucket cannot be listed (unreachable, unknown, no access).
    pub async fn open(target: &Target) -> anyhow::Result<Store> {
        match target {
            Target::Local(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--sink: cannot create directory {}", dir.display()))?;
                Ok(Store::Local(dir.clone()))
            }
            Target::S3(location, aws) => {
                let client = crate::connectors::s3::client(location, aws).await?;
                let prefix = location.listing_prefix()?;
                client.list(prefix.as_ref()).try_next().await.map_err(|e| anyhow!("--sink {}: cannot list the bucket: {e}", location.url()))?;
                Ok(Store::S3 { client, location: location.clone() })
            }
        }
    }

    fn local(dir: &Path, relative: &str) -> PathBuf {
        dir.join(relative.trim_start_matches('/'))
    }

    /// Writes a visible file at `relative` (atomically: readers see all of it or nothing).
    ///
    /// # Errors
    /// The write failed.
    pub async fn put(&self, relative: String, bytes: Vec<u8>) -> anyhow::Result<()> {
        let relative = relative.trim_start_matches('/');
        match self {
            Store::Local(dir) => {
                let path = Self::local(dir, relative);
                let staging = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
                write_synced(&staging, &bytes)?;
                rename_synced(&staging, &path)
            }
            Store::S3 { client, location } => {
                client.put(&location.key(relative)?, PutPayload::from(bytes)).await.with_context(|| format!("PUT {}/{relative}", location.url()))?;
                Ok(())
            }
        }
    }

    /// Stages `bytes` as the part file `dir/name`, invisible until [`Self::publish`].
    ///
    /// # Errors
    /// The write or upload failed.
    pub async fn stage(&self, dir: &str, name: &str, bytes: Vec<u8>) -> anyhow::Result<Staged> {
        let path = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
        match self {
            Store::Local(root) => {
                let staging = if dir.is_empty() { format!(".{name}.inprogress") } else { format!("{dir}/.{name}.inprogress") };
                write_synced(&Self::local(root, &staging), &bytes)?;
                Ok(Staged::Local { path, staging })
            }
            Store::S3 { client, location } => {
                let key = location.key(&path)?;
                let upload_id = client.create_multipart(&key).await.with_context(|| format!("CreateMultipartUpload {}/{path}", location.url()))?;
                let part = client.put_part(&key, &upload_id, 0, PutPayload::from(bytes)).await.with_context(|| format!("UploadPart {}/{path}", location.url()))?;
                Ok(Staged::S3 { path, upload_id, parts: vec![part.content_id] })
            }
        }
    }

    /// Makes a staged file visible; a file that is visible already counts as published.
    ///
    /// # Errors
    /// Neither the staged file nor the published one exists, or the store refused.
    pub async fn publish(&self, staged: &Staged) -> anyhow::Result<()> {
        match (self, staged) {
            (Store::Local(root), Staged::Local { path, staging }) => {
                let (from, to) = (Self::local(root, staging), Self::local(root, path));
                if from.exists() {
                    rename_synced(&from, &to)
                } else if to.exists() {
                    Ok(())
                } else {
                    Err(anyhow!("staged part file {} is missing (and {} was not published)", from.display(), to.display()))
                }
            }
            (Store::S3 { client, location }, Staged::S3 { path, upload_id, parts }) => {
                let key = location.key(path)?;
                let parts: Vec<PartId> = parts.iter().map(|p| PartId { content_id: p.clone() }).collect();
                match client.complete_multipart(&key, upload_id, parts).await {
                    Ok(_) => Ok(()),
                    // Completed before a crash: the upload is gone and the object is there.
                    Err(e) => match client.head(&key).await {
                        Ok(_) => Ok(()),
                        Err(_) => Err(anyhow!("CompleteMultipartUpload {}/{path}: {e}", location.url())),
                    },
                }
            }
            _ => Err(anyhow!("a staged part file of another store kind")),
        }
    }

    /// Deletes the part files (visible `part-<epoch>-…`, and staged local `.part-<epoch>-….inprogress`) whose
    /// epoch `which` selects, everywhere under the root; returns how many.
    ///
    /// # Errors
    /// Listing or deleting failed.
    pub async fn remove_part_files(&self, which: impl Fn(u64) -> bool) -> anyhow::Result<usize> {
        let selected = |name: &str| super::epoch_of(name).is_some_and(&which);
        match self {
            Store::Local(root) => {
                let mut removed = 0;
                for path in walk(root)? {
                    if path.file_name().and_then(|n| n.to_str()).is_some_and(selected) {
                        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                        removed += 1;
                    }
                }
                Ok(removed)
            }
            Store::S3 { client, location } => {
                let prefix = location.listing_prefix()?;
                let objects: Vec<_> = client.list(prefix.as_ref()).try_collect().await.with_context(|| format!("cannot list {}", location.url()))?;
                let doomed: Vec<_> = objects.into_iter().filter(|o| o.location.filename().is_some_and(selected)).map(|o| o.location).collect();
                for key in &doomed {
                    client.delete(key).await.with_context(|| format!("cannot delete {key}"))?;
                }
                Ok(doomed.len())
            }
        }
    }
}

/// Writes `bytes` to `path` (creating its directory) and syncs the file.
fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

/// Renames `from` to `to` and syncs the directory.
fn rename_synced(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
    if let Some(parent) = to.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", parent.display()))?;
    }
    Ok(())
}

/// Every file under `root`.
fn walk(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}
