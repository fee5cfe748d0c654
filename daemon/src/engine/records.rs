//! The engine's records, as stored (JSON) in the `backups` and `held_shards`
//! tables, and the functions that read them back from a [`Store`].
//!
//! What a record never holds: a secret, a share, a check key or a sealed
//! shard. The owner's check keys live in its `root` entry, a custodian's
//! sealed shard in the `shard` entry's payload; records point at entries by
//! id, so that erasing a payload really erases the shard.

use serde::{Deserialize, Serialize};
use sherd_protocol::content::{Release, RequestKind};
use sherd_protocol::{BackupId, EntryId, FeedId, RequestId};

use crate::store::{EngineUpdate, Store, StoreError};

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
    /// The trustees, each with the `grant` entry published to it.
    #[serde(default)]
    pub trustees: Vec<TrusteeRecord>,
    /// The emergency policy signed into every shard.
    #[serde(default)]
    pub policy: PolicyRecord,
    /// The `revoke` entry, once the owner revoked the backup.
    #[serde(default)]
    pub revoked: Option<EntryId>,
    /// Who used the one-time access, once a trustee did.
    #[serde(default)]
    pub redeemed: Option<RedeemedRecord>,
    /// When the last round of health checks went out, ms since the Unix epoch.
    #[serde(default)]
    pub last_check_ms: Option<u64>,
    /// The replies that redeemed the backup (in the custodians' feeds, boxed
    /// to the trustee), erased from this node's replicas.
    #[serde(default)]
    pub erased_replicas: Vec<EntryId>,
}

/// A trustee's use of a one-time backup, as the owner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemedRecord {
    /// The trustee.
    pub by: FeedId,
    /// Its `redeemed` entry.
    pub entry: EntryId,
    /// The request that got the shards.
    pub request: RequestId,
    /// When it arrived here, ms since the Unix epoch.
    pub at_ms: u64,
}

/// The emergency-access part of a backup's policy (PROTOCOL.md 8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Seconds the owner has to veto a trustee's request.
    pub veto_delay_secs: u32,
    /// Whether a trustee's access erases the backup everywhere.
    pub one_time: bool,
    /// Who releases to a trustee once the delay has passed.
    pub release: Release,
}

/// One trustee of a backup, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrusteeRecord {
    /// The trustee's feed.
    pub feed: FeedId,
    /// The `grant` entry published to it.
    pub grant: EntryId,
}

/// What a trustee was granted by a backup's owner (from its `grant` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The backup's owner.
    pub owner: FeedId,
    /// The `grant` entry.
    pub entry: EntryId,
    /// What the secret is, if the owner said.
    pub label: Option<String>,
    /// The custodians to ask.
    pub custodians: Vec<FeedId>,
    /// Shards needed.
    pub threshold: u8,
    /// The policy the custodians enforce.
    pub policy: PolicyRecord,
    /// When it arrived, ms since the Unix epoch.
    pub received_ms: u64,
    /// When this node used its one-time access, ms since the Unix epoch.
    #[serde(default)]
    pub redeemed_ms: Option<u64>,
    /// The owner's `revoke` entry, once it revoked the backup.
    #[serde(default)]
    pub revoked: Option<EntryId>,
    /// The owner's `shard` entries (boxed to the custodians) this node erased
    /// from its replica of the owner's feed on the revocation.
    #[serde(default)]
    pub erased_replicas: Vec<EntryId>,
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
    /// The custodian's `ack` of the backup's revocation, once it erased its shard.
    #[serde(default)]
    pub revoke_acked: Option<EntryId>,
    /// The latest health check sent to it, until it is answered.
    #[serde(default)]
    pub challenge: Option<ChallengeRecord>,
    /// When its last good proof arrived, ms since the Unix epoch.
    #[serde(default)]
    pub last_proof_ms: Option<u64>,
    /// When it was reported silent; cleared by its next good proof.
    #[serde(default)]
    pub silent_since_ms: Option<u64>,
}

/// A health check sent to a custodian (`engine/health.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The `challenge` entry boxed to it.
    pub entry: EntryId,
    /// Its nonce (public: it is in the entry).
    pub nonce: [u8; 32],
    /// When it was sent, ms since the Unix epoch.
    pub sent_ms: u64,
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
    /// Every custodian of the backup, in the owner-signed policy (this node
    /// included): who may ask the others to forward to a new identity.
    #[serde(default)]
    pub custodians: Vec<FeedId>,
    /// The trustees of the owner-signed policy.
    #[serde(default)]
    pub trustees: Vec<FeedId>,
    /// The emergency policy of the owner-signed shard.
    #[serde(default)]
    pub policy: PolicyRecord,
    /// Emergency requests the owner vetoed before they reached this node.
    #[serde(default)]
    pub vetoed: Vec<RequestId>,
    /// Emergency requests the owner approved before they reached this node.
    #[serde(default)]
    pub owner_approved: Vec<RequestId>,
    /// The owner's `revoke` entry, once it revoked the backup: the shard's
    /// payload is then erased and nothing is released any more.
    #[serde(default)]
    pub revoked: Option<EntryId>,
    /// The trustee's `redeemed` entry, once a one-time backup was used: the
    /// shard's payload is then erased and requests are answered "redeemed".
    #[serde(default)]
    pub redeemed: Option<EntryId>,
    /// Entries this node cannot open, erased from its replicas: the other
    /// custodians' `shard` entries (listed by a revocation) and their
    /// replies to a trustee (listed by a redemption).
    #[serde(default)]
    pub erased_replicas: Vec<EntryId>,
    /// When this node last answered the owner's health check.
    #[serde(default)]
    pub last_proof_ms: Option<u64>,
}

/// This node's part in a recovery request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// This node made it.
    Requester,
    /// This node is asked for its shard.
    Custodian,
    /// This node owns the backup a trustee asks for: it may veto the
    /// request or approve it early.
    Owner,
    /// The shards come to this node (a new identity of the owner).
    Recipient,
}

/// Where a request stands, from this node's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RequestState {
    /// Made here, or naming us as recipient: nothing for this node to decide.
    Open,
    /// An emergency request in its veto window: nothing is released before
    /// `release_at_ms`, and a veto from the owner cancels it.
    Waiting {
        /// When the window closes, ms since the Unix epoch.
        release_at_ms: u64,
    },
    /// Asked of us; waiting for the user's `approve` or `deny`.
    Pending,
    /// Our shard went out in this `reply` / `forward` entry. Final: a
    /// request releases our shard at most once.
    Released {
        /// The entry that carried it.
        entry: EntryId,
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
    /// Refused by us (published as a `deny`). Final.
    Denied {
        /// The reason given, if any.
        reason: Option<String>,
    },
    /// It lapsed before it was approved. Final.
    Expired,
    /// The owner vetoed this emergency request. Final.
    Vetoed,
    /// As owner: this node approved the emergency request early, in this
    /// entry (the request, published again by the owner). Final.
    Approved {
        /// The owner's approving entry.
        entry: EntryId,
    },
}

impl RequestState {
    /// The state's name, as the API shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Waiting { .. } => "waiting",
            Self::Pending => "pending",
            Self::Released { .. } => "released",
            Self::Denied { .. } => "denied",
            Self::Expired => "expired",
            Self::Vetoed => "vetoed",
            Self::Approved { .. } => "approved",
        }
    }
}

/// A recovery request: one this node made, was asked, or receives the
/// shards of. Keyed by (requester, id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// What it is for.
    pub kind: RequestKind,
    /// This node's part in it.
    pub role: Role,
    /// The backup asked for.
    pub backup: BackupId,
    /// The backup's owner.
    pub owner: FeedId,
    /// Where the shards go.
    pub recipient: FeedId,
    /// The custodians asked.
    pub custodians: Vec<FeedId>,
    /// The `request` entry (first one, when it took several envelopes).
    pub entry: EntryId,
    /// When this node made or received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// When it lapses.
    pub expires_ms: u64,
    /// Where it stands.
    pub state: RequestState,
}

/// Where a recovery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecoveryState {
    /// Taking shards.
    Collecting,
    /// Enough shards are in: the secret is rebuilt in memory (from the
    /// entries listed in `shards`) until a client takes it once.
    Complete,
    /// Handed over to a client; the shards' payloads are erased.
    Delivered {
        /// When, ms since the Unix epoch.
        at_ms: u64,
    },
    /// The shards combine to nothing: the owner signed inconsistent shards.
    Failed {
        /// Why.
        reason: String,
    },
}

impl RecoveryState {
    /// The state's name, as the API shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Collecting => "collecting",
            Self::Complete => "complete",
            Self::Delivered { .. } => "delivered",
            Self::Failed { .. } => "failed",
        }
    }
}

/// A shard a recovery took or refused: the entry that carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRef {
    /// The custodian whose feed it is in.
    pub custodian: FeedId,
    /// The `reply` or `forward` entry.
    pub entry: EntryId,
    /// Why it was refused (refused shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A recovery this node collects shards for, keyed by backup id. It never
/// holds a shard or the secret: it points at the entries that carry the
/// shards, and the engine rebuilds the secret from them after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// The backup's owner (the old identity, for a lost device).
    pub owner: FeedId,
    /// `owner` or `lost_device`.
    pub kind: RequestKind,
    /// Shards needed, when known.
    pub threshold: Option<u8>,
    /// When it started, ms since the Unix epoch.
    pub started_ms: u64,
    /// The requests feeding it, as (requester, id).
    pub requests: Vec<(FeedId, RequestId)>,
    /// The shards taken, in the order taken.
    pub shards: Vec<ShardRef>,
    /// The shards refused, with the reasons.
    pub rejected: Vec<ShardRef>,
    /// The custodians that denied, with their reasons.
    pub denied: Vec<(FeedId, Option<String>)>,
    /// Where it stands.
    pub state: RecoveryState,
    /// Entries that carried a shard this recovery did not need (it had
    /// ended, or held one from that custodian already): their payloads are
    /// erased, like the shards of a delivered recovery.
    #[serde(default)]
    pub surplus: Vec<EntryId>,
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    id: &BackupId,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} record of backup {id}: {e}")))
}

/// The store update that writes the owner's record of backup `id`.
pub(super) fn backup_update(id: BackupId, record: &BackupRecord) -> EngineUpdate {
    EngineUpdate::Backup {
        id,
        record: encode(record),
    }
}

/// The store update that writes a custodian's record of its shard of `id`.
pub(super) fn held_update(id: BackupId, held: &HeldShard) -> EngineUpdate {
    EngineUpdate::HeldShard {
        id,
        record: encode(held),
    }
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

/// The record of request `id` made by `requester`.
pub fn request(
    store: &Store,
    requester: &FeedId,
    id: &RequestId,
) -> Result<Option<RequestRecord>, StoreError> {
    store
        .request_record(requester, id)?
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("request {id} of {requester}: {e}")))
        })
        .transpose()
}

/// Every request record, as (requester, id, record).
pub fn requests(store: &Store) -> Result<Vec<(FeedId, RequestId, RequestRecord)>, StoreError> {
    store
        .request_records()?
        .into_iter()
        .map(|(requester, id, bytes)| {
            let record = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("request {id} of {requester}: {e}")))?;
            Ok((requester, id, record))
        })
        .collect()
}

/// The recovery of backup `id` on this node, if any.
pub fn recovery(store: &Store, id: &BackupId) -> Result<Option<RecoveryRecord>, StoreError> {
    store
        .recovery_record(id)?
        .map(|bytes| decode("recovery", id, &bytes))
        .transpose()
}

/// Every recovery on this node.
pub fn recoveries(store: &Store) -> Result<Vec<(BackupId, RecoveryRecord)>, StoreError> {
    store
        .recovery_records()?
        .into_iter()
        .map(|(id, bytes)| Ok((id, decode("recovery", &id, &bytes)?)))
        .collect()
}

/// What this node was granted as a trustee for backup `id`.
pub fn grant(store: &Store, id: &BackupId) -> Result<Option<GrantRecord>, StoreError> {
    store
        .grant_record(id)?
        .map(|bytes| decode("grant", id, &bytes))
        .transpose()
}

/// Every grant this node holds as a trustee.
pub fn grants(store: &Store) -> Result<Vec<(BackupId, GrantRecord)>, StoreError> {
    store
        .grant_records()?
        .into_iter()
        .map(|(id, bytes)| Ok((id, decode("grant", &id, &bytes)?)))
        .collect()
}
