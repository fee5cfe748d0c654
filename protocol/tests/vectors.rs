//! The test vectors in `tests/vectors`, checked against the code.
//!
//! - `vector_files_are_up_to_date`: the files on disk are byte-identical to a
//!   fresh generation (`vectors_gen`), so a change of wire format shows up as
//!   a diff to review, and this test says how to regenerate.
//! - `every_vector_holds`: every file on disk is read and checked on its own:
//!   valid cases decode, verify, open and recover to exactly the recorded
//!   values; every `fail_` case fails with exactly the recorded error; and
//!   every error of the validation rules has a case.
//! - `the_checks_catch_a_wrong_vector`: altering a recorded value makes the
//!   check fail, so the checks above are not vacuous.

mod vectors_gen;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use crypto_box::aead::Aead;
use crypto_secretbox::KeyInit;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use sherd_protocol::content::{Base64Bytes, Challenge, Content, Hex32, Release, Shard, V1};
use sherd_protocol::entry::{DecodeError, PayloadKind, SignedHeader};
use sherd_protocol::envelope::{self, EnvelopeError};
use sherd_protocol::feed::{EntryError, Feed, ForkProof};
use sherd_protocol::identity::KeyError;
use sherd_protocol::ids::BackupId;
use sherd_protocol::recovery::{Progress, Recovery, Rejected};
use sherd_protocol::shard::{InnerShard, ShardError, VerifiedShard};
use sherd_protocol::{FeedId, Keypair, health, sealed};

use vectors_gen::{
    BackupVector, BoxedEntryVector, ENTRY_DOMAIN, ENVELOPE_PREFIX_LEN, EntryCase, EnvelopeFail,
    EnvelopeVector, FeedEntry, FeedVector, HealthFail, HealthVector, IdentityFail, IdentityKey,
    KeysVector, PEER_ID_PREFIX, PROOF_DOMAIN, Party, REGENERATE, RFC8032, SHARD_DOMAIN, SealedFail,
    SealedShardVector, ShardFields, hx,
};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every file under `dir`, by path relative to it with `/` separators.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `{REGENERATE}`", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under the root");
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let bytes = std::fs::read(&path).expect("readable file");
                out.insert(rel.join("/"), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn vector_files_are_up_to_date() {
    let on_disk = read_tree(&vectors_dir());
    let fresh = vectors_gen::generate();
    let mut problems = Vec::new();
    for (rel, contents) in &fresh {
        match on_disk.get(rel) {
            None => problems.push(format!("missing:  {rel}")),
            Some(bytes) if bytes != contents.as_bytes() => {
                let disk = String::from_utf8_lossy(bytes);
                let line = disk
                    .lines()
                    .zip(contents.lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(|| "length".to_owned(), |i| format!("line {}", i + 1));
                problems.push(format!("differs:  {rel} (first difference: {line})"));
            }
            Some(_) => {}
        }
    }
    for rel in on_disk.keys().filter(|rel| !fresh.contains_key(*rel)) {
        problems.push(format!("unknown:  {rel}"));
    }
    assert!(
        problems.is_empty(),
        "the test vectors in protocol/tests/vectors do not match the code:\n  {}\n\
         If the wire format changed on purpose, regenerate them with\n  {REGENERATE}\n\
         and review the diff.",
        problems.join("\n  ")
    );
}

#[test]
fn every_vector_holds() {
    let files = read_tree(&vectors_dir());
    let mut coverage = Coverage::default();
    let mut failures = Vec::new();
    for (rel, bytes) in &files {
        if rel == "README.md" || rel == ".gitattributes" {
            continue;
        }
        if let Err(e) = check_file(rel, bytes, &mut coverage) {
            failures.push(format!("{rel}: {e}"));
        }
    }
    failures.extend(coverage.missing());
    assert!(
        failures.is_empty(),
        "{} problems in {} vector files checked against the code:\n  {}",
        failures.len(),
        coverage.files,
        failures.join("\n  ")
    );
    assert!(
        coverage.files >= 50,
        "only {} vectors checked",
        coverage.files
    );
}

#[test]
fn the_checks_catch_a_wrong_vector() {
    let fresh = vectors_gen::generate();
    type Mutation = (&'static str, &'static str, fn(&mut serde_json::Value));
    let mutations: &[Mutation] = &[
        ("identity/keys.json", "/keys/3/x25519_secret", flip_hex),
        ("identity/fail_not_a_point.json", "/expected_error", |v| {
            *v = "WeakKey".into()
        }),
        ("entry/feed_3_entries.json", "/entries/1/id", flip_hex),
        (
            "entry/feed_3_entries.json",
            "/entries/2/timestamp_ms",
            |v| *v = 1.into(),
        ),
        ("entry/boxed_entry.json", "/plaintext", flip_hex),
        (
            "entry/fail_wrong_seq.json",
            "/expected_error_fields/found",
            |v| *v = 4.into(),
        ),
        ("entry/fail_fork.json", "/fork_proof", flip_hex),
        ("entry/fail_zero_seq.json", "/expected_error", |v| {
            *v = "Backlink".into()
        }),
        ("entry/fail_bad_signature.json", "/signature_valid", |v| {
            *v = true.into()
        }),
        ("entry/ok_payload_absent.json", "/expected_error", |v| {
            *v = "BadSignature".into()
        }),
        ("envelope/one_recipient.json", "/plaintext", flip_hex),
        ("envelope/eight_recipients.json", "/body_key", flip_hex),
        ("envelope/fail_tampered.json", "/expected_error", |v| {
            *v = "BadBody".into()
        }),
        ("sealed/shard.json", "/shard/share_id", |v| *v = 1.into()),
        (
            "sealed/fail_malformed_release.json",
            "/expected_error_detail",
            |v| *v = "one_time".into(),
        ),
        ("backup/recover_3_of_5.json", "/label", |v| {
            *v = "another label".into()
        }),
        ("backup/recover_3_of_5.json", "/replies/1/expected", |v| {
            *v = "complete".into()
        }),
        ("backup/fail_two_of_three.json", "/expected_error", |v| {
            *v = serde_json::Value::Null
        }),
        ("health/proofs.json", "/cases/1/proof", flip_hex),
        ("health/proofs.json", "/cases/2/check_key", flip_hex),
        ("health/proofs.json", "/cases/3/nonce", flip_hex),
        ("health/proofs.json", "/cases/0/message_prefix", flip_hex),
        ("health/proofs.json", "/cases/4/shard_payload", flip_hex),
        ("health/proofs.json", "/cases/5/challenge_content", |v| {
            *v = v
                .as_str()
                .expect("text")
                .replace("\"version\":1", "\"version\":2")
                .into()
        }),
        ("health/fail_replayed_proof.json", "/expected_error", |v| {
            *v = "verified".into()
        }),
    ];
    for (rel, pointer, mutate) in mutations {
        let original = fresh
            .get(*rel)
            .unwrap_or_else(|| panic!("{rel} is generated"));
        check_file(rel, original.as_bytes(), &mut Coverage::default())
            .unwrap_or_else(|e| panic!("{rel} as generated: {e}"));
        let mut value: serde_json::Value = serde_json::from_str(original).expect("json");
        mutate(
            value
                .pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{rel}{pointer}")),
        );
        let altered = serde_json::to_vec(&value).expect("json");
        assert!(
            check_file(rel, &altered, &mut Coverage::default()).is_err(),
            "{rel} with {pointer} altered still passes"
        );
    }
}

/// Flips the last hex digit of a string value.
fn flip_hex(v: &mut serde_json::Value) {
    let s = v.as_str().expect("a hex string");
    let (head, last) = s.split_at(s.len() - 1);
    let flipped = if last == "0" { "1" } else { "0" };
    *v = format!("{head}{flipped}").into();
}

// ---------------------------------------------------------------------------

type Check = Result<(), String>;

fn eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: the code gives {got:?}, the vector says {want:?}"
        ))
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{what}: not hex: {e}"))
}

fn unhex32(what: &str, s: &str) -> Result<[u8; 32], String> {
    unhex(what, s)?
        .try_into()
        .map_err(|v: Vec<u8>| format!("{what}: {} bytes, not 32", v.len()))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("unreadable vector: {e}"))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// What the vectors cover, to check that every rule has a case.
#[derive(Default)]
struct Coverage {
    files: usize,
    errors: BTreeSet<(&'static str, String)>,
    valid: BTreeSet<String>,
}

impl Coverage {
    fn missing(&self) -> Vec<String> {
        let required: &[(&str, &[&str])] = &[
            ("identity", &["NotAFeedId", "InvalidPoint", "WeakKey"]),
            (
                "entry",
                &[
                    "WrongAuthor",
                    "BadSignature",
                    "WrongSeq",
                    "WrongBacklink",
                    "Fork",
                    "AlreadyHave",
                    "FromTheFuture",
                    "PayloadLength",
                    "PayloadHash",
                    "Length",
                    "UnknownVersion",
                    "UnknownPayloadKind",
                    "ZeroSeq",
                    "Backlink",
                    "Oversize",
                ],
            ),
            (
                "envelope",
                &["NotForMe", "Malformed", "BadBody", "NotBound"],
            ),
            (
                "sealed",
                &["CannotOpen", "BadSignature", "WrongCustodian", "Malformed"],
            ),
            (
                "backup",
                &[
                    "NotEnough",
                    "NotFromCustodian",
                    "Duplicate",
                    "CannotOpen",
                    "ForeignBackup",
                    "BadSignature",
                ],
            ),
            ("health", &["BadProof"]),
        ];
        let mut missing = Vec::new();
        for (dir, names) in required {
            for name in *names {
                if !self.errors.contains(&(*dir, (*name).to_owned())) {
                    missing.push(format!("no {dir}/fail_* vector covers the error {name}"));
                }
            }
        }
        for file in [
            "identity/keys.json",
            "entry/feed_3_entries.json",
            "entry/boxed_entry.json",
            "envelope/one_recipient.json",
            "envelope/eight_recipients.json",
            "sealed/shard.json",
            "backup/recover_3_of_5.json",
            "health/proofs.json",
        ] {
            if !self.valid.contains(file) {
                missing.push(format!("{file}: missing"));
            }
        }
        missing
    }
}

fn check_file(rel: &str, bytes: &[u8], cov: &mut Coverage) -> Check {
    let (dir, file) = rel.split_once('/').ok_or("not in a category directory")?;
    let stem = file.strip_suffix(".json").ok_or("not a .json file")?;
    let fail = stem.starts_with("fail_");
    cov.files += 1;
    if !fail {
        cov.valid.insert(rel.to_owned());
    }
    let (category, expected): (&'static str, Vec<String>) = match (dir, stem) {
        ("identity", "keys") => ("identity", check_keys(&parse(bytes)?).map(|()| vec![])?),
        ("identity", _) if fail => ("identity", check_identity_fail(&parse(bytes)?)?),
        ("entry", s) if s.starts_with("feed_") => {
            ("entry", check_feed(&parse(bytes)?).map(|()| vec![])?)
        }
        ("entry", s) if s.starts_with("boxed_") => {
            ("entry", check_boxed_entry(&parse(bytes)?).map(|()| vec![])?)
        }
        ("entry", s) if fail || s.starts_with("ok_") => {
            ("entry", check_entry_case(&parse(bytes)?, fail)?)
        }
        ("envelope", _) if fail => ("envelope", check_envelope_fail(&parse(bytes)?)?),
        ("envelope", _) => ("envelope", check_envelope(&parse(bytes)?).map(|()| vec![])?),
        ("sealed", _) if fail => ("sealed", check_sealed_fail(&parse(bytes)?)?),
        ("sealed", _) => (
            "sealed",
            check_sealed_shard(&parse(bytes)?).map(|()| vec![])?,
        ),
        ("backup", _) => ("backup", check_backup(&parse(bytes)?, fail)?),
        ("health", _) if fail => ("health", check_health_fail(&parse(bytes)?)?),
        ("health", _) => ("health", check_health(&parse(bytes)?).map(|()| vec![])?),
        _ => return Err("no check knows this file: add one to tests/vectors.rs".into()),
    };
    cov.errors
        .extend(expected.into_iter().map(|e| (category, e)));
    Ok(())
}

// ---------------------------------------------------------------------------
// Identity.
// ---------------------------------------------------------------------------

/// Checks every value derived from a party's seed; returns its key pair.
fn check_party(p: &Party) -> Result<Keypair, String> {
    check_derived(
        &p.name,
        &p.seed,
        &p.ed25519_public_key,
        &p.feed_id,
        &p.x25519_secret,
        &p.x25519_public,
    )
}

fn check_derived(
    name: &str,
    seed: &str,
    pk: &str,
    feed_id: &str,
    xs: &str,
    xp: &str,
) -> Result<Keypair, String> {
    let seed = unhex32(&format!("{name}.seed"), seed)?;
    let kp = Keypair::from_seed(&seed);
    let id = kp.feed_id();
    eq(
        &format!("{name}.ed25519_public_key"),
        hx(id.as_bytes()),
        pk.to_owned(),
    )?;
    eq(
        &format!("{name}.feed_id"),
        id.to_string(),
        feed_id.to_owned(),
    )?;
    eq(
        &format!("{name}.feed_id parsed"),
        feed_id.parse::<FeedId>(),
        Ok(id),
    )?;
    let libp2p = libp2p_identity::ed25519::PublicKey::try_from_bytes(id.as_bytes())
        .map_err(|e| format!("{name}: libp2p refuses the key: {e}"))?;
    eq(
        &format!("{name}.feed_id (libp2p)"),
        libp2p_identity::PublicKey::from(libp2p)
            .to_peer_id()
            .to_string(),
        feed_id.to_owned(),
    )?;
    let secret = kp.x25519_secret();
    eq(
        &format!("{name}.x25519_secret"),
        hx(secret.to_bytes().as_ref()),
        xs.to_owned(),
    )?;
    eq(
        &format!("{name}.x25519_public"),
        hx(&id.x25519().0),
        xp.to_owned(),
    )?;
    eq(
        &format!("{name}.x25519_public (from the secret)"),
        hx(&secret.public_key().0),
        xp.to_owned(),
    )?;
    Ok(kp)
}

fn check_keys(v: &KeysVector) -> Check {
    ensure(v.keys.len() >= 4, || "too few keys".into())?;
    for k in &v.keys {
        let IdentityKey {
            name,
            seed,
            ed25519_secret_key,
            ed25519_public_key,
            peer_id,
            feed_id,
            x25519_secret,
            x25519_public,
        } = k;
        let kp = check_derived(
            name,
            seed,
            ed25519_public_key,
            feed_id,
            x25519_secret,
            x25519_public,
        )?;
        eq(
            &format!("{name}.ed25519_secret_key"),
            ed25519_secret_key.clone(),
            format!("{seed}{ed25519_public_key}"),
        )?;
        eq(
            &format!("{name}.peer_id"),
            hx(&kp.feed_id().peer_id_bytes()),
            peer_id.clone(),
        )?;
        eq(
            &format!("{name}.peer_id prefix"),
            &peer_id[..12],
            hx(&PEER_ID_PREFIX).as_str(),
        )?;
    }
    // RFC 8032's own answers, as an anchor outside this code base.
    for (name, seed, pk) in RFC8032 {
        let k = v
            .keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| format!("{name} missing"))?;
        eq(&format!("{name}.seed"), k.seed.as_str(), seed)?;
        eq(
            &format!("{name} public key (RFC 8032)"),
            k.ed25519_public_key.as_str(),
            pk,
        )?;
    }
    Ok(())
}

fn key_error_name(e: &KeyError) -> String {
    match e {
        KeyError::NotAFeedId => "NotAFeedId".into(),
        KeyError::InvalidPoint => "InvalidPoint".into(),
        KeyError::WeakKey => "WeakKey".into(),
        other => format!("{other:?}"),
    }
}

fn check_identity_fail(v: &IdentityFail) -> Result<Vec<String>, String> {
    let parsed = v.feed_id.parse::<FeedId>();
    eq(
        "feed id parse",
        parsed.map_err(|e| key_error_name(&e)),
        Err(v.expected_error.clone()),
    )?;
    if let Some(key) = &v.public_key {
        let key = unhex32("public_key", key)?;
        let from_bytes = FeedId::from_bytes(&key).map_err(|e| key_error_name(&e));
        eq(
            "FeedId::from_bytes",
            from_bytes,
            Err(v.expected_error.clone()),
        )?;
        let peer_id = bs58_decode(&v.feed_id)?;
        eq(
            "feed_id is the PeerId of public_key",
            peer_id,
            [PEER_ID_PREFIX.as_slice(), &key].concat(),
        )?;
    }
    Ok(vec![v.expected_error.clone()])
}

fn bs58_decode(s: &str) -> Result<Vec<u8>, String> {
    bs58::decode(s)
        .into_vec()
        .map_err(|e| format!("not base58: {e}"))
}

// ---------------------------------------------------------------------------
// Entries.
// ---------------------------------------------------------------------------

fn kind_of(name: &str) -> Result<PayloadKind, String> {
    match name {
        "public" => Ok(PayloadKind::Public),
        "boxed" => Ok(PayloadKind::Boxed),
        other => Err(format!("unknown payload_kind {other:?}")),
    }
}

/// Checks one entry of a valid chain; returns it decoded.
fn check_feed_entry(
    author: &Keypair,
    e: &FeedEntry,
    prev: Option<&SignedHeader>,
) -> Result<SignedHeader, String> {
    let at = |field: &str| format!("entry {}: {field}", e.seq);
    let bytes = unhex(&at("signed_header"), &e.signed_header)?;
    let payload = unhex(&at("payload"), &e.payload)?;
    let sh = SignedHeader::decode(&bytes).map_err(|err| format!("{}: {err}", at("decode")))?;
    let h = sh.header();
    eq(&at("seq"), h.seq, e.seq)?;
    eq(
        &at("backlink"),
        h.backlink.map(|b| hx(&b.0)),
        e.backlink.clone(),
    )?;
    eq(
        &at("backlink is the previous id"),
        h.backlink,
        prev.map(SignedHeader::id),
    )?;
    eq(&at("timestamp_ms"), h.timestamp_ms, e.timestamp_ms)?;
    eq(
        &at("payload_kind"),
        h.payload_kind,
        kind_of(&e.payload_kind)?,
    )?;
    eq(&at("payload_len"), h.payload_len as usize, payload.len())?;
    eq(&at("payload_len"), h.payload_len, e.payload_len)?;
    eq(
        &at("payload_hash"),
        hx(&h.payload_hash),
        e.payload_hash.clone(),
    )?;
    eq(
        &at("payload_hash of the payload"),
        hx(&sha256(&[&payload])),
        e.payload_hash.clone(),
    )?;
    eq(&at("author"), &h.author, author.feed_id().as_bytes())?;
    eq(&at("id"), hx(&sh.id().0), e.id.clone())?;
    eq(
        &at("id = SHA-256 of the 182 bytes"),
        hx(&sha256(&[&bytes])),
        e.id.clone(),
    )?;
    eq(
        &at("signed_message"),
        hx(&sh.signed_message()),
        e.signed_message.clone(),
    )?;
    eq(
        &at("signed_message = domain || header"),
        hx(&[ENTRY_DOMAIN, &bytes[..118]].concat()),
        e.signed_message.clone(),
    )?;
    eq(
        &at("header re-encoded"),
        h.encode().as_slice(),
        sh.header_bytes(),
    )?;
    eq(&at("signature"), sh.signature().as_slice(), &bytes[118..])?;
    let signed = SignedHeader::sign_next(author, prev, e.timestamp_ms, h.payload_kind, &payload)
        .map_err(|err| format!("{}: {err}", at("sign_next")))?;
    eq(
        &at("sign_next makes the same bytes"),
        hx(signed.as_bytes()),
        e.signed_header.clone(),
    )?;
    Ok(sh)
}

fn check_feed(v: &FeedVector) -> Check {
    let author = check_party(&v.author)?;
    let mut feed = Feed::new(author.feed_id());
    let mut run = Vec::new();
    let mut payloads = Vec::new();
    for e in &v.entries {
        let sh = check_feed_entry(&author, e, feed.head())?;
        let payload = unhex("payload", &e.payload)?;
        feed.append(sh.clone(), Some(&payload), v.now_ms)
            .map_err(|err| format!("entry {}: refused: {err}", e.seq))?;
        run.push(sh);
        payloads.push(payload);
    }
    eq("feed length", feed.seq(), v.entries.len() as u64)?;
    // The same run in one batch.
    let batch: Vec<(SignedHeader, Option<&[u8]>)> = run
        .into_iter()
        .zip(&payloads)
        .map(|(sh, p)| (sh, Some(p.as_slice())))
        .collect();
    let mut fresh = Feed::new(author.feed_id());
    eq(
        "append_run",
        fresh.append_run(&batch, v.now_ms),
        (v.entries.len(), None),
    )?;
    Ok(())
}

fn check_boxed_entry(v: &BoxedEntryVector) -> Check {
    let author = check_party(&v.author)?;
    let sh = check_feed_entry(&author, &v.entry, None)?;
    eq("payload_kind", sh.header().payload_kind, PayloadKind::Boxed)?;
    let payload = unhex("payload", &v.entry.payload)?;
    Feed::new(author.feed_id())
        .check(&sh, Some(&payload), v.now_ms)
        .map_err(|e| format!("refused: {e}"))?;
    let plaintext = unhex("plaintext", &v.plaintext)?;
    for r in &v.recipients {
        let kp = check_party(r)?;
        let opened = envelope::open(&kp.x25519_secret(), &author.feed_id(), &payload)
            .map_err(|e| format!("{}: {e}", r.name))?
            .ok_or_else(|| format!("{}: not for them", r.name))?;
        eq(
            &format!("{} opens", r.name),
            opened.as_slice(),
            plaintext.as_slice(),
        )?;
    }
    let content = Content::parse(&plaintext).map_err(|e| format!("plaintext content: {e}"))?;
    ensure(!content.is_public(), || {
        "a boxed entry carries private content".into()
    })
}

fn decode_error(d: &DecodeError) -> (String, BTreeMap<String, u64>) {
    let f = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    match d {
        DecodeError::Length(n) => ("Length".into(), f(&[("len", *n as u64)])),
        DecodeError::UnknownVersion(v) => {
            ("UnknownVersion".into(), f(&[("version", u64::from(*v))]))
        }
        DecodeError::UnknownPayloadKind(k) => {
            ("UnknownPayloadKind".into(), f(&[("kind", u64::from(*k))]))
        }
        DecodeError::ZeroSeq => ("ZeroSeq".into(), f(&[])),
        DecodeError::Backlink => ("Backlink".into(), f(&[])),
        DecodeError::Oversize(n) => ("Oversize".into(), f(&[("payload_len", u64::from(*n))])),
        other => (format!("{other:?}"), f(&[])),
    }
}

/// The stable name and the fields of an entry error.
fn entry_error(e: &EntryError) -> (String, BTreeMap<String, u64>) {
    let f = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    match e {
        EntryError::Decode(d) => decode_error(d),
        EntryError::WrongAuthor => ("WrongAuthor".into(), f(&[])),
        EntryError::BadSignature => ("BadSignature".into(), f(&[])),
        EntryError::WrongSeq { expected, found } => (
            "WrongSeq".into(),
            f(&[("expected", *expected), ("found", *found)]),
        ),
        EntryError::WrongBacklink => ("WrongBacklink".into(), f(&[])),
        EntryError::Fork(p) => ("Fork".into(), f(&[("seq", p.seq())])),
        EntryError::AlreadyHave => ("AlreadyHave".into(), f(&[])),
        EntryError::FromTheFuture {
            timestamp_ms,
            now_ms,
        } => (
            "FromTheFuture".into(),
            f(&[("timestamp_ms", *timestamp_ms), ("now_ms", *now_ms)]),
        ),
        EntryError::PayloadLength { declared, actual } => (
            "PayloadLength".into(),
            f(&[
                ("declared", u64::from(*declared)),
                ("actual", *actual as u64),
            ]),
        ),
        EntryError::PayloadHash => ("PayloadHash".into(), f(&[])),
        other => (format!("{other:?}"), f(&[])),
    }
}

fn check_entry_case(c: &EntryCase, fail: bool) -> Result<Vec<String>, String> {
    eq(
        "fail_ prefix <=> expected_error",
        fail,
        c.expected_error.is_some(),
    )?;
    let author = check_party(&c.author)?;
    let mut feed = match &c.head {
        None => Feed::new(author.feed_id()),
        Some(head) => {
            let head =
                SignedHeader::decode(&unhex("head", head)?).map_err(|e| format!("head: {e}"))?;
            Feed::resume(author.feed_id(), head).map_err(|e| format!("head: {e}"))?
        }
    };
    let bytes = unhex("entry", &c.entry)?;
    let payload = c
        .payload
        .as_deref()
        .map(|p| unhex("payload", p))
        .transpose()?;

    let signature_valid = (bytes.len() == 182).then(|| {
        let key: [u8; 32] = bytes[1..33].try_into().expect("32 bytes");
        let sig: [u8; 64] = bytes[118..].try_into().expect("64 bytes");
        FeedId::from_bytes(&key).is_ok_and(|id| {
            id.verify(&[ENTRY_DOMAIN, &bytes[..118]].concat(), &sig)
                .is_ok()
        })
    });
    eq("signature_valid", signature_valid, c.signature_valid)?;

    let decoded = SignedHeader::decode(&bytes);
    let result = match &decoded {
        Err(d) => Err(EntryError::Decode(d.clone())),
        Ok(sh) => feed.check(sh, payload.as_deref(), c.now_ms),
    };
    let got = result.as_ref().err().map(entry_error);
    let want = c
        .expected_error
        .clone()
        .map(|e| (e, c.expected_error_fields.clone()));
    eq("outcome", got, want)?;

    if let Ok(sh) = &decoded {
        // A run of one gives the same verdict as a single check.
        let mut batch_feed = feed.clone();
        let run = [(sh.clone(), payload.as_deref())];
        let (n, err) = batch_feed.append_run(&run, c.now_ms);
        eq(
            "append_run",
            (n, err.as_ref().map(entry_error)),
            (
                usize::from(result.is_ok()),
                result.as_ref().err().map(entry_error),
            ),
        )?;
        if result.is_ok() {
            feed.append(sh.clone(), payload.as_deref(), c.now_ms)
                .map_err(|e| format!("append: {e}"))?;
            eq(
                "head after append",
                feed.head().map(SignedHeader::id),
                Some(sh.id()),
            )?;
        }
    }
    match (&result, &c.fork_proof) {
        (Err(EntryError::Fork(proof)), Some(want)) => {
            let want = unhex("fork_proof", want)?;
            eq("fork proof", hx(&proof.encode()), hx(&want))?;
            eq(
                "fork proof decodes",
                ForkProof::decode(&want).as_ref(),
                Some(&**proof),
            )?;
            let (a, b) = proof.headers();
            ensure(a.id() < b.id(), || "fork proof: smaller id first".into())?;
        }
        (Err(EntryError::Fork(_)), None) => {
            return Err("a fork without a recorded fork_proof".into());
        }
        (_, Some(_)) => return Err("fork_proof recorded but no fork".into()),
        _ => {}
    }
    Ok(c.expected_error.iter().cloned().collect())
}

// ---------------------------------------------------------------------------
// Envelopes.
// ---------------------------------------------------------------------------

fn check_envelope(v: &EnvelopeVector) -> Check {
    let author = check_party(&v.author)?;
    let env = unhex("envelope", &v.envelope)?;
    let plaintext = unhex("plaintext", &v.plaintext)?;
    eq("length", env.len(), envelope::OVERHEAD + plaintext.len())?;
    eq("version", env[0], envelope::ENVELOPE_VERSION)?;
    eq("nonce", hx(&env[1..25]), v.nonce.clone())?;
    eq(
        "ephemeral_public",
        hx(&env[25..57]),
        v.ephemeral_public.clone(),
    )?;
    ensure((1..=8).contains(&v.recipients.len()), || {
        "1 to 8 recipients".into()
    })?;
    let binding = sha256(&[author.feed_id().as_bytes(), &env[..ENVELOPE_PREFIX_LEN]]);
    eq("binding", hx(&binding), v.binding.clone())?;
    let nonce = crypto_box::Nonce::from_slice(&env[1..25]);
    let epk: [u8; 32] = env[25..57].try_into().expect("32 bytes");
    for (slot, r) in v.recipients.iter().enumerate() {
        let kp = check_party(r)?;
        let opened = envelope::open(&kp.x25519_secret(), &author.feed_id(), &env)
            .map_err(|e| format!("{}: {e}", r.name))?
            .ok_or_else(|| format!("{}: not for them", r.name))?;
        eq(
            &format!("{} opens", r.name),
            opened.as_slice(),
            plaintext.as_slice(),
        )?;
        // The slot and the body, opened with crypto_box and crypto_secretbox directly.
        let sk = crypto_box::SecretKey::from_bytes(unhex32("x25519_secret", &r.x25519_secret)?);
        let salsa = crypto_box::SalsaBox::new(&crypto_box::PublicKey::from_bytes(epk), &sk);
        let body_key = salsa
            .decrypt(nonce, &env[57 + 48 * slot..57 + 48 * (slot + 1)])
            .map_err(|_| format!("{}: slot {slot} does not open", r.name))?;
        eq(
            &format!("{}: body_key", r.name),
            hx(&body_key),
            v.body_key.clone(),
        )?;
        let key: [u8; 32] = body_key
            .as_slice()
            .try_into()
            .map_err(|_| "body key length")?;
        let body = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
            .decrypt(nonce, &env[ENVELOPE_PREFIX_LEN..])
            .map_err(|_| "body does not open")?;
        eq(
            "body = binding || plaintext",
            body,
            [binding.as_slice(), &plaintext].concat(),
        )?;
    }
    eq(
        "the author opens",
        envelope::open(&author.x25519_secret(), &author.feed_id(), &env).map(|o| o.is_some()),
        Ok(false),
    )?;
    Ok(())
}

fn check_envelope_fail(v: &EnvelopeFail) -> Result<Vec<String>, String> {
    let author = check_party(&v.author)?;
    let reader = check_party(&v.reader)?;
    let env = unhex("envelope", &v.envelope)?;
    let got = match envelope::open(&reader.x25519_secret(), &author.feed_id(), &env) {
        Ok(None) => "NotForMe".to_owned(),
        Ok(Some(_)) => "opened".to_owned(),
        Err(EnvelopeError::Malformed) => "Malformed".to_owned(),
        Err(EnvelopeError::BadBody) => "BadBody".to_owned(),
        Err(EnvelopeError::NotBound) => "NotBound".to_owned(),
        Err(other) => format!("{other:?}"),
    };
    eq("outcome", got, v.expected_error.clone())?;
    Ok(vec![v.expected_error.clone()])
}

// ---------------------------------------------------------------------------
// Sealed shards.
// ---------------------------------------------------------------------------

fn fields_of(inner: &InnerShard) -> ShardFields {
    let p = &inner.policy;
    ShardFields {
        created_ms: inner.created_ms,
        backup: hx(inner.backup.as_bytes()),
        owner: hx(inner.owner.as_bytes()),
        custodian: hx(inner.custodian.as_bytes()),
        threshold: inner.threshold,
        share_id: inner.share_id,
        share: hx(inner.share.as_ref()),
        custodians: p.custodians.iter().map(|c| hx(c.as_bytes())).collect(),
        trustees: p.trustees.iter().map(|t| hx(t.as_bytes())).collect(),
        veto_delay_secs: p.veto_delay_secs,
        one_time: p.one_time,
        release: match p.release {
            Release::Approve => "approve".into(),
            Release::Auto => "auto".into(),
        },
        check_key: hx(inner.check_key.as_ref()),
        ciphertext: hx(&inner.ciphertext),
    }
}

fn check_sealed_shard(v: &SealedShardVector) -> Check {
    let owner = check_party(&v.owner)?;
    let custodian = check_party(&v.custodian)?;
    let sealed_box = unhex("sealed", &v.sealed)?;
    let signed = unhex("signed_shard", &v.signed_shard)?;
    eq(
        "ephemeral_public",
        hx(&sealed_box[..32]),
        v.ephemeral_public.clone(),
    )?;
    eq(
        "sealed length",
        sealed_box.len(),
        signed.len() + sealed::SEAL_OVERHEAD,
    )?;
    let opened = sealed::open(&custodian.x25519_secret(), &sealed_box)
        .map_err(|e| format!("sealed::open: {e}"))?;
    eq("sealed box opens to", hx(&opened), v.signed_shard.clone())?;
    let shard = VerifiedShard::open(
        &custodian.x25519_secret(),
        &custodian.feed_id(),
        &sealed_box,
    )
    .map_err(|e| format!("VerifiedShard::open: {e}"))?;
    eq(
        "signed bytes",
        hx(shard.signed_bytes()),
        v.signed_shard.clone(),
    )?;
    eq("fields", fields_of(shard.inner()), v.shard.clone())?;
    eq("owner", shard.inner().owner, owner.feed_id())?;
    // The owner's signature over the domain and the body, checked by hand.
    let (body, sig) = signed.split_at(signed.len() - 64);
    let sig: [u8; 64] = sig.try_into().expect("64 bytes");
    eq(
        "owner signature",
        owner.feed_id().verify(&[SHARD_DOMAIN, body].concat(), &sig),
        Ok(()),
    )?;
    // Re-encoding the decoded fields gives the same bytes.
    let resigned = shard
        .inner()
        .sign(&owner)
        .map_err(|e| format!("sign: {e}"))?;
    eq("re-signed", hx(&resigned), v.signed_shard.clone())?;
    Ok(())
}

fn shard_error(e: &ShardError) -> (String, Option<String>) {
    match e {
        ShardError::CannotOpen => ("CannotOpen".into(), None),
        ShardError::Malformed(field) => ("Malformed".into(), Some((*field).to_owned())),
        ShardError::BadSignature => ("BadSignature".into(), None),
        ShardError::WrongCustodian => ("WrongCustodian".into(), None),
        other => (format!("{other:?}"), None),
    }
}

fn check_sealed_fail(v: &SealedFail) -> Result<Vec<String>, String> {
    check_party(&v.owner)?;
    let reader = check_party(&v.reader)?;
    let sealed_box = unhex("sealed", &v.sealed)?;
    let got = VerifiedShard::open(&reader.x25519_secret(), &reader.feed_id(), &sealed_box)
        .map(|_| ())
        .map_err(|e| shard_error(&e));
    eq(
        "outcome",
        got,
        Err((v.expected_error.clone(), v.expected_error_detail.clone())),
    )?;
    Ok(vec![v.expected_error.clone()])
}

// ---------------------------------------------------------------------------
// Backup and recovery.
// ---------------------------------------------------------------------------

fn progress_name(r: Result<&Progress, Rejected>) -> String {
    match r {
        Ok(Progress::Collecting {
            have,
            threshold: Some(t),
        }) => format!("collecting {have}/{t}"),
        Ok(Progress::Collecting {
            have,
            threshold: None,
        }) => format!("collecting {have}/?"),
        Ok(Progress::Complete) => "complete".into(),
        Ok(Progress::Failed(e)) => format!("failed {e:?}"),
        Err(Rejected::Invalid(e)) => format!("rejected {}", shard_error(&e).0),
        Err(Rejected::WrongOwner) => "rejected WrongOwner".into(),
        Err(Rejected::ForeignBackup(_)) => "rejected ForeignBackup".into(),
        Err(Rejected::NotFromCustodian) => "rejected NotFromCustodian".into(),
        Err(Rejected::Duplicate) => "rejected Duplicate".into(),
        Err(Rejected::Inconsistent) => "rejected Inconsistent".into(),
        Err(Rejected::Finished) => "rejected Finished".into(),
        Err(other) => format!("rejected {other:?}"),
    }
}

fn check_backup(v: &BackupVector, fail: bool) -> Result<Vec<String>, String> {
    eq(
        "fail_ prefix <=> expected_error",
        fail,
        v.expected_error.is_some(),
    )?;
    let owner = check_party(&v.owner)?;
    let backup = BackupId(unhex32("backup_id", &v.backup_id)?);
    let custodian_ids: Vec<FeedId> = v
        .custodians
        .iter()
        .map(|c| check_party(&c.custodian).map(|k| k.feed_id()))
        .collect::<Result<_, _>>()?;
    for c in &v.custodians {
        let name = &c.custodian.name;
        let kp = check_party(&c.custodian)?;
        let sealed_box = unhex("sealed_shard", &c.sealed_shard)?;
        let shard = VerifiedShard::open(&kp.x25519_secret(), &kp.feed_id(), &sealed_box)
            .map_err(|e| format!("{name}'s shard: {e}"))?;
        eq(
            &format!("{name}: signed_shard"),
            hx(shard.signed_bytes()),
            c.signed_shard.clone(),
        )?;
        let inner = shard.inner();
        eq(&format!("{name}: owner"), inner.owner, owner.feed_id())?;
        eq(&format!("{name}: backup"), inner.backup, backup)?;
        eq(&format!("{name}: custodian"), inner.custodian, kp.feed_id())?;
        eq(&format!("{name}: threshold"), inner.threshold, v.threshold)?;
        eq(&format!("{name}: share_id"), inner.share_id, c.share_id)?;
        eq(
            &format!("{name}: created_ms"),
            inner.created_ms,
            v.created_ms,
        )?;
        eq(
            &format!("{name}: custodians"),
            &inner.policy.custodians,
            &custodian_ids,
        )?;
        let content = Content::parse(c.shard_content.as_bytes())
            .map_err(|e| format!("{name}: shard content: {e}"))?;
        let want = Content::Shard(Shard {
            version: V1,
            backup,
            sealed: Base64Bytes(sealed_box),
        });
        eq(&format!("{name}: shard content"), content, want)?;
    }
    match Content::parse(v.root_content.as_bytes()).map_err(|e| format!("root content: {e}"))? {
        Content::Root(root) => {
            eq("root: backup", root.backup, backup)?;
            eq("root: label", root.label.as_str(), v.label.as_str())?;
            eq("root: threshold", root.threshold, v.threshold)?;
            eq("root: created_ms", root.created_ms, v.created_ms)?;
            eq(
                "root: custodians",
                root.custodians.iter().map(|c| c.feed).collect::<Vec<_>>(),
                custodian_ids.clone(),
            )?;
        }
        other => return Err(format!("root content is a {}", other.type_name())),
    }

    let mut recovery = Recovery::new(owner.feed_id(), backup, owner.x25519_secret());
    let mut covered = Vec::new();
    for (i, step) in v.replies.iter().enumerate() {
        let sender: FeedId = step
            .sender
            .parse()
            .map_err(|e| format!("reply {i}: sender: {e}"))?;
        let sealed_box = unhex("sealed", &step.sealed)?;
        let got = progress_name(recovery.add_sealed(&sender, &sealed_box));
        eq(
            &format!("reply {i} ({})", step.description),
            got,
            step.expected.clone(),
        )?;
        if let Some(reason) = step.expected.strip_prefix("rejected ") {
            covered.push(reason.to_owned());
        }
    }
    let secret = recovery.take_secret();
    match v.expected_error.as_deref() {
        None => {
            eq("final progress", recovery.progress(), &Progress::Complete)?;
            let m = secret.ok_or("no secret recovered")?;
            eq("secret", hx(&m.secret), v.secret.clone())?;
            eq("label", m.label.as_str(), v.label.as_str())?;
            eq("metadata", hx(&m.metadata), v.metadata.clone())?;
        }
        Some("NotEnough") => {
            let short = matches!(recovery.progress(), Progress::Collecting { have, threshold: Some(t) } if have < t);
            ensure(short, || {
                format!(
                    "final progress {:?} is not short of shards",
                    recovery.progress()
                )
            })?;
            ensure(secret.is_none(), || {
                "a secret came out of too few shards".into()
            })?;
            covered.push("NotEnough".into());
        }
        Some(other) => return Err(format!("unknown expected_error {other:?}")),
    }
    Ok(covered)
}

// ---------------------------------------------------------------------------
// Health checks.
// ---------------------------------------------------------------------------

fn check_health(v: &HealthVector) -> Check {
    let owner = check_party(&v.owner)?;
    let backup = BackupId(unhex32("backup_id", &v.backup_id)?);
    let root = match Content::parse(v.root_content.as_bytes())
        .map_err(|e| format!("root content: {e}"))?
    {
        Content::Root(root) => root,
        other => return Err(format!("root content is a {}", other.type_name())),
    };
    eq("root: backup", root.backup, backup)?;
    eq("the proof domain", health::PROOF_DOMAIN, PROOF_DOMAIN)?;
    ensure(v.cases.len() >= 3, || "too few cases".into())?;
    for (i, c) in v.cases.iter().enumerate() {
        let at = format!("case {i} ({})", c.description);
        let custodian = check_party(&c.custodian)?;
        let check_key = unhex32(&format!("{at}: check_key"), &c.check_key)?;
        let nonce = unhex32(&format!("{at}: nonce"), &c.nonce)?;
        let payload = unhex(&format!("{at}: shard_payload"), &c.shard_payload)?;
        let claimed = unhex32(&format!("{at}: proof"), &c.proof)?;

        // The owner's side: the check key is in its root.
        let in_root = root
            .custodians
            .iter()
            .find(|rc| rc.feed == custodian.feed_id())
            .map(|rc| hx(rc.check_key.0.as_ref()));
        eq(
            &format!("{at}: check key in the root"),
            in_root,
            Some(c.check_key.clone()),
        )?;
        // The custodian's side: the payload is an envelope from the owner
        // holding its `shard`, whose signed inner shard holds the same key.
        let plaintext = envelope::open(&custodian.x25519_secret(), &owner.feed_id(), &payload)
            .map_err(|e| format!("{at}: the shard payload does not open: {e}"))?
            .ok_or_else(|| format!("{at}: the shard payload is not for the custodian"))?;
        let Content::Shard(shard) = Content::parse(&plaintext)
            .map_err(|e| format!("{at}: the shard payload's content: {e}"))?
        else {
            return Err(format!("{at}: the shard payload holds no shard"));
        };
        eq(&format!("{at}: shard backup"), shard.backup, backup)?;
        let verified = VerifiedShard::open(
            &custodian.x25519_secret(),
            &custodian.feed_id(),
            &shard.sealed.0,
        )
        .map_err(|e| format!("{at}: the sealed shard: {e}"))?;
        let inner = verified.inner();
        eq(
            &format!("{at}: inner shard owner"),
            inner.owner,
            owner.feed_id(),
        )?;
        eq(&format!("{at}: inner shard backup"), inner.backup, backup)?;
        eq(
            &format!("{at}: check key in the inner shard"),
            hx(inner.check_key.as_ref()),
            c.check_key.clone(),
        )?;

        let challenge = Content::parse(c.challenge_content.as_bytes())
            .map_err(|e| format!("{at}: challenge content: {e}"))?;
        eq(
            &format!("{at}: challenge content"),
            challenge,
            Content::Challenge(Challenge {
                version: V1,
                backup,
                nonce: Hex32(nonce),
            }),
        )?;
        eq(
            &format!("{at}: message_prefix"),
            hx(&[
                health::PROOF_DOMAIN,
                backup.as_bytes(),
                custodian.feed_id().as_bytes(),
                &nonce,
            ]
            .concat()),
            c.message_prefix.clone(),
        )?;
        let custodian_id = custodian.feed_id();
        eq(
            &format!("{at}: proof"),
            hx(&health::proof(
                &inner.check_key,
                &backup,
                &custodian_id,
                &nonce,
                &payload,
            )),
            c.proof.clone(),
        )?;
        ensure(
            health::verify(
                &check_key,
                &backup,
                &custodian_id,
                &nonce,
                &payload,
                &claimed,
            ),
            || format!("{at}: the owner does not verify the proof"),
        )?;
    }
    Ok(())
}

fn check_health_fail(v: &HealthFail) -> Result<Vec<String>, String> {
    check_party(&v.owner)?;
    let custodian = check_party(&v.custodian)?;
    let backup = BackupId(unhex32("backup_id", &v.backup_id)?);
    let check_key = unhex32("check_key", &v.check_key)?;
    let nonce = unhex32("nonce", &v.nonce)?;
    let payload = unhex("shard_payload", &v.shard_payload)?;
    let claimed = unhex32("proof", &v.proof)?;
    let verified = health::verify(
        &check_key,
        &backup,
        &custodian.feed_id(),
        &nonce,
        &payload,
        &claimed,
    );
    let got = if verified { "verified" } else { "BadProof" };
    eq("outcome", got.to_owned(), v.expected_error.clone())?;
    Ok(vec![v.expected_error.clone()])
}
