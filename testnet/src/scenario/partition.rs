//! `partition`: the network splits in two in the middle of a recovery.
//!
//! The owner and c1..c5 run with the test hooks; each custodian reaches the
//! owner and c1, so there are two paths between most nodes. The owner asks
//! for its 3-of-5 backup back, and then the network is cut in two,
//! {owner, c1, c2} | {c3, c4, c5}: every node blocks every node of the other
//! side (each link is blocked from both ends). c3 and c4 approve while cut
//! off, so their shards cannot reach the owner; c1 approves and its shard
//! arrives. The owner stays at 1 of 3 until the network heals; then the
//! recovery completes with exactly 3 shards (c1's, c3's and c4's), none
//! refused, and no custodian released its shard twice.

use std::collections::BTreeSet;
use std::time::Duration;

use sherd_testnet::Testnet;
use tokio::time::Instant;

use super::common::{self, CUSTODIANS, OWNER, THRESHOLD};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

/// The side of the owner.
const NEAR: [&str; 3] = [OWNER, "c1", "c2"];
/// The side cut off from the owner.
const FAR: [&str; 3] = ["c3", "c4", "c5"];
/// The custodians that approve, and whose shards make the recovery.
const APPROVERS: [&str; 3] = ["c1", "c3", "c4"];
/// How long the owner is watched while cut off.
const CUT_OFF_WATCH: Duration = Duration::from_secs(1);

pub(super) const SCENARIO: Scenario = Scenario {
    name: "partition",
    about: "the network splits {owner, c1, c2} | {c3, c4, c5} during a recovery; c3 and c4 \
            approve while cut off; after the heal the recovery completes with exactly 3 shards",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    s.step(
        "start the owner's node and c1..c5, all with --test-hooks",
        async |_| {
            for name in std::iter::once(OWNER).chain(CUSTODIANS) {
                net.start_with(name, &["--test-hooks"]).await?;
            }
            Ok(())
        },
    )
    .await?;
    s.set("daemons", CUSTODIANS.len() + 1);
    let feeds = s
        .step(
            "each custodian dials the owner and they become contacts; c2..c5 also dial c1",
            async |_| {
                flow::befriend_owner(net, OWNER, &CUSTODIANS).await?;
                for c in &CUSTODIANS[1..] {
                    net.connect(c, "c1").await?;
                }
                flow::feeds(net, &CUSTODIANS)
            },
        )
        .await?;
    let made = common::back_up(
        net,
        s,
        &feeds,
        CUSTODIANS.len(),
        "the owner backs a 32-byte secret up 3-of-5 with c1..c5; all five ack",
    )
    .await?;
    s.set("acks", CUSTODIANS.len());
    let request = common::owner_asks(net, s, &made.id, &CUSTODIANS).await?;

    let links = s
        .step(
            "cut the network: {owner, c1, c2} | {c3, c4, c5}, each node blocking the other side",
            async |until| {
                let mut links = 0u64;
                for near in NEAR {
                    for far in FAR {
                        block(net, near, far).await?;
                        block(net, far, near).await?;
                        links += 1;
                    }
                }
                for name in NEAR.iter().chain(&FAR) {
                    wait_for_peers(net, until, name, "no peer of the other side", |peers| {
                        other_side(name).iter().all(|n| !peers.contains(*n))
                    })
                    .await?;
                }
                Ok(links)
            },
        )
        .await?;
    s.set("blocked_links", links);

    s.step(
        "c3 and c4 approve while cut off: their shards cannot reach the owner",
        async |_| {
            for name in ["c3", "c4"] {
                flow::approve(net, name, &request.id, None).await?;
            }
            Ok(())
        },
    )
    .await?;
    s.add("approvals", 2);
    let before = s
        .step(
            "c1 approves; its shard reaches the owner, which stays at 1 of 3 while cut off",
            async |until| {
                flow::approve(net, "c1", &request.id, None).await?;
                flow::wait_for_recovery(net, until, OWNER, &made.id, "c1's shard", |r| {
                    r.shards >= 1
                })
                .await?;
                // The one fixed wait of the scenario: what must be shown is
                // that nothing more arrives, so it is watched for a bounded
                // time, polled all along.
                let client = net.node(OWNER)?.client();
                let watch_until = Instant::now() + CUT_OFF_WATCH;
                let mut most = 0;
                while Instant::now() < watch_until {
                    let r = client.recovery(&made.id).await.on(OWNER)?;
                    most = most.max(r.shards);
                    if r.shards != 1 || r.state != "collecting" {
                        return Err(Failure::on(
                            OWNER,
                            format!(
                                "while cut off the recovery is {} with {} shards, not 1 of \
                                 {THRESHOLD}",
                                r.state, r.shards
                            ),
                        ));
                    }
                    tokio::time::sleep(flow::POLL).await;
                }
                Ok(most)
            },
        )
        .await?;
    s.add("approvals", 1);
    s.set("shards_before_heal", before);
    s.note(format!(
        "the owner held {before} shard for {} ms after c1's arrived",
        CUT_OFF_WATCH.as_millis()
    ));

    s.step(
        "heal: every node unblocks the other side; the owner reaches c3, c4 and c5 again",
        async |until| {
            for near in NEAR {
                for far in FAR {
                    unblock(net, near, far).await?;
                    unblock(net, far, near).await?;
                }
            }
            wait_for_peers(net, until, OWNER, "c3, c4 and c5 again", |peers| {
                FAR.iter().all(|n| peers.contains(*n))
            })
            .await
        },
    )
    .await?;

    let owner = net.node(OWNER)?.feed_id().to_owned();
    let done = common::recovers(
        net,
        s,
        OWNER,
        &owner,
        &made.id,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    s.set("shards_after_heal", done.shards);

    let released = s
        .step(
            "each custodian's audit log: c1, c3 and c4 released their shard once, c2 and c5 not",
            async |_| {
                let mut released = 0;
                for c in CUSTODIANS {
                    let log = flow::audit_log(net, c).await?;
                    let counts = flow::audit_count(&log, "shard_released", "request");
                    if let Some((other, _)) = counts.iter().find(|(r, _)| **r != request.id) {
                        return Err(Failure::on(
                            c,
                            format!("{c} released a shard for another request, {other}"),
                        ));
                    }
                    let n = counts.get(&request.id).copied().unwrap_or(0);
                    let want = usize::from(APPROVERS.contains(&c));
                    if n != want {
                        return Err(Failure::on(
                            c,
                            format!("{c} released its shard {n} times, {want} expected"),
                        ));
                    }
                    released += n;
                }
                Ok(released)
            },
        )
        .await?;
    s.set("shards_released", released);
    Ok(())
}

/// The nodes on the other side of the cut from `name`.
fn other_side(name: &str) -> &'static [&'static str] {
    if NEAR.contains(&name) { &FAR } else { &NEAR }
}

/// `name` cuts `other` off.
async fn block(net: &Testnet, name: &str, other: &str) -> Result<(), Failure> {
    let peer = net.node(other)?.feed_id().to_owned();
    net.node(name)?.client().test_block(&peer).await.on(name)
}

/// `name` lets `other` back in.
async fn unblock(net: &Testnet, name: &str, other: &str) -> Result<(), Failure> {
    let peer = net.node(other)?.feed_id().to_owned();
    net.node(name)?.client().test_unblock(&peer).await.on(name)
}

/// Waits until the names of `name`'s connected peers satisfy `done`.
async fn wait_for_peers(
    net: &Testnet,
    until: Instant,
    name: &str,
    what: &str,
    done: impl Fn(&BTreeSet<&str>) -> bool,
) -> Result<(), Failure> {
    let client = net.node(name)?.client();
    flow::poll(until, name, what, || async {
        let ids: BTreeSet<String> = client
            .peers()
            .await
            .on(name)?
            .into_iter()
            .map(|p| p.peer_id)
            .collect();
        let peers: BTreeSet<&str> = net
            .daemons()
            .iter()
            .filter(|d| ids.contains(d.feed_id()))
            .map(|d| d.name())
            .collect();
        Ok(if done(&peers) {
            Ok(())
        } else {
            Err(format!("its peers are {peers:?}"))
        })
    })
    .await
}
