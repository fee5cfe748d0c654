//! `offline-custodian` (flow 3): c4 is stopped while the owner makes the
//! backup, so four custodians ack; c4 restarts from its data dir, dials the
//! owner, catches up on the owner's feed and acks: five. The owner then
//! recovers with c4 among the three approvers.

use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

/// The custodian that is offline during the backup.
const OFFLINE: &str = "c4";

pub(super) const SCENARIO: Scenario = Scenario {
    name: "offline-custodian",
    about: "c4 is offline while the backup is made (4 acks); it restarts, catches up and acks \
            (5); the owner recovers with c4 among the approvers",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let feeds = common::start_circle(net, s, &[]).await?;
    s.step("c4 goes offline (SIGTERM)", async |_| {
        net.stop(OFFLINE).await?;
        Ok(())
    })
    .await?;
    let made = common::back_up(
        net,
        s,
        &feeds,
        CUSTODIANS.len() - 1,
        "the owner backs a 32-byte secret up 3-of-5 with c1..c5; the four online ack",
    )
    .await?;
    let offline_feed = net.node(OFFLINE)?.feed_id().to_owned();
    s.step("the missing ack is c4's", async |_| {
        let shown = net.node(OWNER)?.client().backup(&made.id).await.on(OWNER)?;
        let missing: Vec<&str> = shown
            .custodians
            .iter()
            .filter(|c| !c.acked)
            .map(|c| c.feed.as_str())
            .collect();
        if missing == [offline_feed.as_str()] {
            Ok(())
        } else {
            Err(Failure::on(
                OWNER,
                format!("the custodians without an ack are {missing:?}, not c4 alone"),
            ))
        }
    })
    .await?;
    s.set("acks_while_offline", CUSTODIANS.len() - 1);

    s.step(
        "c4 restarts from its data dir, dials the owner, catches up and acks: 5 acks",
        async |until| {
            net.restart(OFFLINE).await?;
            net.connect(OFFLINE, OWNER).await?;
            flow::wait_for_acks(net, until, OWNER, &made.id, CUSTODIANS.len()).await?;
            let held = net.node(OFFLINE)?.client().shards().await.on(OFFLINE)?;
            if held.iter().filter(|h| h.backup == made.id).count() == 1 {
                Ok(())
            } else {
                Err(Failure::on(
                    OFFLINE,
                    format!("c4 lists {} shards of the backup, not one", held.len()),
                ))
            }
        },
    )
    .await?;
    s.set("acks", CUSTODIANS.len());
    s.set("restarts", 1);

    let request = common::owner_asks(net, s, &made.id, &CUSTODIANS).await?;
    common::approvals(net, s, &request.id, &[OFFLINE, "c1", "c2"]).await?;
    let owner = net.node(OWNER)?.feed_id().to_owned();
    common::recovers(
        net,
        s,
        OWNER,
        &owner,
        &made.id,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    common::released_once(net, s).await
}
