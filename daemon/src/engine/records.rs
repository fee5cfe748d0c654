//! The engine's records, as stored (JSON) in the `backups` and `held_shards`
//! tables, and the functions that read them back from a [`Store`].
//!
//! What a record never holds: a secret, a share, a check key or a sealed
//! shard. The owner's check keys live in its `root` entry, a custodian's
//! sealed shard in the `shard` entry's payload; records point at entries by
//! id, so that erasing a payload really erases the shard.

use serde::{Deserialize, Serialize};
use sherd_protocol::{BackupId, EntryId, FeedId};

use crate::store::{Store, StoreError};

/// The owner's record of a backup it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// What the secret is, in the owner's words (not secret, but private:
    /// never logged).
    pub label: String,
    /// How many shards recover the secret.
    pub threshold: u8,
    /// When the backup was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// The `root` entry, boxed to this node: the record can be rebuilt from it.
    pub root: EntryId,
    /// The custodians, in shard order.
    pub custodians: Vec<CustodianRecord>,
}

/// One custodian of a backup, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodianRecord {
    /// The custodian's feed.
    pub feed: FeedId,
    /// The `shard` entry published for this custodian.
    pub shard: EntryId,
    /// The custodian's `ack` entry, once one acknowledging `shard` arrived.
    pub acked: Option<EntryId>,
}

impl BackupRecord {
    /// How many custodians have acknowledged their shard.
    pub fn acks(&self) -> usize {
        self.custodians.iter().filter(|c| c.acked.is_some()).count()
    }
}

/// A shard this node holds as a custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldShard {
    /// The backup's owner (who signed the shard and published it).
    pub owner: FeedId,
    /// The `shard` entry in the owner's feed; its payload holds the sealed shard.
    pub shard: EntryId,
    /// When this node verified and stored it, ms since the Unix epoch.
    pub received_ms: u64,
    /// The `ack` entry this node published for it.
    pub ack: EntryId,
    /// The feeds followed for this shard: the owner, the co-custodians and
    /// the trustees of its policy (followed again on every start).
    pub follows: Vec<FeedId>,
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    id: &BackupId,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} record of backup {id}: {e}")))
}

pub(super) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string
    // keys, no custom serialisers that refuse.
    serde_json::to_vec(record).unwrap_or_default()
}

/// The owner's record of backup `id`, if this node made it.
pub fn backup(store: &Store, id: &BackupId) -> Result<Option<BackupRecord>, StoreError> {
    store
        .backup_record(id)?
        .map(|bytes| decode("backup", id, &bytes))
        .transpose()
}

/// Every backup this node made.
pub fn backups(store: &Store) -> Result<Vec<(BackupId, BackupRecord)>, StoreError> {
    store
        .backup_records()?
        .into_iter()
        .map(|(id, bytes)| Ok((id, decode("backup", &id, &bytes)?)))
        .collect()
}

/// The shard of backup `id` this node holds, if any.
pub fn held_shard(store: &Store, id: &BackupId) -> Result<Option<HeldShard>, StoreError> {
    store
        .held_shard_record(id)?
        .map(|bytes| decode("held shard", id, &bytes))
        .transpose()
}

/// Every shard this node holds.
pub fn held_shards(store: &Store) -> Result<Vec<(BackupId, HeldShard)>, StoreError> {
    store
        .held_shard_records()?
        .into_iter()
        .map(|(id, bytes)| Ok((id, decode("held shard", &id, &bytes)?)))
        .collect()
}
