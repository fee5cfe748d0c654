//! Recovery requests (flows 2 and 3): making one, deciding whether a request
//! from a peer may be answered, and releasing this node's shard at most once.
//!
//! Who may ask a custodian for its shard:
//! - `owner`: the backup's owner, for itself (`requester == owner ==
//!   recipient`);
//! - `lost_device`: another custodian of the same backup (in the
//!   owner-signed policy), toward a new identity that is neither the owner,
//!   nor a custodian, nor a trustee of it.
//!
//! Anything else is refused with a reason and audited; `emergency` waits for
//! the veto machinery (issue 5) and is audited as not handled.
//!
//! At most once: a request's record (keyed by requester and request id) goes
//! from `pending` to `released` in the same transaction that publishes the
//! `reply` / `forward`. The engine runs one step at a time, so two approvals
//! of one request are serialised: the second finds `released` and is refused;
//! a restart finds the record as committed.
//!
//! What this module never does: keep the opened shard past the reseal (it is
//! zeroized when dropped), or release to anyone but the request's recipient.

use std::collections::BTreeSet;

use sherd_protocol::content::{Content, Deny, Forward, Reply, Request, RequestKind, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::envelope::{self, MAX_RECIPIENTS};
use sherd_protocol::shard::VerifiedShard;
use sherd_protocol::{BackupId, FeedId, RequestId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{
    self, HeldShard, RecoveryRecord, RecoveryState, RequestRecord, RequestState, Role,
};
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::rng::os_rng;
use crate::store::EngineUpdate;

/// What the user decided about a request asked of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Release our shard to the request's recipient; if `to` is given, only
    /// if it is that recipient (the identity the user verified).
    Approve {
        /// The recipient the user expects.
        to: Option<FeedId>,
    },
    /// Refuse, telling the requester why (if a reason is given).
    Deny {
        /// Up to 1024 bytes.
        reason: Option<String>,
    },
}

/// A request as made or decided: who made it, its id, its record.
pub type RequestView = (FeedId, RequestId, RequestRecord);

pub(super) fn request_update(
    requester: FeedId,
    id: RequestId,
    record: &RequestRecord,
) -> EngineUpdate {
    EngineUpdate::Request {
        requester,
        id,
        record: records::encode(record),
    }
}

/// Boxes `content` to `recipients`, at most [`MAX_RECIPIENTS`] per envelope:
/// one entry per group, each with the same content.
pub(super) fn boxed_to(
    engine: &Engine,
    recipients: &[FeedId],
    content: &Content,
) -> Result<Vec<(PayloadKind, Vec<u8>)>, EngineError> {
    let json = content.to_json()?;
    let mut rng = os_rng();
    recipients
        .chunks(MAX_RECIPIENTS)
        .map(|group| {
            Ok((
                PayloadKind::Boxed,
                envelope::seal(&mut rng, &engine.me, group, &json)?,
            ))
        })
        .collect()
}

/// The owner asks every custodian of its backup `backup` for its shard.
pub(super) async fn start_owner(
    engine: &mut Engine,
    backup: BackupId,
) -> Result<RequestView, EngineError> {
    let Some(made) = records::backup(&engine.store, &backup)? else {
        return Err(EngineError::UnknownBackup(backup));
    };
    // A redeemed backup is revoked too (to erase every replica), but asking
    // is left to the custodians, who answer "redeemed".
    if made.revoked.is_some() && made.redeemed.is_none() {
        return Err(EngineError::AlreadyRevoked(backup));
    }
    let existing = records::recovery(&engine.store, &backup)?;
    if let Some(r) = &existing
        && r.state == RecoveryState::Complete
    {
        return Err(EngineError::AlreadyRecovered(backup));
    }
    let now = clock::now_ms();
    let id = RequestId::random(&mut os_rng());
    let custodians: Vec<FeedId> = made.custodians.iter().map(|c| c.feed).collect();
    let request = Request {
        version: V1,
        id,
        kind: RequestKind::Owner,
        backup,
        owner: engine.me,
        recipient: engine.me,
        custodians: custodians.clone(),
        expires_ms: now.saturating_add(engine.options.request_ttl_ms),
    };
    let publish = boxed_to(engine, &custodians, &Content::Request(request.clone()))?;
    let restarted = existing
        .as_ref()
        .is_none_or(|r| r.state != RecoveryState::Collecting);
    let mut recovery = match existing {
        Some(r) if !restarted => r,
        // None, or over (delivered, failed): start again.
        _ => new_recovery(engine.me, RequestKind::Owner, Some(made.threshold), now),
    };
    recovery.requests.push((engine.me, id));
    let me = engine.me;
    let line = AuditLine::new(now, "request_sent", Outcome::Ok)
        .backup(backup)
        .request(id)
        .reason(format!("owner request to {} custodians", custodians.len()));
    let published = engine
        .commit(None, publish, move |published| {
            let Some(first) = published.first().map(SignedHeader::id) else {
                return Vec::new();
            };
            let record = RequestRecord {
                kind: RequestKind::Owner,
                role: Role::Requester,
                backup,
                owner: me,
                recipient: me,
                custodians: request.custodians,
                entry: first,
                received_ms: now,
                expires_ms: request.expires_ms,
                state: RequestState::Open,
            };
            vec![
                request_update(me, id, &record),
                EngineUpdate::Recovery {
                    id: backup,
                    record: records::encode(&recovery),
                },
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    let record = records::request(&engine.store, &me, &id)?
        .ok_or_else(|| EngineError::Missing(format!("request {id} published but not recorded")))?;
    tracing::info!(%backup, request = %id, entries = published.len(), "engine: owner request sent");
    if restarted {
        // An earlier, finished recovery of this backup is forgotten.
        engine.recoveries.remove(&backup);
    }
    Ok((me, id, record))
}

pub(super) fn new_recovery(
    owner: FeedId,
    kind: RequestKind,
    threshold: Option<u8>,
    now: u64,
) -> RecoveryRecord {
    RecoveryRecord {
        owner,
        kind,
        threshold,
        started_ms: now,
        requests: Vec::new(),
        shards: Vec::new(),
        rejected: Vec::new(),
        denied: Vec::new(),
        state: RecoveryState::Collecting,
        surplus: Vec::new(),
    }
}

/// On a custodian's node: forward our own shard of `owner`'s backup to `to`
/// (the owner's new identity) and ask the co-custodians to do the same.
pub(super) async fn start_lost_device(
    engine: &mut Engine,
    owner: FeedId,
    to: FeedId,
    backup: Option<BackupId>,
) -> Result<RequestView, EngineError> {
    let of_owner: Vec<(BackupId, HeldShard)> = records::held_shards(&engine.store)?
        .into_iter()
        .filter(|(id, held)| {
            held.owner == owner && held.revoked.is_none() && backup.is_none_or(|b| b == *id)
        })
        .collect();
    let (backup, held) = match of_owner.as_slice() {
        [] => {
            return Err(EngineError::NoShardOf {
                owner: Box::new(owner),
                backup,
            });
        }
        [(id, held)] => (*id, held.clone()),
        several => {
            return Err(EngineError::AmbiguousBackup(
                several.iter().map(|(id, _)| *id).collect(),
            ));
        }
    };
    if let Some(reason) = recipient_refusal(engine.me, owner, to, &held) {
        return Err(EngineError::InvalidRecipient(reason));
    }
    let now = clock::now_ms();
    let id = RequestId::random(&mut os_rng());
    let request = Request {
        version: V1,
        id,
        kind: RequestKind::LostDevice,
        backup,
        owner,
        recipient: to,
        // Every custodian, this node included: the new identity follows them all.
        custodians: held.custodians.clone(),
        expires_ms: now.saturating_add(engine.options.request_ttl_ms),
    };
    let me = engine.me;
    let recipients: Vec<FeedId> = held
        .custodians
        .iter()
        .copied()
        .filter(|c| *c != me)
        .chain(std::iter::once(to))
        .collect();
    let mut publish = boxed_to(engine, &recipients, &Content::Request(request.clone()))?;
    let record = RequestRecord {
        kind: RequestKind::LostDevice,
        role: Role::Requester,
        backup,
        owner,
        recipient: to,
        custodians: request.custodians.clone(),
        // Filled in below once the entries are signed.
        entry: held.shard,
        received_ms: now,
        expires_ms: request.expires_ms,
        state: RequestState::Open,
    };
    // Our own shard goes out with the request: the user of this node is the
    // one who verified the person behind the new identity.
    publish.push(release_payload(engine, id, &record, &held)?);
    let requests_published = publish.len() - 1;
    let line = AuditLine::new(now, "request_sent", Outcome::Ok)
        .backup(backup)
        .peer(to)
        .request(id)
        .reason(format!(
            "lost-device request to {} co-custodians; own shard forwarded",
            held.custodians.len().saturating_sub(1)
        ));
    let released_line = AuditLine::new(now, "shard_released", Outcome::Ok)
        .backup(backup)
        .peer(to)
        .request(id);
    engine
        .commit(None, publish, move |published| {
            let (Some(first), Some(forward)) = (
                published.first().map(SignedHeader::id),
                published.get(requests_published).map(SignedHeader::id),
            ) else {
                return Vec::new();
            };
            let record = RequestRecord {
                entry: first,
                state: RequestState::Released {
                    entry: forward,
                    at_ms: now,
                },
                ..record
            };
            vec![
                request_update(me, id, &record),
                EngineUpdate::Audit(line.to_json()),
                EngineUpdate::Audit(
                    released_line
                        .reason(format!("forwarded in entry {forward}"))
                        .to_json(),
                ),
            ]
        })
        .await?;
    let record = records::request(&engine.store, &me, &id)?
        .ok_or_else(|| EngineError::Missing(format!("request {id} published but not recorded")))?;
    tracing::info!(%backup, request = %id, "engine: lost-device request sent; own shard forwarded");
    engine.emit(EngineEvent::ShardReleased {
        request: id,
        backup,
        recipient: to,
    });
    Ok((me, id, record))
}

/// Why `to` cannot be the new identity of `owner` for a backup held as
/// `held`, if it cannot: it would hand the shards to someone who already
/// has a part in the backup.
fn recipient_refusal(me: FeedId, owner: FeedId, to: FeedId, held: &HeldShard) -> Option<String> {
    if to == owner {
        Some("the new identity is the owner's old one: the owner can ask for itself".into())
    } else if to == me || held.custodians.contains(&to) {
        Some("the new identity is a custodian of this backup".into())
    } else if held.trustees.contains(&to) {
        Some("the new identity is a trustee of this backup".into())
    } else {
        None
    }
}

/// The `reply` (owner request) or `forward` (lost device) carrying our shard
/// of `held`, resealed to the request's recipient and boxed to it.
/// Opens the shard this node holds: the signed inner shard, verified again,
/// and the `shard` entry's payload it came from.
pub(super) fn open_held(
    engine: &Engine,
    held: &HeldShard,
) -> Result<(VerifiedShard, Vec<u8>), EngineError> {
    let gone = |why: &str| EngineError::ShardUnavailable(why.to_owned());
    let entry = engine
        .store
        .entry(&held.shard)?
        .ok_or_else(|| gone("its entry is not in the store"))?;
    let payload = entry
        .payload
        .ok_or_else(|| gone("its payload was erased"))?;
    let plaintext = envelope::open(&engine.secret, &held.owner, &payload)
        .map_err(|e| gone(&format!("its envelope does not open: {e}")))?
        .ok_or_else(|| gone("its envelope is not addressed to this node"))?;
    let Ok(Content::Shard(shard)) = Content::parse(&plaintext) else {
        return Err(gone("its entry does not hold a shard"));
    };
    drop(plaintext);
    let verified = VerifiedShard::open(&engine.secret, &engine.me, &shard.sealed.0)
        .map_err(|e| gone(&format!("it no longer verifies: {e}")))?;
    Ok((verified, payload))
}

pub(super) fn release_payload(
    engine: &Engine,
    request: RequestId,
    record: &RequestRecord,
    held: &HeldShard,
) -> Result<(PayloadKind, Vec<u8>), EngineError> {
    let (verified, _) = open_held(engine, held)?;
    let mut sealed = verified.reseal(&mut os_rng(), &record.recipient);
    drop(verified);
    if engine.options.tamper_releases {
        // Test hook (sherdd --test-tamper-releases): a byzantine custodian.
        let middle = sealed.len() / 2;
        if let Some(byte) = sealed.get_mut(middle) {
            *byte ^= 0x01;
        }
    }
    let content = match record.kind {
        RequestKind::LostDevice => Content::Forward(Forward {
            version: V1,
            request,
            backup: record.backup,
            owner: record.owner,
            sealed: sherd_protocol::content::Base64Bytes(sealed),
        }),
        // To the requester itself: the owner, or a trustee.
        RequestKind::Owner | RequestKind::Emergency => Content::Reply(Reply {
            version: V1,
            request,
            backup: record.backup,
            sealed: sherd_protocol::content::Base64Bytes(sealed),
        }),
    };
    let json = content.to_json()?;
    Ok((
        PayloadKind::Boxed,
        envelope::seal(&mut os_rng(), &engine.me, &[record.recipient], &json)?,
    ))
}

/// Acts on `request`, found in `item` (the requester's feed).
pub(super) async fn on_request(
    engine: &mut Engine,
    item: &Item,
    request: &Request,
) -> Result<(), EngineError> {
    let requester = item.feed;
    let now = clock::now_ms();
    let refuse = |reason: String| {
        AuditLine::new(now, "request_refused", Outcome::Refused)
            .backup(request.backup)
            .peer(requester)
            .entry(item.id)
            .request(request.id)
            .reason(reason)
    };

    if let Some(existing) = records::request(&engine.store, &requester, &request.id)? {
        if existing.entry == item.id {
            // This very entry was handled already: a replay.
            engine.advance(item.feed, item.seq);
            return Ok(());
        }
        let line = refuse("the requester used this request id already".into());
        return engine.commit_audit(item, line).await;
    }
    if request.expires_ms <= now {
        return refused(engine, item, refuse("the request has expired".into())).await;
    }
    if over_daily_limit(engine, requester, request.backup, now)? {
        let line = AuditLine::new(now, "request_rate_limited", Outcome::Ignored)
            .backup(request.backup)
            .peer(requester)
            .entry(item.id)
            .request(request.id)
            .reason(format!(
                "more than {} requests for this backup from this requester in 24 hours",
                engine.options.requests_per_day
            ));
        engine.commit_audit(item, line).await?;
        engine.emit(EngineEvent::RateLimited {
            backup: request.backup,
            requester,
            request: request.id,
        });
        return Ok(());
    }
    if request.kind == RequestKind::Emergency {
        return super::emergency::on_request(engine, item, request).await;
    }
    if request.recipient == engine.me && request.kind == RequestKind::LostDevice {
        return super::recover::on_lost_device_request(engine, item, request).await;
    }
    if !request.custodians.contains(&engine.me) {
        let reason = "this node is neither a custodian asked nor the recipient".into();
        return refused(engine, item, refuse(reason)).await;
    }
    let held = records::held_shard(&engine.store, &request.backup)?
        .filter(|held| held.owner == request.owner);
    let Some(held) = held else {
        let reason = format!(
            "this node holds no shard of backup {} of {}",
            request.backup, request.owner
        );
        return refused(engine, item, refuse(reason)).await;
    };
    // A redeemed backup is revoked too; those entitled to ask are told
    // "redeemed" below.
    if held.revoked.is_some() && held.redeemed.is_none() {
        let reason = "the owner revoked this backup; its shard is erased".to_owned();
        return refused(engine, item, refuse(reason)).await;
    }
    let allowed = match request.kind {
        RequestKind::Owner if requester != request.owner => {
            Err("an owner request must come from the owner".to_owned())
        }
        RequestKind::Owner if request.recipient != request.owner => {
            Err("an owner request must name the owner as recipient".to_owned())
        }
        RequestKind::Owner => Ok(()),
        RequestKind::LostDevice if !held.custodians.contains(&requester) => {
            Err("the requester is not a custodian of this backup".to_owned())
        }
        RequestKind::LostDevice => {
            match recipient_refusal(engine.me, request.owner, request.recipient, &held) {
                Some(reason) => Err(reason),
                None => Ok(()),
            }
        }
        // Handled above (`emergency::on_request`).
        RequestKind::Emergency => Err("not an emergency request path".to_owned()),
    };
    if let Err(reason) = allowed {
        return refused(engine, item, refuse(reason)).await;
    }
    // Told only to someone entitled to ask: the state of a backup is not
    // anyone's business.
    if held.redeemed.is_some() {
        return super::redeem::answer_redeemed(engine, item, request).await;
    }

    let mut record = RequestRecord {
        kind: request.kind,
        role: Role::Custodian,
        backup: request.backup,
        owner: request.owner,
        recipient: request.recipient,
        custodians: request.custodians.clone(),
        entry: item.id,
        received_ms: now,
        // Whatever the requester wrote, this node keeps it open no longer
        // than its own limit.
        expires_ms: request
            .expires_ms
            .min(now.saturating_add(engine.options.request_ttl_ms)),
        state: RequestState::Pending,
    };
    let received = AuditLine::new(now, "request_received", Outcome::Ok)
        .backup(request.backup)
        .peer(requester)
        .entry(item.id)
        .request(request.id);
    let id = request.id;
    // Told once the request is committed, so whoever hears of it finds it.
    let received_event = EngineEvent::RequestReceived {
        request: id,
        kind: request.kind,
        backup: request.backup,
        requester,
        recipient: request.recipient,
    };
    if !engine.store.auto_approve(&requester)? {
        let received = received.reason("waiting for approval");
        engine
            .commit(Some(item), Vec::new(), move |_| {
                vec![
                    request_update(requester, id, &record),
                    EngineUpdate::Audit(received.to_json()),
                ]
            })
            .await?;
        tracing::info!(request = %id, %requester, "engine: request waits for approval");
        engine.emit(received_event);
        return Ok(());
    }
    // An auto-approved contact: release in the same step.
    let publish = match release_payload(engine, id, &record, &held) {
        Ok(publish) => publish,
        Err(e) => {
            let line = received.reason(format!("auto-approval failed: {e}"));
            engine
                .commit(Some(item), Vec::new(), move |_| {
                    vec![
                        request_update(requester, id, &record),
                        EngineUpdate::Audit(line.to_json()),
                    ]
                })
                .await?;
            engine.emit(received_event);
            return Ok(());
        }
    };
    let recipient = record.recipient;
    engine
        .commit(Some(item), vec![publish], move |published| {
            let Some(entry) = published.first().map(SignedHeader::id) else {
                return Vec::new();
            };
            record.state = RequestState::Released { entry, at_ms: now };
            vec![
                request_update(requester, id, &record),
                EngineUpdate::Audit(received.reason("approved automatically").to_json()),
                EngineUpdate::Audit(
                    AuditLine::new(now, "shard_released", Outcome::Ok)
                        .backup(record.backup)
                        .peer(recipient)
                        .request(id)
                        .reason(format!("in entry {entry}"))
                        .to_json(),
                ),
            ]
        })
        .await?;
    tracing::info!(request = %id, %requester, "engine: request approved automatically");
    engine.emit(received_event);
    engine.emit(EngineEvent::ShardReleased {
        request: id,
        backup: request.backup,
        recipient,
    });
    Ok(())
}

pub(super) async fn refused(
    engine: &mut Engine,
    item: &Item,
    line: AuditLine,
) -> Result<(), EngineError> {
    let reason = line.reason_text();
    tracing::info!(peer = %item.feed, entry = %item.id, %reason, "engine: request refused");
    engine.commit_audit(item, line).await?;
    // A requester that keeps asking for what it may not have ends up blocked.
    engine
        .misbehaved(&item.feed, "recovery request refused")
        .await;
    engine.emit(EngineEvent::Refused {
        what: "request",
        peer: item.feed,
        entry: item.id,
        reason,
    });
    Ok(())
}

/// Finds the request `id` asked of this node (made by `from`, if given).
fn find_asked(
    engine: &Engine,
    id: RequestId,
    from: Option<FeedId>,
) -> Result<(FeedId, RequestRecord), EngineError> {
    let mut found: Vec<(FeedId, RequestRecord)> = records::requests(&engine.store)?
        .into_iter()
        .filter(|(requester, rid, record)| {
            *rid == id
                && matches!(record.role, Role::Custodian | Role::Owner)
                && from.is_none_or(|f| f == *requester)
        })
        .map(|(requester, _, record)| (requester, record))
        .collect();
    match found.len() {
        0 => Err(EngineError::UnknownRequest(id)),
        1 => Ok(found.remove(0)),
        _ => Err(EngineError::AmbiguousRequest(
            found.into_iter().map(|(f, _)| f).collect(),
        )),
    }
}

/// Approves or denies request `id`, asked of this node.
pub(super) async fn decide(
    engine: &mut Engine,
    id: RequestId,
    from: Option<FeedId>,
    decision: Decision,
) -> Result<RequestView, EngineError> {
    let (requester, mut record) = find_asked(engine, id, from)?;
    if record.role == Role::Owner {
        return super::emergency::owner_decides(engine, requester, id, record, decision).await;
    }
    match (&record.state, &decision) {
        (RequestState::Pending, _) | (RequestState::Waiting { .. }, Decision::Deny { .. }) => {}
        (RequestState::Waiting { release_at_ms }, Decision::Approve { .. }) => {
            return Err(EngineError::VetoWindowOpen(*release_at_ms));
        }
        (other, _) => return Err(EngineError::RequestClosed(other.name())),
    }
    let now = clock::now_ms();
    if record.expires_ms <= now {
        record.state = RequestState::Expired;
        let line = AuditLine::new(now, "request_expired", Outcome::Refused)
            .backup(record.backup)
            .peer(requester)
            .request(id);
        engine
            .commit(None, Vec::new(), move |_| {
                vec![
                    request_update(requester, id, &record),
                    EngineUpdate::Audit(line.to_json()),
                ]
            })
            .await?;
        return Err(EngineError::RequestClosed("expired"));
    }
    match decision {
        Decision::Approve { to } => {
            if let Some(to) = to
                && to != record.recipient
            {
                return Err(EngineError::RecipientMismatch {
                    expected: Box::new(to),
                    actual: Box::new(record.recipient),
                });
            }
            let held = records::held_shard(&engine.store, &record.backup)?
                .filter(|held| held.owner == record.owner)
                .ok_or(EngineError::ShardUnavailable(
                    "this node no longer holds it".into(),
                ))?;
            let publish = release_payload(engine, id, &record, &held)?;
            let recipient = record.recipient;
            let backup = record.backup;
            engine
                .commit(None, vec![publish], move |published| {
                    let Some(entry) = published.first().map(SignedHeader::id) else {
                        return Vec::new();
                    };
                    record.state = RequestState::Released { entry, at_ms: now };
                    vec![
                        request_update(requester, id, &record),
                        EngineUpdate::Audit(
                            AuditLine::new(now, "shard_released", Outcome::Ok)
                                .backup(backup)
                                .peer(recipient)
                                .request(id)
                                .reason(format!("approved; in entry {entry}"))
                                .to_json(),
                        ),
                    ]
                })
                .await?;
            tracing::info!(request = %id, %requester, "engine: request approved; shard released");
            engine.emit(EngineEvent::ShardReleased {
                request: id,
                backup,
                recipient,
            });
        }
        Decision::Deny { reason } => {
            let deny = Content::Deny(Deny {
                version: V1,
                request: id,
                backup: record.backup,
                reason: reason.clone(),
            });
            let publish = boxed_to(engine, &[requester], &deny)?;
            record.state = RequestState::Denied { reason };
            let backup = record.backup;
            let line = AuditLine::new(now, "request_denied", Outcome::Ok)
                .backup(backup)
                .peer(requester)
                .request(id);
            engine
                .commit(None, publish, move |_| {
                    vec![
                        request_update(requester, id, &record),
                        EngineUpdate::Audit(line.to_json()),
                    ]
                })
                .await?;
            tracing::info!(request = %id, %requester, "engine: request denied");
            engine.emit(EngineEvent::RequestDenied {
                request: id,
                backup,
                by: engine.me,
            });
        }
    }
    let record = records::request(&engine.store, &requester, &id)?
        .ok_or_else(|| EngineError::Missing(format!("request {id} decided but not recorded")))?;
    Ok((requester, id, record))
}

/// The feeds a lost-device recipient follows for `request`: the requester and
/// every custodian asked, each once.
pub(super) fn recipient_follows(requester: FeedId, request: &Request) -> Vec<FeedId> {
    let mut seen = BTreeSet::new();
    std::iter::once(requester)
        .chain(request.custodians.iter().copied())
        .filter(|f| seen.insert(*f))
        .collect()
}

/// Whether `requester` made `requests_per_day` requests for `backup` that
/// this node took in the last 24 hours already (so this one is one too many).
fn over_daily_limit(
    engine: &Engine,
    requester: FeedId,
    backup: BackupId,
    now: u64,
) -> Result<bool, EngineError> {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    let since = now.saturating_sub(DAY_MS);
    let taken = records::requests(&engine.store)?
        .into_iter()
        .filter(|(r, _, record)| {
            *r == requester && record.backup == backup && record.received_ms >= since
        })
        .count();
    Ok(taken >= usize::try_from(engine.options.requests_per_day).unwrap_or(usize::MAX))
}
