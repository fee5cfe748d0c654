//! Backup and recovery end to end, as property tests: any `t` of `n` shards
//! recover the exact secret, `t - 1` never do, order and duplicates do not
//! matter, and foreign or tampered shards are refused with a reason.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use sherd_protocol::backup::{self, Backup, BackupError, BackupSpec};
use sherd_protocol::content::Release;
use sherd_protocol::recovery::{Progress, Recovery, Rejected};
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::shard::{ShardError, VerifiedShard};
use sherd_protocol::{FeedId, Keypair};

const NOW: u64 = 1_700_000_000_000;

struct World {
    owner: Keypair,
    custodians: Vec<Keypair>,
    backup: Backup,
    secret: Vec<u8>,
}

fn spec(secret: &[u8], threshold: usize, custodians: &[Keypair]) -> BackupSpec {
    BackupSpec {
        material: SecretMaterial {
            secret: Zeroizing::new(secret.to_vec()),
            label: "test secret".into(),
            metadata: Zeroizing::new(Vec::new()),
        },
        threshold,
        custodians: custodians.iter().map(Keypair::feed_id).collect(),
        trustees: vec![],
        veto_delay_secs: 72 * 3600,
        one_time: false,
        release: Release::Approve,
    }
}

fn world(seed: u64, secret: &[u8], t: usize, n: usize) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let owner = Keypair::generate(&mut rng);
    let custodians: Vec<Keypair> = (0..n).map(|_| Keypair::generate(&mut rng)).collect();
    let backup = backup::create(&mut rng, &owner, NOW, &spec(secret, t, &custodians)).unwrap();
    World {
        owner,
        custodians,
        backup,
        secret: secret.to_vec(),
    }
}

impl World {
    /// Custodian `i` opens its shard and reseals it to `to` (a reply).
    fn reply(&self, i: usize, to: &FeedId, seed: u64) -> Vec<u8> {
        let c = &self.custodians[i];
        let (feed, shard) = &self.backup.shards[i];
        assert_eq!(*feed, c.feed_id());
        let verified =
            VerifiedShard::open(&c.x25519_secret(), &c.feed_id(), &shard.sealed.0).unwrap();
        verified.reseal(&mut ChaCha20Rng::seed_from_u64(seed), to)
    }

    fn recovery(&self) -> Recovery {
        Recovery::new(
            self.owner.feed_id(),
            self.backup.id,
            self.owner.x25519_secret(),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_t_of_n_recover_in_any_order_with_duplicates(
        seed in any::<u64>(),
        secret in proptest::collection::vec(any::<u8>(), 1..2048),
        (n, t) in (1usize..=8).prop_flat_map(|n| (Just(n), 1..=n)),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..8).collect();
            for i in (1..v.len()).rev() { v.swap(i, rng.random_range(0..=i)); }
            v
        }),
    ) {
        let w = world(seed, &secret, t, n);
        let mut rec = w.recovery();
        let owner = w.owner.feed_id();
        let chosen: Vec<usize> = order.into_iter().filter(|&i| i < n).take(t).collect();
        for (k, &i) in chosen.iter().enumerate() {
            let sealed = w.reply(i, &owner, seed ^ k as u64);
            let sender = w.custodians[i].feed_id();
            let progress = rec.add_sealed(&sender, &sealed).unwrap().clone();
            if k + 1 < t {
                prop_assert_eq!(progress, Progress::Collecting { have: k + 1, threshold: Some(t) });
                // The same shard again is a duplicate and changes nothing.
                prop_assert_eq!(rec.add_sealed(&sender, &sealed), Err(Rejected::Duplicate));
                prop_assert!(rec.take_secret().is_none());
            } else {
                prop_assert_eq!(progress, Progress::Complete);
            }
        }
        let got = rec.take_secret().unwrap();
        prop_assert_eq!(&got.secret[..], &w.secret[..]);
        prop_assert_eq!(got.label.as_str(), "test secret");
        prop_assert!(rec.take_secret().is_none(), "the secret is handed over once");
    }
}

#[test]
fn t_minus_one_shards_never_recover() {
    for (t, n) in [(2, 3), (3, 5), (5, 8)] {
        let w = world(t as u64, b"the secret", t, n);
        let mut rec = w.recovery();
        for i in 0..t - 1 {
            let sealed = w.reply(i, &w.owner.feed_id(), i as u64);
            rec.add_sealed(&w.custodians[i].feed_id(), &sealed).unwrap();
        }
        assert_eq!(
            rec.progress(),
            &Progress::Collecting {
                have: t - 1,
                threshold: Some(t)
            }
        );
        assert_eq!(
            rec.progress().to_string(),
            format!("{} of {t} shards; need 1 more", t - 1)
        );
        assert!(rec.take_secret().is_none());
    }
}

#[test]
fn foreign_tampered_and_misrouted_shards_are_refused_with_a_reason() {
    let w = world(1, b"secret one", 2, 3);
    let other = world(2, b"secret two", 2, 3);
    let owner = w.owner.feed_id();
    let mut rec = w.recovery();

    // A shard of another owner's backup, resealed to us.
    let foreign = other.reply(0, &owner, 9);
    assert_eq!(
        rec.add_sealed(&other.custodians[0].feed_id(), &foreign),
        Err(Rejected::WrongOwner)
    );
    // A shard sealed to someone else does not open.
    let not_ours = w.reply(0, &w.custodians[1].feed_id(), 9);
    assert_eq!(
        rec.add_sealed(&w.custodians[0].feed_id(), &not_ours),
        Err(Rejected::Invalid(ShardError::CannotOpen))
    );
    // Custodian 1 passing on custodian 0's shard as its own.
    let c0 = w.reply(0, &owner, 10);
    assert_eq!(
        rec.add_sealed(&w.custodians[1].feed_id(), &c0),
        Err(Rejected::NotFromCustodian)
    );
    // A flipped byte anywhere in a sealed shard is caught.
    for i in (0..c0.len()).step_by(7) {
        let mut bad = c0.clone();
        bad[i] ^= 0x40;
        assert!(
            rec.add_sealed(&w.custodians[0].feed_id(), &bad).is_err(),
            "byte {i}"
        );
    }
    assert_eq!(
        rec.progress(),
        &Progress::Collecting {
            have: 0,
            threshold: None
        }
    );

    // The real ones still recover.
    rec.add_sealed(&w.custodians[0].feed_id(), &c0).unwrap();
    let c2 = w.reply(2, &owner, 11);
    assert_eq!(
        rec.add_sealed(&w.custodians[2].feed_id(), &c2),
        Ok(&Progress::Complete)
    );
    assert_eq!(&rec.take_secret().unwrap().secret[..], b"secret one");
    assert_eq!(
        rec.add_sealed(&w.custodians[1].feed_id(), &c2),
        Err(Rejected::Finished)
    );
}

#[test]
fn a_shard_altered_and_resealed_fails_the_owner_signature() {
    let w = world(3, b"secret", 2, 2);
    let c = &w.custodians[0];
    let verified = VerifiedShard::open(
        &c.x25519_secret(),
        &c.feed_id(),
        &w.backup.shards[0].1.sealed.0,
    )
    .unwrap();
    let mut signed = verified.signed_bytes().to_vec();
    // Flip a byte of the share (offset 1 + 8 + 32 + 32 + 32 + 1 + 1 = 107).
    signed[107] ^= 1;
    assert_eq!(
        VerifiedShard::verify(&signed).unwrap_err(),
        ShardError::BadSignature
    );
    let resealed = sherd_protocol::sealed::seal(
        &mut ChaCha20Rng::seed_from_u64(1),
        &w.owner.feed_id().x25519(),
        &signed,
    );
    let mut rec = w.recovery();
    assert_eq!(
        rec.add_sealed(&c.feed_id(), &resealed),
        Err(Rejected::Invalid(ShardError::BadSignature))
    );
}

#[test]
fn the_owner_cannot_open_the_shards_it_made() {
    let w = world(4, b"secret", 2, 3);
    for (_, shard) in &w.backup.shards {
        assert!(sherd_protocol::sealed::open(&w.owner.x25519_secret(), &shard.sealed.0).is_err());
    }
    // And a custodian opening someone else's shard fails too.
    let c1 = &w.custodians[1];
    assert_eq!(
        VerifiedShard::open(
            &c1.x25519_secret(),
            &c1.feed_id(),
            &w.backup.shards[0].1.sealed.0
        )
        .unwrap_err(),
        ShardError::CannotOpen
    );
}

#[test]
fn share_ids_are_random_distinct_and_non_zero() {
    let w = world(5, b"secret", 3, 32);
    let mut ids: Vec<u8> = (0..32)
        .map(|i| {
            let c = &w.custodians[i];
            VerifiedShard::open(
                &c.x25519_secret(),
                &c.feed_id(),
                &w.backup.shards[i].1.sealed.0,
            )
            .unwrap()
            .inner()
            .share_id
        })
        .collect();
    assert!(ids.iter().all(|&id| id != 0));
    assert_ne!(ids, (1..=32).collect::<Vec<u8>>(), "ids must not be 1..=n");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 32);
}

#[test]
fn limits_are_clear_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let owner = Keypair::generate(&mut rng);
    let cs: Vec<Keypair> = (0..33).map(|_| Keypair::generate(&mut rng)).collect();
    let mut check = |s: BackupSpec, want: BackupError| {
        assert_eq!(backup::create(&mut rng, &owner, NOW, &s).unwrap_err(), want);
    };
    check(
        spec(b"s", 0, &cs[..3]),
        BackupError::Threshold {
            threshold: 0,
            custodians: 3,
        },
    );
    check(
        spec(b"s", 4, &cs[..3]),
        BackupError::Threshold {
            threshold: 4,
            custodians: 3,
        },
    );
    check(spec(b"s", 2, &cs[..33]), BackupError::Custodians);
    check(spec(b"s", 1, &[]), BackupError::Custodians);
    let mut dup = spec(b"s", 1, &cs[..2]);
    dup.custodians[1] = dup.custodians[0];
    check(dup, BackupError::Custodians);
    let mut own = spec(b"s", 1, &cs[..2]);
    own.custodians[1] = owner.feed_id();
    check(own, BackupError::OwnerIsCustodian);
    check(
        spec(b"", 1, &cs[..2]),
        BackupError::Secret(sherd_protocol::secret::SecretError::SecretSize(0)),
    );
    let mut trustees = spec(b"s", 1, &cs[..2]);
    trustees.trustees = cs[2..11].iter().map(Keypair::feed_id).collect();
    check(trustees, BackupError::Trustees);
    // The largest secret with the longest label still fits an entry.
    let big = world(7, &vec![0xab; 16 * 1024], 32, 32);
    for (_, shard) in &big.backup.shards {
        let json = sherd_protocol::content::Content::Shard(shard.clone())
            .to_json()
            .unwrap();
        assert!(
            json.len() <= sherd_protocol::envelope::MAX_PLAINTEXT_LEN,
            "{}",
            json.len()
        );
    }
}
