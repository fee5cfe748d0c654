//! The one-way sealed box: libsodium's `crypto_box_seal`. Anyone can seal to a
//! public key; only the holder of the secret key can open it, and the sender
//! cannot open what they sealed (its ephemeral key is thrown away).

use zeroize::Zeroizing;

use crate::identity::{X25519PublicKey, X25519SecretKey};
use crate::nacl::{RngCompat, TAG_LEN, box_key};

/// Bytes a sealed box adds to its plaintext: ephemeral key and tag.
pub const SEAL_OVERHEAD: usize = 32 + TAG_LEN;

/// A sealed box that cannot be opened with the given key.
///
/// One opaque error on purpose: whether the box was for someone else, cut
/// short or tampered with, nothing about it is learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed box does not open with this key (not ours, or damaged)")]
pub struct SealedError;

/// Seals `plaintext` to `recipient` (`crypto_box_seal`).
pub fn seal(
    rng: &mut impl rand_core::CryptoRng,
    recipient: &X25519PublicKey,
    plaintext: &[u8],
) -> Vec<u8> {
    crypto_box::PublicKey::from_bytes(recipient.0)
        .seal(&mut RngCompat(rng), plaintext)
        // Sealing fails only past the cipher's 2^38-byte message limit; an
        // empty box then fails to open instead of passing silently.
        .unwrap_or_default()
}

/// Opens a sealed box (`crypto_box_seal_open`).
pub fn open(secret: &X25519SecretKey, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealedError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealedError);
    }
    let ephemeral: [u8; 32] = sealed
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(SealedError)?;
    // crypto_box does not refuse a small-order ephemeral key; libsodium does,
    // and so do we, so that both open exactly the same boxes.
    if box_key(secret, &X25519PublicKey(ephemeral)).is_none() {
        return Err(SealedError);
    }
    crypto_box::SecretKey::from_bytes(*secret.0)
        .unseal(sealed)
        .map(Zeroizing::new)
        .map_err(|_| SealedError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn only_the_recipient_opens() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let alice = Keypair::generate(&mut rng);
        let bob = Keypair::generate(&mut rng);
        let sealed = seal(&mut rng, &alice.feed_id().x25519(), b"for alice");
        assert_eq!(sealed.len(), 9 + SEAL_OVERHEAD);
        assert_eq!(
            &open(&alice.x25519_secret(), &sealed).unwrap()[..],
            b"for alice"
        );
        assert_eq!(open(&bob.x25519_secret(), &sealed), Err(SealedError));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                open(&alice.x25519_secret(), &bad),
                Err(SealedError),
                "byte {i}"
            );
        }
        assert_eq!(
            open(&alice.x25519_secret(), &sealed[..40]),
            Err(SealedError)
        );
    }

    #[test]
    fn small_order_ephemeral_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let alice = Keypair::generate(&mut rng);
        let mut forged = vec![0u8; 32 + TAG_LEN + 4];
        forged[0] = 1;
        assert_eq!(open(&alice.x25519_secret(), &forged), Err(SealedError));
    }
}
