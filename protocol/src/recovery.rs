//! Recovery: a pure state machine that takes sealed shards in any order, with
//! duplicates, foreign and tampered ones mixed in, and gives the secret back
//! once `threshold` valid shards of one backup are in.
//!
//! It never returns a wrong secret: fewer than `threshold` shards is a "need
//! N more" state, and a combination whose Poly1305 tag does not verify is a
//! failure, not a result.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::backup::combine_key;
use crate::identity::{FeedId, X25519SecretKey};
use crate::ids::BackupId;
use crate::nacl::{NONCE_LEN, secretbox_open};
use crate::secret::SecretMaterial;
use crate::shard::{InnerShard, ShardError, VerifiedShard};

/// Why one shard was not taken. The recovery goes on without it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The shard is unreadable, or its owner signature does not hold.
    #[error(transparent)]
    Invalid(#[from] ShardError),
    /// The shard was signed by someone other than the backup's owner.
    #[error("shard belongs to another owner")]
    WrongOwner,
    /// The shard belongs to another backup.
    #[error("shard belongs to another backup ({0})")]
    ForeignBackup(BackupId),
    /// The shard came from a feed that is not the custodian it was made for.
    #[error("shard was not sent by the custodian it was made for")]
    NotFromCustodian,
    /// This custodian's shard is in already.
    #[error("shard from this custodian already received")]
    Duplicate,
    /// The shard disagrees with the shards already in (threshold, policy or
    /// ciphertext): only an owner signing two versions can cause this.
    #[error("shard disagrees with the others of this backup")]
    Inconsistent,
    /// The recovery is over (complete or failed); no more shards are needed.
    #[error("recovery is already over")]
    Finished,
}

/// Why a recovery failed for good.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The combined key does not decrypt the secret. Every shard was signed
    /// by the owner, so the owner made an inconsistent backup.
    #[error("the shards combine to a key that does not decrypt the secret")]
    Corrupt,
}

/// Where a recovery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not enough shards yet. `threshold` is `None` until the first valid
    /// shard says what it is.
    Collecting {
        /// Valid shards received.
        have: usize,
        /// Shards needed in all, once known.
        threshold: Option<usize>,
    },
    /// The secret is recovered.
    Complete,
    /// The recovery failed for good.
    Failed(RecoveryError),
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Collecting {
                have,
                threshold: Some(t),
            } => write!(
                f,
                "{have} of {t} shards; need {} more",
                t.saturating_sub(*have)
            ),
            Self::Collecting {
                have,
                threshold: None,
            } => {
                write!(f, "{have} shards; threshold not known yet")
            }
            Self::Complete => f.write_str("recovered"),
            Self::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

struct Share {
    id: u8,
    value: Zeroizing<[u8; 32]>,
}

/// The recovery of one backup of one owner, by the holder of `recipient`.
pub struct Recovery {
    owner: FeedId,
    backup: BackupId,
    recipient: X25519SecretKey,
    /// The first valid shard: the others must agree with it.
    reference: Option<InnerShard>,
    shares: BTreeMap<FeedId, Share>,
    state: Progress,
    recovered: Option<SecretMaterial>,
}

impl fmt::Debug for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("owner", &self.owner)
            .field("backup", &self.backup)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Recovery {
    /// Starts recovering `backup` of `owner`; shards arrive sealed to `recipient`.
    pub fn new(owner: FeedId, backup: BackupId, recipient: X25519SecretKey) -> Self {
        Self {
            owner,
            backup,
            recipient,
            reference: None,
            shares: BTreeMap::new(),
            state: Progress::Collecting {
                have: 0,
                threshold: None,
            },
            recovered: None,
        }
    }

    /// Where the recovery stands.
    pub fn progress(&self) -> &Progress {
        &self.state
    }

    /// Takes a shard sealed to us, sent by `sender` (the author of the
    /// `reply` or `forward` entry).
    pub fn add_sealed(&mut self, sender: &FeedId, sealed: &[u8]) -> Result<&Progress, Rejected> {
        if !matches!(self.state, Progress::Collecting { .. }) {
            return Err(Rejected::Finished);
        }
        let signed =
            crate::sealed::open(&self.recipient, sealed).map_err(|_| ShardError::CannotOpen)?;
        let shard = VerifiedShard::verify(&signed)?;
        self.add_verified(sender, &shard)
    }

    /// Takes a shard already opened and verified (a custodian's own).
    pub fn add_verified(
        &mut self,
        sender: &FeedId,
        shard: &VerifiedShard,
    ) -> Result<&Progress, Rejected> {
        if !matches!(self.state, Progress::Collecting { .. }) {
            return Err(Rejected::Finished);
        }
        let inner = shard.inner();
        if inner.owner != self.owner {
            return Err(Rejected::WrongOwner);
        }
        if inner.backup != self.backup {
            return Err(Rejected::ForeignBackup(inner.backup));
        }
        if inner.custodian != *sender {
            return Err(Rejected::NotFromCustodian);
        }
        if self.shares.contains_key(sender) {
            return Err(Rejected::Duplicate);
        }
        if let Some(reference) = &self.reference {
            let agrees = reference.threshold == inner.threshold
                && reference.policy == inner.policy
                && reference.ciphertext == inner.ciphertext
                && reference.created_ms == inner.created_ms;
            if !agrees || self.shares.values().any(|s| s.id == inner.share_id) {
                return Err(Rejected::Inconsistent);
            }
        } else {
            self.reference = Some(inner.clone());
        }
        self.shares.insert(
            *sender,
            Share {
                id: inner.share_id,
                value: inner.share.clone(),
            },
        );
        let threshold = usize::from(inner.threshold);
        self.state = if self.shares.len() >= threshold {
            self.combine()
        } else {
            Progress::Collecting {
                have: self.shares.len(),
                threshold: Some(threshold),
            }
        };
        Ok(&self.state)
    }

    fn combine(&mut self) -> Progress {
        let Some(reference) = &self.reference else {
            return Progress::Failed(RecoveryError::Corrupt);
        };
        let shares: Vec<(u8, &[u8; 32])> =
            self.shares.values().map(|s| (s.id, &*s.value)).collect();
        let material = combine_key(&shares).and_then(|key| {
            let (nonce, body) = reference.ciphertext.split_at_checked(NONCE_LEN)?;
            let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
            let plaintext = secretbox_open(&key, &nonce, body)?;
            SecretMaterial::unpack(&plaintext).ok()
        });
        // The shares are no longer needed, whatever the outcome.
        self.shares.clear();
        match material {
            Some(m) => {
                self.recovered = Some(m);
                Progress::Complete
            }
            None => Progress::Failed(RecoveryError::Corrupt),
        }
    }

    /// Hands over the recovered secret, once; afterwards it is gone from here.
    pub fn take_secret(&mut self) -> Option<SecretMaterial> {
        self.recovered.take()
    }
}
