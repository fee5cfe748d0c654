//! The protocol engine: what the node does with the entries it holds.
//!
//! One task ([`spawn`]) owns it; an [`EngineHandle`] talks to it. It learns
//! of entries from the store's announcements ([`Store::subscribe`]) and, on
//! start or after missing announcements (a lagged subscription), by scanning
//! every feed from its persisted per-feed cursor. Each entry is opened by
//! trial with the node's key ([`open`]); what is addressed to us is acted on:
//!
//! - as an **owner** ([`owner`]): [`EngineHandle::create_backup`] publishes the
//!   `root` (boxed to ourselves) and one `shard` per custodian, and records
//!   the backup; an `ack` from a custodian for the shard we published for it
//!   marks it acknowledged;
//! - as a **custodian** ([`custodian`]): a `shard` for us is verified, recorded
//!   (the sealed bytes stay in the entry's payload), its owner, co-custodians
//!   and trustees followed, and an `ack` published to the owner, once.
//!
//! Every step writes one audit line ([`audit`]), and everything a step
//! changes (records, audit lines, published entries, the cursor past the
//! entry) commits in one store transaction ([`crate::store::EngineWrite`]):
//! a restart neither skips an entry nor acts on one twice.
//!
//! What the engine never does: run on the network loop or in the store
//! writer (it is its own task; batches of trial decryption go to a blocking
//! thread), log or store plaintext, a secret or a share, or keep a decrypted
//! shard past the step that verified it.
//!
//! - **requests** ([`requests`]): the owner asks its custodians
//!   ([`EngineHandle::start_owner_recovery`]); a custodian forwards its own
//!   shard to an owner's new identity and asks its co-custodians to do the
//!   same ([`EngineHandle::start_lost_device_recovery`]). A request asked of
//!   us is checked (who may ask), recorded `pending`, and released once on
//!   [`EngineHandle::decide`] (or at once for an auto-approved contact);
//! - **recovery** ([`recover`]): `reply` / `forward` entries answering our
//!   requests feed a [`sherd_protocol::recovery::Recovery`]; at `threshold`
//!   the secret waits in memory for one [`EngineHandle::take_secret`].
//!
//! Follows: a flow follows the feeds it needs while it lives; when it ends
//! (a recovery delivered) or a contact goes, [`EngineHandle::release_follows`]
//! unfollows only what nothing else needs.
//!
//! - **emergency access** ([`emergency`]): grants at the trustee, the veto
//!   window each custodian keeps as a persisted deadline, the owner's veto
//!   and early approval, the release after the window;
//! - **revocation** ([`revoke`]): custodians erase the shard's payload and
//!   acknowledge; the owner counts who has;
//! - **one-time access** ([`redeem`]): the trustee that recovers a one-time
//!   backup tells everyone; custodians erase and answer later requests
//!   "redeemed";
//! - **re-share** ([`owner`]): a new backup and the old one's revocation in
//!   one transaction;
//! - **health checks** ([`health`]): the owner's periodic `challenge`, the
//!   custodian's `proof`, and custodians reported silent.
//!
//! Not yet here: rebuilding records from `root` entries on reindex. Content
//! of those types addressed to us is audited as not handled, and the cursor
//! moves past it.

mod actor;
mod audit;
mod custodian;
mod emergency;
mod health;
mod open;
mod owner;
pub mod records;
mod recover;
mod redeem;
mod requests;
mod revoke;

use std::sync::Arc;

use sherd_protocol::backup::{BackupError, BackupSpec};
use sherd_protocol::content::ContentError;
use sherd_protocol::content::RequestKind;
use sherd_protocol::envelope::EnvelopeError;
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair, RequestId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::net::NetworkHandle;
use crate::store::{Store, StoreError};

pub use records::{BackupRecord, CustodianRecord, HeldShard};
pub use requests::{Decision, RequestView};

/// How the engine behaves, beyond its key and store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Test hook (`sherdd --test-tamper-releases`): flip one byte of every
    /// shard this node releases, to play a byzantine custodian. Never on
    /// unless that flag is given.
    pub tamper_releases: bool,
    /// Recovery requests taken per requester and backup in any 24 hours;
    /// more are ignored and audited (config `requests_per_day`).
    pub requests_per_day: u32,
    /// How long a recovery request stays open after it is made (or, for an
    /// emergency request, after its veto window): this node's own requests
    /// carry it, and it caps how long this node keeps others' open (config
    /// `request_expiry`).
    pub request_ttl_ms: u64,
    /// How often the owner checks that each custodian still holds its shard
    /// (config `health_check_interval`).
    pub health_check_interval_ms: u64,
    /// How long a custodian may go without a good proof before it is
    /// reported silent (config `custodian_silent_after`).
    pub custodian_silent_after_ms: u64,
}

/// [`EngineOptions::request_ttl_ms`] when the config says nothing: 30 days.
pub const DEFAULT_REQUEST_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// [`EngineOptions::health_check_interval_ms`] when the config says nothing: a week.
pub const DEFAULT_HEALTH_CHECK_INTERVAL_MS: u64 = 7 * 24 * 3600 * 1000;
/// [`EngineOptions::custodian_silent_after_ms`] when the config says nothing: 30 days.
pub const DEFAULT_CUSTODIAN_SILENT_AFTER_MS: u64 = 30 * 24 * 3600 * 1000;

/// [`EngineOptions::requests_per_day`] when the config says nothing.
pub const DEFAULT_REQUESTS_PER_DAY: u32 = 3;

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            tamper_releases: false,
            requests_per_day: DEFAULT_REQUESTS_PER_DAY,
            request_ttl_ms: DEFAULT_REQUEST_TTL_MS,
            health_check_interval_ms: DEFAULT_HEALTH_CHECK_INTERVAL_MS,
            custodian_silent_after_ms: DEFAULT_CUSTODIAN_SILENT_AFTER_MS,
        }
    }
}

/// Commands waiting for the engine before callers wait.
const COMMAND_DEPTH: usize = 64;
/// Engine events kept for a slow subscriber before it lags.
const EVENT_DEPTH: usize = 1024;

/// Why an engine operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A custodian named for a backup is not a contact of this node: it
    /// would never see its shard, and we would never see its ack.
    #[error("custodian {0} is not a contact; add it as a contact first")]
    NotAContact(Box<FeedId>),
    /// The backup could not be made (threshold, custodians, secret size...).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Content could not be written (a bug: it was built from checked values).
    #[error("cannot write content: {0}")]
    Content(#[from] ContentError),
    /// Content could not be boxed (a bug: recipients and sizes are checked).
    #[error("cannot box content: {0}")]
    Envelope(#[from] EnvelopeError),
    /// No backup of this node has this id.
    #[error("no backup {0} on this node")]
    UnknownBackup(BackupId),
    /// This node holds no shard of the owner's (given) backup.
    #[error("this node holds no shard of {}{owner}", backup.map(|b| format!("backup {b} of ")).unwrap_or_default())]
    NoShardOf {
        /// The owner named.
        owner: Box<FeedId>,
        /// The backup named, if one was.
        backup: Option<BackupId>,
    },
    /// This node holds shards of several backups of the owner: name one.
    #[error("this node holds shards of {} backups of that owner; name one", .0.len())]
    AmbiguousBackup(Vec<BackupId>),
    /// The new identity named cannot receive the shards.
    #[error("{0}")]
    InvalidRecipient(String),
    /// The recovery of this backup is complete; its secret waits to be taken.
    #[error("backup {0} is recovered already; take the secret with `sherdctl recover`")]
    AlreadyRecovered(BackupId),
    /// The backup was revoked already.
    #[error("backup {0} is revoked")]
    AlreadyRevoked(BackupId),
    /// The one-time backup was used; its shards are erased.
    #[error("backup {0} was one-time and is redeemed: its shards are erased")]
    Redeemed(BackupId),
    /// The owner's veto window is still open (until this time, ms since the
    /// epoch): nothing can be released before it closes.
    #[error("the owner's veto window is open until {0} ms since the epoch; nothing was released")]
    VetoWindowOpen(u64),
    /// No request with this id was asked of this node.
    #[error("no request {0} was asked of this node")]
    UnknownRequest(RequestId),
    /// Several requesters used this request id: name the requester.
    #[error("{} requesters used this request id; name one", .0.len())]
    AmbiguousRequest(Vec<FeedId>),
    /// The request is decided already (released, denied) or expired.
    #[error("the request is {0}; nothing was changed")]
    RequestClosed(&'static str),
    /// The recipient the user verified is not the request's recipient.
    #[error("the request sends the shard to {actual}, not to {expected}; nothing was released")]
    RecipientMismatch {
        /// What the user expected.
        expected: Box<FeedId>,
        /// What the request says.
        actual: Box<FeedId>,
    },
    /// Our shard cannot be released: gone or no longer valid.
    #[error("this node's shard cannot be released: {0}")]
    ShardUnavailable(String),
    /// No recovery of this backup on this node.
    #[error("no recovery of backup {0} on this node")]
    UnknownRecovery(BackupId),
    /// The recovery is not complete yet.
    #[error("not recovered yet: {0}")]
    NotRecovered(String),
    /// The secret was handed over already; it is gone from this node.
    #[error("the secret of backup {0} was handed over already; it is gone from this node")]
    AlreadyDelivered(BackupId),
    /// The recovery failed for good.
    #[error("the recovery failed: {0}")]
    RecoveryFailed(String),
    /// Something committed is not where it should be (a bug).
    #[error("{0}")]
    Missing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine task is gone (the node is shutting down).
    #[error("the protocol engine is shut down")]
    Closed,
}

/// A backup just made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBackup {
    /// The backup's id.
    pub id: BackupId,
    /// The `root` entry (boxed to this node).
    pub root: EntryId,
    /// Per custodian, in the order given, its `shard` entry.
    pub shards: Vec<(FeedId, EntryId)>,
}

/// What the engine reports as it works. Nothing secret: ids and reasons.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// This node made a backup and published its shards.
    BackupCreated {
        /// The backup.
        backup: BackupId,
        /// How many custodians it has.
        custodians: usize,
    },
    /// This node verified and stored a shard, and acknowledged it.
    ShardHeld {
        /// The backup.
        backup: BackupId,
        /// Its owner.
        owner: FeedId,
    },
    /// A shard addressed to this node was refused (not acknowledged).
    ShardRefused {
        /// The feed that published it.
        owner: FeedId,
        /// The `shard` entry.
        entry: EntryId,
        /// Why.
        reason: String,
    },
    /// A custodian acknowledged its shard of one of our backups.
    AckReceived {
        /// The backup.
        backup: BackupId,
        /// The custodian.
        custodian: FeedId,
        /// How many custodians have acknowledged now.
        acks: usize,
        /// Out of how many.
        custodians: usize,
    },
    /// An `ack` addressed to this node did not count.
    AckIgnored {
        /// The feed that sent it.
        custodian: FeedId,
        /// The `ack` entry.
        entry: EntryId,
        /// Why.
        reason: String,
    },
    /// An entry addressed to this node was refused.
    Refused {
        /// What: `request`, `shard` (a reply or forward).
        what: &'static str,
        /// The feed that sent it.
        peer: FeedId,
        /// The entry.
        entry: EntryId,
        /// Why.
        reason: String,
    },
    /// A recovery request reached this node (as custodian or recipient).
    RequestReceived {
        /// The request.
        request: RequestId,
        /// Its kind.
        kind: RequestKind,
        /// The backup.
        backup: BackupId,
        /// Who made it.
        requester: FeedId,
        /// Where the shards go.
        recipient: FeedId,
    },
    /// The owner of a backup granted this node emergency access to it.
    GrantReceived {
        /// The backup.
        backup: BackupId,
        /// Its owner.
        owner: FeedId,
    },
    /// An emergency request's veto window closed with no veto: this node's
    /// user may now approve the release.
    ReleaseDue {
        /// The request.
        request: RequestId,
        /// The backup.
        backup: BackupId,
    },
    /// This node erased its shard of a backup its owner revoked.
    ShardErased {
        /// The backup.
        backup: BackupId,
        /// Its owner.
        owner: FeedId,
    },
    /// A requester went over the daily limit of requests for a backup; its
    /// request was ignored.
    RateLimited {
        /// The backup.
        backup: BackupId,
        /// Who asked too often.
        requester: FeedId,
        /// The request ignored.
        request: RequestId,
    },
    /// A custodian of one of our backups has given no good proof of its shard
    /// for longer than the configured limit (reported once until it answers).
    CustodianSilent {
        /// The backup.
        backup: BackupId,
        /// The custodian.
        custodian: FeedId,
        /// When it last proved its shard (or the backup was made), ms since
        /// the Unix epoch.
        last_heard_ms: u64,
    },
    /// A custodian answered a health check of one of our backups.
    ProofReceived {
        /// The backup.
        backup: BackupId,
        /// The custodian.
        custodian: FeedId,
        /// Whether the proof matched its shard.
        good: bool,
        /// Whether it had been reported silent.
        back_from_silence: bool,
    },
    /// A custodian erased its shard of one of our revoked backups.
    RevokeAcked {
        /// The backup.
        backup: BackupId,
        /// The custodian.
        custodian: FeedId,
        /// How many have erased now.
        erased: usize,
        /// Out of how many.
        custodians: usize,
    },
    /// This node released its shard for a request.
    ShardReleased {
        /// The request.
        request: RequestId,
        /// The backup.
        backup: BackupId,
        /// Where it went.
        recipient: FeedId,
    },
    /// A request was denied, by this node or by a custodian of ours.
    RequestDenied {
        /// The request.
        request: RequestId,
        /// The backup.
        backup: BackupId,
        /// Who denied it.
        by: FeedId,
    },
    /// A recovery took one more valid shard.
    RecoveryProgress {
        /// The backup.
        backup: BackupId,
        /// Valid shards in.
        shards: usize,
        /// Needed (0 when not known).
        threshold: u8,
    },
    /// A recovery has its secret, waiting in memory to be taken once.
    RecoveryComplete {
        /// The backup.
        backup: BackupId,
    },
    /// A recovery failed for good.
    RecoveryFailed {
        /// The backup.
        backup: BackupId,
        /// Why.
        reason: String,
    },
    /// The engine missed store announcements and rescanned from its cursors.
    Lagged {
        /// How many announcements it missed.
        missed: u64,
    },
}

enum EngineCommand {
    CreateBackup {
        spec: Box<BackupSpec>,
        /// The backup this one re-shares (revoked in the same transaction).
        replaces: Option<BackupId>,
        /// Test-only: flip a byte in this custodian's sealed shard.
        #[cfg(test)]
        tamper: Option<FeedId>,
        reply: oneshot::Sender<Result<CreatedBackup, EngineError>>,
    },
    StartOwner {
        backup: BackupId,
        reply: oneshot::Sender<Result<RequestView, EngineError>>,
    },
    StartLostDevice {
        owner: FeedId,
        to: FeedId,
        backup: Option<BackupId>,
        reply: oneshot::Sender<Result<RequestView, EngineError>>,
    },
    Decide {
        id: RequestId,
        from: Option<FeedId>,
        decision: Decision,
        reply: oneshot::Sender<Result<RequestView, EngineError>>,
    },
    ReleaseFollows(Vec<FeedId>),
    Revoke {
        backup: BackupId,
        reply: oneshot::Sender<Result<BackupRecord, EngineError>>,
    },
    TakeSecret {
        backup: BackupId,
        reply: oneshot::Sender<Result<SecretMaterial, EngineError>>,
    },
    CaughtUp(oneshot::Sender<Result<(), EngineError>>),
    Shutdown(oneshot::Sender<()>),
    /// Test-only: answer `held`, then do nothing until `release` resolves
    /// (so that announcements pile up and the subscription lags).
    #[cfg(test)]
    Hold {
        held: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    },
}

/// A cloneable handle to the engine task.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    commands: mpsc::Sender<EngineCommand>,
    events: broadcast::Sender<EngineEvent>,
    /// A subscription made before the engine's first step, for the first
    /// [`EngineHandle::subscribe`]: what the engine reports while it
    /// catches up at start (a veto window that closed while the node was
    /// off) reaches the control API and the notifiers, which subscribe
    /// only once the node is up.
    from_start: Arc<std::sync::Mutex<Option<broadcast::Receiver<EngineEvent>>>>,
}

impl EngineHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> EngineCommand,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| EngineError::Closed)?;
        rx.await.map_err(|_| EngineError::Closed)?
    }

    /// Makes a backup of `spec.material` and publishes it: the `root` boxed
    /// to this node, one `shard` boxed to each custodian. Every custodian
    /// must be a contact. Returns once everything is committed; the secret
    /// is zeroized when the engine is done with it.
    pub async fn create_backup(&self, spec: BackupSpec) -> Result<CreatedBackup, EngineError> {
        self.call(|reply| EngineCommand::CreateBackup {
            spec: Box::new(spec),
            replaces: None,
            #[cfg(test)]
            tamper: None,
            reply,
        })
        .await
    }

    /// Re-shares backup `old`: makes a new backup of `spec` (the owner gives
    /// the secret again) and revokes `old`, in one transaction, so either
    /// both happen or neither does. `old`'s custodians erase their shards
    /// and acknowledge as for any revocation; its open requests close.
    pub async fn reshare_backup(
        &self,
        old: BackupId,
        spec: BackupSpec,
    ) -> Result<CreatedBackup, EngineError> {
        self.call(|reply| EngineCommand::CreateBackup {
            spec: Box::new(spec),
            replaces: Some(old),
            #[cfg(test)]
            tamper: None,
            reply,
        })
        .await
    }

    /// [`EngineHandle::create_backup`] with one byte of `custodian`'s sealed
    /// shard flipped before it is published.
    #[cfg(test)]
    pub(crate) async fn create_backup_tampered(
        &self,
        spec: BackupSpec,
        custodian: FeedId,
    ) -> Result<CreatedBackup, EngineError> {
        self.call(|reply| EngineCommand::CreateBackup {
            spec: Box::new(spec),
            replaces: None,
            tamper: Some(custodian),
            reply,
        })
        .await
    }

    /// Stops the engine from doing anything until the returned sender is
    /// used or dropped; returns once it is holding.
    #[cfg(test)]
    pub(crate) async fn hold(&self) -> oneshot::Sender<()> {
        let (held, is_held) = oneshot::channel();
        let (release, released) = oneshot::channel();
        self.commands
            .send(EngineCommand::Hold {
                held,
                release: released,
            })
            .await
            .expect("engine running");
        is_held.await.expect("engine holding");
        release
    }

    /// As the owner of `backup`, asks every custodian for its shard back.
    pub async fn start_owner_recovery(&self, backup: BackupId) -> Result<RequestView, EngineError> {
        self.call(|reply| EngineCommand::StartOwner { backup, reply })
            .await
    }

    /// As a custodian of `owner`'s backup (`backup`, needed only if this
    /// node holds several of `owner`'s), forwards our shard to `to` and asks
    /// the co-custodians to do the same.
    pub async fn start_lost_device_recovery(
        &self,
        owner: FeedId,
        to: FeedId,
        backup: Option<BackupId>,
    ) -> Result<RequestView, EngineError> {
        self.call(|reply| EngineCommand::StartLostDevice {
            owner,
            to,
            backup,
            reply,
        })
        .await
    }

    /// Approves or denies request `id` asked of this node (made by `from`,
    /// needed only if two requesters used that id). Approving releases our
    /// shard once; a second decision is refused.
    pub async fn decide(
        &self,
        id: RequestId,
        from: Option<FeedId>,
        decision: Decision,
    ) -> Result<RequestView, EngineError> {
        self.call(|reply| EngineCommand::Decide {
            id,
            from,
            decision,
            reply,
        })
        .await
    }

    /// The recovered secret of `backup`, once: afterwards it is gone from
    /// the node (and the shards that rebuilt it are erased).
    pub async fn take_secret(&self, backup: BackupId) -> Result<SecretMaterial, EngineError> {
        self.call(|reply| EngineCommand::TakeSecret { backup, reply })
            .await
    }

    /// As the owner, revokes `backup`: every custodian is told to erase its
    /// shard, and acknowledges once it has.
    pub async fn revoke_backup(&self, backup: BackupId) -> Result<BackupRecord, EngineError> {
        self.call(|reply| EngineCommand::Revoke { backup, reply })
            .await
    }

    /// Stops replicating those of `feeds` that no contact and no live flow
    /// needs (for a removed contact: a custodian keeps following the owner
    /// of a shard it holds, contact or not).
    pub async fn release_follows(&self, feeds: Vec<FeedId>) -> Result<(), EngineError> {
        self.commands
            .send(EngineCommand::ReleaseFollows(feeds))
            .await
            .map_err(|_| EngineError::Closed)
    }

    /// Returns once the engine has processed every entry the store held when
    /// it got this call, with its cursors persisted.
    pub async fn caught_up(&self) -> Result<(), EngineError> {
        self.call(EngineCommand::CaughtUp).await
    }

    /// What the engine reports from now on; the first call gets everything
    /// since the engine started (up to the last 1024 events).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        let first = self
            .from_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Stops the engine after the step it is in; it persists its cursors first.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(EngineCommand::Shutdown(tx))
            .await
            .is_ok()
        {
            // A dropped reply means the task is gone: stopped either way.
            let _ = rx.await;
        }
    }
}

/// Starts the engine of node `key` over `store` and `net`. It subscribes to
/// the store before returning, so it misses nothing committed from then on;
/// what was committed before, it finds from its cursors.
pub fn spawn(
    key: Arc<Keypair>,
    store: Store,
    net: NetworkHandle,
    options: EngineOptions,
) -> (EngineHandle, JoinHandle<()>) {
    let (commands, rx) = mpsc::channel(COMMAND_DEPTH);
    let (events, from_start) = broadcast::channel(EVENT_DEPTH);
    let announced = store.subscribe();
    let engine = actor::Engine::new(key, store, net, events.clone(), options);
    let task = tokio::spawn(engine.run(rx, announced));
    let handle = EngineHandle {
        commands,
        events,
        from_start: Arc::new(std::sync::Mutex::new(Some(from_start))),
    };
    (handle, task)
}

#[cfg(test)]
mod tests;
