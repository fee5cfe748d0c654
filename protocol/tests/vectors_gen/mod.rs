//! The test vectors of sherd's wire formats, generated from fixed seeds.
//!
//! Shared by `examples/vectors.rs`, which writes them to disk, and
//! `tests/vectors.rs`, which checks the files on disk against the code and
//! against a fresh generation. Everything is deterministic: keys come from
//! `ChaCha20Rng::seed_from_u64`, timestamps are constants, and each file draws
//! its randomness from its own seeded RNG in a fixed order.
//!
//! Where it is cheap the generator computes the expected values by a route
//! independent of the code under test (headers and inner shards encoded by
//! hand from PROTOCOL.md's layouts, ids hashed with `sha2`, X25519 keys from
//! SHA-512 and `curve25519-dalek`, envelope slots opened with `crypto_box`,
//! health-check proofs as HMAC built by hand from SHA-256),
//! and every expected error is written down by intent, never by running the
//! validator: a vector that disagrees with the code fails the test.

use std::collections::BTreeMap;

use crypto_box::aead::Aead;
use crypto_secretbox::KeyInit;
use curve25519_dalek::MontgomeryPoint;
use curve25519_dalek::edwards::CompressedEdwardsY;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use sherd_protocol::backup::{self, BackupSpec};
use sherd_protocol::content::{About, Ack, Challenge, Contact, Content, Hex32, Release, V1};
use sherd_protocol::ids::{BackupId, EntryId};
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{Keypair, envelope, sealed};

/// The command that rewrites the vector files.
pub(crate) const REGENERATE: &str =
    "cargo run -p sherd-protocol --example vectors -- protocol/tests/vectors";

/// The validator's clock in every vector, ms since the Unix epoch.
pub(crate) const NOW_MS: u64 = 1_700_000_000_000;
/// PROTOCOL.md: how far ahead of the clock an entry's timestamp may be.
pub(crate) const SKEW_MS: u64 = 10 * 60 * 1000;
/// The entry signature domain.
pub(crate) const ENTRY_DOMAIN: &[u8] = b"sherd/entry/v1\0";
/// The shard signature domain.
pub(crate) const SHARD_DOMAIN: &[u8] = b"sherd/shard/v1\0";
/// The bytes a PeerId of an ed25519 key starts with.
pub(crate) const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
/// Bytes of an envelope before its body: version, nonce, ephemeral key, 8 slots.
pub(crate) const ENVELOPE_PREFIX_LEN: usize = 1 + 24 + 32 + 8 * 48;
/// The domain separation prefix of a health-check proof (21 bytes, no zero byte).
pub(crate) const PROOF_DOMAIN: &[u8] = b"sherd/health-proof/v1";

// ---------------------------------------------------------------------------
// The JSON shapes. Bytes are lowercase hex strings. Field order is the order
// of declaration (serde derive), whatever serde_json's features.
// ---------------------------------------------------------------------------

/// A participant: everything derived from its 32-byte ed25519 seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Party {
    pub(crate) name: String,
    pub(crate) seed: String,
    pub(crate) ed25519_public_key: String,
    pub(crate) feed_id: String,
    /// libsodium `crypto_sign_ed25519_sk_to_curve25519(seed || public key)`.
    pub(crate) x25519_secret: String,
    /// libsodium `crypto_sign_ed25519_pk_to_curve25519(public key)`.
    pub(crate) x25519_public: String,
}

/// `identity/keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeysVector {
    pub(crate) description: String,
    pub(crate) keys: Vec<IdentityKey>,
}

/// One key of `identity/keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityKey {
    pub(crate) name: String,
    pub(crate) seed: String,
    /// libsodium's 64-byte secret key: seed || public key.
    pub(crate) ed25519_secret_key: String,
    pub(crate) ed25519_public_key: String,
    /// The PeerId bytes: 00 24 08 01 12 20 || public key.
    pub(crate) peer_id: String,
    /// base58btc of the PeerId bytes.
    pub(crate) feed_id: String,
    pub(crate) x25519_secret: String,
    pub(crate) x25519_public: String,
}

/// `identity/fail_*.json`: a key or feed id that must be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityFail {
    pub(crate) description: String,
    /// The 32 key bytes, when the case is about a key.
    pub(crate) public_key: Option<String>,
    pub(crate) feed_id: String,
    pub(crate) expected_error: String,
}

/// One signed entry with its payload and decoded fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedEntry {
    pub(crate) seq: u64,
    pub(crate) backlink: Option<String>,
    pub(crate) timestamp_ms: u64,
    /// "public" (byte 0) or "boxed" (byte 1).
    pub(crate) payload_kind: String,
    pub(crate) payload_len: u32,
    pub(crate) payload_hash: String,
    pub(crate) payload: String,
    /// The 182 bytes: 118 header bytes then the 64-byte signature.
    pub(crate) signed_header: String,
    /// What the signature covers: "sherd/entry/v1\0" || header[0..118].
    pub(crate) signed_message: String,
    /// SHA-256 of the 182 bytes.
    pub(crate) id: String,
}

/// `entry/feed_3_entries.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedVector {
    pub(crate) description: String,
    pub(crate) author: Party,
    pub(crate) now_ms: u64,
    pub(crate) entries: Vec<FeedEntry>,
}

/// `entry/boxed_entry.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoxedEntryVector {
    pub(crate) description: String,
    pub(crate) author: Party,
    pub(crate) recipients: Vec<Party>,
    pub(crate) now_ms: u64,
    /// The content JSON inside the envelope.
    pub(crate) plaintext: String,
    /// The entry; its payload is the envelope.
    pub(crate) entry: FeedEntry,
}

/// `entry/ok_*.json` and `entry/fail_*.json`: one entry checked against a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryCase {
    pub(crate) description: String,
    /// The feed's author (not necessarily the entry's).
    pub(crate) author: Party,
    /// The feed's latest entry (182 bytes), or null for an empty feed.
    pub(crate) head: Option<String>,
    /// The signed header under test (182 bytes unless the case is about length).
    pub(crate) entry: String,
    /// The payload, or null when absent (erased or not fetched).
    pub(crate) payload: Option<String>,
    pub(crate) now_ms: u64,
    /// Whether the signature verifies (RFC 8032, strict) under the key in the
    /// entry's own author field over "sherd/entry/v1\0" || header[0..118];
    /// null when the entry is not 182 bytes.
    pub(crate) signature_valid: Option<bool>,
    /// null when the entry is accepted.
    pub(crate) expected_error: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) expected_error_fields: BTreeMap<String, u64>,
    /// For a fork: the two signed headers, the one with the smaller id first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fork_proof: Option<String>,
}

/// `envelope/*.json` (valid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvelopeVector {
    pub(crate) description: String,
    pub(crate) author: Party,
    /// Recipient i's slot is slot i.
    pub(crate) recipients: Vec<Party>,
    pub(crate) plaintext: String,
    pub(crate) envelope: String,
    /// Bytes 1..25.
    pub(crate) nonce: String,
    /// Bytes 25..57.
    pub(crate) ephemeral_public: String,
    /// What every recipient's slot opens to.
    pub(crate) body_key: String,
    /// SHA-256(author ed25519 key || envelope[0..441]): the body's first 32 bytes.
    pub(crate) binding: String,
}

/// `envelope/fail_*.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvelopeFail {
    pub(crate) description: String,
    /// The author the reader believes wrote the envelope (the feed it was found in).
    pub(crate) author: Party,
    pub(crate) reader: Party,
    pub(crate) envelope: String,
    /// "NotForMe" (no slot opens), "Malformed", "BadBody" or "NotBound".
    pub(crate) expected_error: String,
}

/// The fields of an inner shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShardFields {
    pub(crate) created_ms: u64,
    pub(crate) backup: String,
    pub(crate) owner: String,
    pub(crate) custodian: String,
    pub(crate) threshold: u8,
    pub(crate) share_id: u8,
    pub(crate) share: String,
    pub(crate) custodians: Vec<String>,
    pub(crate) trustees: Vec<String>,
    pub(crate) veto_delay_secs: u32,
    pub(crate) one_time: bool,
    /// "approve" (byte 0) or "auto" (byte 1).
    pub(crate) release: String,
    pub(crate) check_key: String,
    pub(crate) ciphertext: String,
}

/// `sealed/shard.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedShardVector {
    pub(crate) description: String,
    pub(crate) owner: Party,
    pub(crate) custodian: Party,
    /// crypto_box_seal(signed_shard) to the custodian's X25519 key.
    pub(crate) sealed: String,
    /// The sealed box's first 32 bytes.
    pub(crate) ephemeral_public: String,
    /// The inner shard then the owner's signature (its last 64 bytes).
    pub(crate) signed_shard: String,
    pub(crate) shard: ShardFields,
}

/// `sealed/fail_*.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedFail {
    pub(crate) description: String,
    pub(crate) owner: Party,
    /// Who opens the box, expecting a shard for itself.
    pub(crate) reader: Party,
    pub(crate) sealed: String,
    /// "CannotOpen", "BadSignature", "WrongCustodian" or "Malformed".
    pub(crate) expected_error: String,
    /// For "Malformed": the field named in the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expected_error_detail: Option<String>,
}

/// One custodian of a backup vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupCustodian {
    pub(crate) custodian: Party,
    pub(crate) share_id: u8,
    /// The `shard` content published boxed to the custodian, as JSON text.
    pub(crate) shard_content: String,
    /// Its `sealed` field: the signed inner shard sealed to the custodian.
    pub(crate) sealed_shard: String,
    /// What the custodian's sealed box opens to.
    pub(crate) signed_shard: String,
}

/// One sealed shard arriving at the recovering owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyStep {
    pub(crate) description: String,
    /// The feed id of the reply's author.
    pub(crate) sender: String,
    /// A signed inner shard sealed to the owner.
    pub(crate) sealed: String,
    /// "collecting H/T", "complete", or "rejected <Reason>".
    pub(crate) expected: String,
}

/// `backup/*.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupVector {
    pub(crate) description: String,
    pub(crate) owner: Party,
    pub(crate) created_ms: u64,
    pub(crate) secret: String,
    pub(crate) label: String,
    pub(crate) metadata: String,
    pub(crate) threshold: u8,
    pub(crate) backup_id: String,
    pub(crate) custodians: Vec<BackupCustodian>,
    /// The owner's `root` content, as JSON text.
    pub(crate) root_content: String,
    pub(crate) replies: Vec<ReplyStep>,
    /// null when the secret is recovered; "NotEnough" otherwise.
    pub(crate) expected_error: Option<String>,
}

/// One custodian's answer to one challenge in `health/proofs.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofCase {
    pub(crate) description: String,
    /// Its `ed25519_public_key` (32 bytes) is what the proof covers, not the feed id.
    pub(crate) custodian: Party,
    /// The custodian's check key: in its signed inner shard and in the owner's `root`.
    pub(crate) check_key: String,
    /// The payload of the owner's `shard` entry for the custodian, as stored: an
    /// envelope from the owner to the custodian alone holding the `shard` content.
    pub(crate) shard_payload: String,
    /// The `challenge` content the owner boxed to the custodian, as JSON text.
    pub(crate) challenge_content: String,
    /// The challenge's nonce.
    pub(crate) nonce: String,
    /// The proof's message up to the payload (117 bytes):
    /// "sherd/health-proof/v1" || backup || custodian key || nonce.
    pub(crate) message_prefix: String,
    /// HMAC-SHA-256(check_key, message_prefix || shard_payload).
    pub(crate) proof: String,
}

/// `health/proofs.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthVector {
    pub(crate) description: String,
    pub(crate) owner: Party,
    pub(crate) backup_id: String,
    /// The owner's `root` content, as JSON text: it holds every check key.
    pub(crate) root_content: String,
    pub(crate) cases: Vec<ProofCase>,
}

/// `health/fail_*.json`: a proof the owner must refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthFail {
    pub(crate) description: String,
    pub(crate) owner: Party,
    pub(crate) backup_id: String,
    /// The sender of the proof.
    pub(crate) custodian: Party,
    /// What the owner checks with: its check key for the sender, the nonce
    /// of its challenge, its `shard` entry payload for the sender.
    pub(crate) check_key: String,
    pub(crate) nonce: String,
    pub(crate) shard_payload: String,
    /// The proof received.
    pub(crate) proof: String,
    /// "BadProof": HMAC-SHA-256 over these inputs is not `proof`.
    pub(crate) expected_error: String,
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

pub(crate) fn hx(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-SHA-256 (RFC 2104) by hand from SHA-256, not with the code under test.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha256(&[&inner_pad, message]);
    sha256(&[&outer_pad, &inner])
}

/// The per-file RNG.
fn rng(stream: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(stream)
}

fn random<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// The cast: the same people in every file. Seed i is the first 32 bytes of
/// `ChaCha20Rng::seed_from_u64(i)`.
const CAST: [&str; 11] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
];

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const DAVE: usize = 3;
const ERIN: usize = 4;
const FRANK: usize = 5;
const JUDY: usize = 9;
const MALLORY: usize = 10;

fn seed_of(i: usize) -> [u8; 32] {
    random(&mut rng(i as u64))
}

fn keypair(i: usize) -> Keypair {
    Keypair::from_seed(&seed_of(i))
}

fn pk(i: usize) -> [u8; 32] {
    *keypair(i).feed_id().as_bytes()
}

/// X25519 secret as libsodium derives it: SHA-512(seed)[0..32], clamped.
fn x25519_secret_of_seed(seed: &[u8; 32]) -> [u8; 32] {
    let h = Sha512::digest(seed);
    let mut s = [0u8; 32];
    s.copy_from_slice(&h[..32]);
    s[0] &= 248;
    s[31] &= 127;
    s[31] |= 64;
    s
}

fn feed_id_string(pk: &[u8; 32]) -> String {
    bs58::encode([PEER_ID_PREFIX.as_slice(), pk].concat()).into_string()
}

fn party_from_seed(name: &str, seed: &[u8; 32]) -> Party {
    let pk = *Keypair::from_seed(seed).feed_id().as_bytes();
    let xs = x25519_secret_of_seed(seed);
    Party {
        name: name.to_owned(),
        seed: hx(seed),
        ed25519_public_key: hx(&pk),
        feed_id: feed_id_string(&pk),
        x25519_secret: hx(&xs),
        x25519_public: hx(&MontgomeryPoint::mul_base_clamped(xs).to_bytes()),
    }
}

fn party(i: usize) -> Party {
    party_from_seed(CAST[i], &seed_of(i))
}

fn json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("vectors serialize");
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// Entries, encoded by hand from the layout in PROTOCOL.md / entry.rs.
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct RawHeader {
    version: u8,
    author: [u8; 32],
    seq: u64,
    backlink: [u8; 32],
    timestamp_ms: u64,
    kind: u8,
    payload_len: u32,
    payload_hash: [u8; 32],
}

impl RawHeader {
    fn for_payload(
        author: usize,
        seq: u64,
        backlink: [u8; 32],
        ts: u64,
        kind: u8,
        payload: &[u8],
    ) -> Self {
        Self {
            version: 1,
            author: pk(author),
            seq,
            backlink,
            timestamp_ms: ts,
            kind,
            payload_len: u32::try_from(payload.len()).expect("small payload"),
            payload_hash: sha256(&[payload]),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(118);
        out.push(self.version);
        out.extend_from_slice(&self.author);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.backlink);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.extend_from_slice(&self.payload_hash);
        assert_eq!(out.len(), 118);
        out
    }

    /// The 182 signed bytes, signed by `signer`.
    fn sign(&self, signer: usize) -> Vec<u8> {
        let header = self.encode();
        let sig = keypair(signer).sign(&[ENTRY_DOMAIN, &header].concat());
        [header.as_slice(), &sig].concat()
    }
}

fn kind_name(kind: u8) -> &'static str {
    if kind == 0 { "public" } else { "boxed" }
}

fn feed_entry(h: &RawHeader, signed: &[u8], payload: &[u8]) -> FeedEntry {
    FeedEntry {
        seq: h.seq,
        backlink: (h.backlink != [0; 32]).then(|| hx(&h.backlink)),
        timestamp_ms: h.timestamp_ms,
        payload_kind: kind_name(h.kind).to_owned(),
        payload_len: h.payload_len,
        payload_hash: hx(&h.payload_hash),
        payload: hx(payload),
        signed_header: hx(signed),
        signed_message: hx(&[ENTRY_DOMAIN, &signed[..118]].concat()),
        id: hx(&sha256(&[signed])),
    }
}

/// One signed entry of a chain: header fields, signed bytes, payload.
struct Signed {
    header: RawHeader,
    bytes: Vec<u8>,
    payload: Vec<u8>,
}

impl Signed {
    fn id(&self) -> [u8; 32] {
        sha256(&[&self.bytes])
    }
}

fn sign_entry(author: usize, prev: Option<&Signed>, ts: u64, kind: u8, payload: Vec<u8>) -> Signed {
    let seq = prev.map_or(1, |p| p.header.seq + 1);
    let backlink = prev.map_or([0; 32], Signed::id);
    let header = RawHeader::for_payload(author, seq, backlink, ts, kind, &payload);
    let bytes = header.sign(author);
    Signed {
        header,
        bytes,
        payload,
    }
}

fn content_json(c: Content) -> Vec<u8> {
    c.to_json().expect("valid content")
}

/// Alice's first three entries: the chain every entry case builds on.
fn alice_chain() -> Vec<Signed> {
    let payloads = [
        content_json(Content::About(About {
            version: V1,
            name: "Alice".into(),
            description: None,
        })),
        content_json(Content::Contact(Contact {
            version: V1,
            contact: keypair(BOB).feed_id(),
            following: true,
        })),
        content_json(Content::About(About {
            version: V1,
            name: "Alice".into(),
            description: Some("keeps a few secrets for friends".into()),
        })),
    ];
    let mut chain: Vec<Signed> = Vec::new();
    for (i, payload) in payloads.into_iter().enumerate() {
        let e = sign_entry(ALICE, chain.last(), NOW_MS + 1000 * i as u64, 0, payload);
        chain.push(e);
    }
    chain
}

/// Alice's other entry 1: same seq, another payload.
fn alice_other_first() -> Signed {
    sign_entry(
        ALICE,
        None,
        NOW_MS + 500,
        0,
        br#"{"type":"about","version":1,"name":"Alice (forked)"}"#.to_vec(),
    )
}

/// L, the order of the ed25519 base point, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + L`, little-endian (fits in 256 bits since s < L < 2^253).
fn add_l(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    let mut carry = 0u16;
    for (a, b) in s.iter().zip(ED25519_L) {
        let t = u16::from(*a) + u16::from(b) + carry;
        out.push(t as u8);
        carry = t >> 8;
    }
    out
}

struct CaseSpec<'a> {
    description: &'a str,
    head: Option<&'a [u8]>,
    entry: Vec<u8>,
    payload: Option<&'a [u8]>,
    now_ms: u64,
    signature_valid: Option<bool>,
    error: Option<&'a str>,
    fields: &'a [(&'a str, u64)],
    fork_proof: Option<Vec<u8>>,
}

fn entry_case(c: CaseSpec<'_>) -> EntryCase {
    EntryCase {
        description: c.description.to_owned(),
        author: party(ALICE),
        head: c.head.map(hx),
        entry: hx(&c.entry),
        payload: c.payload.map(hx),
        now_ms: c.now_ms,
        signature_valid: c.signature_valid,
        expected_error: c.error.map(str::to_owned),
        expected_error_fields: c
            .fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        fork_proof: c.fork_proof.as_deref().map(hx),
    }
}

fn entry_vectors(out: &mut BTreeMap<String, String>) {
    let chain = alice_chain();
    let [e1, e2, e3] = [&chain[0], &chain[1], &chain[2]];

    out.insert(
        "entry/feed_3_entries.json".into(),
        json(&FeedVector {
            description: "A valid feed of three public entries by alice, appended in order to an empty feed. \
                Each signed_header is the 118-byte header then an ed25519 signature over signed_message; \
                the id is SHA-256 of the 182 bytes; entry n+1's backlink is entry n's id."
                .into(),
            author: party(ALICE),
            now_ms: NOW_MS + 3000,
            entries: chain.iter().map(|e| feed_entry(&e.header, &e.bytes, &e.payload)).collect(),
        }),
    );

    // A boxed entry: an `ack` content in an envelope to bob and carol.
    let mut r = rng(0xB0);
    let ack = content_json(Content::Ack(Ack {
        version: V1,
        backup: BackupId(random(&mut r)),
        shard: EntryId(random(&mut r)),
    }));
    let recipients = [keypair(BOB).feed_id(), keypair(CAROL).feed_id()];
    let env = envelope::seal(&mut r, &keypair(ALICE).feed_id(), &recipients, &ack).expect("seal");
    let boxed = sign_entry(ALICE, None, NOW_MS, 1, env);
    out.insert(
        "entry/boxed_entry.json".into(),
        json(&BoxedEntryVector {
            description: "Entry 1 of alice's feed with a boxed payload (kind 1): an envelope to bob and carol \
                whose plaintext is an `ack` content. Valid; each recipient opens it to plaintext."
                .into(),
            author: party(ALICE),
            recipients: vec![party(BOB), party(CAROL)],
            now_ms: NOW_MS,
            plaintext: hx(&ack),
            entry: feed_entry(&boxed.header, &boxed.bytes, &boxed.payload),
        }),
    );

    let base = |description: &'static str| CaseSpec {
        description,
        head: None,
        entry: e1.bytes.clone(),
        payload: Some(&e1.payload),
        now_ms: NOW_MS,
        signature_valid: Some(true),
        error: None,
        fields: &[],
        fork_proof: None,
    };
    let mut case = |name: &str, spec: CaseSpec<'_>| {
        out.insert(format!("entry/{name}.json"), json(&entry_case(spec)));
    };

    case(
        "ok_payload_absent",
        CaseSpec {
            head: Some(&e1.bytes),
            entry: e2.bytes.clone(),
            payload: None,
            ..base(
                "Entry 2 with its payload absent (erased or not fetched): accepted, the chain still verifies.",
            )
        },
    );
    let at_limit = sign_entry(ALICE, None, NOW_MS + SKEW_MS, 0, e1.payload.clone());
    case(
        "ok_at_clock_skew_limit",
        CaseSpec {
            entry: at_limit.bytes.clone(),
            payload: Some(&at_limit.payload),
            ..base("Entry 1 stamped exactly 10 minutes ahead of the validator's clock: accepted.")
        },
    );

    let mut bad_sig = e1.bytes.clone();
    bad_sig[150] ^= 0x01;
    case(
        "fail_bad_signature",
        CaseSpec {
            entry: bad_sig,
            signature_valid: Some(false),
            error: Some("BadSignature"),
            ..base("Entry 1 with one bit of the signature's S half flipped (byte 150).")
        },
    );
    let mut altered = e1.bytes.clone();
    altered[80] ^= 0x01;
    case(
        "fail_bad_signature_altered_header",
        CaseSpec {
            entry: altered,
            signature_valid: Some(false),
            error: Some("BadSignature"),
            ..base("Entry 1 with its timestamp changed by 1 ms after signing (byte 80).")
        },
    );
    case(
        "fail_bad_signature_other_key",
        CaseSpec {
            entry: e1.header.sign(MALLORY),
            signature_valid: Some(false),
            error: Some("BadSignature"),
            ..base("Entry 1 naming alice as author but signed by mallory.")
        },
    );
    let mut malleated = e1.bytes.clone();
    let s_plus_l = add_l(&malleated[150..182]);
    malleated[150..182].copy_from_slice(&s_plus_l);
    case(
        "fail_non_canonical_s",
        CaseSpec {
            entry: malleated,
            signature_valid: Some(false),
            error: Some("BadSignature"),
            ..base(
                "Entry 1 with S replaced by S + L (the group order): the same point equation holds, \
                 but strict verification (and libsodium) refuse a non-canonical S.",
            )
        },
    );
    case(
        "fail_wrong_seq",
        CaseSpec {
            head: Some(&e1.bytes),
            entry: e3.bytes.clone(),
            payload: Some(&e3.payload),
            error: Some("WrongSeq"),
            fields: &[("expected", 2), ("found", 3)],
            ..base("The head is entry 1; entry 3 arrives (entry 2 skipped).")
        },
    );
    case(
        "fail_wrong_seq_behind",
        CaseSpec {
            head: Some(&e2.bytes),
            entry: e1.bytes.clone(),
            error: Some("WrongSeq"),
            fields: &[("expected", 3), ("found", 1)],
            ..base(
                "The head is entry 2; entry 1 arrives again (older than the head, not at the head).",
            )
        },
    );
    let other1 = alice_other_first();
    let after_other = sign_entry(ALICE, Some(&other1), NOW_MS + 1000, 0, e2.payload.clone());
    case(
        "fail_wrong_backlink",
        CaseSpec {
            head: Some(&e1.bytes),
            entry: after_other.bytes.clone(),
            payload: Some(&after_other.payload),
            error: Some("WrongBacklink"),
            ..base(
                "The head is entry 1; an entry 2 arrives whose backlink is the id of another entry 1.",
            )
        },
    );
    let (first, second) = if e1.id() < other1.id() {
        (e1, &other1)
    } else {
        (&other1, e1)
    };
    case(
        "fail_fork",
        CaseSpec {
            head: Some(&e1.bytes),
            entry: other1.bytes.clone(),
            payload: Some(&other1.payload),
            error: Some("Fork"),
            fields: &[("seq", 1)],
            fork_proof: Some([first.bytes.as_slice(), &second.bytes].concat()),
            ..base(
                "The head is entry 1; another validly signed entry 1 arrives. The fork proof is both headers, smaller id first.",
            )
        },
    );
    case(
        "fail_already_have",
        CaseSpec {
            head: Some(&e1.bytes),
            error: Some("AlreadyHave"),
            ..base("The head is entry 1; entry 1 arrives again (a harmless duplicate, refused).")
        },
    );
    let mut other_payload = e1.payload.clone();
    other_payload[0] ^= 0x01;
    case(
        "fail_payload_hash",
        CaseSpec {
            payload: Some(&other_payload),
            error: Some("PayloadHash"),
            ..base("Entry 1 with a payload of the declared length but another SHA-256.")
        },
    );
    let longer = [e1.payload.as_slice(), b" "].concat();
    case(
        "fail_payload_length",
        CaseSpec {
            payload: Some(&longer),
            error: Some("PayloadLength"),
            fields: &[
                ("declared", e1.payload.len() as u64),
                ("actual", longer.len() as u64),
            ],
            ..base("Entry 1 with a payload one byte longer than declared.")
        },
    );
    let future = sign_entry(ALICE, None, NOW_MS + SKEW_MS + 1, 0, e1.payload.clone());
    case(
        "fail_from_the_future",
        CaseSpec {
            entry: future.bytes.clone(),
            payload: Some(&future.payload),
            error: Some("FromTheFuture"),
            fields: &[("timestamp_ms", NOW_MS + SKEW_MS + 1), ("now_ms", NOW_MS)],
            ..base("Entry 1 stamped 10 minutes and 1 ms ahead of the validator's clock.")
        },
    );
    let mallory1 = sign_entry(MALLORY, None, NOW_MS, 0, e1.payload.clone());
    case(
        "fail_wrong_author",
        CaseSpec {
            entry: mallory1.bytes.clone(),
            error: Some("WrongAuthor"),
            ..base("Mallory's validly signed entry 1 offered as alice's.")
        },
    );

    // Malformed headers, each validly signed by alice so that only the rule fails.
    let first_header = |f: &dyn Fn(&mut RawHeader)| {
        let mut h = e1.header.clone();
        f(&mut h);
        h.sign(ALICE)
    };
    case(
        "fail_unknown_version",
        CaseSpec {
            entry: first_header(&|h| h.version = 2),
            error: Some("UnknownVersion"),
            fields: &[("version", 2)],
            ..base("Entry 1 with format version 2 (validly signed).")
        },
    );
    case(
        "fail_unknown_payload_kind",
        CaseSpec {
            entry: first_header(&|h| h.kind = 2),
            error: Some("UnknownPayloadKind"),
            fields: &[("kind", 2)],
            ..base("Entry 1 with payload kind 2 (validly signed).")
        },
    );
    case(
        "fail_zero_seq",
        CaseSpec {
            entry: first_header(&|h| h.seq = 0),
            error: Some("ZeroSeq"),
            ..base("An entry with sequence number 0 and no backlink (validly signed).")
        },
    );
    case(
        "fail_backlink_on_first",
        CaseSpec {
            entry: first_header(&|h| h.backlink = other1.id()),
            error: Some("Backlink"),
            ..base("Entry 1 with a non-zero backlink (validly signed).")
        },
    );
    let mut no_backlink = e2.header.clone();
    no_backlink.backlink = [0; 32];
    case(
        "fail_missing_backlink",
        CaseSpec {
            head: Some(&e1.bytes),
            entry: no_backlink.sign(ALICE),
            payload: Some(&e2.payload),
            error: Some("Backlink"),
            ..base("Entry 2 with an all-zero backlink (validly signed).")
        },
    );
    case(
        "fail_oversize",
        CaseSpec {
            entry: first_header(&|h| {
                h.payload_len = 65537;
                h.payload_hash = sha256(&[&[0u8; 65537][..]]);
            }),
            payload: None,
            error: Some("Oversize"),
            fields: &[("payload_len", 65537)],
            ..base(
                "Entry 1 declaring a payload of 65537 bytes (64 KiB + 1), validly signed; the payload is not sent.",
            )
        },
    );
    case(
        "fail_truncated",
        CaseSpec {
            entry: e1.bytes[..181].to_vec(),
            signature_valid: None,
            error: Some("Length"),
            fields: &[("len", 181)],
            ..base("Entry 1's signed header cut to 181 bytes.")
        },
    );
}

// ---------------------------------------------------------------------------
// Envelopes.
// ---------------------------------------------------------------------------

/// The body key and the binding of `env`, found by opening slot `slot` with
/// `crypto_box` and `crypto_secretbox` directly.
fn envelope_internals(
    author: usize,
    reader: usize,
    slot: usize,
    env: &[u8],
    plaintext: &[u8],
) -> ([u8; 32], [u8; 32]) {
    let nonce = crypto_box::Nonce::from_slice(&env[1..25]);
    let epk: [u8; 32] = env[25..57].try_into().expect("32 bytes");
    let sk = crypto_box::SecretKey::from_bytes(x25519_secret_of_seed(&seed_of(reader)));
    let b = crypto_box::SalsaBox::new(&crypto_box::PublicKey::from_bytes(epk), &sk);
    let slot_bytes = &env[57 + 48 * slot..57 + 48 * (slot + 1)];
    let body_key: [u8; 32] = b
        .decrypt(nonce, slot_bytes)
        .expect("slot opens")
        .try_into()
        .expect("32-byte key");
    let body = crypto_secretbox::XSalsa20Poly1305::new(&body_key.into())
        .decrypt(nonce, &env[ENVELOPE_PREFIX_LEN..])
        .expect("body opens");
    let binding = sha256(&[&pk(author), &env[..ENVELOPE_PREFIX_LEN]]);
    assert_eq!(
        body,
        [binding.as_slice(), plaintext].concat(),
        "generator: envelope body"
    );
    (body_key, binding)
}

fn envelope_vector(
    description: &str,
    stream: u64,
    recipients: &[usize],
    plaintext: &[u8],
) -> (EnvelopeVector, Vec<u8>) {
    let mut r = rng(stream);
    let ids: Vec<_> = recipients.iter().map(|&i| keypair(i).feed_id()).collect();
    let env = envelope::seal(&mut r, &keypair(ALICE).feed_id(), &ids, plaintext).expect("seal");
    let (body_key, binding) = envelope_internals(ALICE, recipients[0], 0, &env, plaintext);
    for (slot, &i) in recipients.iter().enumerate() {
        assert_eq!(
            envelope_internals(ALICE, i, slot, &env, plaintext).0,
            body_key
        );
    }
    let v = EnvelopeVector {
        description: description.to_owned(),
        author: party(ALICE),
        recipients: recipients.iter().map(|&i| party(i)).collect(),
        plaintext: hx(plaintext),
        envelope: hx(&env),
        nonce: hx(&env[1..25]),
        ephemeral_public: hx(&env[25..57]),
        body_key: hx(&body_key),
        binding: hx(&binding),
    };
    (v, env)
}

fn envelope_vectors(out: &mut BTreeMap<String, String>) {
    let (one, env) = envelope_vector(
        "Alice's envelope to bob alone: slot 0 is bob's, slots 1 to 7 are random filler.",
        0xE1,
        &[BOB],
        b"{\"type\":\"revoke\",\"version\":1,\"backup\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
    );
    out.insert("envelope/one_recipient.json".into(), json(&one));
    let (eight, _) = envelope_vector(
        "Alice's envelope to eight recipients, bob to ivan, in slot order.",
        0xE8,
        &[1, 2, 3, 4, 5, 6, 7, 8],
        "eight readers, one key: the body is encrypted once".as_bytes(),
    );
    out.insert("envelope/eight_recipients.json".into(), json(&eight));

    let mut fail =
        |name: &str, description: &str, author: usize, reader: usize, env: Vec<u8>, error: &str| {
            out.insert(
                format!("envelope/fail_{name}.json"),
                json(&EnvelopeFail {
                    description: description.to_owned(),
                    author: party(author),
                    reader: party(reader),
                    envelope: hx(&env),
                    expected_error: error.to_owned(),
                }),
            );
        };
    let flipped = |i: usize| {
        let mut e = env.clone();
        e[i] ^= 0x01;
        e
    };
    fail(
        "not_for_me",
        "The envelope of one_recipient.json, read by mallory: no slot opens.",
        ALICE,
        MALLORY,
        env.clone(),
        "NotForMe",
    );
    fail(
        "not_even_the_author",
        "The envelope of one_recipient.json, read by its author alice: she is not a recipient, no slot opens.",
        ALICE,
        ALICE,
        env.clone(),
        "NotForMe",
    );
    fail(
        "tampered",
        "The envelope of one_recipient.json with one bit flipped in filler slot 3 (byte 201): bob's slot and the body \
         still open, but the binding no longer matches.",
        ALICE,
        BOB,
        flipped(57 + 3 * 48),
        "NotBound",
    );
    fail(
        "tampered_body",
        "The envelope of one_recipient.json with the last byte of the body flipped: bob's slot opens, the body does not.",
        ALICE,
        BOB,
        flipped(env.len() - 1),
        "BadBody",
    );
    fail(
        "tampered_nonce",
        "The envelope of one_recipient.json with one bit of the nonce flipped: no slot opens.",
        ALICE,
        BOB,
        flipped(1),
        "NotForMe",
    );
    fail(
        "copied_to_another_author",
        "The envelope of one_recipient.json (written by alice) copied into mallory's feed: bob opens it but the \
         binding names alice's key, not mallory's.",
        MALLORY,
        BOB,
        env.clone(),
        "NotBound",
    );
    let mut v2 = env.clone();
    v2[0] = 2;
    fail(
        "unknown_version",
        "The envelope of one_recipient.json with version byte 2.",
        ALICE,
        BOB,
        v2,
        "Malformed",
    );
    fail(
        "truncated",
        "An envelope one byte shorter than the smallest possible (489 bytes: prefix, binding, tag).",
        ALICE,
        BOB,
        env[..ENVELOPE_PREFIX_LEN + 32 + 16 - 1].to_vec(),
        "Malformed",
    );
}

// ---------------------------------------------------------------------------
// Sealed shards, encoded by hand from the layout in shard.rs.
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct RawShard {
    created_ms: u64,
    backup: [u8; 32],
    owner: [u8; 32],
    custodian: [u8; 32],
    threshold: u8,
    share_id: u8,
    share: [u8; 32],
    custodians: Vec<[u8; 32]>,
    trustees: Vec<[u8; 32]>,
    veto_delay_secs: u32,
    one_time: u8,
    release: u8,
    check_key: [u8; 32],
    ciphertext: Vec<u8>,
}

impl RawShard {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.backup);
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.custodian);
        out.push(self.threshold);
        out.push(self.share_id);
        out.extend_from_slice(&self.share);
        out.push(u8::try_from(self.custodians.len()).expect("few"));
        self.custodians
            .iter()
            .for_each(|c| out.extend_from_slice(c));
        out.push(u8::try_from(self.trustees.len()).expect("few"));
        self.trustees.iter().for_each(|t| out.extend_from_slice(t));
        out.extend_from_slice(&self.veto_delay_secs.to_be_bytes());
        out.push(self.one_time);
        out.push(self.release);
        out.extend_from_slice(&self.check_key);
        out.extend_from_slice(
            &u32::try_from(self.ciphertext.len())
                .expect("small")
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.ciphertext);
        out
    }

    fn sign(&self, signer: usize) -> Vec<u8> {
        sign_shard_body(self.encode(), signer)
    }

    fn fields(&self) -> ShardFields {
        ShardFields {
            created_ms: self.created_ms,
            backup: hx(&self.backup),
            owner: hx(&self.owner),
            custodian: hx(&self.custodian),
            threshold: self.threshold,
            share_id: self.share_id,
            share: hx(&self.share),
            custodians: self.custodians.iter().map(|c| hx(c)).collect(),
            trustees: self.trustees.iter().map(|t| hx(t)).collect(),
            veto_delay_secs: self.veto_delay_secs,
            one_time: self.one_time == 1,
            release: if self.release == 0 { "approve" } else { "auto" }.to_owned(),
            check_key: hx(&self.check_key),
            ciphertext: hx(&self.ciphertext),
        }
    }
}

fn sign_shard_body(body: Vec<u8>, signer: usize) -> Vec<u8> {
    let sig = keypair(signer).sign(&[SHARD_DOMAIN, &body].concat());
    [body.as_slice(), &sig].concat()
}

fn seal_to(r: &mut ChaCha20Rng, to: usize, plaintext: &[u8]) -> Vec<u8> {
    sealed::seal(r, &keypair(to).feed_id().x25519(), plaintext)
}

fn sealed_vectors(out: &mut BTreeMap<String, String>) {
    let mut r = rng(0x5EA1);
    let shard = RawShard {
        created_ms: NOW_MS,
        backup: random(&mut r),
        owner: pk(ALICE),
        custodian: pk(CAROL),
        threshold: 2,
        share_id: 0x9c,
        share: random(&mut r),
        custodians: vec![pk(BOB), pk(CAROL), pk(DAVE)],
        trustees: vec![pk(JUDY)],
        veto_delay_secs: 72 * 3600,
        one_time: 1,
        release: 1,
        check_key: random(&mut r),
        ciphertext: {
            let mut ct = vec![0u8; 24 + 16 + 256];
            r.fill_bytes(&mut ct);
            ct
        },
    };
    let signed = shard.sign(ALICE);
    let sealed_box = seal_to(&mut r, CAROL, &signed);
    out.insert(
        "sealed/shard.json".into(),
        json(&SealedShardVector {
            description: "An inner shard of alice's (2 of bob, carol, dave; trustee judy; one-time, auto release) \
                for carol, signed by alice over \"sherd/shard/v1\\0\" || body, sealed to carol with crypto_box_seal. \
                The ciphertext is random bytes of a valid length."
                .into(),
            owner: party(ALICE),
            custodian: party(CAROL),
            sealed: hx(&sealed_box),
            ephemeral_public: hx(&sealed_box[..32]),
            signed_shard: hx(&signed),
            shard: shard.fields(),
        }),
    );

    let mut fail = |name: &str,
                    description: &str,
                    reader: usize,
                    sealed: Vec<u8>,
                    error: &str,
                    detail: Option<&str>| {
        out.insert(
            format!("sealed/fail_{name}.json"),
            json(&SealedFail {
                description: description.to_owned(),
                owner: party(ALICE),
                reader: party(reader),
                sealed: hx(&sealed),
                expected_error: error.to_owned(),
                expected_error_detail: detail.map(str::to_owned),
            }),
        );
    };
    let mut tampered = sealed_box.clone();
    tampered[100] ^= 0x01;
    fail(
        "tampered",
        "The sealed box of shard.json with one bit flipped (byte 100).",
        CAROL,
        tampered,
        "CannotOpen",
        None,
    );
    fail(
        "not_for_me",
        "The sealed box of shard.json (sealed to carol) opened by dave.",
        DAVE,
        sealed_box.clone(),
        "CannotOpen",
        None,
    );
    fail(
        "wrong_custodian",
        "Carol's signed shard of shard.json sealed to dave instead: it opens and the signature holds, but it is not dave's.",
        DAVE,
        seal_to(&mut r, DAVE, &signed),
        "WrongCustodian",
        None,
    );
    let mut altered = signed.clone();
    altered[107] ^= 0x01;
    fail(
        "bad_owner_signature",
        "Carol's signed shard with one bit of the share flipped (byte 107) after signing, resealed to carol.",
        CAROL,
        seal_to(&mut r, CAROL, &altered),
        "BadSignature",
        None,
    );
    let signed_by_mallory = shard.sign(MALLORY);
    fail(
        "signed_by_another",
        "Carol's shard naming alice as owner but signed by mallory, sealed to carol.",
        CAROL,
        seal_to(&mut r, CAROL, &signed_by_mallory),
        "BadSignature",
        None,
    );
    let bad_release = RawShard {
        release: 2,
        ..shard.clone()
    };
    fail(
        "malformed_release",
        "Carol's shard with release byte 2, validly signed by alice.",
        CAROL,
        seal_to(&mut r, CAROL, &bad_release.sign(ALICE)),
        "Malformed",
        Some("release"),
    );
    let owner_custodian = RawShard {
        custodians: vec![pk(ALICE), pk(CAROL), pk(DAVE)],
        ..shard.clone()
    };
    fail(
        "owner_is_custodian",
        "Carol's shard listing the owner alice among the custodians, validly signed by alice.",
        CAROL,
        seal_to(&mut r, CAROL, &owner_custodian.sign(ALICE)),
        "Malformed",
        Some("custodians: the owner cannot be a custodian"),
    );
    let zero_id = RawShard {
        share_id: 0,
        ..shard.clone()
    };
    fail(
        "zero_share_id",
        "Carol's shard with share id 0 (the secret itself would be f(0)), validly signed by alice.",
        CAROL,
        seal_to(&mut r, CAROL, &zero_id.sign(ALICE)),
        "Malformed",
        Some("share_id: must not be 0"),
    );
    let mut trailing = shard.encode();
    trailing.push(0);
    fail(
        "trailing_bytes",
        "Carol's shard with one extra byte after the ciphertext, validly signed by alice.",
        CAROL,
        seal_to(&mut r, CAROL, &sign_shard_body(trailing, ALICE)),
        "Malformed",
        Some("trailing bytes"),
    );
}

// ---------------------------------------------------------------------------
// Backup and recovery.
// ---------------------------------------------------------------------------

const BACKUP_CUSTODIANS: [usize; 5] = [BOB, CAROL, DAVE, ERIN, FRANK];

struct MadeBackup {
    id: BackupId,
    custodians: Vec<BackupCustodian>,
    /// Each custodian's signed inner shard.
    signed: Vec<Vec<u8>>,
    root_content: String,
}

fn material() -> SecretMaterial {
    SecretMaterial {
        secret: Zeroizing::new(b"correct horse battery staple".to_vec()),
        label: "wallet seed".into(),
        metadata: Zeroizing::new(br#"{"app":"sherd-vectors"}"#.to_vec()),
    }
}

fn make_backup(r: &mut ChaCha20Rng) -> MadeBackup {
    let spec = BackupSpec {
        material: material(),
        threshold: 3,
        custodians: BACKUP_CUSTODIANS
            .iter()
            .map(|&i| keypair(i).feed_id())
            .collect(),
        trustees: vec![],
        veto_delay_secs: 72 * 3600,
        one_time: false,
        release: Release::Approve,
    };
    let b = backup::create(r, &keypair(ALICE), NOW_MS, &spec).expect("backup");
    let mut custodians = Vec::new();
    let mut signed = Vec::new();
    for (&i, (feed, shard)) in BACKUP_CUSTODIANS.iter().zip(&b.shards) {
        assert_eq!(*feed, keypair(i).feed_id(), "generator: shard order");
        // Opened with crypto_box directly, not with the code under test.
        let inner = crypto_box::SecretKey::from_bytes(x25519_secret_of_seed(&seed_of(i)))
            .unseal(&shard.sealed.0)
            .expect("generator: shard opens");
        custodians.push(BackupCustodian {
            custodian: party(i),
            share_id: inner[106],
            shard_content: String::from_utf8(content_json(Content::Shard(shard.clone())))
                .expect("utf-8"),
            sealed_shard: hx(&shard.sealed.0),
            signed_shard: hx(&inner),
        });
        signed.push(inner);
    }
    MadeBackup {
        id: b.id,
        custodians,
        signed,
        root_content: String::from_utf8(content_json(Content::Root(b.root))).expect("utf-8"),
    }
}

fn backup_vector(
    description: &str,
    b: &MadeBackup,
    replies: Vec<ReplyStep>,
    error: Option<&str>,
) -> String {
    let m = material();
    json(&BackupVector {
        description: description.to_owned(),
        owner: party(ALICE),
        created_ms: NOW_MS,
        secret: hx(&m.secret),
        label: m.label.clone(),
        metadata: hx(&m.metadata),
        threshold: 3,
        backup_id: hx(b.id.as_bytes()),
        custodians: b.custodians.clone(),
        root_content: b.root_content.clone(),
        replies,
        expected_error: error.map(str::to_owned),
    })
}

/// Custodian `shard_of` (an index into BACKUP_CUSTODIANS) reseals its shard
/// to alice; `sender` authors the reply.
fn reply(
    r: &mut ChaCha20Rng,
    b: &MadeBackup,
    shard_of: usize,
    sender: usize,
    expected: &str,
    description: &str,
) -> ReplyStep {
    ReplyStep {
        description: description.to_owned(),
        sender: party(sender).feed_id,
        sealed: hx(&seal_to(r, ALICE, &b.signed[shard_of])),
        expected: expected.to_owned(),
    }
}

fn backup_vectors(out: &mut BTreeMap<String, String>) {
    // Every file makes the same backup from the same seed, then its replies.
    let mut r = rng(0xBAC);
    let b = make_backup(&mut r);
    let replies = vec![
        reply(
            &mut r,
            &b,
            4,
            5,
            "collecting 1/3",
            "frank reseals his shard to alice",
        ),
        reply(
            &mut r,
            &b,
            0,
            1,
            "collecting 2/3",
            "bob reseals his shard to alice",
        ),
        reply(
            &mut r,
            &b,
            2,
            3,
            "complete",
            "dave reseals his shard to alice",
        ),
    ];
    out.insert(
        "backup/recover_3_of_5.json".into(),
        backup_vector(
            "Alice backs up a secret with threshold 3 among bob, carol, dave, erin and frank (backup::create). \
             Frank, bob and dave open their shards and reseal them to alice; the three recover the secret, label \
             and metadata.",
            &b,
            replies,
            None,
        ),
    );

    let mut r = rng(0xBAC);
    let b = make_backup(&mut r);
    let replies = vec![
        reply(
            &mut r,
            &b,
            1,
            2,
            "collecting 1/3",
            "carol reseals her shard to alice",
        ),
        reply(
            &mut r,
            &b,
            3,
            4,
            "collecting 2/3",
            "erin reseals her shard to alice",
        ),
    ];
    out.insert(
        "backup/fail_two_of_three.json".into(),
        backup_vector("The backup of recover_3_of_5.json; only carol and erin reply: two shards of the three needed.", &b, replies, Some("NotEnough")),
    );

    let mut r = rng(0xBAC);
    let b = make_backup(&mut r);
    let mut other = rng(0xBAD);
    let foreign = make_backup(&mut other);
    let replies = vec![
        reply(
            &mut r,
            &b,
            0,
            1,
            "collecting 1/3",
            "bob reseals his shard to alice",
        ),
        reply(
            &mut r,
            &b,
            0,
            2,
            "rejected NotFromCustodian",
            "carol passes on bob's shard as her own",
        ),
        reply(
            &mut r,
            &b,
            0,
            1,
            "rejected Duplicate",
            "bob sends his shard again",
        ),
        ReplyStep {
            description: "dave reseals his shard to carol instead of alice".into(),
            sender: party(DAVE).feed_id,
            sealed: hx(&seal_to(&mut r, CAROL, &b.signed[2])),
            expected: "rejected CannotOpen".into(),
        },
        reply(
            &mut r,
            &foreign,
            3,
            4,
            "rejected ForeignBackup",
            "erin sends her shard of another backup of alice's",
        ),
        ReplyStep {
            description: "frank's shard with a share byte flipped, resealed to alice".into(),
            sender: party(FRANK).feed_id,
            sealed: {
                let mut s = b.signed[4].clone();
                s[107] ^= 0x01;
                hx(&seal_to(&mut r, ALICE, &s))
            },
            expected: "rejected BadSignature".into(),
        },
        reply(
            &mut r,
            &b,
            2,
            3,
            "collecting 2/3",
            "dave reseals his shard to alice",
        ),
    ];
    out.insert(
        "backup/fail_rejected_replies.json".into(),
        backup_vector(
            "The backup of recover_3_of_5.json; of seven replies five are refused, each with its reason, and the \
             two valid ones are not enough.",
            &b,
            replies,
            Some("NotEnough"),
        ),
    );
}

// ---------------------------------------------------------------------------
// Health checks.
// ---------------------------------------------------------------------------

/// The check key of a signed inner shard, found from the layout in
/// PROTOCOL.md 8.3 (not by decoding with the code under test).
fn check_key_of(signed: &[u8]) -> [u8; 32] {
    // version, created_ms, backup, owner, custodian, threshold, share_id, share
    let mut pos = 1 + 8 + 32 + 32 + 32 + 1 + 1 + 32;
    pos += 1 + 32 * usize::from(signed[pos]); // custodians
    pos += 1 + 32 * usize::from(signed[pos]); // trustees
    pos += 4 + 1 + 1; // veto_delay_secs, one_time, release
    signed[pos..pos + 32].try_into().expect("32 bytes")
}

/// The message a proof is the HMAC of, up to the shard payload.
fn proof_prefix(backup: &BackupId, custodian: usize, nonce: &[u8; 32]) -> Vec<u8> {
    [PROOF_DOMAIN, backup.as_bytes(), &pk(custodian), nonce].concat()
}

/// What a custodian of the health vectors needs to answer.
struct Held {
    custodian: usize,
    check_key: [u8; 32],
    payload: Vec<u8>,
}

impl Held {
    fn proof(&self, backup: &BackupId, nonce: &[u8; 32]) -> [u8; 32] {
        let message = [
            proof_prefix(backup, self.custodian, nonce),
            self.payload.clone(),
        ]
        .concat();
        hmac_sha256(&self.check_key, &message)
    }
}

fn health_vectors(out: &mut BTreeMap<String, String>) {
    // The backup of backup/recover_3_of_5.json.
    let b = make_backup(&mut rng(0xBAC));
    let root: serde_json::Value = serde_json::from_str(&b.root_content).expect("root JSON");
    let mut r = rng(0x4EA1);
    let held: Vec<Held> = BACKUP_CUSTODIANS
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let shard_content = b.custodians[k].shard_content.as_bytes();
            let payload = envelope::seal(
                &mut r,
                &keypair(ALICE).feed_id(),
                &[keypair(i).feed_id()],
                shard_content,
            )
            .expect("seal");
            // The custodian opens it (crypto_box directly) to the shard content.
            envelope_internals(ALICE, i, 0, &payload, shard_content);
            let check_key = check_key_of(&b.signed[k]);
            assert_eq!(
                root["custodians"][k]["check_key"].as_str(),
                Some(hx(&check_key).as_str()),
                "generator: the root and the shard hold the same check key"
            );
            Held {
                custodian: i,
                check_key,
                payload,
            }
        })
        .collect();
    let round_1: [u8; 32] = random(&mut r);
    let round_2: [u8; 32] = random(&mut r);
    let challenge = |nonce: &[u8; 32]| {
        String::from_utf8(content_json(Content::Challenge(Challenge {
            version: V1,
            backup: b.id,
            nonce: Hex32(*nonce),
        })))
        .expect("utf-8")
    };
    let case = |h: &Held, nonce: &[u8; 32], description: String| ProofCase {
        description,
        custodian: party(h.custodian),
        check_key: hx(&h.check_key),
        shard_payload: hx(&h.payload),
        challenge_content: challenge(nonce),
        nonce: hx(nonce),
        message_prefix: hx(&proof_prefix(&b.id, h.custodian, nonce)),
        proof: hx(&h.proof(&b.id, nonce)),
    };
    let mut cases: Vec<ProofCase> = held
        .iter()
        .map(|h| {
            case(
                h,
                &round_1,
                format!(
                    "{} answers round 1 (one challenge entry boxed to all five custodians, so one nonce)",
                    CAST[h.custodian]
                ),
            )
        })
        .collect();
    cases.push(case(
        &held[0],
        &round_2,
        "bob answers round 2: the same shard payload, a fresh nonce, another proof".into(),
    ));
    out.insert(
        "health/proofs.json".into(),
        json(&HealthVector {
            description: "Health checks on the backup of backup/recover_3_of_5.json (alice's; bob, carol, dave, erin \
                and frank hold shards). Each shard_payload is the payload of alice's `shard` entry for that custodian \
                as stored: an envelope from alice to the custodian alone holding the `shard` content of \
                recover_3_of_5.json. check_key is the one in the custodian's signed inner shard and in alice's root. \
                proof = HMAC-SHA-256(check_key, \"sherd/health-proof/v1\" || backup (32) || the custodian's ed25519 \
                public key (32) || nonce (32) || shard_payload); message_prefix is that message up to the payload."
                .into(),
            owner: party(ALICE),
            backup_id: hx(b.id.as_bytes()),
            root_content: b.root_content.clone(),
            cases,
        }),
    );

    let mut fail = |name: &str,
                    description: &str,
                    h: &Held,
                    nonce: &[u8; 32],
                    payload: &[u8],
                    proof: [u8; 32]| {
        out.insert(
            format!("health/fail_{name}.json"),
            json(&HealthFail {
                description: description.to_owned(),
                owner: party(ALICE),
                backup_id: hx(b.id.as_bytes()),
                custodian: party(h.custodian),
                check_key: hx(&h.check_key),
                nonce: hx(nonce),
                shard_payload: hx(payload),
                proof: hx(&proof),
                expected_error: "BadProof".into(),
            }),
        );
    };
    let bob = &held[0];
    let good = bob.proof(&b.id, &round_1);
    let mut flipped = bob.payload.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    fail(
        "tampered_payload",
        "Bob's round-1 proof of proofs.json, checked against his shard payload with one bit of the last byte \
         flipped: the proof covers every byte of the payload.",
        bob,
        &round_1,
        &flipped,
        good,
    );
    fail(
        "truncated_payload",
        "Bob's round-1 proof of proofs.json, checked against his shard payload without its last byte.",
        bob,
        &round_1,
        &bob.payload[..last],
        good,
    );
    fail(
        "replayed_proof",
        "Bob answers round 2 with his round-1 proof: a proof answers one nonce only.",
        bob,
        &round_2,
        &bob.payload,
        good,
    );
    fail(
        "another_custodians_proof",
        "Carol answers round 1 with bob's round-1 proof: the owner checks it with carol's check key, key and \
         shard payload.",
        &held[1],
        &round_1,
        &held[1].payload,
        good,
    );
    let peer_id = [PEER_ID_PREFIX.as_slice(), &pk(BOB)].concat();
    let with_peer_id = [
        PROOF_DOMAIN,
        b.id.as_bytes(),
        &peer_id,
        &round_1,
        &bob.payload,
    ]
    .concat();
    fail(
        "peer_id_instead_of_key",
        "Bob's round-1 proof computed over his 38-byte PeerId (00 24 08 01 12 20 || key) instead of his \
         32-byte ed25519 public key.",
        bob,
        &round_1,
        &bob.payload,
        hmac_sha256(&bob.check_key, &with_peer_id),
    );
    let nonce_last = [
        PROOF_DOMAIN,
        b.id.as_bytes(),
        &pk(BOB),
        &bob.payload,
        &round_1,
    ]
    .concat();
    fail(
        "nonce_after_payload",
        "Bob's round-1 proof computed with the nonce after the shard payload instead of before it.",
        bob,
        &round_1,
        &bob.payload,
        hmac_sha256(&bob.check_key, &nonce_last),
    );
}

// ---------------------------------------------------------------------------
// Identity.
// ---------------------------------------------------------------------------

/// RFC 8032 section 7.1, tests 1 and 2.
pub(crate) const RFC8032: [(&str, &str, &str); 2] = [
    (
        "rfc8032-test-1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    ),
    (
        "rfc8032-test-2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    ),
];

fn identity_key(name: &str, seed: &[u8; 32]) -> IdentityKey {
    let p = party_from_seed(name, seed);
    let pk = Keypair::from_seed(seed).feed_id().as_bytes().to_vec();
    IdentityKey {
        name: p.name,
        seed: p.seed,
        ed25519_secret_key: hx(&[seed.as_slice(), &pk].concat()),
        ed25519_public_key: p.ed25519_public_key,
        peer_id: hx(&[PEER_ID_PREFIX.as_slice(), &pk].concat()),
        feed_id: p.feed_id,
        x25519_secret: p.x25519_secret,
        x25519_public: p.x25519_public,
    }
}

fn identity_vectors(out: &mut BTreeMap<String, String>) {
    let mut keys: Vec<IdentityKey> = RFC8032
        .iter()
        .map(|(name, seed, _)| {
            let seed: [u8; 32] = hex::decode(seed)
                .expect("hex")
                .try_into()
                .expect("32 bytes");
            identity_key(name, &seed)
        })
        .collect();
    keys.extend(
        CAST.iter()
            .enumerate()
            .map(|(i, name)| identity_key(name, &seed_of(i))),
    );
    out.insert(
        "identity/keys.json".into(),
        json(&KeysVector {
            description: "ed25519 seeds and what derives from them: the public key, the libp2p PeerId and its \
                base58 feed id, and the X25519 key pair as libsodium's crypto_sign_ed25519_{sk,pk}_to_curve25519 \
                compute it. The first two seeds are RFC 8032's tests 1 and 2; the others are the cast used by \
                every other vector (seed i = the first 32 bytes of ChaCha20Rng::seed_from_u64(i))."
                .into(),
            keys,
        }),
    );

    let mut fail =
        |name: &str, description: &str, key: Option<[u8; 32]>, feed_id: String, error: &str| {
            out.insert(
                format!("identity/fail_{name}.json"),
                json(&IdentityFail {
                    description: description.to_owned(),
                    public_key: key.map(|k| hx(&k)),
                    feed_id,
                    expected_error: error.to_owned(),
                }),
            );
        };
    let mut identity = [0u8; 32];
    identity[0] = 1;
    fail(
        "small_order_key",
        "The identity point (small order) as a key.",
        Some(identity),
        feed_id_string(&identity),
        "WeakKey",
    );
    let alice = CompressedEdwardsY(pk(ALICE))
        .decompress()
        .expect("alice's key is a point");
    let mixed = (alice + curve25519_dalek::constants::EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    fail(
        "mixed_order_key",
        "Alice's key plus a point of order 8: on the curve, not in the prime-order subgroup.",
        Some(mixed),
        feed_id_string(&mixed),
        "WeakKey",
    );
    let not_a_point = (2u8..)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| CompressedEdwardsY(*b).decompress().is_none())
        .expect("some small y is not on the curve");
    fail(
        "not_a_point",
        "The smallest y (as a little-endian 32-byte string) with no x on the curve.",
        Some(not_a_point),
        feed_id_string(&not_a_point),
        "InvalidPoint",
    );
    fail(
        "not_ed25519",
        "A PeerId of an RSA key (a SHA-256 multihash, Qm...): not an ed25519 feed id.",
        None,
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".into(),
        "NotAFeedId",
    );
    let mut truncated = party(ALICE).feed_id;
    truncated.pop();
    fail(
        "truncated",
        "Alice's feed id without its last character.",
        None,
        truncated,
        "NotAFeedId",
    );
}

// ---------------------------------------------------------------------------

const README: &str = "\
# sherd test vectors

Generated by `protocol/tests/vectors_gen/mod.rs`; do not edit by hand. Regenerate with

    cargo run -p sherd-protocol --example vectors -- protocol/tests/vectors

`cargo test -p sherd-protocol --test vectors` checks every file against the code and
fails when the files differ from a fresh generation. `interop/check_vectors.py`
checks them against libsodium.

- One case per JSON file; bytes are lowercase hex. Each file has a `description`.
- Files named `fail_*` must be refused, with exactly `expected_error`.
- Parties (`name`, `seed`, ...) are the same in every file: seed i is the first 32
  bytes of `ChaCha20Rng::seed_from_u64(i)`; `identity/keys.json` lists them.
- Times are ms since the Unix epoch; the validator's clock is `now_ms`.

Directories: `identity/` keys and feed ids; `entry/` signed headers and the
validation rules (`signature_valid` says whether the signature verifies under the
key in the entry's own author field); `envelope/` the multi-recipient box;
`sealed/` signed inner shards in sealed boxes; `backup/` a backup and its recovery
from resealed shards (`expected` after each reply); `health/` health-check proofs,
HMAC-SHA-256 under a custodian's check key over the backup, the custodian's 32-byte
key, the challenge's nonce and the owner's `shard` entry payload (`fail_*`: proofs
the owner refuses, `BadProof`).
";

/// Every vector file: path relative to `protocol/tests/vectors` -> contents.
pub(crate) fn generate() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("README.md".into(), README.to_owned());
    // Byte-identical means no line-ending conversion on checkout either.
    out.insert(".gitattributes".into(), "* -text\n".to_owned());
    identity_vectors(&mut out);
    entry_vectors(&mut out);
    envelope_vectors(&mut out);
    sealed_vectors(&mut out);
    backup_vectors(&mut out);
    health_vectors(&mut out);
    out
}
