//! `revoke` (issue 5, revocation): a 2-of-3 backup with a request of the
//! owner's pending at every custodian; the owner revokes it. Every custodian
//! erases its shard and says so (the owner's backup shows each one
//! `erased`), closes the pending request (approving it now is refused, 409)
//! and no longer lists the shard as held; the payload of its `shard` entry
//! is in no file of its data dir (read before through `GET
//! /v1/test/entry/{id}`: the custodians run with `--test-hooks`; found on
//! disk before, the control). Each custodian's replica of the owner's feed
//! also holds the other custodians' boxed shards (found on its disk before);
//! the `revoke` lists them, and those bytes too end up in no file of any
//! custodian's data dir, nor of the owner's. A new request for the backup is
//! refused.
//!
//! A custodian scrubs its store before it acknowledges, so when the owner
//! first shows a custodian `erased`, its bytes are on its disk no more.

use sherd_api::DecideRequest;
use sherd_testnet::Testnet;

use super::common::{self, OWNER};
use super::disk;
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const CUSTODIANS: [&str; 3] = ["c1", "c2", "c3"];
const THRESHOLD: u8 = 2;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "revoke",
    about: "the owner revokes a 2-of-3 backup with a request pending; every custodian erases \
            its shard (in no file of its data dir) and says so; the old request cannot be \
            approved, a new one is refused",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let feeds = common::start_few(net, s, &CUSTODIANS, &[], &["--test-hooks"]).await?;
    let made = common::back_up_with(
        net,
        s,
        &feeds,
        THRESHOLD,
        "the owner backs a 32-byte secret up 2-of-3 with c1..c3; all three ack",
    )
    .await?;
    let shards = s
        .step(
            "each custodian stores the payload of its shard entry (named in the owner's \
             backup), and its bytes are in a file of its data dir (the control)",
            async |_| {
                let shown = net.node(OWNER)?.client().backup(&made.id).await.on(OWNER)?;
                let mut shards = Vec::new();
                for (c, feed) in CUSTODIANS.iter().zip(&feeds) {
                    let shard = shown
                        .custodians
                        .iter()
                        .find(|x| &x.feed == feed)
                        .map(|x| x.shard.clone())
                        .ok_or_else(|| Failure::on(OWNER, format!("{c} is not a custodian")))?;
                    let payload = disk::stored_payload(net, c, &shard).await?;
                    if disk::on_disk(net, c, &payload)?.is_empty() {
                        return Err(Failure::on(
                            c,
                            "the control failed: its shard's bytes are in no file of its data \
                             dir before the revocation",
                        ));
                    }
                    shards.push((*c, shard, payload));
                }
                Ok(shards)
            },
        )
        .await?;
    s.set("shard_payloads_found_before", shards.len());
    let replicas = s
        .step(
            "each custodian's replica of the owner's feed holds the other custodians' boxed \
             shards too: their bytes are in a file of its data dir (the control)",
            async |until| {
                let mut replicas = 0u64;
                for c in CUSTODIANS {
                    for (other, _, payload) in shards.iter().filter(|(o, _, _)| *o != c) {
                        flow::poll(
                            until,
                            c,
                            "the replica of another custodian's shard",
                            || async {
                                Ok(if disk::on_disk(net, c, payload)?.is_empty() {
                                    Err(format!("{other}'s shard is not on its disk yet"))
                                } else {
                                    Ok(())
                                })
                            },
                        )
                        .await?;
                        replicas += 1;
                    }
                }
                Ok(replicas)
            },
        )
        .await?;
    s.set("replicas_found_before", replicas);
    let request = common::owner_asks(net, s, &made.id, &CUSTODIANS).await?;

    let shown = s
        .step(
            "the owner revokes the backup; every custodian erases its shard and says so: the \
             owner's backup shows all three erased",
            async |until| {
                let revoked = net
                    .node(OWNER)?
                    .client()
                    .revoke_backup(&made.id)
                    .await
                    .on(OWNER)?;
                if !revoked.revoked {
                    return Err(Failure::on(OWNER, "the answer does not say revoked"));
                }
                let client = net.node(OWNER)?.client();
                let shown = flow::poll(until, OWNER, "every custodian to erase", || async {
                    let shown = client.backup(&made.id).await.on(OWNER)?;
                    let erased = shown.custodians.iter().filter(|c| c.erased).count();
                    Ok(if erased == CUSTODIANS.len() {
                        Ok(shown)
                    } else {
                        Err(format!("{erased} of {} erased", CUSTODIANS.len()))
                    })
                })
                .await?;
                // At once, before waiting on anything: an `ack` comes after
                // the erasure, so no custodian's payload is on its disk.
                for (c, _, payload) in &shards {
                    let files = disk::on_disk(net, c, payload)?;
                    if !files.is_empty() {
                        return Err(Failure::on(
                            c,
                            format!("shown erased, yet its shard's bytes are in {files:?}"),
                        ));
                    }
                }
                Ok(shown)
            },
        )
        .await?;
    if !shown.revoked {
        return Err(Failure::on(OWNER, "the backup does not show revoked"));
    }
    s.set("erased", CUSTODIANS.len());

    let waited = s
        .step(
            "on every custodian: a shard_erased line, the shard entry stored without its \
             payload, the bytes in no file of its data dir, the shard no longer listed as held",
            async |until| {
                let mut waited = 0;
                for (c, shard, payload) in &shards {
                    let log = flow::audit_log(net, c).await?;
                    let lines = flow::audit_count(&log, "shard_erased", "backup")
                        .get(&made.id)
                        .copied()
                        .unwrap_or(0);
                    if lines != 1 {
                        return Err(Failure::on(c, format!("{lines} shard_erased lines, not 1")));
                    }
                    waited = waited
                        .max(disk::wait_gone(net, until, c, "its shard entry", payload).await?);
                    if disk::payload_of(net, c, shard).await?.is_some() {
                        return Err(Failure::on(c, "its shard entry still has its payload"));
                    }
                    let held = net.node(c)?.client().shards().await.on(c)?;
                    if let Some(h) = held.iter().find(|h| h.backup == made.id) {
                        return Err(Failure::on(
                            c,
                            format!("{c} still lists the shard as held: {h:?}"),
                        ));
                    }
                }
                Ok(waited)
            },
        )
        .await?;
    s.note(format!(
        "the last bytes were gone {waited} ms into this step"
    ));
    s.step(
        "no copy is left anywhere: on every custodian, the other custodians' shards (listed \
         by the revoke) are in no file of its data dir either, nor any shard in the owner's",
        async |until| {
            for c in CUSTODIANS {
                for (other, _, payload) in shards.iter().filter(|(o, _, _)| *o != c) {
                    let what = format!("its replica of {other}'s shard");
                    disk::wait_gone(net, until, c, &what, payload).await?;
                }
            }
            for (c, _, payload) in &shards {
                let what = format!("its copy of {c}'s shard");
                disk::wait_gone(net, until, OWNER, &what, payload).await?;
            }
            Ok(())
        },
    )
    .await?;

    s.step(
        "the pending request is closed: each custodian shows it denied, and approving it \
         is refused (409)",
        async |_| {
            for c in CUSTODIANS {
                let client = net.node(c)?.client();
                let seen = flow::as_custodian(client, c, &request.id)
                    .await?
                    .ok_or_else(|| Failure::on(c, "the request is gone"))?;
                if seen.state != "denied" {
                    return Err(Failure::on(
                        c,
                        format!("the request is {}, not denied", seen.state),
                    ));
                }
                let late = client.approve(&request.id, &DecideRequest::default()).await;
                common::conflict(c, "approving after the revocation", late, "denied")?;
            }
            Ok(())
        },
    )
    .await?;

    common::asking_again_is_refused(
        net,
        s,
        &made.id,
        "a new request for the revoked backup is refused (409)",
    )
    .await
}
