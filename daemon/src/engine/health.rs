//! Health checks: the owner's node asks each custodian, every
//! `health_check_interval`, to prove it still holds its shard and can open
//! it; a custodian with no good proof for longer than `custodian_silent_after`
//! is reported silent (an audit line and an event, once, until it answers).
//!
//! - The **owner** ([`on_deadlines`]): for every live backup whose round is
//!   due, reports the custodians gone silent, then sends a `challenge` with a
//!   fresh nonce, boxed to the custodians (8 per entry). [`on_proof`] takes a
//!   `proof` only for the latest challenge boxed to that custodian, and
//!   checks it against the check key in its `root` and the payload of its own
//!   `shard` entry (`sherd_protocol::health`).
//! - A **custodian** ([`on_challenge`]): answers the owner of a shard it holds
//!   and still has, at most five times a second per backup, with a `proof` computed
//!   from its inner shard's check key and the shard entry's payload.
//!
//! Rounds are persisted deadlines like the veto windows: a restart neither
//! skips nor repeats one.

use sherd_protocol::content::{Challenge, Content, Hex32, Proof, V1};
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::{BackupId, EntryId, FeedId, envelope, health};
use zeroize::Zeroizing;

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{self, BackupRecord, ChallengeRecord};
use sherd_protocol::envelope::MAX_RECIPIENTS;

use super::requests::{boxed_to, open_held};
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::rng::os_rng;
use crate::store::EngineUpdate;

/// A custodian answers one challenge per backup in this long at most. Each
/// proof answers an entry of the owner's, so there is no amplification to
/// fear; this only keeps a flood of challenges (a stolen owner key) from
/// turning into a flood of commits. Well under the shortest round interval
/// (1 s), so that rounds arriving a little early are still all answered.
const MIN_PROOF_SPACING_MS: u64 = 200;

/// Whether the owner still checks on this backup's custodians.
fn checked(record: &BackupRecord) -> bool {
    record.revoked.is_none() && record.redeemed.is_none()
}

/// When the backup's next round is due.
fn round_due(record: &BackupRecord, interval_ms: u64) -> u64 {
    record
        .last_check_ms
        .unwrap_or(record.created_ms)
        .saturating_add(interval_ms)
}

/// The earliest round due among this node's backups.
pub(super) fn next_deadline(engine: &Engine) -> Result<Option<u64>, EngineError> {
    let interval = engine.options.health_check_interval_ms;
    Ok(records::backups(&engine.store)?
        .into_iter()
        .filter(|(_, r)| checked(r))
        .map(|(_, r)| round_due(&r, interval))
        .min())
}

/// Runs every round that is due.
pub(super) async fn on_deadlines(engine: &mut Engine) -> Result<(), EngineError> {
    let now = clock::now_ms();
    let interval = engine.options.health_check_interval_ms;
    let due: Vec<(BackupId, BackupRecord)> = records::backups(&engine.store)?
        .into_iter()
        .filter(|(_, r)| checked(r) && round_due(r, interval) <= now)
        .collect();
    for (backup, record) in due {
        round(engine, backup, record, now).await?;
    }
    Ok(())
}

/// One round for one backup: report who went silent, challenge everyone.
async fn round(
    engine: &mut Engine,
    backup: BackupId,
    mut record: BackupRecord,
    now: u64,
) -> Result<(), EngineError> {
    let silent_after = engine.options.custodian_silent_after_ms;
    let mut updates = Vec::new();
    let mut silent = Vec::new();
    for c in &mut record.custodians {
        let heard = c.last_proof_ms.unwrap_or(record.created_ms);
        if c.silent_since_ms.is_none() && now.saturating_sub(heard) >= silent_after {
            c.silent_since_ms = Some(now);
            silent.push((c.feed, heard));
            let line = AuditLine::new(now, "custodian_silent", Outcome::Ok)
                .backup(backup)
                .peer(c.feed)
                .reason(format!(
                    "no proof of its shard for {} s",
                    now.saturating_sub(heard) / 1000
                ));
            updates.push(EngineUpdate::Audit(line.to_json()));
        }
    }
    let mut nonce = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut os_rng(), &mut nonce);
    let custodians: Vec<FeedId> = record.custodians.iter().map(|c| c.feed).collect();
    let publish = boxed_to(
        engine,
        &custodians,
        &Content::Challenge(Challenge {
            version: V1,
            backup,
            nonce: Hex32(nonce),
        }),
    )?;
    let line = AuditLine::new(now, "health_check_sent", Outcome::Ok)
        .backup(backup)
        .reason(format!("{} custodians challenged", custodians.len()));
    updates.push(EngineUpdate::Audit(line.to_json()));
    record.last_check_ms = Some(now);
    engine
        .commit(None, publish, move |published: &[SignedHeader]| {
            // `boxed_to` boxes the custodians in order, 8 per entry.
            for (i, c) in record.custodians.iter_mut().enumerate() {
                if let Some(entry) = published.get(i / MAX_RECIPIENTS) {
                    c.challenge = Some(ChallengeRecord {
                        entry: entry.id(),
                        nonce,
                        sent_ms: now,
                    });
                }
            }
            updates.push(records::backup_update(backup, &record));
            updates
        })
        .await?;
    for (custodian, heard) in silent {
        tracing::warn!(%backup, %custodian, "engine: custodian silent");
        engine.emit(EngineEvent::CustodianSilent {
            backup,
            custodian,
            last_heard_ms: heard,
        });
    }
    Ok(())
}

/// On the owner: a custodian's `proof`.
pub(super) async fn on_proof(
    engine: &mut Engine,
    item: &Item,
    proof: &Proof,
) -> Result<(), EngineError> {
    let custodian = item.feed;
    let backup = proof.backup;
    let now = clock::now_ms();
    let line = |event, outcome, reason: &str| {
        AuditLine::new(now, event, outcome)
            .backup(backup)
            .peer(custodian)
            .entry(item.id)
            .reason(reason.to_owned())
    };
    let Some(mut record) = records::backup(&engine.store, &backup)? else {
        let why = "no backup of this node has that id";
        return engine
            .commit_audit(item, line("proof_ignored", Outcome::Ignored, why))
            .await;
    };
    if !checked(&record) {
        // Revoked or redeemed since the challenge went out: our copy of the
        // shard payload is erased, and there is nothing left to check.
        let why = "the backup has ended (revoked or redeemed)";
        return engine
            .commit_audit(item, line("proof_ignored", Outcome::Ignored, why))
            .await;
    }
    let Some(index) = record.custodians.iter().position(|c| c.feed == custodian) else {
        let why = "the sender is not a custodian of this backup";
        return engine
            .commit_audit(item, line("proof_ignored", Outcome::Refused, why))
            .await;
    };
    let entry = record.custodians[index].shard;
    let Some(challenge) = record.custodians[index]
        .challenge
        .clone()
        .filter(|c| c.entry == proof.challenge)
    else {
        let why = "it answers no open challenge of ours (answered already, or an older one)";
        return engine
            .commit_audit(item, line("proof_ignored", Outcome::Ignored, why))
            .await;
    };
    let good = match check(
        engine,
        &record,
        index,
        entry,
        &challenge.nonce,
        &proof.proof.0,
    ) {
        Ok(good) => good,
        Err(e) => {
            // Not this entry's fault: audited, and the cursor moves on
            // rather than stopping at it.
            let why = format!("cannot check it: {e}");
            tracing::warn!(%backup, %custodian, error = %e, "engine: cannot check a proof");
            return engine
                .commit_audit(item, line("proof_ignored", Outcome::Ignored, &why))
                .await;
        }
    };
    let custodian_record = &mut record.custodians[index];
    let back_from_silence = good && custodian_record.silent_since_ms.is_some();
    let audit = if good {
        custodian_record.challenge = None;
        custodian_record.last_proof_ms = Some(now);
        custodian_record.silent_since_ms = None;
        line("proof_ok", Outcome::Ok, "holds its shard and can open it")
    } else {
        line(
            "proof_refused",
            Outcome::Refused,
            "the proof does not match its shard",
        )
    };
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                records::backup_update(backup, &record),
                EngineUpdate::Audit(audit.to_json()),
            ]
        })
        .await?;
    engine.emit(EngineEvent::ProofReceived {
        backup,
        custodian,
        good,
        back_from_silence,
    });
    Ok(())
}

/// Recomputes `custodian`'s proof from our `root` (its check key) and our
/// `shard` entry for it (its payload).
fn check(
    engine: &Engine,
    record: &BackupRecord,
    index: usize,
    shard_entry: EntryId,
    nonce: &[u8; 32],
    claimed: &[u8; 32],
) -> Result<bool, EngineError> {
    let missing = |what: &str| EngineError::Missing(format!("{what} of a backup of ours"));
    let custodian = record.custodians[index].feed;
    let root_payload = engine
        .store
        .entry(&record.root)?
        .and_then(|e| e.payload)
        .ok_or_else(|| missing("the root entry"))?;
    // The root's JSON holds every check key: zeroized once read.
    let plaintext = Zeroizing::new(
        envelope::open(&engine.secret, &engine.me, &root_payload)
            .map_err(|_| missing("an openable root"))?
            .ok_or_else(|| missing("a root boxed to us"))?,
    );
    let Ok(Content::Root(root)) = Content::parse(&plaintext) else {
        return Err(missing("a root entry holding a root"));
    };
    let Some(check_key) = root
        .custodians
        .iter()
        .find(|c| c.feed == custodian)
        .map(|c| c.check_key.clone())
    else {
        return Err(missing("the check key of a custodian"));
    };
    let shard_payload = engine
        .store
        .entry(&shard_entry)?
        .and_then(|e| e.payload)
        .ok_or_else(|| missing("a shard entry's payload"))?;
    Ok(health::verify(
        &check_key.0,
        &root.backup,
        &custodian,
        nonce,
        &shard_payload,
        claimed,
    ))
}

/// On a custodian: the owner's `challenge`.
pub(super) async fn on_challenge(
    engine: &mut Engine,
    item: &Item,
    challenge: &Challenge,
) -> Result<(), EngineError> {
    let owner = item.feed;
    let backup = challenge.backup;
    let now = clock::now_ms();
    let ignored = |reason: &str| {
        AuditLine::new(now, "challenge_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(owner)
            .entry(item.id)
            .reason(reason.to_owned())
    };
    let Some(mut held) = records::held_shard(&engine.store, &backup)?.filter(|h| h.owner == owner)
    else {
        let line = ignored("this node holds no shard of that backup of that owner");
        return engine.commit_audit(item, line).await;
    };
    if held.revoked.is_some() || held.redeemed.is_some() {
        let line = ignored("the shard is erased");
        return engine.commit_audit(item, line).await;
    }
    if held
        .last_proof_ms
        .is_some_and(|at| now.saturating_sub(at) < MIN_PROOF_SPACING_MS)
    {
        let line = ignored("answered a challenge for this backup less than 0.2 s ago");
        return engine.commit_audit(item, line).await;
    }
    let (verified, payload) = match open_held(engine, &held) {
        Ok(opened) => opened,
        Err(e) => {
            let line = ignored(&format!("cannot prove: {e}"));
            return engine.commit_audit(item, line).await;
        }
    };
    let tag = health::proof(
        &verified.inner().check_key,
        &backup,
        &engine.me,
        &challenge.nonce.0,
        &payload,
    );
    drop(verified);
    let publish = boxed_to(
        engine,
        &[owner],
        &Content::Proof(Proof {
            version: V1,
            backup,
            challenge: item.id,
            proof: Hex32(tag),
        }),
    )?;
    held.last_proof_ms = Some(now);
    let line = AuditLine::new(now, "proof_sent", Outcome::Ok)
        .backup(backup)
        .peer(owner)
        .entry(item.id)
        .reason("answered the owner's health check");
    engine
        .commit(Some(item), publish, move |_| {
            vec![
                records::held_update(backup, &held),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    Ok(())
}
