//! Criterion benches of the protocol core: the figures of DESIGN.md section 9
//! that need no network (entry signing and verification, envelopes, backup
//! creation and the CPU part of a recovery), plus a few reference points that
//! explain where the time goes.
//!
//! `cargo bench -p sherd-protocol` runs them all in a few minutes on two cores;
//! BENCHMARKS.md at the root of the repository records the results. Every
//! input comes from a seeded RNG, so every run measures the same bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use sherd_protocol::backup::{self, Backup, BackupSpec};
use sherd_protocol::content::{About, Content, Release, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::Feed;
use sherd_protocol::recovery::{Progress, Recovery};
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::shard::VerifiedShard;
use sherd_protocol::{FeedId, Keypair, envelope, sealed};

/// The validator's clock, and every entry's timestamp.
const NOW: u64 = 1_700_000_000_000;
/// Bytes of the public payload of a benched entry.
const PAYLOAD_LEN: usize = 200;
/// Entries in a batch-verified run.
const RUN: usize = 1000;
/// Bytes of the plaintext of a benched envelope (a boxed entry's content).
const PLAINTEXT_LEN: usize = 200;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// An `about` entry's JSON of exactly `PAYLOAD_LEN` bytes, different for each `i`.
fn public_payload(i: usize) -> Vec<u8> {
    let about = |description: String| {
        Content::About(About {
            version: V1,
            name: format!("node {i}"),
            description: Some(description),
        })
        .to_json()
        .expect("valid about content")
    };
    let base = about(String::new()).len();
    let text = "Backs up secrets for friends; online most evenings. ".repeat(8);
    let json = about(
        text.get(..PAYLOAD_LEN - base)
            .expect("payload room")
            .to_owned(),
    );
    assert_eq!(json.len(), PAYLOAD_LEN);
    json
}

/// The first `n` entries of `author`'s feed, each with its payload.
fn chain(author: &Keypair, n: usize) -> Vec<(SignedHeader, Vec<u8>)> {
    let mut out: Vec<(SignedHeader, Vec<u8>)> = Vec::with_capacity(n);
    for i in 0..n {
        let payload = public_payload(i);
        let previous = out.last().map(|(e, _)| e);
        let entry = SignedHeader::sign_next(author, previous, NOW, PayloadKind::Public, &payload)
            .expect("entry signs");
        out.push((entry, payload));
    }
    out
}

/// 1. Signing one entry.
fn entry_sign(c: &mut Criterion) {
    let author = Keypair::generate(&mut rng(1));
    let first =
        SignedHeader::sign_next(&author, None, NOW, PayloadKind::Public, &public_payload(0))
            .expect("entry signs");
    let payload = public_payload(1);

    let mut g = c.benchmark_group("entry_sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign_next_200B_public", |b| {
        b.iter(|| {
            SignedHeader::sign_next(
                &author,
                Some(black_box(&first)),
                NOW,
                PayloadKind::Public,
                black_box(&payload),
            )
        })
    });
    g.finish();
}

/// 2. Verifying entries one at a time, as a node does for a live entry.
fn entry_verify_one(c: &mut Criterion) {
    let author = Keypair::generate(&mut rng(2));
    let entries = chain(&author, 2);
    let (head, _) = &entries[0];
    let (entry, payload) = &entries[1];
    let feed = Feed::resume(author.feed_id(), head.clone()).expect("own head");
    assert_eq!(feed.check(entry, Some(payload), NOW), Ok(()));

    let mut g = c.benchmark_group("entry_verify_one");
    g.throughput(Throughput::Elements(1));
    g.bench_function("Feed_check_with_payload", |b| {
        b.iter(|| feed.check(black_box(entry), Some(black_box(payload)), NOW))
    });
    g.bench_function("Feed_check_header_only", |b| {
        b.iter(|| feed.check(black_box(entry), None, NOW))
    });
    g.bench_function("Feed_append_with_payload", |b| {
        b.iter_batched(
            || (feed.clone(), entry.clone()),
            |(mut feed, entry)| {
                let result = feed.append(entry, Some(payload), NOW);
                (feed, result)
            },
            BatchSize::SmallInput,
        )
    });
    // Reference: the bare strict signature check that Feed::check ends with.
    let key = VerifyingKey::from_bytes(author.feed_id().as_bytes()).expect("valid key");
    let message = entry.signed_message();
    let signature = Signature::from_bytes(&entry.signature());
    g.bench_function("ref_dalek_verify_strict", |b| {
        b.iter(|| key.verify_strict(black_box(&message), black_box(&signature)))
    });
    g.finish();
}

/// 3. Verifying a run of 1000 entries of one feed in one batch (catch-up).
fn entry_verify_batch(c: &mut Criterion) {
    let author = Keypair::generate(&mut rng(3));
    let entries = chain(&author, RUN);
    let with_payloads: Vec<(SignedHeader, Option<&[u8]>)> = entries
        .iter()
        .map(|(e, p)| (e.clone(), Some(p.as_slice())))
        .collect();
    let headers_only: Vec<(SignedHeader, Option<&[u8]>)> =
        entries.iter().map(|(e, _)| (e.clone(), None)).collect();
    let feed_id = author.feed_id();
    for run in [&with_payloads, &headers_only] {
        assert_eq!(Feed::new(feed_id).append_run(run, NOW), (RUN, None));
    }

    // The same messages and signatures, for the raw references.
    let messages: Vec<_> = entries.iter().map(|(e, _)| e.signed_message()).collect();
    let messages: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let signatures: Vec<Signature> = entries
        .iter()
        .map(|(e, _)| Signature::from_bytes(&e.signature()))
        .collect();
    let key = VerifyingKey::from_bytes(feed_id.as_bytes()).expect("valid key");
    let keys = vec![key; RUN];
    assert!(ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok());
    assert!(single_key_batch(&key, &messages, &signatures));
    let mut forged = signatures.clone();
    let mut bad = forged[RUN / 2].to_bytes();
    bad[40] ^= 1;
    forged[RUN / 2] = Signature::from_bytes(&bad);
    assert!(!single_key_batch(&key, &messages, &forged));

    let mut g = c.benchmark_group("entry_verify_batch_1000");
    g.throughput(Throughput::Elements(RUN as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(6));
    for (name, run) in [
        ("Feed_append_run_with_payloads", &with_payloads),
        ("Feed_append_run_headers_only", &headers_only),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Feed::new(feed_id),
                |mut feed| {
                    let result = feed.append_run(black_box(run), NOW);
                    (feed, result)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.bench_function("ref_raw_dalek_verify_batch", |b| {
        b.iter(|| ed25519_dalek::verify_batch(black_box(&messages), &signatures, &keys))
    });
    g.bench_function("ref_single_key_msm_prototype", |b| {
        b.iter(|| single_key_batch(&key, black_box(&messages), &signatures))
    });
    g.finish();
}

/// A reference, not a sherd code path: the batch equation of
/// `ed25519_dalek::verify_batch` with the public-key terms of a single author
/// folded into one, `(sum z_i h_i) A`, so that the multiscalar multiplication
/// has n + 2 points instead of 2n + 1. The random `z_i` are derived from a hash
/// of every input, as dalek's transcript does. It shows what a one-author batch
/// could cost; R canonicity and small-order checks (cheap) are left out, as in
/// the raw dalek reference.
fn single_key_batch(key: &VerifyingKey, messages: &[&[u8]], signatures: &[Signature]) -> bool {
    let n = signatures.len();
    let mut transcript = Sha512::new();
    let mut hrams = Vec::with_capacity(n);
    for (signature, message) in signatures.iter().zip(messages) {
        let hram: [u8; 64] = Sha512::new()
            .chain_update(signature.r_bytes())
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        transcript.update(hram);
        transcript.update(signature.s_bytes());
        hrams.push(Scalar::from_bytes_mod_order_wide(&hram));
    }
    let seed: [u8; 64] = transcript.finalize().into();

    let mut scalars = Vec::with_capacity(n + 2);
    let mut points = Vec::with_capacity(n + 2);
    let mut b_coefficient = Scalar::ZERO;
    let mut a_coefficient = Scalar::ZERO;
    for (i, (signature, hram)) in signatures.iter().zip(&hrams).enumerate() {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
        else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(*signature.r_bytes()).decompress() else {
            return false;
        };
        let z_bytes: [u8; 64] = Sha512::new()
            .chain_update(seed)
            .chain_update((i as u64).to_le_bytes())
            .finalize()
            .into();
        let mut z = [0u8; 16];
        z.copy_from_slice(&z_bytes[..16]);
        let z = Scalar::from(u128::from_le_bytes(z));
        b_coefficient += z * s;
        a_coefficient += z * hram;
        scalars.push(z);
        points.push(r);
    }
    scalars.push(-b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.push(a_coefficient);
    points.push(key.to_edwards());
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// 4. Sealing and opening envelopes for 1 and 8 recipients.
fn envelope_seal_open(c: &mut Criterion) {
    let mut keys_rng = rng(4);
    let author = Keypair::generate(&mut keys_rng);
    let readers: Vec<Keypair> = (0..8).map(|_| Keypair::generate(&mut keys_rng)).collect();
    let stranger = Keypair::generate(&mut keys_rng);
    let mut plaintext = vec![0u8; PLAINTEXT_LEN];
    rand_core::Rng::fill_bytes(&mut keys_rng, &mut plaintext);
    let author_id = author.feed_id();
    let stranger_secret = stranger.x25519_secret();

    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    // Reference: one X25519 shared secret, the unit of envelope cost (one per
    // recipient to seal, one per envelope to open or to find it is not ours).
    let point = MontgomeryPoint(stranger.feed_id().x25519().0);
    let scalar = *stranger_secret.to_bytes();
    g.bench_function("ref_x25519_mul_clamped", |b| {
        b.iter(|| black_box(point).mul_clamped(black_box(scalar)))
    });
    for n in [1usize, 8] {
        let recipients: Vec<FeedId> = readers.iter().take(n).map(Keypair::feed_id).collect();
        let mut seal_rng = rng(40 + n as u64);
        g.bench_function(BenchmarkId::new("seal", n), |b| {
            b.iter(|| {
                envelope::seal(
                    &mut seal_rng,
                    &author_id,
                    black_box(&recipients),
                    &plaintext,
                )
            })
        });

        let sealed = envelope::seal(&mut rng(50 + n as u64), &author_id, &recipients, &plaintext)
            .expect("envelope seals");
        // The last recipient: its slot is the last one a reader tries.
        let reader = readers[n - 1].x25519_secret();
        assert_eq!(
            envelope::open(&reader, &author_id, &sealed)
                .expect("opens")
                .as_deref()
                .map(Vec::as_slice),
            Some(plaintext.as_slice())
        );
        g.bench_function(BenchmarkId::new("open_as_recipient", n), |b| {
            b.iter(|| envelope::open(&reader, &author_id, black_box(&sealed)))
        });
        assert_eq!(
            envelope::open(&stranger_secret, &author_id, &sealed),
            Ok(None)
        );
        g.bench_function(BenchmarkId::new("open_not_for_me", n), |b| {
            b.iter(|| envelope::open(&stranger_secret, &author_id, black_box(&sealed)))
        });
    }
    g.finish();
}

/// A backup of a 1 KiB secret to 5 custodians with threshold 3.
struct World {
    owner: Keypair,
    custodians: Vec<Keypair>,
    spec: BackupSpec,
    backup: Backup,
}

fn world() -> World {
    let mut r = rng(5);
    let owner = Keypair::generate(&mut r);
    let custodians: Vec<Keypair> = (0..5).map(|_| Keypair::generate(&mut r)).collect();
    let mut secret = Zeroizing::new(vec![0u8; 1024]);
    rand_core::Rng::fill_bytes(&mut r, &mut secret);
    let spec = BackupSpec {
        material: SecretMaterial {
            secret,
            label: "wallet seed".into(),
            metadata: Zeroizing::new(Vec::new()),
        },
        threshold: 3,
        custodians: custodians.iter().map(Keypair::feed_id).collect(),
        trustees: vec![],
        veto_delay_secs: 72 * 3600,
        one_time: false,
        release: Release::Approve,
    };
    let backup = backup::create(&mut r, &owner, NOW, &spec).expect("backup");
    World {
        owner,
        custodians,
        spec,
        backup,
    }
}

impl World {
    /// Custodian `i` opens its shard and reseals it to the owner (a `reply`).
    fn reply(&self, i: usize) -> (FeedId, Vec<u8>) {
        let custodian = &self.custodians[i];
        let (_, shard) = &self.backup.shards[i];
        let verified = VerifiedShard::open(
            &custodian.x25519_secret(),
            &custodian.feed_id(),
            &shard.sealed.0,
        )
        .expect("custodian opens its shard");
        let sealed = verified.reseal(&mut rng(60 + i as u64), &self.owner.feed_id());
        (custodian.feed_id(), sealed)
    }
}

/// 5. Making a backup: 1 KiB secret, 5 custodians, threshold 3.
fn backup_create(c: &mut Criterion) {
    let w = world();
    let mut r = rng(6);
    let mut g = c.benchmark_group("backup");
    g.bench_function("create_1KiB_5_custodians_t3", |b| {
        b.iter(|| backup::create(&mut r, &w.owner, NOW, black_box(&w.spec)))
    });
    g.finish();
}

/// 6. The CPU part of a recovery: from 3 sealed replies to the secret.
fn recovery_3_of_5(c: &mut Criterion) {
    let w = world();
    let replies: Vec<(FeedId, Vec<u8>)> = [0, 2, 4].into_iter().map(|i| w.reply(i)).collect();
    let owner_id = w.owner.feed_id();
    let recover = |secret| {
        let mut recovery = Recovery::new(owner_id, w.backup.id, secret);
        for (sender, sealed) in &replies {
            let _ = recovery.add_sealed(sender, black_box(sealed));
        }
        recovery.take_secret()
    };
    let recovered = recover(w.owner.x25519_secret()).expect("recovers");
    assert_eq!(recovered.secret, w.spec.material.secret);

    let mut g = c.benchmark_group("recovery");
    g.bench_function("3_of_5_sealed_replies_to_secret", |b| {
        b.iter_batched(|| w.owner.x25519_secret(), recover, BatchSize::SmallInput)
    });
    g.finish();

    // Where a recovery's time goes: one reply's steps, and one feed id.
    let (_, first_reply) = &replies[0];
    let owner_secret = w.owner.x25519_secret();
    let signed = sealed::open(&owner_secret, first_reply).expect("opens");
    let mut one = Recovery::new(owner_id, w.backup.id, w.owner.x25519_secret());
    assert_eq!(
        one.add_sealed(&replies[0].0, first_reply),
        Ok(&Progress::Collecting {
            have: 1,
            threshold: Some(3)
        })
    );
    let mut g = c.benchmark_group("recovery_parts");
    g.bench_function("sealed_open_one_reply", |b| {
        b.iter(|| sealed::open(&owner_secret, black_box(first_reply)))
    });
    g.bench_function("VerifiedShard_verify_5_custodians", |b| {
        b.iter(|| VerifiedShard::verify(black_box(&signed)))
    });
    let owner_bytes = *owner_id.as_bytes();
    g.bench_function("FeedId_from_bytes", |b| {
        b.iter(|| FeedId::from_bytes(black_box(&owner_bytes)))
    });
    // Reference: decompression alone, without FeedId's subgroup check.
    g.bench_function("ref_dalek_VerifyingKey_from_bytes", |b| {
        b.iter(|| VerifyingKey::from_bytes(black_box(&owner_bytes)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets =
        entry_sign,
        entry_verify_one,
        entry_verify_batch,
        envelope_seal_open,
        backup_create,
        recovery_3_of_5
}
criterion_main!(benches);
