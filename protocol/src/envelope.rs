//! The multi-recipient envelope that carries private content ("boxed" payloads).
//!
//! ```text
//! offset  size   field
//!      0     1   envelope version (1)
//!      1    24   nonce
//!     25    32   ephemeral X25519 public key (fresh per envelope)
//!     57   384   8 slots of 48 bytes: crypto_box_easy(body key) to each recipient,
//!                then random bytes up to 8 slots
//!    441  48+n   crypto_secretbox_easy(binding (32) || plaintext) under the body key,
//!                binding = SHA-256(author's ed25519 key || bytes 0..441)
//! ```
//!
//! Every envelope has eight slots whatever its number of recipients, so
//! neither the recipients nor their number show to anyone: a reader opens by
//! trial. The binding makes every byte count for every recipient (a changed
//! slot of someone else's, or of filler, is caught) and ties the envelope to
//! its author, so one copied into another feed does not open as its message.

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use crate::identity::{FeedId, X25519PublicKey, X25519SecretKey};
use crate::ids::sha256;
use crate::nacl::{NONCE_LEN, TAG_LEN, box_key, secretbox_open, secretbox_seal};

/// The only envelope format this code reads and writes.
pub const ENVELOPE_VERSION: u8 = 1;
/// The most recipients one envelope can have (and the number of slots).
pub const MAX_RECIPIENTS: usize = 8;
/// Bytes of one recipient slot: a 32-byte key and its tag.
pub const SLOT_LEN: usize = 32 + TAG_LEN;
/// Bytes before the body.
pub const PREFIX_LEN: usize = 1 + NONCE_LEN + 32 + MAX_RECIPIENTS * SLOT_LEN;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = PREFIX_LEN + TAG_LEN + 32;
/// The largest plaintext that still fits an entry's 64 KiB payload.
pub const MAX_PLAINTEXT_LEN: usize = crate::entry::MAX_PAYLOAD_LEN - OVERHEAD;

/// Why an envelope could not be made or opened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// An envelope needs at least one recipient.
    #[error("an envelope needs at least one recipient")]
    NoRecipients,
    /// More than eight recipients.
    #[error("an envelope has at most {MAX_RECIPIENTS} recipients, got {0}")]
    TooManyRecipients(usize),
    /// The same recipient twice; the index of the repeat.
    #[error("recipient #{0} is listed twice")]
    DuplicateRecipient(usize),
    /// The plaintext would not fit in an entry.
    #[error("plaintext of {0} bytes is over the {MAX_PLAINTEXT_LEN}-byte limit")]
    TooLarge(usize),
    /// The bytes are too short or of an unknown version.
    #[error("malformed envelope")]
    Malformed,
    /// A slot opened for us but the body did not: the sender made a broken envelope.
    #[error("envelope body does not decrypt")]
    BadBody,
    /// The body is not bound to these bytes and this author: the envelope was
    /// altered, or copied from another author's feed.
    #[error("envelope was altered or copied from another author's feed")]
    NotBound,
}

/// Encrypts `plaintext` from `author` to each of `recipients`.
pub fn seal(
    rng: &mut impl rand_core::CryptoRng,
    author: &FeedId,
    recipients: &[FeedId],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(EnvelopeError::TooManyRecipients(recipients.len()));
    }
    let mut seen = BTreeSet::new();
    if let Some(i) = recipients.iter().position(|r| !seen.insert(*r)) {
        return Err(EnvelopeError::DuplicateRecipient(i));
    }
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(EnvelopeError::TooLarge(plaintext.len()));
    }

    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ephemeral = X25519SecretKey::generate(rng);
    let mut body_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(body_key.as_mut());

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ephemeral.public_key().0);
    for recipient in recipients {
        // A feed id's X25519 key never has small order, so this always
        // yields a key; a refusal is still an error, not a panic.
        let key = box_key(&ephemeral, &recipient.x25519()).ok_or(EnvelopeError::Malformed)?;
        out.extend_from_slice(&secretbox_seal(&key, &nonce, body_key.as_ref()));
    }
    let mut filler = [0u8; SLOT_LEN];
    for _ in recipients.len()..MAX_RECIPIENTS {
        rng.fill_bytes(&mut filler);
        out.extend_from_slice(&filler);
    }
    let mut body = Zeroizing::new(Vec::with_capacity(32 + plaintext.len()));
    body.extend_from_slice(&binding(author, &out));
    body.extend_from_slice(plaintext);
    out.extend_from_slice(&secretbox_seal(&body_key, &nonce, &body));
    Ok(out)
}

/// Opens an envelope written by `author`. `Ok(None)` means "not for me":
/// no slot opens with our key. Whatever the bytes, this never panics.
pub fn open(
    secret: &X25519SecretKey,
    author: &FeedId,
    envelope: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>, EnvelopeError> {
    if envelope.len() < OVERHEAD {
        return Err(EnvelopeError::Malformed);
    }
    let (prefix, body) = envelope.split_at(PREFIX_LEN);
    let (version, rest) = prefix.split_at(1);
    if version != [ENVELOPE_VERSION] {
        return Err(EnvelopeError::Malformed);
    }
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ephemeral, slots) = rest.split_at(32);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| EnvelopeError::Malformed)?;
    let ephemeral: [u8; 32] = ephemeral.try_into().map_err(|_| EnvelopeError::Malformed)?;

    let Some(key) = box_key(secret, &X25519PublicKey(ephemeral)) else {
        return Ok(None);
    };
    let Some(body_key) = slots
        .chunks_exact(SLOT_LEN)
        .find_map(|slot| secretbox_open(&key, &nonce, slot))
    else {
        return Ok(None);
    };
    let body_key: &[u8; 32] = body_key
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadBody)?;
    let body = secretbox_open(body_key, &nonce, body).ok_or(EnvelopeError::BadBody)?;
    let Some(plaintext) = body.strip_prefix(binding(author, prefix).as_slice()) else {
        return Err(EnvelopeError::NotBound);
    };
    Ok(Some(Zeroizing::new(plaintext.to_vec())))
}

/// What the body must start with: SHA-256 of the author's key and the prefix.
fn binding(author: &FeedId, prefix: &[u8]) -> [u8; 32] {
    sha256(&[author.as_bytes(), prefix])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn keys(n: usize) -> Vec<Keypair> {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        (0..n).map(|_| Keypair::generate(&mut rng)).collect()
    }

    #[test]
    fn every_recipient_opens_and_no_one_else() {
        let k = keys(10);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let author = k[0].feed_id();
        let recipients: Vec<FeedId> = k[1..9].iter().map(Keypair::feed_id).collect();
        let env = seal(&mut rng, &author, &recipients, b"hello").unwrap();
        assert_eq!(env.len(), OVERHEAD + 5);
        for r in &k[1..9] {
            let opened = open(&r.x25519_secret(), &author, &env).unwrap().unwrap();
            assert_eq!(&opened[..], b"hello");
        }
        assert_eq!(open(&k[9].x25519_secret(), &author, &env), Ok(None));
        assert_eq!(
            open(&k[0].x25519_secret(), &author, &env),
            Ok(None),
            "not even the author"
        );
        assert_eq!(
            open(&k[1].x25519_secret(), &k[9].feed_id(), &env),
            Err(EnvelopeError::NotBound)
        );
    }

    #[test]
    fn size_does_not_depend_on_the_number_of_recipients() {
        let k = keys(9);
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let one = seal(&mut rng, &k[0].feed_id(), &[k[1].feed_id()], b"x").unwrap();
        let all: Vec<FeedId> = k[1..9].iter().map(Keypair::feed_id).collect();
        let eight = seal(&mut rng, &k[0].feed_id(), &all, b"x").unwrap();
        assert_eq!(one.len(), eight.len());
    }

    #[test]
    fn bad_recipient_lists_are_refused() {
        let k = keys(10);
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let a = k[0].feed_id();
        assert_eq!(
            seal(&mut rng, &a, &[], b"x"),
            Err(EnvelopeError::NoRecipients)
        );
        let nine: Vec<FeedId> = k[1..10].iter().map(Keypair::feed_id).collect();
        assert_eq!(
            seal(&mut rng, &a, &nine, b"x"),
            Err(EnvelopeError::TooManyRecipients(9))
        );
        let b = k[1].feed_id();
        assert_eq!(
            seal(&mut rng, &a, &[b, b], b"x"),
            Err(EnvelopeError::DuplicateRecipient(1))
        );
        let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            seal(&mut rng, &a, &[b], &big),
            Err(EnvelopeError::TooLarge(big.len()))
        );
        assert!(seal(&mut rng, &a, &[b], &big[1..]).is_ok());
    }

    #[test]
    fn tampering_is_caught_and_garbage_is_harmless() {
        let k = keys(2);
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let env = seal(&mut rng, &k[0].feed_id(), &[k[1].feed_id()], b"secret").unwrap();
        let sk = k[1].x25519_secret();
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 1;
            let r = open(&sk, &k[0].feed_id(), &bad);
            assert!(!matches!(r, Ok(Some(_))), "byte {i} flipped still opened");
        }
        for len in [0, 1, 100, OVERHEAD, OVERHEAD + 10] {
            let _ = open(&sk, &k[0].feed_id(), &vec![0u8; len]);
        }
    }
}
