//! Emergency access (flow 4): a trustee named in the owner-signed policy asks
//! for the secret; every custodian starts the veto window; the owner may veto
//! (a `deny` to the custodians) or approve early (the trustee's `request`,
//! published again by the owner); once the window has passed with no veto,
//! each custodian releases to the trustee, on its own (`release: auto`) or on
//! its user's approval (`release: approve`).
//!
//! The window is a persisted deadline (`RequestState::Waiting`), not a timer
//! in memory: a restart neither resets it nor skips it. The engine keeps the
//! earliest deadline and, when it passes, [`on_deadlines`] moves every due
//! request on.
//!
//! Who does what here:
//! - the **trustee**: [`on_grant`] records what it may ask for and follows
//!   the custodians; [`start`] makes the request (to the custodians and the
//!   owner) and opens the recovery; replies come through `recover.rs`;
//! - a **custodian**: [`on_request`] checks the trustee against the policy in
//!   its shard and starts the window; [`on_owner_veto`] and the owner's
//!   approval end it;
//! - the **owner**: [`on_request`] records the trustee's request (so the user
//!   hears of it); [`owner_decides`] vetoes or approves early.
//!
//! A veto or an early approval can reach a custodian before the trustee's
//! request does (feeds replicate independently): it is then kept in the held
//! shard's record and applied when the request arrives.

use sherd_protocol::content::{Content, Deny, Grant, Release, Request, RequestKind, V1};
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::{BackupId, FeedId, RequestId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{
    self, GrantRecord, HeldShard, PolicyRecord, RecoveryRecord, RequestRecord, RequestState, Role,
};
use super::requests::{Decision, RequestView, boxed_to, new_recovery, refused, request_update};
use super::{EngineError, EngineEvent, redeem};
use crate::clock;
use crate::rng::os_rng;
use crate::store::EngineUpdate;

/// Vetoes and early approvals kept for requests not seen yet, per held shard.
const EARLY_DECISIONS_KEPT: usize = 64;

/// When a window opened at `now` closes.
fn window_end(now: u64, policy: &PolicyRecord) -> u64 {
    now.saturating_add(u64::from(policy.veto_delay_secs).saturating_mul(1000))
}

/// On a trustee: the owner's `grant`.
pub(super) async fn on_grant(
    engine: &mut Engine,
    item: &Item,
    grant: &Grant,
) -> Result<(), EngineError> {
    let owner = item.feed;
    let now = clock::now_ms();
    let line = |event, outcome| {
        AuditLine::new(now, event, outcome)
            .backup(grant.backup)
            .peer(owner)
            .entry(item.id)
    };
    if let Some(existing) = records::grant(&engine.store, &grant.backup)? {
        if existing.entry == item.id {
            engine.advance(item.feed, item.seq);
            return Ok(());
        }
        let line = line("grant_ignored", Outcome::Ignored)
            .reason("a grant for this backup is held already");
        return engine.commit_audit(item, line).await;
    }
    if usize::from(grant.threshold) > grant.custodians.len()
        || grant.custodians.contains(&engine.me)
    {
        let line = line("grant_refused", Outcome::Refused)
            .reason("the grant's threshold or custodians are inconsistent");
        return refused(engine, item, line).await;
    }
    let record = GrantRecord {
        owner,
        entry: item.id,
        label: grant.label.clone(),
        custodians: grant.custodians.clone(),
        threshold: grant.threshold,
        policy: PolicyRecord {
            veto_delay_secs: grant.veto_delay_secs,
            one_time: grant.one_time,
            release: grant.release,
        },
        received_ms: now,
        redeemed_ms: None,
        revoked: None,
        erased_replicas: Vec::new(),
    };
    let backup = grant.backup;
    let follows = record.custodians.clone();
    let line = line("grant_received", Outcome::Ok).reason(format!(
        "{} of {} custodians, veto window {} s",
        record.threshold,
        record.custodians.len(),
        record.policy.veto_delay_secs
    ));
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                EngineUpdate::Grant {
                    id: backup,
                    record: records::encode(&record),
                },
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::info!(%backup, %owner, "engine: granted emergency access");
    engine.follow(follows).await;
    engine.emit(EngineEvent::GrantReceived { backup, owner });
    Ok(())
}

/// On a trustee: asks every custodian of `backup` (and tells the owner).
pub(super) async fn start(
    engine: &mut Engine,
    backup: BackupId,
    grant: GrantRecord,
) -> Result<RequestView, EngineError> {
    if grant.redeemed_ms.is_some() {
        return Err(EngineError::Redeemed(backup));
    }
    if grant.revoked.is_some() {
        return Err(EngineError::AlreadyRevoked(backup));
    }
    let existing = records::recovery(&engine.store, &backup)?;
    if let Some(r) = &existing
        && r.state == records::RecoveryState::Complete
    {
        return Err(EngineError::AlreadyRecovered(backup));
    }
    let now = clock::now_ms();
    let me = engine.me;
    let id = RequestId::random(&mut os_rng());
    let request = Request {
        version: V1,
        id,
        kind: RequestKind::Emergency,
        backup,
        owner: grant.owner,
        recipient: me,
        custodians: grant.custodians.clone(),
        // Open for the veto window, then as long as any request.
        expires_ms: window_end(now, &grant.policy).saturating_add(engine.options.request_ttl_ms),
    };
    let recipients: Vec<FeedId> = grant
        .custodians
        .iter()
        .copied()
        .chain(std::iter::once(grant.owner))
        .collect();
    let publish = boxed_to(engine, &recipients, &Content::Request(request.clone()))?;
    let restarted = existing
        .as_ref()
        .is_none_or(|r| r.state != records::RecoveryState::Collecting);
    let mut recovery = match existing {
        Some(r) if !restarted => r,
        _ => new_recovery(
            grant.owner,
            RequestKind::Emergency,
            Some(grant.threshold),
            now,
        ),
    };
    recovery.requests.push((me, id));
    let record = RequestRecord {
        kind: RequestKind::Emergency,
        role: Role::Requester,
        backup,
        owner: grant.owner,
        recipient: me,
        custodians: grant.custodians.clone(),
        entry: grant.entry,
        received_ms: now,
        expires_ms: request.expires_ms,
        state: RequestState::Waiting {
            release_at_ms: window_end(now, &grant.policy),
        },
    };
    let line = AuditLine::new(now, "request_sent", Outcome::Ok)
        .backup(backup)
        .peer(grant.owner)
        .request(id)
        .reason(format!(
            "emergency request to {} custodians; veto window {} s",
            grant.custodians.len(),
            grant.policy.veto_delay_secs
        ));
    engine
        .commit(None, publish, move |published: &[SignedHeader]| {
            let Some(first) = published.first().map(SignedHeader::id) else {
                return Vec::new();
            };
            let record = RequestRecord {
                entry: first,
                ..record
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
    if restarted {
        engine.recoveries.remove(&backup);
    }
    let record = records::request(&engine.store, &me, &id)?
        .ok_or_else(|| EngineError::Missing(format!("request {id} published but not recorded")))?;
    tracing::info!(%backup, request = %id, "engine: emergency request sent");
    Ok((me, id, record))
}

/// An emergency `request` from `item.feed`: a trustee's (at a custodian or
/// at the owner), or the owner's approval of one (at a custodian).
pub(super) async fn on_request(
    engine: &mut Engine,
    item: &Item,
    request: &Request,
) -> Result<(), EngineError> {
    let sender = item.feed;
    let now = clock::now_ms();
    let refuse = |reason: String| {
        AuditLine::new(now, "request_refused", Outcome::Refused)
            .backup(request.backup)
            .peer(sender)
            .entry(item.id)
            .request(request.id)
            .reason(reason)
    };
    if request.owner == engine.me {
        return at_owner(engine, item, request).await;
    }
    let held = records::held_shard(&engine.store, &request.backup)?
        .filter(|held| held.owner == request.owner && request.custodians.contains(&engine.me));
    let Some(mut held) = held else {
        let reason = format!(
            "this node holds no shard of backup {} of {}",
            request.backup, request.owner
        );
        return refused(engine, item, refuse(reason)).await;
    };
    // Told only to someone entitled to ask: the state of a backup is not
    // anyone's business. (A redeemed backup is revoked too.)
    if held.redeemed.is_some() && (sender == request.owner || held.trustees.contains(&sender)) {
        return redeem::answer_redeemed(engine, item, request).await;
    }
    if held.revoked.is_some() {
        let reason = "the owner revoked this backup; its shard is erased".to_owned();
        return refused(engine, item, refuse(reason)).await;
    }
    if sender == request.owner {
        return owner_approval(engine, item, request, held).await;
    }
    if !held.trustees.contains(&sender) {
        let reason = "the requester is not a trustee in the owner-signed policy".to_owned();
        return refused(engine, item, refuse(reason)).await;
    }
    if request.recipient != sender {
        let reason = "an emergency request must name its trustee as recipient".to_owned();
        return refused(engine, item, refuse(reason)).await;
    }
    let id = request.id;
    let policy = held.policy;
    let early_veto = held.vetoed.contains(&id);
    let early_approval = held.owner_approved.contains(&id);
    let state = if early_veto {
        RequestState::Vetoed
    } else if early_approval || policy.veto_delay_secs == 0 {
        RequestState::Pending
    } else {
        RequestState::Waiting {
            release_at_ms: window_end(now, &policy),
        }
    };
    held.vetoed.retain(|v| *v != id);
    held.owner_approved.retain(|v| *v != id);
    let record = RequestRecord {
        kind: RequestKind::Emergency,
        role: Role::Custodian,
        backup: request.backup,
        owner: request.owner,
        recipient: sender,
        custodians: request.custodians.clone(),
        entry: item.id,
        received_ms: now,
        // No longer than the window and this node's own limit after it.
        expires_ms: request
            .expires_ms
            .min(window_end(now, &policy).saturating_add(engine.options.request_ttl_ms)),
        state,
    };
    let backup = request.backup;
    let reason = match &record.state {
        RequestState::Vetoed => "vetoed by the owner before it arrived".to_owned(),
        RequestState::Waiting { .. } => {
            format!("veto window of {} s started", policy.veto_delay_secs)
        }
        _ => "no veto window left".to_owned(),
    };
    let line = AuditLine::new(now, "request_received", Outcome::Ok)
        .backup(backup)
        .peer(sender)
        .entry(item.id)
        .request(id)
        .reason(reason);
    let pending = record.state == RequestState::Pending;
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                request_update(sender, id, &record),
                records::held_update(backup, &held),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::info!(request = %id, trustee = %sender, "engine: emergency request; veto window started");
    engine.emit(EngineEvent::RequestReceived {
        request: id,
        kind: RequestKind::Emergency,
        backup,
        requester: sender,
        recipient: sender,
    });
    engine.deadlines_changed();
    if pending && policy.release == Release::Auto {
        release_now(engine, sender, id).await?;
    }
    Ok(())
}

/// On the owner: a trustee asks for one of our backups. Recorded so the
/// user hears of it and can veto or approve early.
async fn at_owner(engine: &mut Engine, item: &Item, request: &Request) -> Result<(), EngineError> {
    let trustee = item.feed;
    let now = clock::now_ms();
    let refuse = |reason: &str| {
        AuditLine::new(now, "request_refused", Outcome::Refused)
            .backup(request.backup)
            .peer(trustee)
            .entry(item.id)
            .request(request.id)
            .reason(reason)
    };
    let Some(backup) = records::backup(&engine.store, &request.backup)? else {
        let line = refuse("no backup of this node has this id");
        return refused(engine, item, line).await;
    };
    if !backup.trustees.iter().any(|t| t.feed == trustee) || request.recipient != trustee {
        let line = refuse("the requester is not a trustee of this backup, or not its recipient");
        return refused(engine, item, line).await;
    }
    let id = request.id;
    let record = RequestRecord {
        kind: RequestKind::Emergency,
        role: Role::Owner,
        backup: request.backup,
        owner: engine.me,
        recipient: trustee,
        custodians: request.custodians.clone(),
        entry: item.id,
        received_ms: now,
        expires_ms: request.expires_ms,
        state: RequestState::Waiting {
            release_at_ms: window_end(now, &backup.policy),
        },
    };
    let line = AuditLine::new(now, "emergency_request", Outcome::Ok)
        .backup(request.backup)
        .peer(trustee)
        .entry(item.id)
        .request(id)
        .reason(format!(
            "a trustee asks; custodians release after {} s unless vetoed",
            backup.policy.veto_delay_secs
        ));
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                request_update(trustee, id, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::warn!(request = %id, %trustee, "engine: a trustee asks for one of our backups");
    engine.emit(EngineEvent::RequestReceived {
        request: id,
        kind: RequestKind::Emergency,
        backup: request.backup,
        requester: trustee,
        recipient: trustee,
    });
    Ok(())
}

/// At a custodian: the owner published a trustee's request again, which
/// approves it early: the veto window ends now.
async fn owner_approval(
    engine: &mut Engine,
    item: &Item,
    request: &Request,
    mut held: HeldShard,
) -> Result<(), EngineError> {
    let now = clock::now_ms();
    let id = request.id;
    let backup = request.backup;
    let asked = records::requests(&engine.store)?
        .into_iter()
        .find(|(_, rid, r)| *rid == id && r.role == Role::Custodian && r.backup == backup);
    let line = AuditLine::new(now, "owner_approved_early", Outcome::Ok)
        .backup(backup)
        .peer(item.feed)
        .entry(item.id)
        .request(id);
    let Some((trustee, _, mut record)) = asked else {
        // Before the trustee's request: remembered for when it comes.
        if held.owner_approved.len() < EARLY_DECISIONS_KEPT {
            held.owner_approved.push(id);
        }
        let line = line.reason("kept until the trustee's request arrives");
        return engine
            .commit(Some(item), Vec::new(), move |_| {
                vec![
                    records::held_update(backup, &held),
                    EngineUpdate::Audit(line.to_json()),
                ]
            })
            .await
            .map(|_| ())
            .map_err(Into::into);
    };
    if !matches!(record.state, RequestState::Waiting { .. }) {
        let line = line.reason(format!("the request is {} already", record.state.name()));
        return engine.commit_audit(item, line).await;
    }
    record.state = RequestState::Pending;
    let line = line.reason("the veto window is over");
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                request_update(trustee, id, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    engine.deadlines_changed();
    if held.policy.release == Release::Auto {
        release_now(engine, trustee, id).await?;
    } else {
        engine.emit(EngineEvent::ReleaseDue {
            request: id,
            backup,
        });
    }
    Ok(())
}

/// At a custodian: a `deny` from the owner of a backup we hold, for an
/// emergency request: the veto. Returns false if `deny` is not that.
pub(super) async fn on_owner_veto(
    engine: &mut Engine,
    item: &Item,
    deny: &Deny,
) -> Result<bool, EngineError> {
    let Some(mut held) =
        records::held_shard(&engine.store, &deny.backup)?.filter(|held| held.owner == item.feed)
    else {
        return Ok(false);
    };
    let now = clock::now_ms();
    let id = deny.request;
    let backup = deny.backup;
    let asked = records::requests(&engine.store)?
        .into_iter()
        .find(|(_, rid, r)| {
            *rid == id
                && r.role == Role::Custodian
                && r.backup == backup
                && r.kind == RequestKind::Emergency
        });
    let line = AuditLine::new(now, "owner_vetoed", Outcome::Ok)
        .backup(backup)
        .peer(item.feed)
        .entry(item.id)
        .request(id);
    let mut updates = Vec::new();
    let mut vetoed = None;
    match asked {
        None => {
            if held.vetoed.len() < EARLY_DECISIONS_KEPT {
                held.vetoed.push(id);
            }
            updates.push(records::held_update(backup, &held));
            updates.push(EngineUpdate::Audit(
                line.reason("kept until the trustee's request arrives")
                    .to_json(),
            ));
        }
        Some((trustee, _, mut record)) => match record.state {
            RequestState::Waiting { .. } | RequestState::Pending => {
                record.state = RequestState::Vetoed;
                updates.push(request_update(trustee, id, &record));
                updates.push(EngineUpdate::Audit(
                    line.reason("nothing released").to_json(),
                ));
                vetoed = Some(trustee);
            }
            ref other => {
                let reason = format!("too late: the request is {} already", other.name());
                updates.push(EngineUpdate::Audit(
                    AuditLine::new(now, "owner_vetoed", Outcome::Ignored)
                        .backup(backup)
                        .peer(item.feed)
                        .entry(item.id)
                        .request(id)
                        .reason(reason)
                        .to_json(),
                ));
            }
        },
    }
    engine
        .commit(Some(item), Vec::new(), move |_| updates)
        .await?;
    engine.deadlines_changed();
    if vetoed.is_some() {
        tracing::info!(request = %id, "engine: the owner vetoed an emergency request");
        engine.emit(EngineEvent::RequestDenied {
            request: id,
            backup,
            by: item.feed,
        });
    }
    Ok(true)
}

/// On the owner: veto (deny) or approve early a trustee's request.
pub(super) async fn owner_decides(
    engine: &mut Engine,
    trustee: FeedId,
    id: RequestId,
    mut record: RequestRecord,
    decision: Decision,
) -> Result<RequestView, EngineError> {
    if !matches!(record.state, RequestState::Waiting { .. }) {
        return Err(EngineError::RequestClosed(record.state.name()));
    }
    let now = clock::now_ms();
    let backup = record.backup;
    let (publish, event) = match decision {
        Decision::Approve { to } => {
            if let Some(to) = to
                && to != record.recipient
            {
                return Err(EngineError::RecipientMismatch {
                    expected: Box::new(to),
                    actual: Box::new(record.recipient),
                });
            }
            let request = Request {
                version: V1,
                id,
                kind: RequestKind::Emergency,
                backup,
                owner: engine.me,
                recipient: trustee,
                custodians: record.custodians.clone(),
                expires_ms: record.expires_ms,
            };
            let publish = boxed_to(engine, &record.custodians, &Content::Request(request))?;
            (publish, "owner_approved_early")
        }
        Decision::Deny { reason } => {
            let deny = Content::Deny(Deny {
                version: V1,
                request: id,
                backup,
                reason,
            });
            // The custodians cancel; the trustee hears of it.
            let recipients: Vec<FeedId> = record
                .custodians
                .iter()
                .copied()
                .chain(std::iter::once(trustee))
                .collect();
            (boxed_to(engine, &recipients, &deny)?, "owner_vetoed")
        }
    };
    let vetoing = event == "owner_vetoed";
    let line = AuditLine::new(now, event, Outcome::Ok)
        .backup(backup)
        .peer(trustee)
        .request(id);
    engine
        .commit(None, publish, move |published: &[SignedHeader]| {
            let Some(entry) = published.first().map(SignedHeader::id) else {
                return Vec::new();
            };
            record.state = if vetoing {
                RequestState::Vetoed
            } else {
                RequestState::Approved { entry }
            };
            vec![
                request_update(trustee, id, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::info!(request = %id, %trustee, event, "engine: the owner decided an emergency request");
    if vetoing {
        engine.emit(EngineEvent::RequestDenied {
            request: id,
            backup,
            by: engine.me,
        });
    }
    let record = records::request(&engine.store, &trustee, &id)?
        .ok_or_else(|| EngineError::Missing(format!("request {id} decided but not recorded")))?;
    Ok((trustee, id, record))
}

/// At a custodian: releases our shard for a request whose window is over
/// and whose policy says `auto`.
async fn release_now(
    engine: &mut Engine,
    trustee: FeedId,
    id: RequestId,
) -> Result<(), EngineError> {
    match super::requests::decide(engine, id, Some(trustee), Decision::Approve { to: None }).await {
        Ok(_) => Ok(()),
        // Vetoed, expired or released meanwhile: nothing to do.
        Err(EngineError::RequestClosed(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The earliest veto window still open on this node, ms since the epoch.
pub(super) fn next_deadline(engine: &Engine) -> Result<Option<u64>, EngineError> {
    Ok(records::requests(&engine.store)?
        .into_iter()
        .filter(|(_, _, r)| r.role == Role::Custodian)
        .filter_map(|(_, _, r)| match r.state {
            RequestState::Waiting { release_at_ms } => Some(release_at_ms),
            _ => None,
        })
        .min())
}

/// Moves on every request whose veto window has closed: released at once
/// (`release: auto`), or pending its user's approval.
pub(super) async fn on_deadlines(engine: &mut Engine) -> Result<(), EngineError> {
    let now = clock::now_ms();
    let due: Vec<(FeedId, RequestId, RequestRecord)> = records::requests(&engine.store)?
        .into_iter()
        .filter(|(_, _, r)| {
            r.role == Role::Custodian
                && matches!(r.state, RequestState::Waiting { release_at_ms } if release_at_ms <= now)
        })
        .collect();
    for (trustee, id, mut record) in due {
        let backup = record.backup;
        let release = records::held_shard(&engine.store, &backup)?
            .filter(|h| h.owner == record.owner)
            .map(|h| h.policy.release);
        let expired = record.expires_ms <= now;
        record.state = if expired {
            RequestState::Expired
        } else {
            RequestState::Pending
        };
        let line = AuditLine::new(now, "veto_window_closed", Outcome::Ok)
            .backup(backup)
            .peer(trustee)
            .request(id)
            .reason(if expired {
                "the request expired"
            } else {
                "no veto from the owner"
            });
        engine
            .commit(None, Vec::new(), move |_| {
                vec![
                    request_update(trustee, id, &record),
                    EngineUpdate::Audit(line.to_json()),
                ]
            })
            .await?;
        if expired {
            continue;
        }
        if release == Some(Release::Auto) {
            release_now(engine, trustee, id).await?;
        } else {
            engine.emit(EngineEvent::ReleaseDue {
                request: id,
                backup,
            });
        }
    }
    engine.deadlines_changed();
    Ok(())
}

/// On the trustee: the owner's veto of our request ends the recovery.
pub(super) fn vetoed_recovery(
    recovery: &mut RecoveryRecord,
    owner: FeedId,
    reason: Option<String>,
) {
    recovery.denied.push((owner, reason));
    recovery.state = records::RecoveryState::Failed {
        reason: "the owner vetoed the request".into(),
    };
}
