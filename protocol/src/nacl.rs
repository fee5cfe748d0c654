//! The NaCl building blocks shared by the envelope and the sealed box:
//! `crypto_box_beforenm` and `crypto_secretbox_easy`, libsodium-compatible.

use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use curve25519_dalek::MontgomeryPoint;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::identity::{X25519PublicKey, X25519SecretKey};

/// Bytes the Poly1305 tag adds to a secretbox.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of an XSalsa20 nonce.
pub(crate) const NONCE_LEN: usize = 24;

/// libsodium's `crypto_box_beforenm`: X25519 then HSalsa20 with a zero nonce.
///
/// Returns `None` when the shared point is all zeros, which happens exactly
/// when `public` has small order; libsodium refuses those keys the same way.
pub(crate) fn box_key(
    secret: &X25519SecretKey,
    public: &X25519PublicKey,
) -> Option<Zeroizing<[u8; 32]>> {
    let shared = Zeroizing::new(MontgomeryPoint(public.0).mul_clamped(*secret.0).to_bytes());
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return None;
    }
    let key = salsa20::hsalsa::<salsa20::cipher::consts::U10>(
        shared.as_slice().into(),
        &Default::default(),
    );
    Some(Zeroizing::new(key.into()))
}

/// libsodium's `crypto_secretbox_easy`: the 16-byte tag, then the ciphertext.
pub(crate) fn secretbox_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new(key.into());
    // Encryption only fails for messages past the cipher's 2^38-byte limit,
    // which no caller can reach (entries are capped at 64 KiB); an empty result
    // would then fail to open rather than pass silently.
    cipher.encrypt(nonce.into(), plaintext).unwrap_or_default()
}

/// libsodium's `crypto_secretbox_open_easy`. `None` when the tag does not verify.
pub(crate) fn secretbox_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if ciphertext.len() < TAG_LEN {
        return None;
    }
    let cipher = XSalsa20Poly1305::new(key.into());
    cipher
        .decrypt(nonce.into(), ciphertext)
        .ok()
        .map(Zeroizing::new)
}

/// Lets a caller's rand_core 0.10 RNG drive `crypto_box`, which still speaks
/// rand_core 0.6. It adds no randomness of its own.
pub(crate) struct RngCompat<'a, R: rand_core::CryptoRng>(pub(crate) &'a mut R);

impl<R: rand_core::CryptoRng> rand_core_06::RngCore for RngCompat<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl<R: rand_core::CryptoRng> rand_core_06::CryptoRng for RngCompat<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_public_keys_give_no_key() {
        let secret = X25519SecretKey(Zeroizing::new([9u8; 32]));
        // u = 0 and u = 1 have small order.
        assert!(box_key(&secret, &X25519PublicKey([0; 32])).is_none());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(box_key(&secret, &X25519PublicKey(one)).is_none());
        // The base point does not.
        let mut nine = [0u8; 32];
        nine[0] = 9;
        assert!(box_key(&secret, &X25519PublicKey(nine)).is_some());
    }

    #[test]
    fn secretbox_round_trip_and_tamper() {
        let key = [1u8; 32];
        let nonce = [2u8; NONCE_LEN];
        let mut ct = secretbox_seal(&key, &nonce, b"hello");
        assert_eq!(ct.len(), 5 + TAG_LEN);
        assert_eq!(
            secretbox_open(&key, &nonce, &ct).as_deref().map(|v| &v[..]),
            Some(&b"hello"[..])
        );
        ct[0] ^= 1;
        assert!(secretbox_open(&key, &nonce, &ct).is_none());
        assert!(secretbox_open(&key, &nonce, &[0; 3]).is_none());
    }
}
