//! The owner's side of a backup (flow 1): making it, publishing it, and
//! counting the custodians' acknowledgements.
//!
//! What this module never does: keep the secret past `backup::create` (it is
//! zeroized when the spec is dropped, right after), keep a shard (each is
//! sealed to its custodian, so we could not open it anyway), or count an
//! `ack` that does not name the exact `shard` entry we published for the
//! custodian who sent it.

use std::collections::BTreeSet;

use sherd_protocol::backup::{self, BackupSpec};
use sherd_protocol::content::{Ack, Content, Grant, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::envelope;
use sherd_protocol::{BackupId, FeedId};
use zeroize::Zeroizing;

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{self, BackupRecord, CustodianRecord, PolicyRecord, TrusteeRecord};
use super::requests::boxed_to;
use super::revoke;
use super::{CreatedBackup, EngineError, EngineEvent};
use crate::clock;
use crate::rng::os_rng;
use crate::store::EngineUpdate;

/// Makes and publishes a backup; see [`super::EngineHandle::create_backup`].
/// With `replaces` (a re-share), the old backup's revocation is published
/// in the same transaction: there is never a moment with both live, or
/// neither.
pub(super) async fn create_backup(
    engine: &mut Engine,
    spec: BackupSpec,
    replaces: Option<BackupId>,
    #[cfg(test)] tamper: Option<FeedId>,
) -> Result<CreatedBackup, EngineError> {
    let replaced = match replaces {
        Some(old) => {
            let Some(record) = records::backup(&engine.store, &old)? else {
                return Err(EngineError::UnknownBackup(old));
            };
            if record.redeemed.is_some() {
                return Err(EngineError::Redeemed(old));
            }
            if record.revoked.is_some() {
                return Err(EngineError::AlreadyRevoked(old));
            }
            Some((old, record))
        }
        None => None,
    };
    let contacts: BTreeSet<FeedId> = engine
        .store
        .contacts()?
        .into_iter()
        .map(|(feed, _)| feed)
        .collect();
    // Custodians and trustees alike must follow us to see what we publish
    // for them, and we them.
    if let Some(stranger) = spec
        .custodians
        .iter()
        .chain(&spec.trustees)
        .find(|c| !contacts.contains(c))
    {
        return Err(EngineError::NotAContact(Box::new(*stranger)));
    }
    let policy = PolicyRecord {
        veto_delay_secs: spec.veto_delay_secs,
        one_time: spec.one_time,
        release: spec.release,
    };
    let trustees = spec.trustees.clone();
    let now = clock::now_ms();
    let mut rng = os_rng();
    let made = backup::create(&mut rng, &engine.key, now, &spec);
    // The secret is zeroized here, whether the backup was made or not.
    drop(spec);
    let made = made?;

    let me = engine.me;
    // The root holds the check keys: its JSON is zeroized once boxed.
    let root_json = Zeroizing::new(Content::Root(made.root.clone()).to_json()?);
    let mut publish = vec![(
        PayloadKind::Boxed,
        envelope::seal(&mut rng, &me, &[me], &root_json)?,
    )];
    drop(root_json);
    let mut custodians = Vec::with_capacity(made.shards.len());
    for (custodian, shard) in made.shards {
        #[cfg(test)]
        let shard = tampered(shard, tamper == Some(custodian));
        let json = Content::Shard(shard).to_json()?;
        publish.push((
            PayloadKind::Boxed,
            envelope::seal(&mut rng, &me, &[custodian], &json)?,
        ));
        custodians.push(custodian);
    }
    // Each trustee learns what it may ask for, and of whom.
    let grant = Content::Grant(Grant {
        version: V1,
        backup: made.id,
        label: Some(made.root.label.clone()),
        custodians: custodians.clone(),
        threshold: made.root.threshold,
        veto_delay_secs: policy.veto_delay_secs,
        one_time: policy.one_time,
        release: policy.release,
    })
    .to_json()?;
    for trustee in &trustees {
        publish.push((
            PayloadKind::Boxed,
            envelope::seal(&mut rng, &me, &[*trustee], &grant)?,
        ));
    }
    // A re-share: the old backup's custodians are told to erase, last.
    if let Some((old, record)) = &replaced {
        publish.extend(boxed_to(
            engine,
            &revoke::revoke_recipients(record),
            &revoke::revoke_content(*old, record),
        )?);
    }

    let id = made.id;
    let label = made.root.label.clone();
    let threshold = made.root.threshold;
    let record_custodians = custodians.clone();
    let record_trustees = trustees.clone();
    let line = AuditLine::new(now, "backup_created", Outcome::Ok)
        .backup(id)
        .reason(format!(
            "{threshold} of {}, {} trustees{}",
            custodians.len(),
            trustees.len(),
            replaced
                .as_ref()
                .map(|(old, _)| format!("; replaces backup {old}"))
                .unwrap_or_default()
        ));
    let revoked_line = replaced.as_ref().map(|(old, record)| {
        AuditLine::new(now, "backup_revoked", Outcome::Ok)
            .backup(*old)
            .reason(format!(
                "re-shared as backup {id}; {} custodians told to erase",
                record.custodians.len()
            ))
    });
    let trustee_count = trustees.len();
    let old_shards: Vec<_> = replaced
        .iter()
        .flat_map(|(_, old)| old.custodians.iter().map(|c| c.shard))
        .collect();
    let published = engine
        .commit(None, publish, move |published: &[SignedHeader]| {
            let ids: Vec<_> = published.iter().map(SignedHeader::id).collect();
            // The root first, then one shard per custodian, then one grant
            // per trustee, in order.
            let Some((root, rest)) = ids.split_first() else {
                return Vec::new();
            };
            let (shards, rest) = rest.split_at(rest.len().min(record_custodians.len()));
            let (grants, revokes) = rest.split_at(rest.len().min(trustee_count));
            let record = BackupRecord {
                label,
                threshold,
                created_ms: now,
                root: *root,
                custodians: record_custodians
                    .into_iter()
                    .zip(shards)
                    .map(|(feed, shard)| CustodianRecord {
                        feed,
                        shard: *shard,
                        acked: None,
                        revoke_acked: None,
                        challenge: None,
                        last_proof_ms: None,
                        silent_since_ms: None,
                    })
                    .collect(),
                trustees: record_trustees
                    .into_iter()
                    .zip(grants)
                    .map(|(feed, grant)| TrusteeRecord {
                        feed,
                        grant: *grant,
                    })
                    .collect(),
                policy,
                revoked: None,
                redeemed: None,
                last_check_ms: None,
                erased_replicas: Vec::new(),
            };
            let mut updates = vec![
                records::backup_update(id, &record),
                EngineUpdate::Audit(line.to_json()),
            ];
            if let (Some((old, mut record)), Some(revoke), Some(line)) =
                (replaced, revokes.first(), revoked_line)
            {
                record.revoked = Some(*revoke);
                updates.push(records::backup_update(old, &record));
                updates.push(EngineUpdate::Audit(line.to_json()));
            }
            updates
        })
        .await?;
    let ids: Vec<_> = published.iter().map(SignedHeader::id).collect();
    let (root, shards) = ids.split_first().ok_or_else(|| {
        EngineError::Store(crate::store::StoreError::Publish(
            "the store published none of the backup's entries".into(),
        ))
    })?;
    let created = CreatedBackup {
        id,
        root: *root,
        shards: custodians
            .iter()
            .copied()
            .zip(shards.iter().copied())
            .collect(),
    };
    tracing::info!(backup = %id, custodians = custodians.len(), "engine: backup published");
    // Contacts are followed already; this keeps the custodians followed as
    // long as the backup lives, even if one stops being a contact.
    let follows: Vec<FeedId> = custodians.iter().chain(&trustees).copied().collect();
    engine.follow(follows).await;
    // Its first health check round is a deadline now.
    engine.deadlines_changed();
    // A re-share: our copies of the old custodians' sealed shards go, as on
    // any revocation.
    super::revoke::erase(engine, &old_shards).await;
    engine.emit(EngineEvent::BackupCreated {
        backup: id,
        custodians: custodians.len(),
    });
    Ok(created)
}

/// The test-only path: one byte of the sealed shard flipped, so that the
/// custodian's check must fail.
#[cfg(test)]
fn tampered(
    mut shard: sherd_protocol::content::Shard,
    tamper: bool,
) -> sherd_protocol::content::Shard {
    if tamper {
        let middle = shard.sealed.0.len() / 2;
        if let Some(byte) = shard.sealed.0.get_mut(middle) {
            *byte ^= 0x01;
        }
    }
    shard
}

/// Acts on `ack`, found in `item` (a custodian's feed) and opened with our key.
pub(super) async fn on_ack(engine: &mut Engine, item: &Item, ack: &Ack) -> Result<(), EngineError> {
    let custodian = item.feed;
    let now = clock::now_ms();
    let ignored = |reason: String| {
        AuditLine::new(now, "ack_ignored", Outcome::Ignored)
            .backup(ack.backup)
            .peer(custodian)
            .entry(item.id)
            .reason(reason)
    };

    let Some(mut record) = records::backup(&engine.store, &ack.backup)? else {
        return ignore(
            engine,
            item,
            ignored("no backup of this node has this id".into()),
        )
        .await;
    };
    if record.revoked == Some(ack.shard) {
        return super::revoke::on_revoke_ack(engine, item, record, ack.backup).await;
    }
    let custodians = record.custodians.len();
    let Some(entry) = record.custodians.iter_mut().find(|c| c.feed == custodian) else {
        return ignore(
            engine,
            item,
            ignored("the sender is not a custodian of this backup".into()),
        )
        .await;
    };
    if entry.shard != ack.shard {
        let reason = format!(
            "it acknowledges entry {}, not the shard entry {} published for this custodian",
            ack.shard, entry.shard
        );
        return ignore(engine, item, ignored(reason)).await;
    }
    match entry.acked {
        // This very entry counted already (a replay): nothing to do again.
        Some(previous) if previous == item.id => {
            engine.advance(item.feed, item.seq);
            return Ok(());
        }
        Some(previous) => {
            let reason = format!("the shard was acknowledged already by entry {previous}");
            return ignore(engine, item, ignored(reason)).await;
        }
        None => entry.acked = Some(item.id),
    }
    let acks = record.acks();
    let line = AuditLine::new(now, "ack_received", Outcome::Ok)
        .backup(ack.backup)
        .peer(custodian)
        .entry(item.id)
        .reason(format!("{acks} of {custodians} custodians"));
    let backup = ack.backup;
    let encoded = records::encode(&record);
    engine
        .commit(Some(item), Vec::new(), move |_| {
            vec![
                EngineUpdate::Backup {
                    id: backup,
                    record: encoded,
                },
                EngineUpdate::Audit(line.to_json()),
            ]
        })
        .await?;
    tracing::info!(%backup, %custodian, acks, custodians, "engine: custodian acknowledged");
    engine.emit(EngineEvent::AckReceived {
        backup,
        custodian,
        acks,
        custodians,
    });
    Ok(())
}

async fn ignore(engine: &mut Engine, item: &Item, line: AuditLine) -> Result<(), EngineError> {
    engine.commit_audit(item, line.clone()).await?;
    engine.emit(EngineEvent::AckIgnored {
        custodian: item.feed,
        entry: item.id,
        reason: line.reason_text(),
    });
    Ok(())
}
