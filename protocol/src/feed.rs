//! Validation of entries against the head of their feed, fork proofs, and
//! batch verification of a run of entries.
//!
//! Cheap checks run first and the signature last, so a peer sending garbage
//! costs us little; a fork is only reported once the second entry's signature
//! holds, so no one can fake one.

use std::sync::OnceLock;

use crate::entry::{DecodeError, MAX_PAYLOAD_LEN, PayloadKind, SIGNED_HEADER_LEN, SignedHeader};
use crate::identity::FeedId;
use crate::ids::sha256;

/// How far ahead of the validator's clock an entry's timestamp may be.
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// Why an entry was refused. One variant per rule of PROTOCOL.md, "Validation".
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The signed header is malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The entry's author is not the feed's author.
    #[error("entry author is not the author of this feed")]
    WrongAuthor,
    /// The ed25519 signature does not verify (strict verification).
    #[error("bad signature")]
    BadSignature,
    /// The entry is not the next one. When `found < expected` the caller may
    /// hold entry `found` already and should compare it with [`ForkProof::new`].
    #[error("wrong sequence number: expected {expected}, got {found}")]
    WrongSeq {
        /// The sequence number the feed expects next.
        expected: u64,
        /// The entry's sequence number.
        found: u64,
    },
    /// The backlink is not the id of the feed's head.
    #[error("backlink does not match the head of the feed")]
    WrongBacklink,
    /// The author signed two different entries with this sequence number.
    #[error("fork: two different entries at seq {}", .0.seq())]
    Fork(Box<ForkProof>),
    /// The entry is the head already (a harmless duplicate).
    #[error("entry already in the feed")]
    AlreadyHave,
    /// The timestamp is more than ten minutes ahead of the validator's clock.
    #[error("timestamp {timestamp_ms} is more than 10 minutes ahead of now ({now_ms})")]
    FromTheFuture {
        /// The entry's timestamp.
        timestamp_ms: u64,
        /// The validator's clock.
        now_ms: u64,
    },
    /// The payload's length is not the one the header declares.
    #[error("payload length {actual} does not match the declared {declared}")]
    PayloadLength {
        /// The length in the header.
        declared: u32,
        /// The length of the bytes received.
        actual: usize,
    },
    /// The payload's SHA-256 is not the one the header declares.
    #[error("payload hash does not match the header")]
    PayloadHash,
}

/// What a validator knows of a feed: its author and its latest entry.
#[derive(Debug, Clone)]
pub struct Feed {
    author: FeedId,
    head: Option<SignedHeader>,
}

impl Feed {
    /// A feed of which nothing is known yet: it expects entry 1.
    pub fn new(author: FeedId) -> Self {
        Self { author, head: None }
    }

    /// A feed whose latest stored entry is `head` (trusted: it was validated
    /// when it was stored).
    pub fn resume(author: FeedId, head: SignedHeader) -> Result<Self, EntryError> {
        if head.header().author != *author.as_bytes() {
            return Err(EntryError::WrongAuthor);
        }
        Ok(Self {
            author,
            head: Some(head),
        })
    }

    /// The feed's author.
    pub fn author(&self) -> &FeedId {
        &self.author
    }

    /// The latest entry, if any.
    pub fn head(&self) -> Option<&SignedHeader> {
        self.head.as_ref()
    }

    /// The sequence number of the latest entry; 0 for an empty feed.
    pub fn seq(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.header().seq)
    }

    /// Checks that `entry` is a valid next entry of this feed. `payload` is
    /// `None` when it is absent (erased, or not fetched); its hash is then not
    /// checked, and the chain still verifies.
    pub fn check(
        &self,
        entry: &SignedHeader,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(), EntryError> {
        self.check_cheap(self.head.as_ref(), entry, payload, now_ms)?;
        self.verify_signature(entry)
    }

    /// Checks `entry` and makes it the head.
    pub fn append(
        &mut self,
        entry: SignedHeader,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(), EntryError> {
        self.check(&entry, payload, now_ms)?;
        self.head = Some(entry);
        Ok(())
    }

    /// Checks a run of consecutive entries with one batch signature check and
    /// appends the longest valid prefix. Returns how many were appended, and
    /// the error that stopped the run, if any.
    pub fn append_run(
        &mut self,
        run: &[(SignedHeader, Option<&[u8]>)],
        now_ms: u64,
    ) -> (usize, Option<EntryError>) {
        self.append_run_checked(run, now_ms, None)
    }

    /// [`Feed::append_run`] with some signatures checked already: the
    /// entries `checked` vouches for skip the signature check; the rest are
    /// checked as usual. Everything else (author, seq, backlink, clock,
    /// payload, forks) is checked here, against this feed's head.
    pub fn append_run_checked(
        &mut self,
        run: &[(SignedHeader, Option<&[u8]>)],
        now_ms: u64,
        checked: Option<&CheckedSignatures>,
    ) -> (usize, Option<EntryError>) {
        let mut head = self.head.as_ref();
        let mut cheap_ok = run.len();
        let mut first_error = None;
        for (i, (entry, payload)) in run.iter().enumerate() {
            if let Err(e) = self.check_cheap(head, entry, payload.as_deref(), now_ms) {
                cheap_ok = i;
                first_error = Some(e);
                break;
            }
            head = Some(entry);
        }
        let candidates = run.get(..cheap_ok).unwrap_or_default();
        let vouched = checked
            .map_or(0, |c| c.vouched(&self.author, candidates))
            .min(cheap_ok);
        let unchecked = candidates.get(vouched..).unwrap_or_default();
        let verified = if batch_verify(&self.author, unchecked.iter().map(|(e, _)| e)) {
            cheap_ok
        } else {
            // Find the first bad signature; everything before it stands.
            let bad = unchecked
                .iter()
                .position(|(e, _)| self.verify_signature(e).is_err())
                .map_or(cheap_ok, |i| vouched + i);
            if bad < cheap_ok {
                first_error = Some(EntryError::BadSignature);
            }
            bad
        };
        if let Some((last, _)) = verified.checked_sub(1).and_then(|i| run.get(i)) {
            self.head = Some(last.clone());
        }
        (verified, first_error)
    }

    fn check_cheap(
        &self,
        head: Option<&SignedHeader>,
        entry: &SignedHeader,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(), EntryError> {
        let h = entry.header();
        if h.author != *self.author.as_bytes() {
            return Err(EntryError::WrongAuthor);
        }
        if let Some(head) = head.filter(|head| head.header().seq == h.seq) {
            if head.id() == entry.id() {
                return Err(EntryError::AlreadyHave);
            }
            self.verify_signature(entry)?;
            let proof = ForkProof::new(&self.author, head.clone(), entry.clone())
                .ok_or(EntryError::BadSignature)?;
            return Err(EntryError::Fork(Box::new(proof)));
        }
        let expected = head.map_or(1, |head| head.header().seq.saturating_add(1));
        if h.seq != expected {
            return Err(EntryError::WrongSeq {
                expected,
                found: h.seq,
            });
        }
        if h.backlink != head.map(SignedHeader::id) {
            return Err(EntryError::WrongBacklink);
        }
        if h.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(EntryError::FromTheFuture {
                timestamp_ms: h.timestamp_ms,
                now_ms,
            });
        }
        if let Some(payload) = payload {
            check_payload(entry, payload)?;
        }
        Ok(())
    }

    fn verify_signature(&self, entry: &SignedHeader) -> Result<(), EntryError> {
        self.author
            .verify(&entry.signed_message(), &entry.signature())
            .map_err(|_| EntryError::BadSignature)
    }
}

/// Checks a payload against its entry's declared length and hash.
pub fn check_payload(entry: &SignedHeader, payload: &[u8]) -> Result<(), EntryError> {
    let declared = entry.header().payload_len;
    if payload.len() != declared as usize || payload.len() > MAX_PAYLOAD_LEN {
        return Err(EntryError::PayloadLength {
            declared,
            actual: payload.len(),
        });
    }
    if sha256(&[payload]) != entry.header().payload_hash {
        return Err(EntryError::PayloadHash);
    }
    Ok(())
}

/// Verifies the signatures of a run of one author's entries in one batch.
///
/// ed25519-dalek's batch check accepts a non-canonical or small-order `R`
/// that strict verification refuses; those are refused here first, so the
/// batch accepts the same signatures as entry-by-entry validation. (A mixed-
/// order `R` can still pass a batch by chance; only the feed's own author can
/// make one, and it gains nothing it could not get with a fork. PROTOCOL.md,
/// "Batch verification".)
fn batch_verify<'a>(author: &FeedId, run: impl ExactSizeIterator<Item = &'a SignedHeader>) -> bool {
    if run.len() == 0 {
        return true;
    }
    let n = run.len();
    let mut messages = Vec::with_capacity(n);
    let mut signatures = Vec::with_capacity(n);
    for entry in run {
        let sig = entry.signature();
        if !r_is_canonical_and_large(&sig) {
            return false;
        }
        messages.push(entry.signed_message());
        signatures.push(ed25519_dalek::Signature::from_bytes(&sig));
    }
    let messages: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let keys = vec![*author.verifying_key(); n];
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// The signatures of a run of one author's entries, checked apart from any
/// feed state: the expensive half of validation, which needs no head and so
/// can run on any thread, ahead of the chain checks
/// ([`Feed::append_run_checked`]). Only [`CheckedSignatures::check`] makes
/// one, and it names the entries it vouches for by id (the hash of the header
/// and the signature), so it cannot vouch for other bytes.
#[derive(Debug, Clone)]
pub struct CheckedSignatures {
    author: FeedId,
    /// The ids of the leading entries whose signatures hold, in order.
    ids: Vec<crate::ids::EntryId>,
}

impl CheckedSignatures {
    /// Checks the signatures of `run` (one batch; on failure, one by one to
    /// find the first bad one): the result vouches for the entries before it.
    pub fn check(author: &FeedId, run: &[SignedHeader]) -> Self {
        let good = if batch_verify(author, run.iter()) {
            run.len()
        } else {
            run.iter()
                .position(|e| author.verify(&e.signed_message(), &e.signature()).is_err())
                .unwrap_or(run.len())
        };
        Self {
            author: *author,
            ids: run.iter().take(good).map(SignedHeader::id).collect(),
        }
    }

    /// How many leading entries it vouches for.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it vouches for none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many leading entries of `run` it vouches for: `run` may start
    /// anywhere in the run that was checked (its first entries may have been
    /// held already), and must go on consecutively from there.
    fn vouched(&self, author: &FeedId, run: &[(SignedHeader, Option<&[u8]>)]) -> usize {
        if self.author != *author {
            return 0;
        }
        let Some((first, _)) = run.first() else {
            return 0;
        };
        let first = first.id();
        let Some(start) = self.ids.iter().position(|id| *id == first) else {
            return 0;
        };
        self.ids
            .iter()
            .skip(start)
            .zip(run)
            .take_while(|(id, (entry, _))| **id == entry.id())
            .count()
    }
}

/// The compressed encodings of the eight points of small order, sign bit cleared.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static TABLE: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    TABLE.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|p| {
            let mut b = p.compress().to_bytes();
            b[31] &= 0x7f;
            b
        })
    })
}

/// True when the `R` half of a signature is a canonical encoding (y < p) of a
/// point that does not have small order.
fn r_is_canonical_and_large(sig: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(sig.split_at(32).0);
    y[31] &= 0x7f;
    // y >= p = 2^255 - 19 exactly when bytes 1..31 are all 0xff (the top one
    // 0x7f once the sign is cleared) and byte 0 is at least 0xed.
    let (low, rest) = y.split_at(1);
    let all_ones = rest
        .split_last()
        .is_some_and(|(top, mid)| *top == 0x7f && mid.iter().all(|&b| b == 0xff));
    if all_ones && low.first().is_some_and(|&b| b >= 0xed) {
        return false;
    }
    !small_order_encodings().contains(&y)
}

/// Two signed headers by one author at one sequence number with different
/// ids: proof that the author forked its feed. Anyone can check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkProof {
    first: SignedHeader,
    second: SignedHeader,
}

/// Bytes of an encoded fork proof: two signed headers.
pub const FORK_PROOF_LEN: usize = 2 * SIGNED_HEADER_LEN;

impl ForkProof {
    /// A fork proof, if `a` and `b` really are two validly signed entries of
    /// `author` at the same sequence number with different ids.
    pub fn new(author: &FeedId, a: SignedHeader, b: SignedHeader) -> Option<Self> {
        let same_place = a.header().seq == b.header().seq
            && a.header().author == *author.as_bytes()
            && b.header().author == *author.as_bytes();
        if !same_place || a.id() == b.id() {
            return None;
        }
        for e in [&a, &b] {
            author.verify(&e.signed_message(), &e.signature()).ok()?;
        }
        // One order for the same pair, whichever arrived first.
        let (first, second) = if a.id() < b.id() { (a, b) } else { (b, a) };
        Some(Self { first, second })
    }

    /// The forked sequence number.
    pub fn seq(&self) -> u64 {
        self.first.header().seq
    }

    /// The two signed headers, the one with the smaller id first.
    pub fn headers(&self) -> (&SignedHeader, &SignedHeader) {
        (&self.first, &self.second)
    }

    /// The 364-byte encoding: the two signed headers, smaller id first.
    pub fn encode(&self) -> Vec<u8> {
        [self.first.as_bytes().as_slice(), self.second.as_bytes()].concat()
    }

    /// Reads and checks an encoded fork proof.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != FORK_PROOF_LEN {
            return None;
        }
        let (a, b) = bytes.split_at(SIGNED_HEADER_LEN);
        let a = SignedHeader::decode(a).ok()?;
        let b = SignedHeader::decode(b).ok()?;
        let author = FeedId::from_bytes(&a.header().author).ok()?;
        let proof = Self::new(&author, a, b)?;
        (proof.encode() == bytes).then_some(proof)
    }
}

/// The kind of payload an entry carries, for callers that only hold the header.
pub fn payload_kind(entry: &SignedHeader) -> PayloadKind {
    entry.header().payload_kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use crate::entry::PayloadKind;

    const NOW: u64 = 1_700_000_000_000;

    fn chain(kp: &Keypair, n: usize) -> Vec<(SignedHeader, Vec<u8>)> {
        let mut out: Vec<(SignedHeader, Vec<u8>)> = Vec::new();
        for i in 0..n {
            let payload = format!("{{\"n\":{i}}}").into_bytes();
            let prev = out.last().map(|(e, _)| e);
            let e = SignedHeader::sign_next(kp, prev, NOW, PayloadKind::Public, &payload).unwrap();
            out.push((e, payload));
        }
        out
    }

    #[test]
    fn a_chain_appends_and_every_rule_is_enforced() {
        let kp = Keypair::from_seed(&[3; 32]);
        let entries = chain(&kp, 3);
        let mut feed = Feed::new(kp.feed_id());
        let (e1, p1) = &entries[0];
        assert_eq!(
            feed.check(&entries[1].0, None, NOW),
            Err(EntryError::WrongSeq {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            feed.check(e1, Some(b"other"), NOW),
            Err(EntryError::PayloadLength {
                declared: 7,
                actual: 5
            })
        );
        assert_eq!(
            feed.check(e1, Some(b"{\"n\":9}"), NOW),
            Err(EntryError::PayloadHash)
        );
        assert_eq!(
            feed.check(e1, Some(p1), NOW - MAX_CLOCK_SKEW_MS - 1),
            Err(EntryError::FromTheFuture {
                timestamp_ms: NOW,
                now_ms: NOW - MAX_CLOCK_SKEW_MS - 1
            })
        );
        feed.append(e1.clone(), Some(p1), NOW).unwrap();
        assert_eq!(feed.check(e1, Some(p1), NOW), Err(EntryError::AlreadyHave));
        feed.append(entries[1].0.clone(), None, NOW).unwrap();
        assert_eq!(feed.seq(), 2);

        let stranger = Keypair::from_seed(&[4; 32]);
        let foreign = chain(&stranger, 3);
        assert_eq!(
            feed.check(&foreign[2].0, None, NOW),
            Err(EntryError::WrongAuthor)
        );
    }

    #[test]
    fn a_fork_at_the_head_yields_a_checkable_proof() {
        let kp = Keypair::from_seed(&[5; 32]);
        let entries = chain(&kp, 2);
        let mut feed = Feed::new(kp.feed_id());
        feed.append(entries[0].0.clone(), None, NOW).unwrap();
        let other =
            SignedHeader::sign_next(&kp, None, NOW, PayloadKind::Public, b"forked").unwrap();
        let Err(EntryError::Fork(proof)) = feed.check(&other, None, NOW) else {
            panic!("expected a fork");
        };
        assert_eq!(proof.seq(), 1);
        assert_eq!(ForkProof::decode(&proof.encode()).as_ref(), Some(&*proof));
        // A next entry whose backlink skips our head is refused.
        let after_other =
            SignedHeader::sign_next(&kp, Some(&other), NOW, PayloadKind::Public, b"x").unwrap();
        assert_eq!(
            feed.check(&after_other, None, NOW),
            Err(EntryError::WrongBacklink)
        );
    }

    #[test]
    fn batch_append_takes_the_valid_prefix() {
        let kp = Keypair::from_seed(&[6; 32]);
        let entries = chain(&kp, 10);
        let mut run: Vec<(SignedHeader, Option<&[u8]>)> = entries
            .iter()
            .map(|(e, p)| (e.clone(), Some(p.as_slice())))
            .collect();
        let mut feed = Feed::new(kp.feed_id());
        assert_eq!(feed.append_run(&run, NOW), (10, None));

        // Corrupt the signature of entry 6 (index 5): five are taken.
        let mut bytes = *run[5].0.as_bytes();
        bytes[150] ^= 1;
        run[5].0 = SignedHeader::decode(&bytes).unwrap();
        let mut feed = Feed::new(kp.feed_id());
        let (n, err) = feed.append_run(&run, NOW);
        assert_eq!(n, 5);
        // Entry 7's backlink no longer matches the altered entry 6's id, so the
        // cheap pass stops at index 6 and the batch finds the signature at 5.
        assert_eq!(err, Some(EntryError::BadSignature));
        assert_eq!(feed.seq(), 5);
    }

    #[test]
    fn signatures_checked_ahead_vouch_only_for_the_entries_they_checked() {
        let kp = Keypair::from_seed(&[6; 32]);
        let entries = chain(&kp, 10);
        let headers: Vec<SignedHeader> = entries.iter().map(|(e, _)| e.clone()).collect();
        let run: Vec<(SignedHeader, Option<&[u8]>)> = entries
            .iter()
            .map(|(e, p)| (e.clone(), Some(p.as_slice())))
            .collect();
        let checked = CheckedSignatures::check(&kp.feed_id(), &headers);
        assert_eq!(checked.len(), 10);
        let mut feed = Feed::new(kp.feed_id());
        assert_eq!(
            feed.append_run_checked(&run, NOW, Some(&checked)),
            (10, None)
        );

        // The run may start later than the checked one (entries held already).
        let mut feed = Feed::new(kp.feed_id());
        assert_eq!(feed.append_run(&run[..4], NOW), (4, None));
        assert_eq!(checked.vouched(&kp.feed_id(), &run[4..]), 6);
        assert_eq!(
            feed.append_run_checked(&run[4..], NOW, Some(&checked)),
            (6, None)
        );

        // A bad signature: the check vouches for the entries before it only.
        let mut bad = headers.clone();
        let mut bytes = *bad[5].as_bytes();
        bytes[150] ^= 1;
        bad[5] = SignedHeader::decode(&bytes).unwrap();
        assert_eq!(CheckedSignatures::check(&kp.feed_id(), &bad).len(), 5);

        // A vouch for the good entries says nothing of altered ones: the
        // altered entry 6 is checked here and refused.
        let mut altered = run.clone();
        altered[5].0 = bad[5].clone();
        let mut feed = Feed::new(kp.feed_id());
        let (n, err) = feed.append_run_checked(&altered, NOW, Some(&checked));
        assert_eq!((n, err), (5, Some(EntryError::BadSignature)));

        // Another author's check vouches for nothing.
        let stranger = Keypair::from_seed(&[8; 32]);
        let theirs = CheckedSignatures::check(&stranger.feed_id(), &headers);
        assert!(theirs.is_empty());
        assert_eq!(theirs.vouched(&kp.feed_id(), &run), 0);
    }

    #[test]
    fn small_order_and_non_canonical_r_are_refused_before_the_batch() {
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity
        assert!(!r_is_canonical_and_large(&sig));
        let mut sig = [0xffu8; 64];
        sig[31] = 0x7f; // y = 2^255 - 1 >= p
        assert!(!r_is_canonical_and_large(&sig));
        let kp = Keypair::from_seed(&[7; 32]);
        assert!(r_is_canonical_and_large(&kp.sign(b"m")));
    }
}
