//! Durable detector state and input offsets in RocksDB.
//!
//! # Layout
//! One column family, keys prefixed by record type:
//! - `o\0{topic}\0{partition: u32 BE}` → next input offset to process (`i64` BE);
//! - `s\0{topic}\0{partition: u32 BE}\0{entity key}` → one key's state ([`crate::engine::KeyState`]);
//! - `m\0layout` → layout version.
//!
//! # Checkpoints
//! A [`Checkpoint`] is the unit of durability: the changed key states of one
//! partition *and* its next offset, written in one atomic, fsynced
//! `WriteBatch`. On assignment the consumer seeks to the stored offset, so the
//! state and the input position can never disagree. The same unit is what a
//! Kafka-Streams-style changelog would publish (to a compacted topic, inside a
//! producer transaction together with the output records and the consumer
//! offsets); [`Store::write`] is the single place such a backend would hook in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// Layout version stored under `m\0layout`.
const LAYOUT_VERSION: u8 = 1;

/// Errors from the state store; all are external (disk) errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory could not be created.
    #[error("state store at {path}: {source}")]
    Io {
        /// Data directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// RocksDB failed.
    #[error("state store at {path}: {source}")]
    Rocks {
        /// Data directory.
        path: PathBuf,
        /// Underlying error.
        source: rocksdb::Error,
    },
    /// The directory holds a newer layout.
    #[error("state store at {path} has layout version {found}; this build reads {LAYOUT_VERSION}")]
    Layout {
        /// Data directory.
        path: PathBuf,
        /// Version found.
        found: u8,
    },
}

/// `(entity key, serialized state)` pairs.
pub type KeyStates = Vec<(Vec<u8>, Vec<u8>)>;

/// One partition's durable unit: changed key states and the next offset.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// First offset not yet reflected in the state.
    pub next_offset: i64,
    /// `(entity key, serialized state)` of keys changed since the last checkpoint.
    pub states: KeyStates,
}

/// The RocksDB store, shared by the partition tasks.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("state");
        let err = |source| StoreError::Rocks {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Keep RocksDB's own logs small: they land on the data volume.
        opts.set_keep_log_file_num(3);
        opts.set_max_log_file_size(8 << 20);
        let db = DB::open(&opts, &path).map_err(err)?;
        match db.get(b"m\0layout").map_err(err)? {
            None => db.put(b"m\0layout", [LAYOUT_VERSION]).map_err(err)?,
            Some(v) if v.as_slice() == [LAYOUT_VERSION] => {}
            Some(v) => {
                return Err(StoreError::Layout {
                    path,
                    found: v.first().copied().unwrap_or(0),
                })
            }
        }
        Ok(Store {
            db: Arc::new(db),
            path,
        })
    }

    fn err(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    /// The stored next offset of a partition.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        let v = self
            .db
            .get(offset_key(topic, partition))
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|b| {
            <[u8; 8]>::try_from(b.as_slice())
                .ok()
                .map(i64::from_be_bytes)
        }))
    }

    /// Every stored key state of a partition.
    pub fn load_partition(&self, topic: &str, partition: i32) -> Result<KeyStates, StoreError> {
        let mut out = Vec::new();
        self.scan_partition(topic, partition, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Calls `f(entity key, state)` for the stored key states of a partition,
    /// in key order, while it returns true; returns whether the scan stopped
    /// early (more states remain).
    pub fn scan_partition(
        &self,
        topic: &str,
        partition: i32,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<bool, StoreError> {
        let prefix = state_prefix(topic, partition);
        for item in self
            .db
            .iterator(IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some(entity) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if !f(entity, &v) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One key's stored state, if any.
    pub fn load_key(
        &self,
        topic: &str,
        partition: i32,
        entity: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut key = state_prefix(topic, partition);
        key.extend_from_slice(entity);
        self.db.get(key).map_err(|e| self.err(e))
    }

    /// Writes a checkpoint atomically and durably; returns the bytes written.
    pub fn write(&self, cp: &Checkpoint) -> Result<usize, StoreError> {
        let mut batch = WriteBatch::default();
        let prefix = state_prefix(&cp.topic, cp.partition);
        let mut key = Vec::with_capacity(prefix.len() + 32);
        let mut bytes = 0;
        for (entity, state) in &cp.states {
            key.clear();
            key.extend_from_slice(&prefix);
            key.extend_from_slice(entity);
            batch.put(&key, state);
            bytes += key.len() + state.len();
        }
        batch.put(
            offset_key(&cp.topic, cp.partition),
            cp.next_offset.to_be_bytes(),
        );
        bytes += 8;
        let mut wo = WriteOptions::default();
        // Survive a machine crash, not only a process crash.
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))?;
        Ok(bytes)
    }

    /// RocksDB's estimate of live data, for the state-size gauge.
    pub fn live_size(&self) -> Option<u64> {
        let sst = self
            .db
            .property_int_value("rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0);
        let mem = self
            .db
            .property_int_value("rocksdb.cur-size-all-mem-tables")
            .ok()
            .flatten()
            .unwrap_or(0);
        Some(sst + mem)
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = b"o\0".to_vec();
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&(partition as u32).to_be_bytes());
    k
}

fn state_prefix(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = b"s\0".to_vec();
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&(partition as u32).to_be_bytes());
    k.push(0);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_offset("t", 0).unwrap(), None);
        store
            .write(&Checkpoint {
                topic: "t".into(),
                partition: 0,
                next_offset: 42,
                states: vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b".to_vec(), b"2".to_vec()),
                ],
            })
            .unwrap();
        store
            .write(&Checkpoint {
                topic: "t".into(),
                partition: 1,
                next_offset: 7,
                states: vec![(b"c".to_vec(), b"3".to_vec())],
            })
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_offset("t", 0).unwrap(), Some(42));
        assert_eq!(store.next_offset("t", 1).unwrap(), Some(7));
        let p0 = store.load_partition("t", 0).unwrap();
        assert_eq!(
            p0,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(store.load_partition("t", 1).unwrap().len(), 1);
        assert!(store.load_partition("u", 0).unwrap().is_empty());
        assert_eq!(store.load_key("t", 0, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.load_key("t", 1, b"b").unwrap(), None);
        let mut seen = Vec::new();
        let more = store
            .scan_partition("t", 0, |k, _| {
                seen.push(k.to_vec());
                false
            })
            .unwrap();
        assert!(more, "the scan stopped after the first of two states");
        assert_eq!(seen, vec![b"a".to_vec()]);
        assert!(!store.scan_partition("t", 1, |_, _| true).unwrap());
    }
}
