//! One-time access: a backup whose owner-signed policy says `one_time` is
//! used up by the first trustee that recovers it.
//!
//! - The **trustee**, when its user takes the secret ([`on_delivery`]),
//!   publishes `redeemed` to every custodian and the owner in the same
//!   transaction that marks the recovery delivered; what it received is
//!   erased with the recovery's other shards (`recover.rs`).
//! - A **custodian** ([`on_redeemed`]) takes a `redeemed` only from a trustee
//!   of the shard's policy, for a one-time backup, naming an emergency request
//!   this node was asked and did not see vetoed or denied: a trustee the
//!   owner vetoed cannot burn the backup instead. It then closes the
//!   backup's open requests, records the redemption and erases the payloads
//!   of its `shard` entry and of its own releases (scrubbed: `store/scrub.rs`).
//!   Every later request for the backup is answered with a `deny` saying it
//!   was redeemed ([`answer_redeemed`]).
//! - The **owner** records who redeemed it, so `backup show` says so, and
//!   revokes the backup in the same step (`revoke.rs`): the custodians and
//!   trustees hold replicas of every custodian's boxed shard in their copies
//!   of the owner's feed, and only a `revoke` lists those for erasure. The
//!   `revoke` may reach a custodian before the trustee's `redeemed`; either
//!   order ends the same (a request closed by that revocation still counts
//!   for the redemption), and requests are answered "redeemed" either way.
//!
//! The owner's own recoveries (same identity, or a lost device) do not redeem
//! a backup: one-time limits emergency access, not the owner.

use sherd_protocol::content::{
    Content, Deny, MAX_REPLIES_LISTED, Redeemed, Request, RequestKind, V1,
};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::{BackupId, EntryId, FeedId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{self, RecoveryRecord, RedeemedRecord, RequestState, Role};
use super::requests::boxed_to;
use super::revoke;
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::store::EngineUpdate;

/// What the trustee publishes and records as it hands over the secret of a
/// one-time backup; nothing if this recovery does not redeem one.
pub(super) struct Redemption {
    /// The `redeemed` entries (boxed to the custodians and the owner).
    pub(super) publish: Vec<(PayloadKind, Vec<u8>)>,
    /// The grant, marked redeemed.
    pub(super) grant: EngineUpdate,
    /// The audit line.
    pub(super) audit: EngineUpdate,
}

/// On the trustee, as it hands over the secret of `backup`.
pub(super) fn on_delivery(
    engine: &Engine,
    backup: BackupId,
    recovery: &RecoveryRecord,
    now: u64,
) -> Result<Option<Redemption>, EngineError> {
    if recovery.kind != RequestKind::Emergency {
        return Ok(None);
    }
    let Some(mut grant) = records::grant(&engine.store, &backup)? else {
        return Ok(None);
    };
    if !grant.policy.one_time || grant.redeemed_ms.is_some() {
        return Ok(None);
    }
    let Some((_, request)) = recovery
        .requests
        .iter()
        .rev()
        .find(|(requester, _)| *requester == engine.me)
    else {
        return Ok(None);
    };
    let recipients: Vec<FeedId> = grant
        .custodians
        .iter()
        .copied()
        .chain(std::iter::once(grant.owner))
        .collect();
    // Every reply that came (taken, refused or surplus): the custodians and
    // the owner replicate each custodian's feed, so each holds them all.
    let mut replies: Vec<EntryId> = Vec::new();
    let received = recovery.shards.iter().chain(&recovery.rejected);
    for entry in received
        .map(|s| s.entry)
        .chain(recovery.surplus.iter().copied())
    {
        if !replies.contains(&entry) && replies.len() < MAX_REPLIES_LISTED {
            replies.push(entry);
        }
    }
    let publish = boxed_to(
        engine,
        &recipients,
        &Content::Redeemed(Redeemed {
            version: V1,
            backup,
            request: *request,
            replies,
        }),
    )?;
    grant.redeemed_ms = Some(now);
    let audit = AuditLine::new(now, "backup_redeemed", Outcome::Ok)
        .backup(backup)
        .request(*request)
        .reason("one-time access used; the custodians and the owner are told");
    Ok(Some(Redemption {
        publish,
        grant: EngineUpdate::Grant {
            id: backup,
            record: records::encode(&grant),
        },
        audit: EngineUpdate::Audit(audit.to_json()),
    }))
}

/// A `redeemed` from a trustee: on a custodian, or on the owner.
pub(super) async fn on_redeemed(
    engine: &mut Engine,
    item: &Item,
    redeemed: &Redeemed,
) -> Result<(), EngineError> {
    if records::backup(&engine.store, &redeemed.backup)?.is_some() {
        return at_owner(engine, item, redeemed).await;
    }
    at_custodian(engine, item, redeemed).await
}

async fn at_custodian(
    engine: &mut Engine,
    item: &Item,
    redeemed: &Redeemed,
) -> Result<(), EngineError> {
    let trustee = item.feed;
    let backup = redeemed.backup;
    let now = clock::now_ms();
    let ignored = |reason: &str| {
        AuditLine::new(now, "redeemed_ignored", Outcome::Refused)
            .backup(backup)
            .peer(trustee)
            .entry(item.id)
            .request(redeemed.request)
            .reason(reason.to_owned())
    };
    let Some(mut held) = records::held_shard(&engine.store, &backup)? else {
        let line = ignored("this node holds no shard of that backup");
        return engine.commit_audit(item, line).await;
    };
    if held.redeemed.is_some() {
        let line = ignored("redeemed already");
        return engine.commit_audit(item, line).await;
    }
    if !held.trustees.contains(&trustee) {
        let line = ignored("the sender is not a trustee in the owner-signed policy");
        return engine.commit_audit(item, line).await;
    }
    if !held.policy.one_time {
        let line = ignored("the owner-signed policy does not make this backup one-time");
        return engine.commit_audit(item, line).await;
    }
    let asked = records::request(&engine.store, &trustee, &redeemed.request)?
        .filter(|r| r.backup == backup && r.role == Role::Custodian);
    let Some(asked) = asked else {
        let line =
            ignored("no emergency request of that trustee for that backup reached this node");
        return engine.commit_audit(item, line).await;
    };
    // The owner revokes a redeemed backup (to erase every replica), and its
    // `revoke` may arrive before the trustee's `redeemed`: a request closed
    // by that revocation still counts.
    let refused_here = match asked.state {
        RequestState::Vetoed => true,
        RequestState::Denied { .. } => held.revoked.is_none(),
        _ => false,
    };
    if refused_here {
        let line = ignored("that request was vetoed or denied here");
        return engine.commit_audit(item, line).await;
    }

    // The other custodians' replies to the trustee, replicated here.
    let replicas = revoke::unreadable_replicas(engine, &held.custodians, &redeemed.replies)?;
    held.redeemed = Some(item.id);
    held.erased_replicas.extend(replicas.iter().copied());
    let mut erase: Vec<EntryId> = vec![held.shard];
    erase.extend(released_for(engine, |b| *b == backup)?);
    erase.extend(replicas);
    let mut updates = vec![records::held_update(backup, &held)];
    updates.extend(super::revoke::close_open_requests(
        engine, backup, REDEEMED,
    )?);
    // After a revocation the shard is gone already: only the releases go.
    let first_erasure = held.revoked.is_none();
    let (event, reason) = if first_erasure {
        ("shard_erased", "one-time backup redeemed by a trustee")
    } else {
        (
            "releases_erased",
            "one-time backup redeemed by a trustee after the owner revoked it",
        )
    };
    let line = AuditLine::new(now, event, Outcome::Ok)
        .backup(backup)
        .peer(trustee)
        .entry(item.id)
        .request(redeemed.request)
        .reason(reason);
    updates.push(EngineUpdate::Audit(line.to_json()));
    engine
        .commit(Some(item), Vec::new(), move |_| updates)
        .await?;
    super::revoke::erase(engine, &erase).await;
    engine.deadlines_changed();
    tracing::info!(%backup, %trustee, "engine: one-time backup redeemed; shard erased");
    if first_erasure {
        engine.emit(EngineEvent::ShardErased {
            backup,
            owner: held.owner,
        });
    }
    Ok(())
}

async fn at_owner(
    engine: &mut Engine,
    item: &Item,
    redeemed: &Redeemed,
) -> Result<(), EngineError> {
    let trustee = item.feed;
    let backup = redeemed.backup;
    let now = clock::now_ms();
    let Some(mut record) = records::backup(&engine.store, &backup)? else {
        return Err(EngineError::UnknownBackup(backup));
    };
    let refusal = if !record.trustees.iter().any(|t| t.feed == trustee) {
        Some("the sender is not a trustee of this backup")
    } else if !record.policy.one_time {
        Some("this backup is not one-time")
    } else if record.redeemed.is_some() {
        Some("redeemed already")
    } else {
        None
    };
    if let Some(reason) = refusal {
        let line = AuditLine::new(now, "redeemed_ignored", Outcome::Refused)
            .backup(backup)
            .peer(trustee)
            .entry(item.id)
            .request(redeemed.request)
            .reason(reason.to_owned());
        return engine.commit_audit(item, line).await;
    }
    record.redeemed = Some(RedeemedRecord {
        by: trustee,
        entry: item.id,
        request: redeemed.request,
        at_ms: now,
    });
    // The custodians' replies to the trustee, replicated here.
    let custodians: Vec<FeedId> = record.custodians.iter().map(|c| c.feed).collect();
    let replicas = revoke::unreadable_replicas(engine, &custodians, &redeemed.replies)?;
    record.erased_replicas.extend(replicas.iter().copied());
    // Revoked too, in the same step: the custodians already erase their own
    // shards, but they and the trustees keep replicas of everyone's boxed
    // shard in their copies of our feed, and only a `revoke` lists those.
    let already_revoked = record.revoked.is_some();
    let publish = if already_revoked {
        Vec::new()
    } else {
        boxed_to(
            engine,
            &revoke::revoke_recipients(&record),
            &revoke::revoke_content(backup, &record),
        )?
    };
    let line = AuditLine::new(now, "backup_redeemed", Outcome::Ok)
        .backup(backup)
        .peer(trustee)
        .entry(item.id)
        .request(redeemed.request)
        .reason(
            "a trustee used its one-time access; the custodians erase their shards, \
             and the backup is revoked so that every replica of them goes too",
        );
    let mut erase: Vec<EntryId> = record.custodians.iter().map(|c| c.shard).collect();
    erase.extend(replicas);
    engine
        .commit(Some(item), publish, move |published: &[SignedHeader]| {
            if let Some(revoke) = published.first() {
                record.revoked = Some(revoke.id());
            }
            vec![
                records::backup_update(backup, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    // Our copies of the custodians' sealed shards go too (we would
    // otherwise go on serving them to whoever syncs our feed), and our
    // replicas of their replies.
    super::revoke::erase(engine, &erase).await;
    tracing::info!(%backup, %trustee, "engine: our one-time backup was redeemed");
    Ok(())
}

/// What a custodian erases for the backups redeemed here: the `shard`
/// entries and its own releases. Erased again on every start, for a stop
/// between the redemption's commit and the erasure (erasing what is gone
/// costs nothing).
pub(super) fn redeemed_entries(engine: &Engine) -> Result<Vec<EntryId>, EngineError> {
    let redeemed: Vec<(BackupId, EntryId)> = records::held_shards(&engine.store)?
        .into_iter()
        .filter(|(_, h)| h.redeemed.is_some())
        .map(|(backup, h)| (backup, h.shard))
        .collect();
    if redeemed.is_empty() {
        return Ok(Vec::new());
    }
    let mut entries: Vec<EntryId> = redeemed.iter().map(|(_, shard)| *shard).collect();
    entries.extend(released_for(engine, |b| {
        redeemed.iter().any(|(backup, _)| backup == b)
    })?);
    Ok(entries)
}

/// The `reply` / `forward` entries this node released for backups `which` picks.
fn released_for(
    engine: &Engine,
    which: impl Fn(&BackupId) -> bool,
) -> Result<Vec<EntryId>, EngineError> {
    Ok(records::requests(&engine.store)?
        .into_iter()
        .filter(|(_, _, r)| r.role == Role::Custodian && which(&r.backup))
        .filter_map(|(_, _, r)| match r.state {
            RequestState::Released { entry, .. } => Some(entry),
            _ => None,
        })
        .collect())
}

/// The reason given to requests closed or refused because of a redemption.
pub(super) const REDEEMED: &str =
    "redeemed: the one-time backup was used and its shards are erased";

/// On a custodian: a request for a backup redeemed here is refused, and the
/// requester told why with a `deny`.
pub(super) async fn answer_redeemed(
    engine: &mut Engine,
    item: &Item,
    request: &Request,
) -> Result<(), EngineError> {
    let requester = item.feed;
    let now = clock::now_ms();
    let deny = Content::Deny(Deny {
        version: V1,
        request: request.id,
        backup: request.backup,
        reason: Some(REDEEMED.into()),
    });
    let publish = boxed_to(engine, &[requester], &deny)?;
    let line = AuditLine::new(now, "request_refused", Outcome::Refused)
        .backup(request.backup)
        .peer(requester)
        .entry(item.id)
        .request(request.id)
        .reason(REDEEMED.to_owned());
    engine
        .commit(Some(item), publish, move |_| {
            vec![EngineUpdate::Audit(line.to_json())]
        })
        .await?;
    tracing::info!(peer = %requester, entry = %item.id, "engine: request for a redeemed backup refused");
    engine.emit(EngineEvent::Refused {
        what: "request",
        peer: requester,
        entry: item.id,
        reason: REDEEMED.to_owned(),
    });
    Ok(())
}
