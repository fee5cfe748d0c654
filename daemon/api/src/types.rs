//! The JSON bodies of the control API, as they travel on the socket.
//!
//! Requests refuse unknown fields (a typo is an error, not a silent default);
//! responses accept them, so that an older `sherdctl` can read a newer
//! daemon's answers. These types hold strings, not parsed ids: validating a
//! feed id or a multiaddr is the daemon's job, and this crate never links the
//! protocol's crypto or libp2p.

use serde::{Deserialize, Serialize};

/// Bytes a request body may have at most; a larger one gets 413
/// (`payload_too_large`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Characters a contact's name may have at most.
pub const CONTACT_NAME_MAX_CHARS: usize = 64;

/// Audit records returned when the request does not say how many.
pub const AUDIT_LIMIT_DEFAULT: usize = 100;

/// Audit records returned at most by one request; a larger `limit` is capped.
pub const AUDIT_LIMIT_MAX: usize = 1000;

/// `GET /v1/status`: who this node is and what it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's feed id, which is also its libp2p peer id (`12D3KooW...`).
    pub feed_id: String,
    /// The daemon's version.
    pub version: String,
    /// The multiaddrs the node listens on.
    pub listen: Vec<String>,
    /// Peers connected now.
    pub peers: usize,
    /// The feeds the node replicates: its own and its contacts'.
    pub feeds: Vec<FeedStatus>,
    /// What the node received from peers since it started, copies counted.
    /// All zero from a daemon that predates it.
    #[serde(default)]
    pub received: Received,
}

/// Entries a node received from peers since it started, in [`Status`]: every
/// copy, and how many were copies of what it had already.
///
/// A gossiped entry travels as one gossipsub message whose id is the entry
/// id. Copies are caught twice: gossipsub's duplicate filter drops a message
/// it has seen (within a minute) before the node looks at it
/// (`gossip_duplicates`); the store then skips an entry it holds already,
/// however it came (`gossip_held`, `sync_held`). The two do not overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Received {
    /// Gossip messages that arrived, on any topic, every copy counted
    /// (gossipsub's count before its duplicate filter; it counts the first
    /// 300 topics it meets).
    pub gossip_messages: u64,
    /// Of those, the copies gossipsub's duplicate filter dropped as seen.
    pub gossip_duplicates: u64,
    /// Gossiped entries of followed feeds offered to the store (past the
    /// filter).
    pub gossip_entries: u64,
    /// Of those, the ones appended (new to the node).
    pub gossip_appended: u64,
    /// Of those, the ones the store held already (a seq at or below the
    /// head, the same entry).
    pub gossip_held: u64,
    /// Entries that arrived in sync responses.
    pub sync_entries: u64,
    /// Of those, the ones appended.
    pub sync_appended: u64,
    /// Of those, the ones the store held already.
    pub sync_held: u64,
}

/// One replicated feed in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// The feed id.
    pub feed: String,
    /// The contact's name, if the feed is a contact's.
    #[serde(default)]
    pub name: Option<String>,
    /// The highest sequence number stored (0 when no entry is stored yet).
    pub seq: u64,
}

/// `GET /v1/peers`: one connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's id (for a sherd node, also its feed id).
    pub peer_id: String,
}

/// `POST /v1/connect`: dial a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The multiaddr to dial, for example `/ip4/192.0.2.7/tcp/4001`.
    pub addr: String,
}

/// `GET /v1/contacts`, and the answer to `POST /v1/contacts`: a local
/// petname for a feed id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact's feed id.
    pub feed: String,
    /// The name this node gives it.
    pub name: String,
    /// Whether recovery requests from this contact are approved without
    /// asking (default: no, each waits for `sherdctl approve`).
    #[serde(default)]
    pub auto_approve: bool,
}

/// `POST /v1/contacts`: follow a feed under a local name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddContact {
    /// The contact's feed id.
    pub feed: String,
    /// The name to give it: 1 to [`CONTACT_NAME_MAX_CHARS`] characters, not
    /// only whitespace, no control characters.
    pub name: String,
    /// Approve this contact's recovery requests without asking (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_approve: bool,
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The first sequence number wanted (default 0, the start of the log).
    #[serde(default)]
    pub from: Option<u64>,
    /// How many records at most: default [`AUDIT_LIMIT_DEFAULT`], capped at
    /// [`AUDIT_LIMIT_MAX`], at least 1.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/audit`: one record of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The record's position in the log.
    pub seq: u64,
    /// The record itself (time, peer, backup, request, result), as the
    /// daemon wrote it.
    pub record: serde_json::Value,
}

/// `GET /v1/events`: something that happened in the node, sent as one JSON
/// object per Server-Sent Event `data:` line, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A connection to a peer was established.
    PeerConnected {
        /// The peer's id.
        peer: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer's id.
        peer: String,
    },
    /// A peer sent invalid data too often and is refused for a while.
    PeerBlocked {
        /// The peer's id.
        peer: String,
        /// How long it stays blocked.
        duration_secs: u64,
    },
    /// An entry was committed to the store.
    EntryStored {
        /// The feed it belongs to.
        feed: String,
        /// Its sequence number.
        seq: u64,
    },
    /// A contact was added.
    ContactAdded {
        /// The contact's feed id.
        feed: String,
        /// Its name.
        name: String,
    },
    /// A contact was removed.
    ContactRemoved {
        /// The contact's feed id.
        feed: String,
    },
    /// This node made a backup and published its shards.
    BackupCreated {
        /// The backup.
        backup: String,
        /// How many custodians it has.
        custodians: usize,
    },
    /// A custodian acknowledged its shard of one of our backups.
    AckReceived {
        /// The backup.
        backup: String,
        /// The custodian.
        custodian: String,
        /// Custodians that have acknowledged now.
        acks: usize,
        /// Custodians in all.
        custodians: usize,
    },
    /// This node verified, stored and acknowledged a shard.
    ShardHeld {
        /// The backup.
        backup: String,
        /// Its owner.
        owner: String,
    },
    /// A shard or request addressed to this node was refused.
    Refused {
        /// What was refused (`shard`, `request`, `reply`, ...).
        what: String,
        /// The feed that sent it.
        peer: String,
        /// The entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Someone asks this node, as a custodian, to release its shard. Waits for `approve` or `deny`
    /// unless the requester is an auto-approved contact.
    RequestReceived {
        /// The request id.
        request: String,
        /// `owner` or `lost_device`.
        kind: String,
        /// The backup.
        backup: String,
        /// Who asked.
        requester: String,
        /// Where the shard would go.
        recipient: String,
    },
    /// This node erased its shard of a backup its owner revoked.
    ShardErased {
        /// The backup.
        backup: String,
        /// Its owner.
        owner: String,
    },
    /// A requester went over the daily limit of requests for a backup; its
    /// request was ignored (and audited).
    RateLimited {
        /// The backup.
        backup: String,
        /// Who asked too often.
        requester: String,
        /// The request ignored.
        request: String,
    },
    /// A custodian of one of our backups has given no good proof of its
    /// shard for longer than the configured limit.
    CustodianSilent {
        /// The backup.
        backup: String,
        /// The custodian.
        custodian: String,
        /// When it last proved its shard (or the backup was made), ms since
        /// the Unix epoch.
        last_heard_ms: u64,
    },
    /// A custodian answered a health check of one of our backups.
    ProofReceived {
        /// The backup.
        backup: String,
        /// The custodian.
        custodian: String,
        /// Whether the proof matched its shard.
        good: bool,
        /// Whether it had been reported silent before.
        back_from_silence: bool,
    },
    /// A custodian erased its shard of one of our revoked backups.
    RevokeAcked {
        /// The backup.
        backup: String,
        /// The custodian.
        custodian: String,
        /// Custodians that have erased now.
        erased: usize,
        /// Custodians in all.
        custodians: usize,
    },
    /// The owner of a backup granted this node emergency access to it.
    GrantReceived {
        /// The backup.
        backup: String,
        /// Its owner.
        owner: String,
    },
    /// An emergency request's veto window closed with no veto: this
    /// custodian's user may now approve the release.
    ReleaseDue {
        /// The request id.
        request: String,
        /// The backup.
        backup: String,
    },
    /// This node released its shard for a request (once per request).
    ShardReleased {
        /// The request id.
        request: String,
        /// The backup.
        backup: String,
        /// Where it went.
        recipient: String,
    },
    /// A request was denied: by this node, or by a custodian of ours.
    RequestDenied {
        /// The request id.
        request: String,
        /// The backup.
        backup: String,
        /// Who denied it.
        by: String,
    },
    /// A recovery on this node took one more valid shard.
    RecoveryProgress {
        /// The backup.
        backup: String,
        /// Valid shards in.
        shards: usize,
        /// Shards needed.
        threshold: u8,
    },
    /// A recovery on this node has the secret, waiting to be fetched once.
    RecoveryComplete {
        /// The backup.
        backup: String,
    },
    /// A recovery on this node failed for good.
    RecoveryFailed {
        /// The backup.
        backup: String,
        /// Why.
        reason: String,
    },
}

/// The data of an `event: lagged` note on the event stream: the subscriber
/// read too slowly and this many events were dropped for it. The stream goes
/// on after the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// Events dropped.
    pub missed: u64,
}

/// The body of every error response (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable, machine-readable code: one of [`code`](crate::code).
    pub code: String,
    /// What went wrong, for a person; it names the offending field.
    pub message: String,
}

/// The stable values of [`ErrorBody::code`]. Scripts may match on them; their
/// meaning never changes.
pub mod code {
    /// 400: the request is malformed, has unknown fields or a value out of
    /// range. Nothing was changed.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// 404: no such route, contact or record.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: the route exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: the request contradicts the node's state (for example a contact
    /// that already exists under another name).
    pub const CONFLICT: &str = "conflict";
    /// 413: the request body is larger than [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 503: the node cannot do this now (shutting down, network not up).
    pub const UNAVAILABLE: &str = "unavailable";
    /// 500: a bug or a failing disk; the daemon's log says more.
    pub const INTERNAL: &str = "internal";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_in_snake_case() {
        let event = Event::PeerBlocked {
            peer: "12D3KooWA".into(),
            duration_secs: 600,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"event":"peer_blocked","peer":"12D3KooWA","duration_secs":600}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        let stored: Event =
            serde_json::from_str(r#"{"event":"entry_stored","feed":"F","seq":7}"#).unwrap();
        assert_eq!(
            stored,
            Event::EntryStored {
                feed: "F".into(),
                seq: 7
            }
        );
    }

    #[test]
    fn a_status_without_the_received_counts_still_parses() {
        let old = r#"{"feed_id":"F","version":"0.1.0","listen":[],"peers":0,"feeds":[]}"#;
        let status: Status = serde_json::from_str(old).unwrap();
        assert_eq!(status.received, Received::default());
        let partial: Received = serde_json::from_str(r#"{"gossip_messages":3}"#).unwrap();
        assert_eq!((partial.gossip_messages, partial.sync_held), (3, 0));
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let err = serde_json::from_str::<AddContact>(r#"{"feed":"F","name":"a","admin":true}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `admin`"), "{err}");
        assert!(serde_json::from_str::<ConnectRequest>(r#"{"addr":"/a","x":1}"#).is_err());
    }

    #[test]
    fn responses_accept_unknown_fields() {
        let peer: Peer = serde_json::from_str(r#"{"peer_id":"P","rtt_ms":3}"#).unwrap();
        assert_eq!(peer.peer_id, "P");
    }
}

/// `POST /v1/backups`: back up a secret with custodians. The secret travels
/// only over the daemon's 0600 socket, never on a command line; it is
/// zeroized when this value is dropped and never printed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// What the secret is, in the owner's words: 1 to 256 bytes, no control
    /// characters. It is stored encrypted with the secret.
    pub label: String,
    /// How many custodians must cooperate to recover it (1 to the number of custodians).
    pub threshold: u8,
    /// The custodians' feed ids (1 to 32, distinct, each a contact).
    pub custodians: Vec<String>,
    /// The secret, standard base64 with padding (1 byte to 16 KiB decoded).
    pub secret: zeroize::Zeroizing<String>,
    /// Trustees who may ask for emergency access (0 to 8 feed ids, each a
    /// contact, none a custodian).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trustees: Vec<String>,
    /// Seconds the owner has to veto a trustee's request (default
    /// [`DEFAULT_VETO_DELAY_SECS`], at most a year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veto_delay_secs: Option<u32>,
    /// Whether a trustee's access is one-time (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_time: bool,
    /// Who releases to a trustee once the window has passed: `approve` (each
    /// custodian's user, the default) or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// The veto window of a backup made without one: 72 hours.
pub const DEFAULT_VETO_DELAY_SECS: u32 = 72 * 3600;

impl std::fmt::Debug for CreateBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateBackup")
            .field("label", &self.label)
            .field("threshold", &self.threshold)
            .field("custodians", &self.custodians)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A backup as its owner sees it (`GET /v1/backups`, `GET /v1/backups/{id}`,
/// and the answer to `POST /v1/backups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// The backup id (64 hex characters).
    pub id: String,
    /// Its label.
    pub label: String,
    /// Shards needed to recover.
    pub threshold: u8,
    /// When it was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// Its custodians, in shard order.
    pub custodians: Vec<BackupCustodian>,
    /// Its trustees (emergency access).
    #[serde(default)]
    pub trustees: Vec<BackupTrustee>,
    /// Its emergency policy.
    #[serde(default)]
    pub policy: Option<BackupPolicy>,
    /// Whether the owner revoked it (custodians erase their shards and say so
    /// in [`BackupCustodian::erased`]).
    #[serde(default)]
    pub revoked: bool,
    /// Set once a trustee used a one-time backup (custodians then erase
    /// their shards).
    #[serde(default)]
    pub redeemed: Option<BackupRedeemed>,
}

/// `POST /v1/backups/{id}/reshare`: the new backup and the old one, revoked
/// in the same step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reshared {
    /// The backup made.
    pub new: Backup,
    /// The backup it replaces, now revoked (its custodians erase their shards).
    pub old: Backup,
}

/// A trustee's use of a one-time [`Backup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRedeemed {
    /// The trustee's feed id.
    pub by: String,
    /// Its contact name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// When its `redeemed` arrived, ms since the Unix epoch.
    pub at_ms: u64,
}

/// One trustee of a [`Backup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTrustee {
    /// The trustee's feed id.
    pub feed: String,
    /// Its contact name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
}

/// The emergency policy signed into every shard of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPolicy {
    /// Seconds the owner has to veto a trustee's request.
    pub veto_delay_secs: u32,
    /// Whether a trustee's access is one-time.
    pub one_time: bool,
    /// `approve` or `auto`.
    pub release: String,
}

/// `GET /v1/grants`: a backup this node may ask for as a trustee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The backup.
    pub backup: String,
    /// Its owner.
    pub owner: String,
    /// The owner's contact name, if it has one.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// What the secret is, if the owner said.
    #[serde(default)]
    pub label: Option<String>,
    /// The custodians that would be asked.
    pub custodians: Vec<String>,
    /// Shards needed.
    pub threshold: u8,
    /// The policy the custodians enforce.
    pub policy: BackupPolicy,
    /// When the grant arrived, ms since the Unix epoch.
    pub received_ms: u64,
    /// When this node used its one-time access, ms since the Unix epoch.
    #[serde(default)]
    pub redeemed_ms: Option<u64>,
}

/// One custodian of a [`Backup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCustodian {
    /// The custodian's feed id.
    pub feed: String,
    /// Its contact name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// The id of the `shard` entry published to it.
    pub shard: String,
    /// Whether it acknowledged (verified and stored) its shard.
    pub acked: bool,
    /// Once the backup is revoked: whether it erased its shard and said so.
    #[serde(default)]
    pub erased: bool,
    /// When it last proved it still holds its shard (health check), ms since
    /// the Unix epoch.
    #[serde(default)]
    pub last_proof_ms: Option<u64>,
    /// Since when it has been reported silent (no proof for longer than the
    /// configured limit), ms since the Unix epoch.
    #[serde(default)]
    pub silent_since_ms: Option<u64>,
}

/// `GET /v1/shards`: a shard this node holds for someone else. A shard whose
/// payload was erased (its backup revoked by the owner, or a one-time backup
/// redeemed by a trustee) is no longer held and not listed; the audit log
/// says when it was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldShard {
    /// The backup it belongs to.
    pub backup: String,
    /// The owner's feed id.
    pub owner: String,
    /// The owner's contact name, if it has one.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// The `shard` entry.
    pub shard: String,
    /// When this node received and verified it, ms since the Unix epoch.
    pub received_ms: u64,
}

/// Bytes a `reason` given with `deny` may have at most.
pub const REASON_MAX_BYTES: usize = 1024;

/// `POST /v1/requests`: start a recovery. Two shapes:
///
/// - **owner** (this node made the backup and lost the secret): `backup` only,
///   one of this node's backups. Every custodian is asked to reply to us.
/// - **lost device** (run on a custodian's node for an owner who lost its
///   key): `owner` (the old feed) and `to` (the owner's new feed), and
///   `backup` when this node holds shards of more than one of `owner`'s
///   backups. This node forwards its own shard to `to` at once and asks the
///   co-custodians to do the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRecovery {
    /// The backup id (64 hex characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Lost device: the owner's old feed id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Lost device: the owner's new feed id, where the shards go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A recovery request as this node sees it: one it made, one asked of it as
/// a custodian, or one naming it as the recipient (`GET /v1/requests`, and
/// the answer to `POST /v1/requests`, `.../approve` and `.../deny`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRequest {
    /// The request id (32 hex characters), chosen by the requester.
    pub id: String,
    /// `owner`, `lost_device` or `emergency`.
    pub kind: String,
    /// This node's part: `requester` (it made the request), `custodian` (it
    /// is asked for its shard), `recipient` (the shards come to it) or
    /// `owner` (a trustee asks for this node's backup: it may veto).
    pub role: String,
    /// The backup asked for.
    pub backup: String,
    /// The backup's owner.
    pub owner: String,
    /// The owner's contact name, if it has one.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// Who made the request.
    pub requester: String,
    /// The requester's contact name, if it has one.
    #[serde(default)]
    pub requester_name: Option<String>,
    /// Where the shards go.
    pub recipient: String,
    /// The custodians asked.
    pub custodians: Vec<String>,
    /// When this node made or received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// When it lapses, ms since the Unix epoch.
    pub expires_ms: u64,
    /// For an emergency request in its veto window: when the window closes,
    /// ms since the Unix epoch.
    #[serde(default)]
    pub release_at_ms: Option<u64>,
    /// For `custodian`: `waiting` (an emergency request in the owner's veto
    /// window), `pending` (waiting for `approve` or `deny`), `released` (our
    /// shard went out, once), `denied`, `vetoed` (by the owner) or
    /// `expired`. For `owner`: `waiting`, `vetoed` or `approved` (early).
    /// For `requester` and `recipient`: `open`, or `waiting` for an
    /// emergency request, `vetoed` once the owner vetoed it.
    pub state: String,
    /// The `reply` or `forward` entry that released our shard, once released.
    #[serde(default)]
    pub released: Option<String>,
    /// Why it was denied, if a reason was given.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/requests/{id}/approve` and `POST /v1/requests/{id}/deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// The requester's feed id; needed only if two requesters used the same
    /// request id (the daemon says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Approve only: the recipient the user verified out of band. If given
    /// and it is not the request's recipient, nothing is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Deny only: why, told to the requester (at most [`REASON_MAX_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/recoveries` and `GET /v1/recoveries/{backup}`: a recovery this
/// node is collecting shards for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The backup.
    pub backup: String,
    /// Its owner (for a lost-device recovery, the old identity).
    pub owner: String,
    /// `owner` or `lost_device`.
    pub kind: String,
    /// Valid shards in.
    pub shards: usize,
    /// Shards needed, once known (the owner knows it; a new identity learns
    /// it from the first valid shard).
    #[serde(default)]
    pub threshold: Option<u8>,
    /// `collecting`, `complete` (the secret waits, in memory only, for one
    /// `POST .../secret`), `delivered` (handed over; gone from the node) or
    /// `failed`.
    pub state: String,
    /// The requests feeding it.
    pub requests: Vec<String>,
    /// Shards refused, each with the reason.
    pub rejected: Vec<RejectedShard>,
    /// Custodians that denied, each with their reason if they gave one.
    pub denied: Vec<Denial>,
    /// Why it failed, when `state` is `failed`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A shard a recovery refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedShard {
    /// The feed that sent it.
    pub custodian: String,
    /// The `reply` or `forward` entry.
    pub entry: String,
    /// Why it was refused.
    pub reason: String,
}

/// A custodian's refusal of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The custodian.
    pub custodian: String,
    /// Its reason, if it gave one.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/recoveries/{backup}/secret`: the recovered secret, handed over
/// once. The daemon forgets it as it answers; a second call gets 409
/// (`conflict`). Zeroized when dropped; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredSecret {
    /// The backup.
    pub backup: String,
    /// The label stored with the secret.
    pub label: String,
    /// The secret, standard base64 with padding.
    pub secret: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for RecoveredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveredSecret")
            .field("backup", &self.backup)
            .field("label", &self.label)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `PUT /v1/contacts/{feed}/auto-approve`: whether recovery requests from
/// this contact are approved without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAutoApprove {
    /// `true` to approve automatically, `false` (the default) to wait for
    /// `sherdctl approve`.
    pub auto_approve: bool,
}
