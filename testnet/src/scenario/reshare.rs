//! `reshare` (issue 5, re-share): a 2-of-3 backup with c1, c2 and c3 is
//! backed up anew with c2, c3 and c4, threshold 2, the secret given again,
//! in one call: the answer holds the new backup and the old one, revoked.
//! The old custodians erase their old shards (the owner's old backup shows
//! all three erased; c1, which has no part in the new one, holds nothing
//! live and its old shard entry is stored without its payload: it runs with
//! `--test-hooks` for `GET /v1/test/entry/{id}`); c2..c4 ack the new
//! backup; the owner recovers the new backup with two approvals and gets the
//! exact secret. The old backup can no longer be asked for.

use base64::Engine as _;
use sherd_api::CreateBackup;
use sherd_testnet::Testnet;

use super::common::{self, OWNER};
use super::disk;
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const OLD: [&str; 3] = ["c1", "c2", "c3"];
const NEW: [&str; 3] = ["c2", "c3", "c4"];
const THRESHOLD: u8 = 2;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "reshare",
    about: "a 2-of-3 backup with c1..c3 is re-shared to c2..c4 in one step: the old one is \
            revoked and erased (c1 holds nothing live), the new one acked and recovered \
            with two approvals, the exact secret",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let all = ["c1", "c2", "c3", "c4"];
    let feeds = common::start_few(net, s, &all, &[], &["--test-hooks"]).await?;
    let old_feeds = feeds[..3].to_vec();
    let new_feeds = feeds[1..].to_vec();
    let made = common::back_up_with(
        net,
        s,
        &old_feeds,
        THRESHOLD,
        "the owner backs a 32-byte secret up 2-of-3 with c1..c3; all three ack",
    )
    .await?;
    let c1_shard = s
        .step(
            "c1 stores the payload of its shard entry, named in the owner's backup",
            async |_| {
                let shown = net.node(OWNER)?.client().backup(&made.id).await.on(OWNER)?;
                let shard = shown
                    .custodians
                    .iter()
                    .find(|c| c.feed == feeds[0])
                    .map(|c| c.shard.clone())
                    .ok_or_else(|| Failure::on(OWNER, "c1 is not a custodian"))?;
                disk::stored_payload(net, "c1", &shard).await?;
                Ok(shard)
            },
        )
        .await?;

    let reshared = s
        .step(
            "the owner re-shares it to c2, c3 and c4, threshold 2, giving the secret again: \
             the answer holds the new backup and the old one, revoked",
            async |_| {
                let old = net.node(OWNER)?.client().backup(&made.id).await.on(OWNER)?;
                let request = CreateBackup {
                    label: old.label.clone(),
                    threshold: THRESHOLD,
                    custodians: new_feeds.clone(),
                    secret: base64::engine::general_purpose::STANDARD
                        .encode(&made.secret)
                        .into(),
                    ..CreateBackup::default()
                };
                let reshared = net
                    .node(OWNER)?
                    .client()
                    .reshare_backup(&made.id, &request)
                    .await
                    .on(OWNER)?;
                let new_custodians: Vec<&str> = reshared
                    .new
                    .custodians
                    .iter()
                    .map(|c| c.feed.as_str())
                    .collect();
                let why = if reshared.old.id != made.id {
                    Some(format!("`old` is {}, not {}", reshared.old.id, made.id))
                } else if !reshared.old.revoked {
                    Some("`old` is not revoked".to_owned())
                } else if reshared.new.id == made.id || reshared.new.revoked {
                    Some(format!(
                        "`new` is {} (revoked: {})",
                        reshared.new.id, reshared.new.revoked
                    ))
                } else if new_custodians != new_feeds {
                    Some(format!("`new` has custodians {new_custodians:?}"))
                } else if reshared.new.threshold != THRESHOLD {
                    Some(format!("`new` has threshold {}", reshared.new.threshold))
                } else if reshared.new.label != old.label {
                    Some(format!("`new` is labelled {:?}", reshared.new.label))
                } else {
                    None
                };
                match why {
                    Some(why) => Err(Failure::on(OWNER, why)),
                    None => Ok(reshared),
                }
            },
        )
        .await?;
    let new_id = reshared.new.id.clone();

    s.step(
        "the old custodians erase their old shards: the owner's old backup shows c1..c3 \
         erased; c1 holds nothing live, its old shard entry stored without its payload",
        async |until| {
            let client = net.node(OWNER)?.client();
            flow::poll(until, OWNER, "c1..c3 to erase", || async {
                let shown = client.backup(&made.id).await.on(OWNER)?;
                let erased = shown.custodians.iter().filter(|c| c.erased).count();
                Ok(if shown.revoked && erased == OLD.len() {
                    Ok(())
                } else {
                    Err(format!(
                        "revoked {}, {erased} of {} erased",
                        shown.revoked,
                        OLD.len()
                    ))
                })
            })
            .await?;
            for c in OLD {
                let log = flow::audit_log(net, c).await?;
                let lines = flow::audit_count(&log, "shard_erased", "backup")
                    .get(&made.id)
                    .copied()
                    .unwrap_or(0);
                if lines != 1 {
                    return Err(Failure::on(c, format!("{lines} shard_erased lines, not 1")));
                }
            }
            let held = net.node("c1")?.client().shards().await.on("c1")?;
            if !held.is_empty() {
                return Err(Failure::on(
                    "c1",
                    format!("c1 still lists {} shards as held: {held:?}", held.len()),
                ));
            }
            if disk::payload_of(net, "c1", &c1_shard).await?.is_some() {
                return Err(Failure::on(
                    "c1",
                    "its old shard entry still has its payload",
                ));
            }
            Ok(())
        },
    )
    .await?;
    s.set("old_erased", OLD.len());

    s.step(
        "c2, c3 and c4 ack the new backup; each holds exactly one live shard, of it",
        async |until| {
            flow::wait_for_acks(net, until, OWNER, &new_id, NEW.len()).await?;
            for c in NEW {
                let held = net.node(c)?.client().shards().await.on(c)?;
                let backups: Vec<&str> = held.iter().map(|h| h.backup.as_str()).collect();
                if backups != [new_id.as_str()] {
                    return Err(Failure::on(
                        c,
                        format!("{c} lists shards of {backups:?}, not of the new backup alone"),
                    ));
                }
            }
            Ok(())
        },
    )
    .await?;
    s.set("acks", NEW.len());
    s.set("custodians", NEW.len());

    let request = common::owner_asks(net, s, &new_id, &NEW).await?;
    common::approvals(net, s, &request.id, &["c2", "c4"]).await?;
    let owner = net.node(OWNER)?.feed_id().to_owned();
    common::recovers_with(
        net,
        s,
        OWNER,
        &owner,
        &new_id,
        THRESHOLD,
        &made.secret,
        common::no_refusals,
    )
    .await?;

    common::asking_again_is_refused(
        net,
        s,
        &made.id,
        "the old backup can no longer be asked for (409)",
    )
    .await
}
