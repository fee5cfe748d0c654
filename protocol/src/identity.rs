//! Node identity: one ed25519 key per node, its feed id, and the X25519 keys
//! derived from it for encryption.
//!
//! The feed id is the libp2p PeerId of the ed25519 public key (`12D3KooW...`),
//! so one string names both the peer and its feed. The X25519 conversion is
//! byte-for-byte libsodium's `crypto_sign_ed25519_pk_to_curve25519` and
//! `crypto_sign_ed25519_sk_to_curve25519`, so a libsodium program can open what
//! we seal to a node.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::MontgomeryPoint;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Why a public key or feed id was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The string is not a base58 libp2p PeerId of an ed25519 key.
    #[error("not a feed id: expected the PeerId of an ed25519 key (12D3KooW...)")]
    NotAFeedId,
    /// The 32 bytes are not the encoding of a point on the curve.
    #[error("not a valid ed25519 public key")]
    InvalidPoint,
    /// The key has small order or a torsion component: no honest key does, and
    /// such keys allow signatures that verify differently in batch and alone.
    #[error("weak ed25519 public key (small order or not in the prime-order subgroup)")]
    WeakKey,
}

/// A signature that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// The ed25519 key pair of a node. The secret half is zeroized on drop and
/// never printed.
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("feed_id", &self.feed_id())
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// The key pair for a 32-byte ed25519 seed (the private key as RFC 8032 defines it).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for storing the key. Zeroized when dropped.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This node's feed id.
    pub fn feed_id(&self) -> FeedId {
        FeedId {
            key: self.signing.verifying_key(),
        }
    }

    /// An ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The X25519 secret key, as libsodium's `crypto_sign_ed25519_sk_to_curve25519`:
    /// the first half of SHA-512(seed), clamped.
    pub fn x25519_secret(&self) -> X25519SecretKey {
        let mut bytes = Zeroizing::new(self.signing.to_scalar_bytes());
        if let Some(first) = bytes.first_mut() {
            *first &= 248;
        }
        if let Some(last) = bytes.last_mut() {
            *last &= 127;
            *last |= 64;
        }
        X25519SecretKey(bytes)
    }
}

/// A feed id: a validated ed25519 public key (on the curve, in the prime-order
/// subgroup), written as its libp2p PeerId.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FeedId {
    key: VerifyingKey,
}

/// The bytes a PeerId of an ed25519 key starts with: the identity multihash
/// (code 0x00, length 36) of the protobuf `PublicKey { Type: Ed25519, Data }`
/// (field 1 varint 1, field 2 bytes of length 32).
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
/// No valid PeerId string of an ed25519 key is longer than this.
const MAX_PEER_ID_CHARS: usize = 64;

impl FeedId {
    /// The feed id of 32 public-key bytes, refusing weak keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        let point = key.to_edwards();
        if point.is_small_order() || !point.is_torsion_free() {
            return Err(KeyError::WeakKey);
        }
        Ok(Self { key })
    }

    /// The 32 public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The PeerId bytes (identity multihash of the protobuf-encoded key).
    pub fn peer_id_bytes(&self) -> [u8; 38] {
        let mut out = [0u8; 38];
        let (prefix, key) = out.split_at_mut(PEER_ID_PREFIX.len());
        prefix.copy_from_slice(&PEER_ID_PREFIX);
        key.copy_from_slice(self.as_bytes());
        out
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies an ed25519 signature strictly (RFC 8032 with canonical `s`,
    /// no small-order `R`).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), BadSignature> {
        let sig = Signature::from_bytes(signature);
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| BadSignature)
    }

    /// The X25519 public key, as libsodium's `crypto_sign_ed25519_pk_to_curve25519`:
    /// the Montgomery u-coordinate (1 + y) / (1 - y). Weak keys were refused
    /// when the feed id was made, so this cannot fail.
    pub fn x25519(&self) -> X25519PublicKey {
        X25519PublicKey(self.key.to_montgomery().to_bytes())
    }
}

impl PartialOrd for FeedId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FeedId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for FeedId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.peer_id_bytes()).into_string())
    }
}

impl fmt::Debug for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedId({self})")
    }
}

impl FromStr for FeedId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.len() > MAX_PEER_ID_CHARS {
            return Err(KeyError::NotAFeedId);
        }
        let bytes = bs58::decode(s)
            .into_vec()
            .map_err(|_| KeyError::NotAFeedId)?;
        let key = bytes
            .strip_prefix(PEER_ID_PREFIX.as_slice())
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(KeyError::NotAFeedId)?;
        Self::from_bytes(&key)
    }
}

impl Serialize for FeedId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FeedId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An X25519 public key (a Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519PublicKey(pub [u8; 32]);

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey({})", hex::encode(self.0))
    }
}

/// A clamped X25519 secret scalar. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct X25519SecretKey(pub(crate) Zeroizing<[u8; 32]>);

impl fmt::Debug for X25519SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519SecretKey(<redacted>)")
    }
}

impl X25519SecretKey {
    /// A fresh random secret key (for ephemeral keys).
    pub(crate) fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// The secret scalar bytes, for interoperability tests and key storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// The matching public key.
    pub fn public_key(&self) -> X25519PublicKey {
        X25519PublicKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn feed_id_is_the_libp2p_peer_id() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..8 {
            let kp = Keypair::generate(&mut rng);
            let ours = kp.feed_id().to_string();
            let theirs = libp2p_identity::PublicKey::from(
                libp2p_identity::ed25519::PublicKey::try_from_bytes(kp.feed_id().as_bytes())
                    .unwrap(),
            )
            .to_peer_id()
            .to_string();
            assert_eq!(ours, theirs);
            assert!(ours.starts_with("12D3KooW"));
            assert_eq!(ours.parse::<FeedId>().unwrap(), kp.feed_id());
        }
    }

    #[test]
    fn x25519_halves_match() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let kp = Keypair::generate(&mut rng);
        assert_eq!(kp.x25519_secret().public_key(), kp.feed_id().x25519());
    }

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(FeedId::from_bytes(&identity), Err(KeyError::WeakKey));
        // A valid key plus a torsion point: on the curve, not in the subgroup.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let kp = Keypair::generate(&mut rng);
        let torsion = curve25519_dalek::constants::EIGHT_TORSION[1];
        let mixed = (kp.feed_id().key.to_edwards() + torsion)
            .compress()
            .to_bytes();
        assert_eq!(FeedId::from_bytes(&mixed), Err(KeyError::WeakKey));
        // Not a feed id at all.
        for s in [
            "",
            "12D3KooW",
            "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
            "0OIl",
        ] {
            assert_eq!(s.parse::<FeedId>(), Err(KeyError::NotAFeedId), "{s}");
        }
        assert_eq!("1".repeat(65).parse::<FeedId>(), Err(KeyError::NotAFeedId));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let kp = Keypair::from_seed(&[7; 32]);
        let seed_hex = hex::encode([7u8; 32]);
        assert!(!format!("{kp:?}").contains(&seed_hex));
        assert_eq!(
            format!("{:?}", kp.x25519_secret()),
            "X25519SecretKey(<redacted>)"
        );
    }
}
