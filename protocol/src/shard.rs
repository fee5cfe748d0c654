//! The inner shard: one custodian's share of a backup's key, with everything
//! the custodian needs to act on the owner's behalf, signed by the owner.
//!
//! ```text
//! version u8 (1) | created_ms u64 | backup_id [32] | owner [32] | custodian [32]
//!   | threshold u8 | share_id u8 | share [32]
//!   | custodian_count u8 | custodians [32] x count
//!   | trustee_count u8 | trustees [32] x count
//!   | veto_delay_secs u32 | one_time u8 | release u8 | check_key [32]
//!   | ciphertext_len u32 | ciphertext (nonce [24] || crypto_secretbox_easy)
//!   | signature [64]: ed25519 by the owner over SHARD_SIGNATURE_DOMAIN || all bytes before it
//! ```
//!
//! All integers big-endian, keys are ed25519 public keys. The signed shard is
//! then sealed to its custodian ([`crate::sealed`]), so the owner cannot open it.

use std::collections::BTreeSet;
use std::fmt;

use zeroize::Zeroizing;

use crate::bytes::Reader;
use crate::content::{MAX_CUSTODIANS, MAX_TRUSTEES, MAX_VETO_DELAY_SECS, Release};
use crate::identity::{FeedId, Keypair, X25519SecretKey};
use crate::ids::BackupId;
use crate::nacl::{NONCE_LEN, TAG_LEN};
use crate::secret::{MAX_LABEL_LEN, MAX_METADATA_LEN, MAX_SECRET_LEN, padded_len};

/// The inner shard format this code reads and writes.
pub const SHARD_VERSION: u8 = 1;
/// Prefixed to the shard bytes before the owner signs them.
pub const SHARD_SIGNATURE_DOMAIN: &[u8] = b"sherd/shard/v1\0";
/// The largest ciphertext a shard can carry: the padded plaintext of the
/// largest secret, label and metadata, plus nonce and tag.
pub const MAX_CIPHERTEXT_LEN: usize = NONCE_LEN
    + TAG_LEN
    + padded_len(1 + 2 + MAX_LABEL_LEN + 2 + MAX_METADATA_LEN + 4 + MAX_SECRET_LEN);

/// Why a shard was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// The sealed box does not open with our key: not ours, or damaged.
    #[error("sealed shard does not open with this key (not ours, or damaged)")]
    CannotOpen,
    /// The shard's bytes are not a valid shard; the field is named.
    #[error("malformed shard: {0}")]
    Malformed(&'static str),
    /// The owner's signature does not verify: the shard was altered.
    #[error("the owner's signature on the shard does not verify")]
    BadSignature,
    /// The shard is for another custodian than the one expected.
    #[error("shard is for another custodian")]
    WrongCustodian,
}

/// The owner's policy, signed into every shard so custodians can enforce it
/// while the owner is unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Every custodian of the backup, in shard order.
    pub custodians: Vec<FeedId>,
    /// Trustees who may ask for emergency access.
    pub trustees: Vec<FeedId>,
    /// Seconds the owner has to veto an emergency request.
    pub veto_delay_secs: u32,
    /// Whether the secret is erased everywhere once a trustee has seen it.
    pub one_time: bool,
    /// Who releases to a trustee after the delay.
    pub release: Release,
}

/// The fields of an inner shard.
#[derive(Clone, PartialEq, Eq)]
pub struct InnerShard {
    /// When the backup was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// The backup.
    pub backup: BackupId,
    /// The backup's owner, who signed the shard.
    pub owner: FeedId,
    /// The custodian the shard is for.
    pub custodian: FeedId,
    /// How many shards recover the key.
    pub threshold: u8,
    /// The share's x coordinate, non-zero and unique within the backup.
    pub share_id: u8,
    /// The share: one byte of f(share_id) per byte of the key.
    pub share: Zeroizing<[u8; 32]>,
    /// The owner's policy.
    pub policy: Policy,
    /// This custodian's health-check key.
    pub check_key: Zeroizing<[u8; 32]>,
    /// The encrypted secret: nonce then `crypto_secretbox_easy` output.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for InnerShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InnerShard")
            .field("backup", &self.backup)
            .field("owner", &self.owner)
            .field("custodian", &self.custodian)
            .field("threshold", &self.threshold)
            .field("share_id", &self.share_id)
            .field("policy", &self.policy)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

fn release_byte(r: Release) -> u8 {
    match r {
        Release::Approve => 0,
        Release::Auto => 1,
    }
}

fn count_u8(n: usize) -> u8 {
    // Callers check the limits (at most 32) before encoding.
    u8::try_from(n).unwrap_or(u8::MAX)
}

impl InnerShard {
    /// The unsigned bytes.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let p = &self.policy;
        let mut out = Zeroizing::new(Vec::with_capacity(
            256 + 32 * (p.custodians.len() + p.trustees.len()) + self.ciphertext.len(),
        ));
        out.push(SHARD_VERSION);
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(self.backup.as_bytes());
        out.extend_from_slice(self.owner.as_bytes());
        out.extend_from_slice(self.custodian.as_bytes());
        out.push(self.threshold);
        out.push(self.share_id);
        out.extend_from_slice(self.share.as_ref());
        out.push(count_u8(p.custodians.len()));
        for c in &p.custodians {
            out.extend_from_slice(c.as_bytes());
        }
        out.push(count_u8(p.trustees.len()));
        for t in &p.trustees {
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(&p.veto_delay_secs.to_be_bytes());
        out.push(u8::from(p.one_time));
        out.push(release_byte(p.release));
        out.extend_from_slice(self.check_key.as_ref());
        let ct_len = u32::try_from(self.ciphertext.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&ct_len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Checks the shard's own consistency (the rules `decode` enforces).
    pub fn check(&self) -> Result<(), ShardError> {
        let p = &self.policy;
        if p.custodians.is_empty() || p.custodians.len() > MAX_CUSTODIANS {
            return Err(ShardError::Malformed("custodians: 1 to 32"));
        }
        if self.threshold == 0 || usize::from(self.threshold) > p.custodians.len() {
            return Err(ShardError::Malformed(
                "threshold: 1 to the number of custodians",
            ));
        }
        if self.share_id == 0 {
            return Err(ShardError::Malformed("share_id: must not be 0"));
        }
        if !all_distinct(&p.custodians) {
            return Err(ShardError::Malformed("custodians: listed twice"));
        }
        if !p.custodians.contains(&self.custodian) {
            return Err(ShardError::Malformed("custodian: not among the custodians"));
        }
        if p.custodians.contains(&self.owner) {
            return Err(ShardError::Malformed(
                "custodians: the owner cannot be a custodian",
            ));
        }
        if p.trustees.len() > MAX_TRUSTEES || !all_distinct(&p.trustees) {
            return Err(ShardError::Malformed("trustees: at most 8, distinct"));
        }
        if p.veto_delay_secs > MAX_VETO_DELAY_SECS {
            return Err(ShardError::Malformed("veto_delay_secs: at most a year"));
        }
        let min_ct = NONCE_LEN + TAG_LEN + padded_len(0);
        if self.ciphertext.len() < min_ct || self.ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(ShardError::Malformed("ciphertext: length out of range"));
        }
        Ok(())
    }

    /// The signed bytes: the encoding, then the owner's signature.
    pub fn sign(&self, owner: &Keypair) -> Result<Zeroizing<Vec<u8>>, ShardError> {
        self.check()?;
        if owner.feed_id() != self.owner {
            return Err(ShardError::BadSignature);
        }
        let mut out = self.encode();
        let signature = owner.sign(&[SHARD_SIGNATURE_DOMAIN, out.as_slice()].concat());
        out.extend_from_slice(&signature);
        Ok(out)
    }
}

fn all_distinct(feeds: &[FeedId]) -> bool {
    let mut seen = BTreeSet::new();
    feeds.iter().all(|f| seen.insert(*f))
}

/// A shard whose owner signature holds, with the exact signed bytes kept so
/// that it can be resealed to someone else unchanged.
#[derive(Clone)]
pub struct VerifiedShard {
    inner: InnerShard,
    signed: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for VerifiedShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifiedShard").field(&self.inner).finish()
    }
}

impl VerifiedShard {
    /// Reads signed shard bytes and checks the owner's signature.
    pub fn verify(signed: &[u8]) -> Result<Self, ShardError> {
        let (body, signature) = signed
            .split_last_chunk::<64>()
            .ok_or(ShardError::Malformed("too short"))?;
        let inner = decode(body)?;
        inner
            .owner
            .verify(&[SHARD_SIGNATURE_DOMAIN, body].concat(), signature)
            .map_err(|_| ShardError::BadSignature)?;
        Ok(Self {
            inner,
            signed: Zeroizing::new(signed.to_vec()),
        })
    }

    /// Opens a sealed shard with our key, checks the owner's signature and
    /// that it is for `me`.
    pub fn open(secret: &X25519SecretKey, me: &FeedId, sealed: &[u8]) -> Result<Self, ShardError> {
        let signed = crate::sealed::open(secret, sealed).map_err(|_| ShardError::CannotOpen)?;
        let shard = Self::verify(&signed)?;
        if shard.inner.custodian != *me {
            return Err(ShardError::WrongCustodian);
        }
        Ok(shard)
    }

    /// The shard's fields.
    pub fn inner(&self) -> &InnerShard {
        &self.inner
    }

    /// The exact signed bytes.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// The signed shard sealed to `recipient`, for a `reply` or `forward`.
    pub fn reseal(&self, rng: &mut impl rand_core::CryptoRng, recipient: &FeedId) -> Vec<u8> {
        crate::sealed::seal(rng, &recipient.x25519(), &self.signed)
    }
}

fn feed(r: &mut Reader<'_>, field: &'static str) -> Result<FeedId, ShardError> {
    let bytes = r.array::<32>().ok_or(ShardError::Malformed(field))?;
    FeedId::from_bytes(&bytes).map_err(|_| ShardError::Malformed(field))
}

fn feeds(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<Vec<FeedId>, ShardError> {
    let n = usize::from(r.u8().ok_or(ShardError::Malformed(field))?);
    if n > max {
        return Err(ShardError::Malformed(field));
    }
    (0..n).map(|_| feed(r, field)).collect()
}

fn decode(bytes: &[u8]) -> Result<InnerShard, ShardError> {
    let m = ShardError::Malformed;
    let mut r = Reader::new(bytes);
    if r.u8() != Some(SHARD_VERSION) {
        return Err(m("version"));
    }
    let created_ms = r.u64().ok_or(m("created_ms"))?;
    let backup = BackupId(r.array().ok_or(m("backup"))?);
    let owner = feed(&mut r, "owner")?;
    let custodian = feed(&mut r, "custodian")?;
    let threshold = r.u8().ok_or(m("threshold"))?;
    let share_id = r.u8().ok_or(m("share_id"))?;
    let share = Zeroizing::new(r.array::<32>().ok_or(m("share"))?);
    let custodians = feeds(&mut r, "custodians", MAX_CUSTODIANS)?;
    let trustees = feeds(&mut r, "trustees", MAX_TRUSTEES)?;
    let veto_delay_secs = r.u32().ok_or(m("veto_delay_secs"))?;
    let one_time = match r.u8() {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(m("one_time")),
    };
    let release = match r.u8() {
        Some(0) => Release::Approve,
        Some(1) => Release::Auto,
        _ => return Err(m("release")),
    };
    let check_key = Zeroizing::new(r.array::<32>().ok_or(m("check_key"))?);
    let ct_len = r.u32().ok_or(m("ciphertext"))?;
    let ciphertext = r
        .take(usize::try_from(ct_len).map_err(|_| m("ciphertext"))?)
        .ok_or(m("ciphertext"))?
        .to_vec();
    if r.remaining() != 0 {
        return Err(m("trailing bytes"));
    }
    let inner = InnerShard {
        created_ms,
        backup,
        owner,
        custodian,
        threshold,
        share_id,
        share,
        policy: Policy {
            custodians,
            trustees,
            veto_delay_secs,
            one_time,
            release,
        },
        check_key,
        ciphertext,
    };
    inner.check()?;
    Ok(inner)
}
