//! `--from s3://BUCKET/PREFIX`: the part files the S3 sink made visible under the prefix (the ticker job's Hive
//! partitions, docs/jobs/ticker.md §3: CSV, JSON lines or Parquet), each object read once when it first appears,
//! with the credentials of the AWS chain and `--endpoint-url`/`--region` (moto, MinIO, AWS).

use std::collections::BTreeSet;

use anyhow::Context;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{Docs, Store, StoreArgs};
use crate::connectors::s3::{client, S3Location};

/// The S3 store.
pub struct S3Store {
    location: S3Location,
    store: object_store::aws::AmazonS3,
    runtime: tokio::runtime::Runtime,
    seen: BTreeSet<String>,
}

impl S3Store {
    /// The store of `url`.
    ///
    /// # Errors
    /// `--from`: not an `s3://BUCKET/PREFIX` URL, or no S3 client can be built.
    pub fn open(url: &str, args: &StoreArgs) -> anyhow::Result<S3Store> {
        let location = S3Location::parse(url, "--from")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the I/O runtime")?;
        let store = runtime.block_on(client(&location, &args.aws))?;
        Ok(S3Store { location, store, runtime, seen: BTreeSet::new() })
    }

}

/// The part files under `location` not in `seen` yet, read and added to `seen`.
async fn read_new(location: &S3Location, store: &object_store::aws::AmazonS3, seen: &mut BTreeSet<String>) -> anyhow::Result<Docs> {
    let prefix = location.listing_prefix()?;
    let listing: Vec<object_store::ObjectMeta> = store.list(prefix.as_ref()).try_collect().await?;
    let mut docs = Vec::new();
    for object in listing {
        let key = object.location.to_string();
        let relative = key.strip_prefix(&location.prefix).unwrap_or(&key).trim_start_matches('/').to_string();
        let name = relative.rsplit('/').next().unwrap_or("");
        if !name.starts_with("part-") || seen.contains(&key) {
            continue;
        }
        let bytes = store.get(&object.location).await?.bytes().await?;
        docs.extend(super::file::part_file(&relative, &bytes)?);
        seen.insert(key);
    }
    Ok(docs)
}

impl Store for S3Store {
    fn describe(&self) -> String {
        self.location.url()
    }

    fn read(&mut self) -> anyhow::Result<Docs> {
        let S3Store { location, store, runtime, seen } = self;
        runtime.block_on(read_new(location, store, seen)).with_context(|| format!("--from {}", location.url()))
    }
}
