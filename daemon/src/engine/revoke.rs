//! Revocation (flow 5): the owner withdraws a backup; each custodian erases
//! the payload that carried its shard and acknowledges; the owner sees who
//! has.
//!
//! The custodian's record says `revoked` (in the same transaction as its
//! `ack`) before the payload is erased (a separate store command), and every
//! start erases the payloads of revoked shards again: a crash in between
//! leaves nothing behind for long. A revoked shard is never released: its
//! payload is gone, and requests for it are refused.
//!
//! What "erased" means here: the payload is deleted from the store; the
//! entry's header stays (the feed still verifies). redb does not scrub freed
//! pages, so until they are reused the bytes may linger in the file (see
//! BENCHMARKS/closing notes: scrubbing is issue 5's next step).

use sherd_protocol::content::{Ack, Content, Revoke, V1};
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::{BackupId, EntryId, FeedId};

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
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
        &custodians,
        &Content::Revoke(Revoke {
            version: V1,
            backup,
        }),
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

/// On a custodian: the owner's `revoke`.
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
        let line = AuditLine::new(now, "revoke_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(owner)
            .entry(item.id)
            .reason("this node holds no shard of that backup of that owner");
        return engine.commit_audit(item, line).await;
    };
    if held.revoked.is_some() {
        let line = AuditLine::new(now, "revoke_ignored", Outcome::Ignored)
            .backup(backup)
            .peer(owner)
            .entry(item.id)
            .reason("revoked already");
        return engine.commit_audit(item, line).await;
    }
    held.revoked = Some(item.id);
    let shard_entry = held.shard;
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
    let line = AuditLine::new(now, "shard_erased", Outcome::Ok)
        .backup(backup)
        .peer(owner)
        .entry(item.id)
        .reason("revoked by the owner; revocation acknowledged");
    updates.push(EngineUpdate::Audit(line.to_json()));
    engine.commit(Some(item), publish, move |_| updates).await?;
    erase(engine, &[shard_entry]).await;
    engine.deadlines_changed();
    tracing::info!(%backup, %owner, "engine: shard erased on revocation");
    engine.emit(EngineEvent::ShardErased { backup, owner });
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
/// re-shared or redeemed), erased again on every start.
pub(super) fn ended_backup_shards(engine: &Engine) -> Result<Vec<EntryId>, EngineError> {
    Ok(records::backups(&engine.store)?
        .into_iter()
        .filter(|(_, r)| r.revoked.is_some() || r.redeemed.is_some())
        .flat_map(|(_, r)| r.custodians.into_iter().map(|c| c.shard))
        .collect())
}

/// The shard entries of revoked backups (erased again on every start).
pub(super) fn revoked_shards(engine: &Engine) -> Result<Vec<EntryId>, EngineError> {
    Ok(records::held_shards(&engine.store)?
        .into_iter()
        .filter(|(_, h)| h.revoked.is_some())
        .map(|(_, h)| h.shard)
        .collect())
}
