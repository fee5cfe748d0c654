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
use sherd_protocol::{BackupId, FeedId, Keypair, RequestId};

use super::tables::{
    AUTO_APPROVE, BACKUPS, ENGINE_CURSOR, GRANTS, HEADS, HELD_SHARDS, RECOVERIES, REQUESTS,
};
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
    /// Puts (or replaces) the record of a recovery request.
    Request {
        /// Who made it.
        requester: FeedId,
        /// Its id (chosen by the requester).
        id: RequestId,
        /// The record, JSON.
        record: Vec<u8>,
    },
    /// Puts (or replaces) the record of a recovery this node collects.
    Recovery {
        /// The backup recovered.
        id: BackupId,
        /// The record, JSON.
        record: Vec<u8>,
    },
    /// Puts (or replaces) what this node was granted as a trustee.
    Grant {
        /// The backup.
        id: BackupId,
        /// The record, JSON.
        record: Vec<u8>,
    },
    /// Sets whether requests from `feed` are approved without asking.
    AutoApprove {
        /// The contact.
        feed: FeedId,
        /// Approve automatically.
        on: bool,
    },
    /// Appends one audit record (JSON).
    Audit(Vec<u8>),
}

/// The key of a request record: the requester's feed, then the request id.
pub(super) fn request_key(requester: &FeedId, id: &RequestId) -> [u8; 48] {
    let mut key = [0u8; 48];
    let (feed, request) = key.split_at_mut(32);
    feed.copy_from_slice(requester.as_bytes());
    request.copy_from_slice(&id.0);
    key
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
    let mut requests = txn.open_table(REQUESTS).map_err(StoreError::db)?;
    let mut recoveries = txn.open_table(RECOVERIES).map_err(StoreError::db)?;
    let mut auto_approve = txn.open_table(AUTO_APPROVE).map_err(StoreError::db)?;
    let mut grants = txn.open_table(GRANTS).map_err(StoreError::db)?;
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
            EngineUpdate::Request {
                requester,
                id,
                record,
            } => {
                requests
                    .insert(&request_key(&requester, &id), record.as_slice())
                    .map_err(StoreError::db)?;
            }
            EngineUpdate::Recovery { id, record } => {
                recoveries
                    .insert(id.as_bytes(), record.as_slice())
                    .map_err(StoreError::db)?;
            }
            EngineUpdate::Grant { id, record } => {
                grants
                    .insert(id.as_bytes(), record.as_slice())
                    .map_err(StoreError::db)?;
            }
            EngineUpdate::AutoApprove { feed, on } => {
                if on {
                    auto_approve
                        .insert(feed.as_bytes(), 1)
                        .map_err(StoreError::db)?;
                } else {
                    auto_approve
                        .remove(feed.as_bytes())
                        .map_err(StoreError::db)?;
                }
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
    Recoveries,
    Grants,
}

impl RecordTable {
    fn definition(self) -> redb::TableDefinition<'static, &'static [u8; 32], &'static [u8]> {
        match self {
            Self::Backups => BACKUPS,
            Self::HeldShards => HELD_SHARDS,
            Self::Recoveries => RECOVERIES,
            Self::Grants => GRANTS,
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

/// One request record by requester and id.
pub(super) fn request(
    db: &Database,
    requester: &FeedId,
    id: &RequestId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let requests = txn.open_table(REQUESTS).map_err(StoreError::db)?;
    Ok(requests
        .get(&request_key(requester, id))
        .map_err(StoreError::db)?
        .map(|v| v.value().to_vec()))
}

/// Every request record, as (requester, id, record), in key order.
pub(super) fn requests(db: &Database) -> Result<Vec<(FeedId, RequestId, Vec<u8>)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let requests = txn.open_table(REQUESTS).map_err(StoreError::db)?;
    requests
        .iter()
        .map_err(StoreError::db)?
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            let (feed, id) = k.value().split_at(32);
            let feed: [u8; 32] = feed
                .try_into()
                .map_err(|_| StoreError::Corrupt("requests key".into()))?;
            let id: [u8; 16] = id
                .try_into()
                .map_err(|_| StoreError::Corrupt("requests key".into()))?;
            Ok((
                feed_key(&feed, "requests")?,
                RequestId(id),
                v.value().to_vec(),
            ))
        })
        .collect()
}

/// Whether requests from `feed` are approved without asking.
pub(super) fn auto_approve(db: &Database, feed: &FeedId) -> Result<bool, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let table = txn.open_table(AUTO_APPROVE).map_err(StoreError::db)?;
    Ok(table
        .get(feed.as_bytes())
        .map_err(StoreError::db)?
        .is_some_and(|v| v.value() == 1))
}
