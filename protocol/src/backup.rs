//! Making a backup: Dark Crystal's setup process with its published
//! weaknesses fixed (DESIGN.md section 5).
//!
//! 1. Pack secret + label (+ metadata) and pad ([`crate::secret`]).
//! 2. Encrypt with a fresh 32-byte key (XSalsa20-Poly1305); the tag is what
//!    later proves a recovery right.
//! 3. Split the key with Shamir over GF(256) (`vsss-rs`), with random distinct
//!    non-zero share ids, so an id does not reveal `n` (Dark Crystal #50).
//! 4. One inner shard per custodian, with the owner's policy and a
//!    per-custodian check key, signed by the owner ([`crate::shard`]).
//! 5. Each sealed one-way to its custodian ([`crate::sealed`]).
//! 6. The contents to publish: one boxed `shard` per custodian and the
//!    owner's private `root` record.

use std::collections::BTreeSet;

use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::{Zeroize, Zeroizing};

use crate::content::{
    Base64Bytes, CheckKey, MAX_CUSTODIANS, MAX_TRUSTEES, MAX_VETO_DELAY_SECS, Release, Root,
    RootCustodian, Shard, V1,
};
use crate::identity::{FeedId, Keypair};
use crate::ids::BackupId;
use crate::nacl::{NONCE_LEN, secretbox_seal};
use crate::secret::{SecretError, SecretMaterial};
use crate::shard::{InnerShard, Policy, ShardError};

/// Why a backup could not be made.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The secret, label or metadata is out of bounds.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The custodian list is empty, over 32, or has a repeat.
    #[error("a backup needs 1 to {MAX_CUSTODIANS} distinct custodians")]
    Custodians,
    /// The owner named itself as a custodian.
    #[error("the owner cannot be its own custodian")]
    OwnerIsCustodian,
    /// The threshold is 0 or more than the number of custodians.
    #[error(
        "threshold must be between 1 and the number of custodians ({custodians}), got {threshold}"
    )]
    Threshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of custodians.
        custodians: usize,
    },
    /// Over eight trustees, or a repeat.
    #[error("a backup has at most {MAX_TRUSTEES} distinct trustees")]
    Trustees,
    /// The veto delay is over a year.
    #[error("veto delay must be at most {MAX_VETO_DELAY_SECS} seconds (a year)")]
    VetoDelay,
    /// Secret sharing failed (a bug: the parameters were checked).
    #[error("secret sharing failed: {0}")]
    Sharing(String),
    /// A shard could not be built (a bug: the parameters were checked).
    #[error(transparent)]
    Shard(#[from] ShardError),
}

/// What the owner asks for.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    /// The secret with its label and metadata.
    pub material: SecretMaterial,
    /// How many custodians must cooperate to recover.
    pub threshold: usize,
    /// The custodians, each receiving one shard.
    pub custodians: Vec<FeedId>,
    /// Trustees who may ask for emergency access.
    pub trustees: Vec<FeedId>,
    /// Seconds the owner has to veto an emergency request.
    pub veto_delay_secs: u32,
    /// Whether access is one-time.
    pub one_time: bool,
    /// Who releases to a trustee after the delay.
    pub release: Release,
}

/// A made backup: what to publish.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The new backup's id.
    pub id: BackupId,
    /// The owner's record, to publish boxed to the owner itself.
    pub root: Root,
    /// One `shard` content per custodian, to publish boxed to that custodian.
    pub shards: Vec<(FeedId, Shard)>,
}

impl BackupSpec {
    fn check(&self, owner: &FeedId) -> Result<(), BackupError> {
        self.material.check()?;
        let n = self.custodians.len();
        let distinct: BTreeSet<_> = self.custodians.iter().collect();
        if n == 0 || n > MAX_CUSTODIANS || distinct.len() != n {
            return Err(BackupError::Custodians);
        }
        if distinct.contains(owner) {
            return Err(BackupError::OwnerIsCustodian);
        }
        if self.threshold == 0 || self.threshold > n {
            return Err(BackupError::Threshold {
                threshold: self.threshold,
                custodians: n,
            });
        }
        let trustees: BTreeSet<_> = self.trustees.iter().collect();
        if self.trustees.len() > MAX_TRUSTEES || trustees.len() != self.trustees.len() {
            return Err(BackupError::Trustees);
        }
        if self.veto_delay_secs > MAX_VETO_DELAY_SECS {
            return Err(BackupError::VetoDelay);
        }
        Ok(())
    }
}

/// Makes a backup of `spec.material` for `owner` at time `now_ms`.
pub fn create(
    rng: &mut impl rand_core::CryptoRng,
    owner: &Keypair,
    now_ms: u64,
    spec: &BackupSpec,
) -> Result<Backup, BackupError> {
    let owner_id = owner.feed_id();
    spec.check(&owner_id)?;
    let threshold = u8::try_from(spec.threshold).map_err(|_| BackupError::Threshold {
        threshold: spec.threshold,
        custodians: spec.custodians.len(),
    })?;

    // Steps 1 and 2: pack, pad, encrypt under a fresh key.
    let plaintext = spec.material.pack()?;
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(key.as_mut());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut ciphertext = nonce.to_vec();
    ciphertext.extend_from_slice(&secretbox_seal(&key, &nonce, &plaintext));

    // Step 3: split the key.
    let shares = split_key(rng, &key, threshold, spec.custodians.len())?;

    // Steps 4 to 6.
    let id = BackupId::random(rng);
    let policy = Policy {
        custodians: spec.custodians.clone(),
        trustees: spec.trustees.clone(),
        veto_delay_secs: spec.veto_delay_secs,
        one_time: spec.one_time,
        release: spec.release,
    };
    let mut shards = Vec::with_capacity(spec.custodians.len());
    let mut root_custodians = Vec::with_capacity(spec.custodians.len());
    for (custodian, (share_id, share)) in spec.custodians.iter().zip(shares) {
        let mut check_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(check_key.as_mut());
        let inner = InnerShard {
            created_ms: now_ms,
            backup: id,
            owner: owner_id,
            custodian: *custodian,
            threshold,
            share_id,
            share,
            policy: policy.clone(),
            check_key: check_key.clone(),
            ciphertext: ciphertext.clone(),
        };
        let signed = inner.sign(owner)?;
        let sealed = crate::sealed::seal(rng, &custodian.x25519(), &signed);
        shards.push((
            *custodian,
            Shard {
                version: V1,
                backup: id,
                sealed: Base64Bytes(sealed),
            },
        ));
        root_custodians.push(RootCustodian {
            feed: *custodian,
            check_key: CheckKey(check_key),
        });
    }
    let root = Root {
        version: V1,
        backup: id,
        label: spec.material.label.clone(),
        threshold,
        custodians: root_custodians,
        trustees: spec.trustees.clone(),
        veto_delay_secs: spec.veto_delay_secs,
        one_time: spec.one_time,
        release: spec.release,
        created_ms: now_ms,
    };
    Ok(Backup { id, root, shards })
}

/// Splits the 32-byte key into `n` shares with threshold `t`, each share a
/// random distinct non-zero id and 32 bytes. With `t = 1` every share is the
/// key itself (a polynomial of degree 0), which vsss-rs does not do for us.
/// Shares as (share id, share value) pairs.
type Shares = Vec<(u8, Zeroizing<[u8; 32]>)>;

fn split_key(
    rng: &mut impl rand_core::CryptoRng,
    key: &[u8; 32],
    threshold: u8,
    n: usize,
) -> Result<Shares, BackupError> {
    let ids = random_share_ids(rng, n);
    if threshold == 1 {
        return Ok(ids
            .into_iter()
            .map(|id| (id, Zeroizing::new(*key)))
            .collect());
    }
    let mut shares = Gf256::split_bytes_with_participant_ids_iter(
        usize::from(threshold),
        n,
        key,
        &mut *rng,
        ids.iter().map(|&id| IdentifierGf256::from(Gf256(id))),
    )
    .map_err(|e| BackupError::Sharing(format!("{e:?}")))?;
    let out = shares
        .iter()
        .map(|s| {
            let (id, value) = s
                .split_first()
                .ok_or(BackupError::Sharing("empty share".into()))?;
            let value: [u8; 32] = value
                .try_into()
                .map_err(|_| BackupError::Sharing("share of the wrong length".into()))?;
            Ok((*id, Zeroizing::new(value)))
        })
        .collect();
    shares.iter_mut().for_each(|s| s.zeroize());
    out
}

/// `n` (at most 255) distinct non-zero share ids, uniformly at random.
fn random_share_ids(rng: &mut impl rand_core::CryptoRng, n: usize) -> Vec<u8> {
    let mut used = [false; 256];
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n.min(255) {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        let [id] = byte;
        if let Some(used) = used.get_mut(usize::from(id)).filter(|u| id != 0 && !**u) {
            *used = true;
            ids.push(id);
        }
    }
    ids
}

/// Combines shares (`(id, value)` pairs with distinct non-zero ids) into the
/// key. With one share, that share is the key (threshold 1).
pub(crate) fn combine_key(shares: &[(u8, &[u8; 32])]) -> Option<Zeroizing<[u8; 32]>> {
    if let [(_, only)] = shares {
        return Some(Zeroizing::new(**only));
    }
    let mut encoded: Vec<Vec<u8>> = shares
        .iter()
        .map(|(id, v)| {
            let mut s = Vec::with_capacity(33);
            s.push(*id);
            s.extend_from_slice(v.as_slice());
            s
        })
        .collect();
    let combined = Gf256::combine_bytes(&encoded).ok().map(Zeroizing::new);
    encoded.iter_mut().for_each(|s| s.zeroize());
    let combined = combined?;
    let key: [u8; 32] = combined.as_slice().try_into().ok()?;
    Some(Zeroizing::new(key))
}
