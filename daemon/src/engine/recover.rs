//! The recipient's side of a recovery: the owner after an owner request
//! (`reply` entries), or the owner's new identity after a lost-device request
//! (`forward` entries). Shards go into a [`Recovery`]; at `threshold` the
//! secret is rebuilt and kept in memory until a client takes it, once.
//!
//! What is stored: the recovery's record (`engine::records::RecoveryRecord`),
//! which points at the entries whose shards were taken or refused. What is
//! not: a shard or the secret. After a restart the engine rebuilds the
//! in-memory [`Recovery`] from those entries when it is next needed; once the
//! secret has been handed over, their payloads are erased, so the node can
//! no longer rebuild it.
//!
//! A shard counts only for a recovery this node started (owner) or was told
//! of by a request naming it recipient (new identity), and only if it answers
//! one of that recovery's requests. The state machine refuses the rest with
//! a reason (PROTOCOL.md section 9): every refusal is recorded, audited and
//! reported, and the recovery goes on with the others.

use sherd_protocol::content::{Content, Deny, Forward, Reply, Request, RequestKind};
use sherd_protocol::envelope;
use sherd_protocol::recovery::{Progress, Recovery, Rejected};
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{BackupId, FeedId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{
    self, RecoveryRecord, RecoveryState, RequestRecord, RequestState, Role, ShardRef,
};
use super::redeem;
use super::requests::{new_recovery, recipient_follows};
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::store::EngineUpdate;

fn recovery_update(backup: BackupId, record: &RecoveryRecord) -> EngineUpdate {
    EngineUpdate::Recovery {
        id: backup,
        record: records::encode(record),
    }
}

/// On the new identity: a custodian's lost-device request naming this node
/// as recipient. Starts (or joins) the recovery and follows the custodians,
/// whose `forward` entries will carry the shards.
pub(super) async fn on_lost_device_request(
    engine: &mut Engine,
    item: &Item,
    request: &Request,
) -> Result<(), EngineError> {
    let requester = item.feed;
    let backup = request.backup;
    let now = clock::now_ms();
    let line = |event, outcome| {
        AuditLine::new(now, event, outcome)
            .backup(backup)
            .peer(requester)
            .entry(item.id)
            .request(request.id)
    };
    if request.owner == engine.me {
        let line = line("request_refused", Outcome::Refused)
            .reason("it names this node as both the owner and its new identity");
        return engine.commit_audit(item, line).await;
    }
    let existing = records::recovery(&engine.store, &backup)?;
    let mut recovery = match existing {
        Some(r) if r.owner != request.owner => {
            let line = line("request_refused", Outcome::Refused)
                .reason("a recovery of this backup id for another owner is under way");
            return engine.commit_audit(item, line).await;
        }
        Some(r) if matches!(r.state, RecoveryState::Collecting | RecoveryState::Complete) => r,
        // None, or over: start again.
        _ => {
            engine.recoveries.remove(&backup);
            new_recovery(request.owner, RequestKind::LostDevice, None, now)
        }
    };
    recovery.requests.push((requester, request.id));
    let record = RequestRecord {
        kind: request.kind,
        role: Role::Recipient,
        backup,
        owner: request.owner,
        recipient: engine.me,
        custodians: request.custodians.clone(),
        entry: item.id,
        received_ms: now,
        expires_ms: request.expires_ms,
        state: RequestState::Open,
    };
    let id = request.id;
    let line = line("recovery_started", Outcome::Ok).reason(format!(
        "lost-device recovery; {} custodians asked to forward",
        request.custodians.len()
    ));
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                EngineUpdate::Request {
                    requester,
                    id,
                    record: records::encode(&record),
                },
                recovery_update(backup, &recovery),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::info!(%backup, request = %id, %requester, "engine: lost-device recovery toward this node");
    engine.follow(recipient_follows(requester, request)).await;
    engine.emit(EngineEvent::RequestReceived {
        request: id,
        kind: request.kind,
        backup,
        requester,
        recipient: engine.me,
    });
    Ok(())
}

/// On the owner: a custodian's `reply` to an owner request.
pub(super) async fn on_reply(
    engine: &mut Engine,
    item: &Item,
    reply: &Reply,
) -> Result<(), EngineError> {
    let me = engine.me;
    // Our own backup (owner request), or one we were granted (emergency).
    let found = records::recovery(&engine.store, &reply.backup)?.filter(|r| {
        ((r.kind == RequestKind::Owner && r.owner == me) || r.kind == RequestKind::Emergency)
            && r.requests
                .iter()
                .any(|(requester, id)| *requester == me && *id == reply.request)
    });
    let Some(recovery) = found else {
        return not_ours(engine, item, reply.backup, "reply").await;
    };
    take_shard(engine, item, reply.backup, recovery, &reply.sealed.0).await
}

/// On the new identity: a custodian's `forward` for a lost-device request.
pub(super) async fn on_forward(
    engine: &mut Engine,
    item: &Item,
    forward: &Forward,
) -> Result<(), EngineError> {
    let found = records::recovery(&engine.store, &forward.backup)?.filter(|r| {
        r.kind == RequestKind::LostDevice
            && r.owner == forward.owner
            && r.requests.iter().any(|(_, id)| *id == forward.request)
    });
    let Some(recovery) = found else {
        return not_ours(engine, item, forward.backup, "forward").await;
    };
    take_shard(engine, item, forward.backup, recovery, &forward.sealed.0).await
}

async fn not_ours(
    engine: &mut Engine,
    item: &Item,
    backup: BackupId,
    what: &'static str,
) -> Result<(), EngineError> {
    let line = AuditLine::new(clock::now_ms(), "shard_ignored", Outcome::Ignored)
        .backup(backup)
        .peer(item.feed)
        .entry(item.id)
        .reason(format!(
            "the {what} answers no recovery request of this node"
        ));
    engine.commit_audit(item, line).await
}

/// The in-memory recovery of `backup`, rebuilt from the entries its record
/// lists if the engine does not hold it (after a restart, or a failed step).
fn live<'a>(engine: &'a mut Engine, backup: BackupId, record: &RecoveryRecord) -> &'a mut Recovery {
    let key = engine.key.clone();
    if !engine.recoveries.contains_key(&backup) {
        let mut recovery = Recovery::new(record.owner, backup, key.x25519_secret());
        for taken in &record.shards {
            match sealed_shard(engine, taken) {
                Some(sealed) => {
                    if let Err(e) = recovery.add_sealed(&taken.custodian, &sealed) {
                        tracing::warn!(%backup, entry = %taken.entry, error = %e, "engine: a shard taken before no longer counts");
                    }
                }
                None => {
                    tracing::warn!(%backup, entry = %taken.entry, "engine: a shard taken before is gone from the store");
                }
            }
        }
        engine.recoveries.insert(backup, recovery);
    }
    // Present: inserted just above when missing.
    engine
        .recoveries
        .entry(backup)
        .or_insert_with(|| Recovery::new(record.owner, backup, key.x25519_secret()))
}

/// The sealed shard carried by a `reply` / `forward` entry taken before.
fn sealed_shard(engine: &Engine, taken: &ShardRef) -> Option<Vec<u8>> {
    let entry = engine.store.entry(&taken.entry).ok()??;
    let payload = entry.payload?;
    let plaintext = envelope::open(&engine.secret, &taken.custodian, &payload).ok()??;
    match Content::parse(&plaintext).ok()? {
        Content::Reply(reply) => Some(reply.sealed.0),
        Content::Forward(forward) => Some(forward.sealed.0),
        _ => None,
    }
}

/// Feeds one sealed shard, from `item`, to the recovery of `backup`.
async fn take_shard(
    engine: &mut Engine,
    item: &Item,
    backup: BackupId,
    mut record: RecoveryRecord,
    sealed: &[u8],
) -> Result<(), EngineError> {
    let custodian = item.feed;
    let now = clock::now_ms();
    if record.shards.iter().any(|s| s.entry == item.id) {
        // Taken already (a replay after a crash): nothing to do again.
        engine.advance(item.feed, item.seq);
        return Ok(());
    }
    let line = |event, outcome| {
        AuditLine::new(now, event, outcome)
            .backup(backup)
            .peer(custodian)
            .entry(item.id)
    };
    if record.state != RecoveryState::Collecting {
        let line = line("shard_ignored", Outcome::Ignored).reason(format!(
            "the recovery is {} already; erased",
            record.state.name()
        ));
        return surplus(engine, item, backup, record, line).await;
    }
    let taken = live(engine, backup, &record)
        .add_sealed(&custodian, sealed)
        .cloned();
    let (audit, event) = match taken {
        Ok(progress) => {
            record.shards.push(ShardRef {
                custodian,
                entry: item.id,
                reason: None,
            });
            match progress {
                Progress::Collecting { have, threshold } => {
                    let threshold = threshold.and_then(|t| u8::try_from(t).ok());
                    record.threshold = threshold.or(record.threshold);
                    let t = record.threshold.unwrap_or(0);
                    (
                        line("shard_taken", Outcome::Ok).reason(format!("{have} of {t}")),
                        EngineEvent::RecoveryProgress {
                            backup,
                            shards: have,
                            threshold: t,
                        },
                    )
                }
                Progress::Complete => {
                    record.state = RecoveryState::Complete;
                    (
                        line("recovery_complete", Outcome::Ok)
                            .reason("the secret waits in memory for one `recover`"),
                        EngineEvent::RecoveryComplete { backup },
                    )
                }
                Progress::Failed(e) => {
                    record.state = RecoveryState::Failed {
                        reason: e.to_string(),
                    };
                    (
                        line("recovery_failed", Outcome::Refused).reason(e.to_string()),
                        EngineEvent::RecoveryFailed {
                            backup,
                            reason: e.to_string(),
                        },
                    )
                }
            }
        }
        Err(Rejected::Duplicate) => {
            let line = line("shard_ignored", Outcome::Ignored)
                .reason("a shard from this custodian is in already; erased");
            return surplus(engine, item, backup, record, line).await;
        }
        Err(rejected) => {
            let reason = rejected.to_string();
            record.rejected.push(ShardRef {
                custodian,
                entry: item.id,
                reason: Some(reason.clone()),
            });
            tracing::info!(%backup, %custodian, %reason, "engine: shard refused");
            (
                line("shard_refused", Outcome::Refused).reason(reason.clone()),
                EngineEvent::Refused {
                    what: "shard",
                    peer: custodian,
                    entry: item.id,
                    reason,
                },
            )
        }
    };
    let committed = engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                recovery_update(backup, &record),
                EngineUpdate::Audit(audit.to_json()),
            ]
        })
        .await;
    if let Err(e) = committed {
        // The in-memory state ran ahead of the store: drop it, to rebuild
        // from the record when the entry is retried.
        engine.recoveries.remove(&backup);
        return Err(e.into());
    }
    engine.emit(event);
    Ok(())
}

/// A shard the recovery does not need (it arrived late, or twice): noted in
/// the record, then its payload erased, so that a late reply cannot rebuild
/// the secret again (a one-time backup, 2 of 5: three late replies would).
/// Start erases the noted ones again, for a stop in between.
async fn surplus(
    engine: &mut Engine,
    item: &Item,
    backup: BackupId,
    mut record: RecoveryRecord,
    line: AuditLine,
) -> Result<(), EngineError> {
    record.surplus.push(item.id);
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                recovery_update(backup, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    erase_shards(engine, &[item.id]).await;
    Ok(())
}

/// A custodian's `deny` of a request this node made.
pub(super) async fn on_deny(
    engine: &mut Engine,
    item: &Item,
    deny: &Deny,
) -> Result<(), EngineError> {
    // As a custodian: the owner vetoing a trustee's request.
    if super::emergency::on_owner_veto(engine, item, deny).await? {
        return Ok(());
    }
    let me = engine.me;
    let custodian = item.feed;
    let now = clock::now_ms();
    let asked = records::request(&engine.store, &me, &deny.request)?.filter(|r| {
        r.role == Role::Requester
            && r.backup == deny.backup
            && (r.custodians.contains(&custodian)
                || (r.kind == RequestKind::Emergency && r.owner == custodian))
    });
    if asked.is_none() {
        let line = AuditLine::new(now, "deny_ignored", Outcome::Ignored)
            .backup(deny.backup)
            .peer(custodian)
            .entry(item.id)
            .request(deny.request)
            .reason("it denies no request this node made to that custodian");
        return engine.commit_audit(item, line).await;
    }
    let mut updates = Vec::new();
    if let Some(mut recovery) = records::recovery(&engine.store, &deny.backup)?
        .filter(|r| r.requests.contains(&(me, deny.request)))
    {
        if recovery.kind == RequestKind::Emergency && recovery.owner == custodian {
            // The owner's veto: no custodian will release.
            super::emergency::vetoed_recovery(&mut recovery, custodian, deny.reason.clone());
            engine.recoveries.remove(&deny.backup);
        } else {
            recovery.denied.push((custodian, deny.reason.clone()));
        }
        updates.push(recovery_update(deny.backup, &recovery));
    }
    if let Some(mut request) =
        asked.filter(|r| r.kind == RequestKind::Emergency && r.owner == custodian)
    {
        request.state = RequestState::Vetoed;
        updates.push(EngineUpdate::Request {
            requester: me,
            id: deny.request,
            record: records::encode(&request),
        });
    }
    let line = AuditLine::new(now, "request_denied_by_custodian", Outcome::Ok)
        .backup(deny.backup)
        .peer(custodian)
        .entry(item.id)
        .request(deny.request);
    updates.push(EngineUpdate::Audit(line.to_json()));
    engine
        .commit(Some(item), Vec::new(), move |_| updates)
        .await?;
    engine.emit(EngineEvent::RequestDenied {
        request: deny.request,
        backup: deny.backup,
        by: custodian,
    });
    Ok(())
}

/// Hands over the secret of a complete recovery, once: the record says
/// `delivered` and the shards' payloads are erased before it is returned.
pub(super) async fn take_secret(
    engine: &mut Engine,
    backup: BackupId,
) -> Result<SecretMaterial, EngineError> {
    let Some(mut record) = records::recovery(&engine.store, &backup)? else {
        return Err(EngineError::UnknownRecovery(backup));
    };
    match &record.state {
        RecoveryState::Complete => {}
        RecoveryState::Collecting => {
            let have = record.shards.len();
            return Err(EngineError::NotRecovered(match record.threshold {
                Some(t) => format!("{have} of {t} shards in"),
                None => format!("{have} shards in, threshold not known yet"),
            }));
        }
        RecoveryState::Delivered { .. } => return Err(EngineError::AlreadyDelivered(backup)),
        RecoveryState::Failed { reason } => {
            return Err(EngineError::RecoveryFailed(reason.clone()));
        }
    }
    let secret = live(engine, backup, &record).take_secret();
    engine.recoveries.remove(&backup);
    let Some(secret) = secret else {
        return Err(EngineError::Missing(format!(
            "the shards of backup {backup} no longer rebuild its secret"
        )));
    };
    let now = clock::now_ms();
    record.state = RecoveryState::Delivered { at_ms: now };
    let erase: Vec<_> = record.shards.iter().map(|s| s.entry).collect();
    let mut ended = Vec::new();
    for (requester, id) in &record.requests {
        ended.push(*requester);
        if let Some(request) = records::request(&engine.store, requester, id)? {
            ended.extend(request.custodians);
        }
    }
    let line = AuditLine::new(now, "secret_delivered", Outcome::Ok)
        .backup(backup)
        .reason("handed to a client once; the shards are erased");
    // A one-time backup is used up now: telling the custodians goes in the
    // same transaction as the delivery, so neither happens without the other.
    let (publish, redemption) = match redeem::on_delivery(engine, backup, &record, now)? {
        Some(r) => (r.publish, vec![r.grant, r.audit]),
        None => (Vec::new(), Vec::new()),
    };
    engine
        .commit(None, publish, move |_| {
            let mut updates = vec![
                recovery_update(backup, &record),
                EngineUpdate::Audit(line.to_json()),
            ];
            updates.extend(redemption);
            updates
        })
        .await?;
    erase_shards(engine, &erase).await;
    // The flow is over: what it followed, and nothing else needs, goes.
    engine.release_follows(ended).await;
    tracing::info!(%backup, "engine: recovered secret handed over");
    Ok(secret)
}

/// Erases the payloads of the entries that carried a delivered recovery's
/// shards (sealed to us, they would rebuild the secret). Also run on start,
/// for a crash between the delivery and the erasure.
pub(super) async fn erase_shards(engine: &Engine, entries: &[sherd_protocol::EntryId]) {
    if entries.is_empty() {
        return;
    }
    if let Err(e) = engine.store.erase_payloads(entries.to_vec()).await {
        tracing::warn!(error = %e, "engine: cannot erase delivered shards; will retry on start");
    }
}

/// Feeds to follow again on start: for each recovery still collecting on
/// this node as a new identity, the custodians its requests named.
pub(super) fn follows_on_start(engine: &Engine) -> Result<Vec<FeedId>, EngineError> {
    let collecting: Vec<(BackupId, RecoveryRecord)> = records::recoveries(&engine.store)?
        .into_iter()
        .filter(|(_, r)| r.state == RecoveryState::Collecting && r.kind == RequestKind::LostDevice)
        .collect();
    let mut follows = Vec::new();
    for (_, recovery) in collecting {
        for (requester, id) in &recovery.requests {
            follows.push(*requester);
            if let Some(request) = records::request(&engine.store, requester, id)? {
                follows.extend(request.custodians);
            }
        }
    }
    Ok(follows)
}

/// Entries whose payloads must be gone: the shards of delivered recoveries,
/// and the surplus shards of any.
pub(super) fn delivered_shards(
    engine: &Engine,
) -> Result<Vec<sherd_protocol::EntryId>, EngineError> {
    Ok(records::recoveries(&engine.store)?
        .into_iter()
        .flat_map(|(_, r)| {
            let delivered = matches!(r.state, RecoveryState::Delivered { .. });
            r.shards
                .into_iter()
                .filter(move |_| delivered)
                .map(|s| s.entry)
                .chain(r.surplus)
        })
        .collect())
}
