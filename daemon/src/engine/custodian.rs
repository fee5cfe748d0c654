//! The custodian's side of a backup (flow 1, and flow 3's catch-up): a
//! `shard` addressed to us is verified, recorded, acknowledged once, and its
//! owner, co-custodians and trustees followed.
//!
//! What this module never does: copy the sealed shard out of its entry (the
//! `held_shards` record points at the entry, so erasing the payload erases
//! the shard), keep the opened shard past the check, or acknowledge a shard
//! twice (the record and the ack commit together, and the record is checked
//! first).

use std::collections::BTreeSet;

use sherd_protocol::content::{Ack, Content, Shard, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::envelope;
use sherd_protocol::shard::VerifiedShard;

use super::actor::Engine;
use super::audit::{AuditLine, Outcome};
use super::open::Item;
use super::records::{self, HeldShard, PolicyRecord};
use super::{EngineError, EngineEvent};
use crate::clock;
use crate::rng::os_rng;
use crate::store::EngineUpdate;

/// Acts on `shard`, found in `item` (the owner's feed) and opened with our key.
pub(super) async fn on_shard(
    engine: &mut Engine,
    item: &Item,
    shard: &Shard,
) -> Result<(), EngineError> {
    let owner = item.feed;
    let now = clock::now_ms();
    let line = |result| {
        AuditLine::new(
            now,
            match result {
                Outcome::Ok => "shard_held",
                Outcome::Refused => "shard_refused",
                Outcome::Ignored => "shard_duplicate",
            },
            result,
        )
        .backup(shard.backup)
        .peer(owner)
        .entry(item.id)
    };

    if let Some(held) = records::held_shard(&engine.store, &shard.backup)? {
        if held.shard == item.id {
            // This very entry was handled already (its record committed with
            // the cursor, so only a replay gets here): nothing to do again.
            engine.advance(item.feed, item.seq);
            return Ok(());
        }
        let reason = format!(
            "a shard of this backup is held already (entry {} of {})",
            held.shard, held.owner
        );
        return engine
            .commit_audit(item, line(Outcome::Ignored).reason(reason))
            .await;
    }

    // Verify, and keep only what the record needs: the opened shard (with
    // its share) is dropped, and zeroized, at the end of this block.
    let checked = match VerifiedShard::open(&engine.secret, &engine.me, &shard.sealed.0) {
        Err(e) => Err(e.to_string()),
        Ok(verified) => {
            let inner = verified.inner();
            if inner.owner != owner {
                Err("the shard is signed by another owner than the feed that published it".into())
            } else if inner.backup != shard.backup {
                Err("the shard's signed backup id is not the one in the entry".into())
            } else {
                // Owner first, then co-custodians and trustees, each once.
                let mut seen = BTreeSet::new();
                let follows: Vec<_> = std::iter::once(owner)
                    .chain(inner.policy.custodians.iter().copied())
                    .chain(inner.policy.trustees.iter().copied())
                    .filter(|f| *f != engine.me && seen.insert(*f))
                    .collect();
                Ok((
                    follows,
                    inner.policy.custodians.clone(),
                    inner.policy.trustees.clone(),
                    PolicyRecord {
                        veto_delay_secs: inner.policy.veto_delay_secs,
                        one_time: inner.policy.one_time,
                        release: inner.policy.release,
                    },
                ))
            }
        }
    };
    let (follows, custodians, trustees, policy) = match checked {
        Ok(checked) => checked,
        Err(reason) => {
            tracing::info!(%owner, entry = %item.id, %reason, "engine: shard refused");
            engine
                .commit_audit(item, line(Outcome::Refused).reason(reason.clone()))
                .await?;
            engine.emit(EngineEvent::ShardRefused {
                owner,
                entry: item.id,
                reason,
            });
            return Ok(());
        }
    };

    let ack = Content::Ack(Ack {
        version: V1,
        backup: shard.backup,
        shard: item.id,
    })
    .to_json()?;
    let boxed = envelope::seal(&mut os_rng(), &engine.me, &[owner], &ack)?;
    let backup = shard.backup;
    let shard_entry = item.id;
    let record_follows = follows.clone();
    let held_line = line(Outcome::Ok);
    engine
        .commit(
            Some(item),
            vec![(PayloadKind::Boxed, boxed)],
            move |published| {
                // One entry was published, so one header: the ack.
                let Some(ack) = published.first().map(SignedHeader::id) else {
                    return Vec::new();
                };
                let record = HeldShard {
                    owner,
                    shard: shard_entry,
                    received_ms: now,
                    ack,
                    follows: record_follows,
                    custodians,
                    trustees,
                    policy,
                    vetoed: Vec::new(),
                    owner_approved: Vec::new(),
                    revoked: None,
                    redeemed: None,
                    erased_replicas: Vec::new(),
                    last_proof_ms: None,
                };
                vec![
                    records::held_update(backup, &record),
                    EngineUpdate::Audit(
                        held_line
                            .reason(format!("acknowledged by entry {ack}"))
                            .to_json(),
                    ),
                ]
            },
        )
        .await?;
    tracing::info!(%owner, %backup, "engine: shard held and acknowledged");
    engine.follow(follows).await;
    engine.emit(EngineEvent::ShardHeld { backup, owner });
    Ok(())
}
