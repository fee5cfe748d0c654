//! The store's side of the protocol engine (`crate::engine`): its tables
//! (`engine_cursor`, `backups`, `held_shards`) and the one command that
//! writes them, [`EngineWrite`].
//!
//! An [`EngineWrite`] is applied in one write transaction, in the same batch
//! discipline as every other command: the entries it publishes, the records
//! it puts, its audit lines and the engine's per-feed cursor commit together
//! or not at all. That is what lets the engine promise that a restart neither
//! skips an entry (the cursor never runs ahead of the state) nor processes one
//! twice (the state never runs ahead of the cursor).
//!
//! What this module never does: interpret the records. They are opaque JSON
//! bytes here; their shape belongs to `crate::engine::records`. The one piece
//! of engine code that runs in the writer is the `updates` closure of an
//! [`EngineWrite`], which only assembles records from the ids of the entries
//! just signed: no cryptography, no I/O, no waiting.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::{BackupId, FeedId, Keypair};

use super::tables::{BACKUPS, ENGINE_CURSOR, HEADS, HELD_SHARDS};
use super::writer::{Tables, append_audit, head_seq, insert, set_head, stored_header};
use super::{Committed, StoreError};

/// Builds the table updates once the ids of the entries published by the
/// same write are known (they are signed inside the transaction).
type Updates = Box<dyn FnOnce(&[SignedHeader]) -> Vec<EngineUpdate> + Send>;

/// One change to the engine's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUpdate {
    /// The engine has processed `feed` up to `seq`. A cursor never moves
    /// back: a lower `seq` than the stored one is ignored.
    Cursor {
        /// The feed.
        feed: FeedId,
        /// The last processed sequence number.
        seq: u64,
    },
    /// Puts (or replaces) the owner's record of a backup.
    Backup {
        /// The backup.
        id: BackupId,
        /// The record, JSON.
        record: Vec<u8>,
    },
    /// Puts (or replaces) the record of a shard held as a custodian.
    HeldShard {
        /// The backup the shard belongs to.
        id: BackupId,
        /// The record, JSON.
        record: Vec<u8>,
    },
    /// Appends one audit record (JSON).
    Audit(Vec<u8>),
}

/// Everything the engine concluded from one step, to commit atomically.
pub struct EngineWrite {
    publish: Vec<(PayloadKind, Vec<u8>)>,
    timestamp_ms: u64,
    updates: Updates,
}

impl std::fmt::Debug for EngineWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineWrite")
            .field("publish", &self.publish.len())
            .finish_non_exhaustive()
    }
}

impl EngineWrite {
    /// Table updates only, nothing published.
    pub fn updates(updates: Vec<EngineUpdate>) -> Self {
        Self {
            publish: Vec::new(),
            timestamp_ms: 0,
            updates: Box::new(move |_| updates),
        }
    }

    /// Signs and appends `publish` to the node's own feed, in order, then
    /// applies what `updates` returns given their signed headers. `updates`
    /// runs inside the writer's transaction: it must only assemble records.
    pub fn publishing(
        publish: Vec<(PayloadKind, Vec<u8>)>,
        timestamp_ms: u64,
        updates: impl FnOnce(&[SignedHeader]) -> Vec<EngineUpdate> + Send + 'static,
    ) -> Self {
        Self {
            publish,
            timestamp_ms,
            updates: Box::new(updates),
        }
    }
}

/// Applies an engine write inside the writer's transaction. The outer error
/// aborts the batch (database failure); the inner one is this command's own
/// refusal (an entry could not be signed), and then nothing of it is written.
pub(super) fn apply(
    t: &mut Tables<'_>,
    me: &Keypair,
    write: EngineWrite,
    committed: &mut Vec<Committed>,
) -> Result<Result<Vec<SignedHeader>, StoreError>, StoreError> {
    let EngineWrite {
        publish,
        timestamp_ms,
        updates,
    } = write;
    // Sign everything before writing anything, so that a refusal leaves the
    // shared transaction untouched.
    let author = me.feed_id();
    let mut previous = stored_header(t, &author, head_seq(t, &author)?)?;
    let mut signed = Vec::with_capacity(publish.len());
    for (kind, payload) in &publish {
        match SignedHeader::sign_next(me, previous.as_ref(), timestamp_ms, *kind, payload) {
            Ok(header) => {
                previous = Some(header.clone());
                signed.push(header);
            }
            Err(e) => return Ok(Err(StoreError::Publish(e.to_string()))),
        }
    }
    let updates = updates(&signed);
    for (header, (_, payload)) in signed.iter().zip(publish) {
        insert(t, header, Some(&payload))?;
        committed.push(Committed {
            author,
            header: header.clone(),
            payload: Some(Arc::new(payload)),
        });
    }
    if let Some(last) = signed.last() {
        set_head(t, &author, last.header().seq)?;
    }
    if updates.is_empty() {
        return Ok(Ok(signed));
    }
    let txn = t.txn;
    let mut cursors = txn.open_table(ENGINE_CURSOR).map_err(StoreError::db)?;
    let mut backups = txn.open_table(BACKUPS).map_err(StoreError::db)?;
    let mut held = txn.open_table(HELD_SHARDS).map_err(StoreError::db)?;
    for update in updates {
        match update {
            EngineUpdate::Cursor { feed, seq } => {
                let stored = cursors
                    .get(feed.as_bytes())
                    .map_err(StoreError::db)?
                    .map_or(0, |v| v.value());
                if seq > stored {
                    cursors
                        .insert(feed.as_bytes(), seq)
                        .map_err(StoreError::db)?;
                }
            }
            EngineUpdate::Backup { id, record } => {
                backups
                    .insert(id.as_bytes(), record.as_slice())
                    .map_err(StoreError::db)?;
            }
            EngineUpdate::HeldShard { id, record } => {
                held.insert(id.as_bytes(), record.as_slice())
                    .map_err(StoreError::db)?;
            }
            EngineUpdate::Audit(record) => {
                append_audit(t, &record)?;
            }
        }
    }
    Ok(Ok(signed))
}

fn feed_key(bytes: &[u8; 32], table: &str) -> Result<FeedId, StoreError> {
    FeedId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{table} key: {e}")))
}

/// Every feed held, with its head's sequence number.
pub(super) fn feeds(db: &Database) -> Result<Vec<(FeedId, u64)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let heads = txn.open_table(HEADS).map_err(StoreError::db)?;
    heads
        .iter()
        .map_err(StoreError::db)?
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            Ok((feed_key(k.value(), "heads")?, v.value()))
        })
        .collect()
}

/// Every engine cursor.
pub(super) fn cursors(db: &Database) -> Result<Vec<(FeedId, u64)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let cursors = txn.open_table(ENGINE_CURSOR).map_err(StoreError::db)?;
    cursors
        .iter()
        .map_err(StoreError::db)?
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            Ok((feed_key(k.value(), "engine_cursor")?, v.value()))
        })
        .collect()
}

/// Which record table to read.
#[derive(Debug, Clone, Copy)]
pub(super) enum RecordTable {
    Backups,
    HeldShards,
}

impl RecordTable {
    fn definition(self) -> redb::TableDefinition<'static, &'static [u8; 32], &'static [u8]> {
        match self {
            Self::Backups => BACKUPS,
            Self::HeldShards => HELD_SHARDS,
        }
    }
}

/// One record by backup id.
pub(super) fn record(
    db: &Database,
    table: RecordTable,
    id: &BackupId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let records = txn.open_table(table.definition()).map_err(StoreError::db)?;
    Ok(records
        .get(id.as_bytes())
        .map_err(StoreError::db)?
        .map(|v| v.value().to_vec()))
}

/// Every record of a table, in backup id order.
pub(super) fn records(
    db: &Database,
    table: RecordTable,
) -> Result<Vec<(BackupId, Vec<u8>)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let records = txn.open_table(table.definition()).map_err(StoreError::db)?;
    records
        .iter()
        .map_err(StoreError::db)?
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            Ok((BackupId(*k.value()), v.value().to_vec()))
        })
        .collect()
}
