//! Revocation (flow 5): the owner withdraws a backup; each custodian erases
//! the payload that carried its shard and acknowledges; the owner sees who
//! has.
//!
//! The `revoke` lists the backup's `shard` entries and also goes to the
//! trustees: every custodian and trustee holds a replica of the owner's feed
//! with all the boxed shards in it, and each erases those it cannot open as
//! well (a thief of another custodian's key could open them later). Only
//! entries that do not open for the node are erased this way, so an owner's
//! list can take nothing from this node that it acts on.
//!
//! A custodian erases the payloads (a store command, which also scrubs the
//! file) before it commits its record saying `revoked` together with its
//! `ack`, so an `ack` is never ahead of the erasure; a stop in between
//! leaves the `revoke` unprocessed, to be taken again. A trustee records
//! first and erases after, and every start erases the payloads of revoked
//! shards and erased replicas again. A revoked shard is never released: its
//! payload is gone, and requests for it are refused.
//! The entries' headers stay, so the feed still verifies.

use sherd_protocol::content::{Ack, Content, Revoke, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::{BackupId, EntryId, FeedId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::{self, Item, Opened};
use super::records::{self, BackupRecord, RequestState, Role};
use super::requests::{boxed_to, request_update};
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::store::EngineUpdate;

/// On the owner: revokes backup `backup`, telling every custodian.
pub(super) async fn revoke(
    engine: &mut Engine,
    backup: BackupId,
) -> Result<BackupRecord, EngineError> {
    let Some(mut record) = records::backup(&engine.store, &backup)? else {
        return Err(EngineError::UnknownBackup(backup));
    };
    if record.revoked.is_some() {
        return Err(EngineError::AlreadyRevoked(backup));
    }
    let custodians: Vec<FeedId> = record.custodians.iter().map(|c| c.feed).collect();
    let record_shards: Vec<EntryId> = record.custodians.iter().map(|c| c.shard).collect();
    let publish = boxed_to(
        engine,
        &revoke_recipients(&record),
        &revoke_content(backup, &record),
    )?;
    let now = clock::now_ms();
    let line = AuditLine::new(now, "backup_revoked", Outcome::Ok)
        .backup(backup)
        .reason(format!("{} custodians told to erase", custodians.len()));
    engine
        .commit(None, publish, move |published: &[SignedHeader]| {
            let Some(entry) = published.first().map(SignedHeader::id) else {
                return Vec::new();
            };
            record.revoked = Some(entry);
            vec![
                records::backup_update(backup, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    // Our copies go too: we would otherwise go on serving every custodian's
    // sealed shard to whoever syncs our feed.
    erase(engine, &record_shards).await;
    tracing::info!(%backup, "engine: backup revoked");
    records::backup(&engine.store, &backup)?
        .ok_or_else(|| EngineError::Missing(format!("backup {backup} revoked but not recorded")))
}

/// Who is told of the revocation of `record`: its custodians and trustees.
pub(super) fn revoke_recipients(record: &BackupRecord) -> Vec<FeedId> {
    record
        .custodians
        .iter()
        .map(|c| c.feed)
        .chain(record.trustees.iter().map(|t| t.feed))
        .collect()
}

/// The `revoke` of `backup`, listing its `shard` entries for every replica.
pub(super) fn revoke_content(backup: BackupId, record: &BackupRecord) -> Content {
    Content::Revoke(Revoke {
        version: V1,
        backup,
        shards: record.custodians.iter().map(|c| c.shard).collect(),
    })
}

/// The entries among `listed` that are boxed entries of one of `authors`'
/// feeds (never this node's own) held here whose envelopes do not open with
/// this node's key: replicas this node keeps for others and never acts on,
/// so erasing them takes nothing from it, and no author loses its own copy.
/// Trial-opening costs one X25519 per entry (at most 64).
pub(super) fn unreadable_replicas(
    engine: &Engine,
    authors: &[FeedId],
    listed: &[EntryId],
) -> Result<Vec<EntryId>, EngineError> {
    let mut replicas = Vec::new();
    for id in listed {
        let Some(stored) = engine.store.entry(id)? else {
            continue;
        };
        let Some(author) = authors
            .iter()
            .filter(|a| **a != engine.me)
            .find(|a| a.as_bytes() == &stored.header.header().author)
        else {
            continue;
        };
        let item = open::open(
            &engine.secret,
            *author,
            &stored.header,
            stored.payload.as_deref(),
        );
        let boxed = stored.header.header().payload_kind == PayloadKind::Boxed;
        if boxed && stored.payload.is_some() && matches!(item.opened, Opened::Nothing) {
            replicas.push(*id);
        }
    }
    Ok(replicas)
}

/// On a custodian or a trustee: the owner's `revoke`.
pub(super) async fn on_revoke(
    engine: &mut Engine,
    item: &Item,
    revoke: &Revoke,
) -> Result<(), EngineError> {
    let owner = item.feed;
    let backup = revoke.backup;
    let now = clock::now_ms();
    let Some(mut held) =
        records::held_shard(&engine.store, &backup)?.filter(|held| held.owner == owner)
    else {
        return on_revoke_as_trustee(engine, item, revoke).await;
    };
    if held.revoked.is_some() {
        let line = AuditLine::new(now, "revoke_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(owner)
            .entry(item.id)
            .reason("revoked already");
        return engine.commit_audit(item, line).await;
    }
    let replicas = unreadable_replicas(engine, &[owner], &revoke.shards)?;
    held.revoked = Some(item.id);
    held.erased_replicas.extend(replicas.iter().copied());
    let mut erased = replicas;
    erased.push(held.shard);
    let mut updates = vec![records::held_update(backup, &held)];
    updates.extend(close_open_requests(
        engine,
        backup,
        "the owner revoked the backup",
    )?);
    let ack = Content::Ack(Ack {
        version: V1,
        backup,
        shard: item.id,
    });
    let publish = boxed_to(engine, &[owner], &ack)?;
    // A redeemed backup's own shard went at the redemption; the owner
    // revokes it to have the replicas erased.
    let first_erasure = held.redeemed.is_none();
    let (event, what) = if first_erasure {
        ("shard_erased", "revoked by the owner")
    } else {
        ("replicas_erased", "the owner revoked the redeemed backup")
    };
    let line = AuditLine::new(now, event, Outcome::Ok)
        .backup(backup)
        .peer(owner)
        .entry(item.id)
        .reason(format!(
            "{what}; revocation acknowledged; {} other custodians' shards erased from this replica",
            erased.len() - 1
        ));
    updates.push(EngineUpdate::Audit(line.to_json()));
    // Erased (and scrubbed) before the `ack` says so. A stop in between
    // leaves the revocation unprocessed, so it is taken again at the next
    // start: erasing what is gone costs nothing.
    engine.store.erase_payloads(erased).await?;
    engine.commit(Some(item), publish, move |_| updates).await?;
    engine.deadlines_changed();
    tracing::info!(%backup, %owner, "engine: shard erased on revocation");
    if first_erasure {
        engine.emit(EngineEvent::ShardErased { backup, owner });
    }
    Ok(())
}

/// On a trustee: the owner's `revoke` of a backup it was granted access to.
/// Nothing is acknowledged (the owner counts custodians' erasures); the
/// grant is closed and the shards replicated here are erased.
async fn on_revoke_as_trustee(
    engine: &mut Engine,
    item: &Item,
    revoke: &Revoke,
) -> Result<(), EngineError> {
    let owner = item.feed;
    let backup = revoke.backup;
    let now = clock::now_ms();
    let ignored = |reason: &str| {
        AuditLine::new(now, "revoke_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(owner)
            .entry(item.id)
            .reason(reason)
    };
    let Some(mut grant) = records::grant(&engine.store, &backup)?.filter(|g| g.owner == owner)
    else {
        let line = ignored("this node holds no shard of that backup of that owner, nor a grant");
        return engine.commit_audit(item, line).await;
    };
    if grant.revoked.is_some() {
        return engine.commit_audit(item, ignored("revoked already")).await;
    }
    let replicas = unreadable_replicas(engine, &[owner], &revoke.shards)?;
    grant.revoked = Some(item.id);
    grant.erased_replicas.clone_from(&replicas);
    let line = AuditLine::new(now, "grant_revoked", Outcome::Ok)
        .backup(backup)
        .peer(owner)
        .entry(item.id)
        .reason(format!(
            "the owner revoked the backup; {} custodians' shards erased from this replica",
            replicas.len()
        ));
    let updates = vec![
        EngineUpdate::Grant {
            id: backup,
            record: records::encode(&grant),
        },
        EngineUpdate::Audit(line.to_json()),
    ];
    engine
        .commit(Some(item), Vec::new(), move |_| updates)
        .await?;
    erase(engine, &replicas).await;
    tracing::info!(%backup, %owner, "engine: grant revoked");
    Ok(())
}

/// On the owner: a custodian's `ack` naming our `revoke` entry.
pub(super) async fn on_revoke_ack(
    engine: &mut Engine,
    item: &Item,
    mut record: BackupRecord,
    backup: BackupId,
) -> Result<(), EngineError> {
    let custodian = item.feed;
    let now = clock::now_ms();
    let Some(entry) = record.custodians.iter_mut().find(|c| c.feed == custodian) else {
        let line = AuditLine::new(now, "ack_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(custodian)
            .entry(item.id)
            .reason("the sender is not a custodian of this backup");
        return engine.commit_audit(item, line).await;
    };
    if entry.revoke_acked.is_some() {
        engine.advance(item.feed, item.seq);
        return Ok(());
    }
    entry.revoke_acked = Some(item.id);
    let erased = record
        .custodians
        .iter()
        .filter(|c| c.revoke_acked.is_some())
        .count();
    let total = record.custodians.len();
    let line = AuditLine::new(now, "revoke_acked", Outcome::Ok)
        .backup(backup)
        .peer(custodian)
        .entry(item.id)
        .reason(format!("{erased} of {total} custodians erased their shard"));
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                records::backup_update(backup, &record),
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    engine.emit(EngineEvent::RevokeAcked {
        backup,
        custodian,
        erased,
        custodians: total,
    });
    Ok(())
}

/// On a custodian: the updates that close, with `reason`, every request for
/// `backup` still open here (in its veto window, or pending a decision),
/// once the shard they ask for is gone.
pub(super) fn close_open_requests(
    engine: &Engine,
    backup: BackupId,
    reason: &str,
) -> Result<Vec<EngineUpdate>, EngineError> {
    Ok(records::requests(&engine.store)?
        .into_iter()
        .filter(|(_, _, r)| {
            r.backup == backup
                && r.role == Role::Custodian
                && matches!(
                    r.state,
                    RequestState::Waiting { .. } | RequestState::Pending
                )
        })
        .map(|(requester, id, mut r)| {
            r.state = RequestState::Denied {
                reason: Some(reason.to_owned()),
            };
            request_update(requester, id, &r)
        })
        .collect())
}

/// Erases the payloads of `entries` (shards of revoked backups).
pub(super) async fn erase(engine: &Engine, entries: &[EntryId]) {
    if entries.is_empty() {
        return;
    }
    if let Err(e) = engine.store.erase_payloads(entries.to_vec()).await {
        tracing::warn!(error = %e, "engine: cannot erase revoked shards; will retry on start");
    }
}

/// On the owner: the `shard` entries of our backups that ended (revoked,
/// re-shared or redeemed), and the replicas of the replies that redeemed
/// one, erased again on every start.
pub(super) fn ended_backup_shards(engine: &Engine) -> Result<Vec<EntryId>, EngineError> {
    Ok(records::backups(&engine.store)?
        .into_iter()
        .filter(|(_, r)| r.revoked.is_some() || r.redeemed.is_some())
        .flat_map(|(_, r)| {
            let shards = r.custodians.into_iter().map(|c| c.shard);
            shards.chain(r.erased_replicas)
        })
        .collect())
}

/// The shard entries of revoked backups, ours, and the replicas of others'
/// shards and replies erased on a revocation or a redemption (erased again
/// on every start).
pub(super) fn revoked_shards(engine: &Engine) -> Result<Vec<EntryId>, EngineError> {
    let held = records::held_shards(&engine.store)?
        .into_iter()
        .flat_map(|(_, h)| {
            h.revoked
                .map(|_| h.shard)
                .into_iter()
                .chain(h.erased_replicas)
        });
    let granted = records::grants(&engine.store)?
        .into_iter()
        .flat_map(|(_, g)| g.erased_replicas);
    Ok(held.chain(granted).collect())
}
