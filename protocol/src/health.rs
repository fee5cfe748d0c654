//! Health checks: a custodian shows its owner that it still holds its shard
//! and can open it, without revealing anything of it.
//!
//! The owner sends a `challenge` with a fresh 32-byte nonce; the custodian
//! answers with a `proof`:
//!
//! ```text
//! proof = HMAC-SHA-256(check_key,
//!           "sherd/health-proof/v1" || backup (32) || custodian (32)
//!           || nonce (32) || shard payload)
//! ```
//!
//! `check_key` is the per-custodian key in the owner-signed inner shard (so
//! only a node that can open the sealed shard has it) and, on the owner's
//! side, in its `root`. `shard payload` is the whole payload of the owner's
//! `shard` entry for that custodian, as stored (the boxed envelope): both
//! sides hold the same bytes. The nonce comes before the payload, so no
//! state can be computed ahead of a challenge without keeping the payload:
//! a custodian that erased its shard cannot answer. Comparison is constant
//! time.

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{BackupId, FeedId};

/// The domain separation prefix of a proof.
pub const PROOF_DOMAIN: &[u8] = b"sherd/health-proof/v1";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The proof for a challenge's `nonce`; see the module doc for the bytes.
pub fn proof(
    check_key: &[u8; 32],
    backup: &BackupId,
    custodian: &FeedId,
    nonce: &[u8; 32],
    shard_payload: &[u8],
) -> [u8; 32] {
    // HMAC pads a key shorter than the hash's block with zeros (RFC 2104):
    // done here, so that the key fits the block-sized key type exactly.
    let mut block = Zeroizing::new([0u8; 64]);
    for (b, k) in block.iter_mut().zip(check_key) {
        *b = *k;
    }
    let mut mac = <HmacSha256 as KeyInit>::new(&(*block).into());
    mac.update(PROOF_DOMAIN);
    mac.update(backup.as_bytes());
    mac.update(custodian.as_bytes());
    mac.update(nonce);
    mac.update(shard_payload);
    mac.finalize().into_bytes().into()
}

/// Whether `claimed` is the proof for these inputs, compared in constant time.
pub fn verify(
    check_key: &[u8; 32],
    backup: &BackupId,
    custodian: &FeedId,
    nonce: &[u8; 32],
    shard_payload: &[u8],
    claimed: &[u8; 32],
) -> bool {
    let expected = proof(check_key, backup, custodian, nonce, shard_payload);
    expected.ct_eq(claimed).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ([u8; 32], BackupId, FeedId, [u8; 32], Vec<u8>) {
        let custodian = crate::Keypair::from_seed(&[3; 32]).feed_id();
        (
            [1; 32],
            BackupId([2; 32]),
            custodian,
            [4; 32],
            b"the boxed shard payload".to_vec(),
        )
    }

    #[test]
    fn a_proof_verifies_and_any_change_of_input_breaks_it() {
        let (key, backup, custodian, nonce, payload) = inputs();
        let p = proof(&key, &backup, &custodian, &nonce, &payload);
        assert!(verify(&key, &backup, &custodian, &nonce, &payload, &p));

        let other = crate::Keypair::from_seed(&[5; 32]).feed_id();
        let mut flipped = payload.clone();
        flipped[0] ^= 1;
        assert!(!verify(&[9; 32], &backup, &custodian, &nonce, &payload, &p));
        assert!(!verify(
            &key,
            &BackupId([8; 32]),
            &custodian,
            &nonce,
            &payload,
            &p
        ));
        assert!(!verify(&key, &backup, &other, &nonce, &payload, &p));
        assert!(!verify(&key, &backup, &custodian, &[6; 32], &payload, &p));
        assert!(!verify(&key, &backup, &custodian, &nonce, &flipped, &p));
        assert!(!verify(
            &key,
            &backup,
            &custodian,
            &nonce,
            &payload[1..],
            &p
        ));
    }

    #[test]
    fn the_proof_is_hmac_sha256_over_the_documented_bytes() {
        // RFC 2104 by hand over the same bytes: the layout is the one
        // PROTOCOL.md gives, not whatever the code happens to feed in.
        use sha2::Digest;
        let (key, backup, custodian, nonce, payload) = inputs();
        let mut message = PROOF_DOMAIN.to_vec();
        message.extend_from_slice(backup.as_bytes());
        message.extend_from_slice(custodian.as_bytes());
        message.extend_from_slice(&nonce);
        message.extend_from_slice(&payload);
        let mut padded = [0u8; 64];
        padded[..32].copy_from_slice(&key);
        let inner_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x36).collect();
        let outer_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new()
            .chain_update(&inner_pad)
            .chain_update(&message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(&outer_pad)
            .chain_update(inner)
            .finalize();
        assert_eq!(
            proof(&key, &backup, &custodian, &nonce, &payload).as_slice(),
            outer.as_slice()
        );
    }
}
