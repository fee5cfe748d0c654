//! No input panics a decoder, and no flipped byte gets through a check.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use sherd_protocol::content::Content;
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::{Feed, ForkProof};
use sherd_protocol::shard::VerifiedShard;
use sherd_protocol::{FeedId, Keypair, envelope, sealed};

const NOW: u64 = 1_700_000_000_000;

fn keys() -> (Keypair, Keypair) {
    (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let (a, b) = keys();
        let _ = SignedHeader::decode(&bytes);
        let _ = ForkProof::decode(&bytes);
        let _ = envelope::open(&b.x25519_secret(), &a.feed_id(), &bytes);
        let _ = sealed::open(&b.x25519_secret(), &bytes);
        let _ = VerifiedShard::verify(&bytes);
        let _ = VerifiedShard::open(&b.x25519_secret(), &b.feed_id(), &bytes);
        let _ = Content::parse(&bytes);
        let _ = String::from_utf8_lossy(&bytes).parse::<FeedId>();
    }

    #[test]
    fn signed_header_of_the_right_length_never_panics(bytes in proptest::collection::vec(any::<u8>(), 182)) {
        let (a, _) = keys();
        if let Ok(h) = SignedHeader::decode(&bytes) {
            let _ = Feed::new(a.feed_id()).check(&h, Some(&bytes), NOW);
        }
    }

    #[test]
    fn json_like_content_never_panics(s in r#"\{("[a-z_]{1,12}":("[ -~]{0,20}"|-?[0-9]{1,20}|true|null|\[\]|\{\}),?){0,8}\}"#) {
        let _ = Content::parse(s.as_bytes());
    }

    #[test]
    fn any_flipped_bit_of_an_entry_is_caught(pos in 0usize..182 + 40, bit in 0u8..8) {
        let (a, _) = keys();
        let payload = br#"{"type":"about","version":1,"name":"a"}"#.to_vec();
        let entry = SignedHeader::sign_next(&a, None, NOW, PayloadKind::Public, &payload).unwrap();
        let mut wire = entry.as_bytes().to_vec();
        wire.extend_from_slice(&payload);
        let len = wire.len();
        wire[pos % len] ^= 1 << bit;
        let (header, body) = wire.split_at(182);
        let accepted = SignedHeader::decode(header)
            .ok()
            .is_some_and(|h| Feed::new(a.feed_id()).check(&h, Some(body), NOW).is_ok());
        prop_assert!(!accepted);
    }

    #[test]
    fn any_flipped_bit_of_an_envelope_is_caught(seed in any::<u64>(), pos in any::<usize>(), bit in 0u8..8) {
        let (a, b) = keys();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut env = envelope::seal(&mut rng, &a.feed_id(), &[b.feed_id()], b"payload").unwrap();
        let len = env.len();
        env[pos % len] ^= 1 << bit;
        let opened = envelope::open(&b.x25519_secret(), &a.feed_id(), &env);
        prop_assert!(!matches!(opened, Ok(Some(_))));
    }

    #[test]
    fn any_flipped_bit_of_a_sealed_box_is_caught(seed in any::<u64>(), pos in any::<usize>(), bit in 0u8..8) {
        let (_, b) = keys();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut sealed_box = sealed::seal(&mut rng, &b.feed_id().x25519(), b"a signed shard");
        let len = sealed_box.len();
        sealed_box[pos % len] ^= 1 << bit;
        prop_assert!(sealed::open(&b.x25519_secret(), &sealed_box).is_err());
    }
}
