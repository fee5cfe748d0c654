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
//! Not yet here (issue 3): requests, replies, forwards, recovery, revocation,
//! rebuilding records from `root` entries on reindex, and unfollowing feeds
//! when a flow ends. Content of those types addressed to us is audited as
//! not handled, and the cursor moves past it.

mod actor;
mod audit;
mod custodian;
mod open;
mod owner;
pub mod records;

use std::sync::Arc;

use sherd_protocol::backup::{BackupError, BackupSpec};
use sherd_protocol::content::ContentError;
use sherd_protocol::envelope::EnvelopeError;
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::net::NetworkHandle;
use crate::store::{Store, StoreError};

pub use records::{BackupRecord, CustodianRecord, HeldShard};

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
    NotAContact(FeedId),
    /// The backup could not be made (threshold, custodians, secret size...).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Content could not be written (a bug: it was built from checked values).
    #[error("cannot write content: {0}")]
    Content(#[from] ContentError),
    /// Content could not be boxed (a bug: recipients and sizes are checked).
    #[error("cannot box content: {0}")]
    Envelope(#[from] EnvelopeError),
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
    /// The engine missed store announcements and rescanned from its cursors.
    Lagged {
        /// How many announcements it missed.
        missed: u64,
    },
}

enum EngineCommand {
    CreateBackup {
        spec: Box<BackupSpec>,
        /// Test-only: flip a byte in this custodian's sealed shard.
        #[cfg(test)]
        tamper: Option<FeedId>,
        reply: oneshot::Sender<Result<CreatedBackup, EngineError>>,
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

    /// Returns once the engine has processed every entry the store held when
    /// it got this call, with its cursors persisted.
    pub async fn caught_up(&self) -> Result<(), EngineError> {
        self.call(EngineCommand::CaughtUp).await
    }

    /// What the engine reports from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
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
) -> (EngineHandle, JoinHandle<()>) {
    let (commands, rx) = mpsc::channel(COMMAND_DEPTH);
    let (events, _) = broadcast::channel(EVENT_DEPTH);
    let announced = store.subscribe();
    let engine = actor::Engine::new(key, store, net, events.clone());
    let task = tokio::spawn(engine.run(rx, announced));
    (EngineHandle { commands, events }, task)
}

#[cfg(test)]
mod tests;
