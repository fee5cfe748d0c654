//! `one-time` (issue 5, one-time access): a 3-of-5 backup whose policy makes
//! the trustee's access one-time, with a short veto window and `release:
//! auto`. The trustee asks, waits the window out and takes the exact secret;
//! that redeems the backup. Checked on disk, with the custodians and the
//! trustee on `--test-hooks` (the bytes of a payload come from `GET
//! /v1/test/entry/{id}`): before the redemption, each custodian's `shard`
//! payload and the `reply` it released are in a file of its data dir (the
//! control); after it, in no file of it, and the payloads the trustee's
//! recovery took are in no file of the trustee's. The owner's backup says
//! who redeemed it; every custodian audits `shard_erased`; the trustee
//! asking again is refused (409, redeemed); the owner's own request is
//! denied by every custodian, "redeemed". The owner revokes the redeemed
//! backup, so the replicas of every custodian's `shard` entry (the owner's
//! feed carries them all) are in no file of any node's data dir either; nor
//! are the replicas of the custodians' replies, which the trustee's
//! `redeemed` lists.

use std::collections::BTreeMap;

use sherd_api::Denial;
use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS, OWNER};
use super::disk;
use super::emergency::{self, TRUSTEE, Terms};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

/// The owner's veto window, in seconds.
const WINDOW_SECS: u32 = 2;
/// What a custodian's `deny` of a redeemed backup's request starts with.
const REDEEMED: &str = "redeemed";

pub(super) const SCENARIO: Scenario = Scenario {
    name: "one-time",
    about: "a trustee recovers a one-time backup after the veto window; every custodian erases \
            its shard and reply (in no file of its data dir); asking again is refused, the \
            owner's own request is denied \"redeemed\"",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

/// What one custodian stored and published for the backup.
#[derive(Debug)]
struct Held {
    /// The owner's `shard` entry for it, and its payload.
    shard: (String, Vec<u8>),
    /// Its `reply` to the trustee, and its payload, once released.
    reply: Option<(String, Vec<u8>)>,
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let terms = Terms {
        veto_delay_secs: WINDOW_SECS,
        release: "auto",
        one_time: true,
        test_hooks: true,
    };
    let (backup, secret) = emergency::set_up(net, s, terms).await?;
    let mut held = s
        .step(
            "the owner's backup is one-time and names each custodian's shard entry; each \
             custodian stores its payload, whose bytes are in a file of its data dir (the control)",
            async |_| {
                let shown = net.node(OWNER)?.client().backup(&backup).await.on(OWNER)?;
                match &shown.policy {
                    Some(p) if p.one_time => {}
                    other => {
                        return Err(Failure::on(OWNER, format!("the policy is {other:?}")));
                    }
                }
                let mut held = BTreeMap::new();
                for c in CUSTODIANS {
                    let feed = net.node(c)?.feed_id().to_owned();
                    let shard = shown
                        .custodians
                        .iter()
                        .find(|x| x.feed == feed)
                        .map(|x| x.shard.clone())
                        .ok_or_else(|| Failure::on(OWNER, format!("{c} is not a custodian")))?;
                    let payload = disk::stored_payload(net, c, &shard).await?;
                    if disk::on_disk(net, c, &payload)?.is_empty() {
                        return Err(Failure::on(
                            c,
                            "the control failed: the shard's bytes are in no file of its \
                             data dir before the erasure",
                        ));
                    }
                    held.insert(
                        c,
                        Held {
                            shard: (shard, payload),
                            reply: None,
                        },
                    );
                }
                Ok(held)
            },
        )
        .await?;
    s.set("shard_payloads_found_before", held.len());

    let request = emergency::trustee_asks(net, s, &backup).await?;
    let title = format!(
        "the {WINDOW_SECS} s window closes; c1..c5 each release once (auto) to the trustee, \
         which stores every reply; each reply's bytes are on the custodian's disk (the \
         control)"
    );
    s.step(title, async |until| {
        for (c, h) in &mut held {
            let released = emergency::wait_for_state(net, until, c, &request.id, "released")
                .await?
                .released
                .ok_or_else(|| Failure::on(c, "released, but names no reply entry"))?;
            let payload = disk::stored_payload(net, c, &released).await?;
            // The trustee stores it once it arrives over gossip. A reply
            // that arrives after the recovery is complete is erased at once
            // (a surplus shard), so it may be stored without its payload.
            flow::poll(until, TRUSTEE, &format!("{c}'s reply"), || async {
                Ok(match disk::payload_of(net, TRUSTEE, &released).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err("not stored yet".to_owned()),
                })
            })
            .await?;
            if disk::on_disk(net, c, &payload)?.is_empty() {
                return Err(Failure::on(
                    c,
                    format!(
                        "the control failed: the bytes of {c}'s reply are in no file of its \
                         data dir before the erasure"
                    ),
                ));
            }
            h.reply = Some((released, payload));
        }
        Ok(())
    })
    .await?;
    s.set("shards_released", held.len());

    let owner = net.node(OWNER)?.feed_id().to_owned();
    common::recovers(
        net,
        s,
        TRUSTEE,
        &owner,
        &backup,
        &secret,
        common::no_refusals,
    )
    .await?;

    let trustee = net.node(TRUSTEE)?.feed_id().to_owned();
    s.step(
        "the take redeemed the backup: the owner's backup shows it redeemed by the trustee, \
         the trustee's grant is used, every custodian audits shard_erased and lists the \
         shard as held no more",
        async |until| {
            let client = net.node(OWNER)?.client();
            flow::poll(until, OWNER, "the backup to show redeemed", || async {
                let shown = client.backup(&backup).await.on(OWNER)?;
                Ok(match shown.redeemed {
                    Some(r) if r.by == trustee => Ok(()),
                    Some(r) => Err(format!("redeemed by {}, not the trustee", r.by)),
                    None => Err("not redeemed".to_owned()),
                })
            })
            .await?;
            let grants = net.node(TRUSTEE)?.client().grants().await.on(TRUSTEE)?;
            if !grants
                .iter()
                .any(|g| g.backup == backup && g.redeemed_ms.is_some())
            {
                return Err(Failure::on(TRUSTEE, "its grant does not say it was used"));
            }
            for c in CUSTODIANS {
                flow::poll(until, c, "a shard_erased line", || async {
                    let log = flow::audit_log(net, c).await?;
                    let n = flow::audit_count(&log, "shard_erased", "backup")
                        .get(&backup)
                        .copied()
                        .unwrap_or(0);
                    Ok(match n {
                        1 => Ok(()),
                        0 => Err("none yet".to_owned()),
                        n => Err(format!("{n} of them")),
                    })
                })
                .await?;
                let held = net.node(c)?.client().shards().await.on(c)?;
                if let Some(h) = held.iter().find(|h| h.backup == backup) {
                    return Err(Failure::on(
                        c,
                        format!("{c} still lists the shard as held: {h:?}"),
                    ));
                }
            }
            Ok(())
        },
    )
    .await?;
    s.set("shards_erased", CUSTODIANS.len());

    let waited = s
        .step(
            "on every custodian the shard entry's payload and its reply's are erased: stored \
             as erased, their bytes in no file of its data dir",
            async |until| {
                let mut waited = 0;
                for (c, h) in &held {
                    let (shard, shard_bytes) = &h.shard;
                    let Some((reply, reply_bytes)) = &h.reply else {
                        return Err(Failure::on(c, "no reply recorded"));
                    };
                    for (what, id, bytes) in [
                        ("its shard entry", shard, shard_bytes),
                        ("its reply", reply, reply_bytes),
                    ] {
                        waited = waited.max(disk::wait_gone(net, until, c, what, bytes).await?);
                        if disk::payload_of(net, c, id).await?.is_some() {
                            return Err(Failure::on(
                                c,
                                format!("{what} ({id}) still has its payload"),
                            ));
                        }
                    }
                }
                Ok(waited)
            },
        )
        .await?;
    s.note(format!(
        "the last bytes were gone {waited} ms after this step began"
    ));
    s.set("payloads_erased", 2 * held.len());

    let waited = s
        .step(
            "the trustee erased every reply: the ones its recovery took, and the ones that \
             came after it was complete; none is in a file of its data dir",
            async |until| {
                let mut waited = 0;
                for (c, h) in &held {
                    if let Some((_, bytes)) = &h.reply {
                        let what = format!("{c}'s reply");
                        waited =
                            waited.max(disk::wait_gone(net, until, TRUSTEE, &what, bytes).await?);
                    }
                }
                Ok(waited)
            },
        )
        .await?;
    s.note(format!(
        "the last reply was gone from the trustee's disk {waited} ms after this step began"
    ));

    let everyone: Vec<&str> = std::iter::once(OWNER)
        .chain(CUSTODIANS)
        .chain(std::iter::once(TRUSTEE))
        .collect();
    s.step(
        "no copy of any shard is left anywhere: the owner revoked the redeemed backup, and \
         every node erased its replicas of every custodian's shard entry",
        async |until| {
            for (c, h) in &held {
                for name in everyone.iter().filter(|n| **n != *c) {
                    let what = format!("its replica of {c}'s shard");
                    disk::wait_gone(net, until, name, &what, &h.shard.1).await?;
                }
            }
            Ok(())
        },
    )
    .await?;
    let replicas = s
        .step(
            "no copy of any reply is left either: the trustee's redeemed lists them, and the \
             owner and every custodian erased their replicas",
            async |until| {
                let mut replicas = 0u64;
                for (c, h) in &held {
                    let Some((_, reply)) = &h.reply else { continue };
                    for name in everyone.iter().filter(|n| **n != *c && **n != TRUSTEE) {
                        let what = format!("its replica of {c}'s reply");
                        disk::wait_gone(net, until, name, &what, reply).await?;
                        replicas += 1;
                    }
                }
                Ok(replicas)
            },
        )
        .await?;
    s.set("reply_replicas_erased", replicas);

    s.step(
        "the trustee asking again is refused: 409, redeemed",
        async |_| {
            let again = net
                .node(TRUSTEE)?
                .client()
                .start_recovery(&sherd_api::StartRecovery {
                    backup: Some(backup.clone()),
                    ..sherd_api::StartRecovery::default()
                })
                .await;
            common::conflict(TRUSTEE, "the second request", again, REDEEMED)
        },
    )
    .await?;

    let denied = s
        .step(
            "the owner asks for its own backup: every custodian denies it, \"redeemed\"",
            async |until| {
                let asked = flow::request_recovery(net, OWNER, &backup).await?;
                let feeds = flow::feeds(net, &CUSTODIANS)?;
                let done =
                    flow::wait_for_recovery(net, until, OWNER, &backup, "five denials", |r| {
                        r.denied.len() >= CUSTODIANS.len()
                    })
                    .await?;
                if !done.requests.contains(&asked.id) {
                    return Err(Failure::on(
                        OWNER,
                        format!("the recovery does not list request {}", asked.id),
                    ));
                }
                let mut by: Vec<&str> = done.denied.iter().map(|d| d.custodian.as_str()).collect();
                by.sort_unstable();
                let mut want: Vec<&str> = feeds.iter().map(String::as_str).collect();
                want.sort_unstable();
                if by != want {
                    return Err(Failure::on(
                        OWNER,
                        format!("denied by {by:?}, not once by each custodian"),
                    ));
                }
                if let Some(Denial { custodian, reason }) = done
                    .denied
                    .iter()
                    .find(|d| !d.reason.as_deref().unwrap_or("").starts_with(REDEEMED))
                {
                    return Err(Failure::on(
                        OWNER,
                        format!("{custodian} denied with {reason:?}, not \"{REDEEMED}...\""),
                    ));
                }
                if done.shards != 0 || done.state != "collecting" {
                    return Err(Failure::on(
                        OWNER,
                        format!("the recovery is {} with {} shards", done.state, done.shards),
                    ));
                }
                Ok(done.denied.len())
            },
        )
        .await?;
    s.set("owner_denials", denied);
    Ok(())
}
