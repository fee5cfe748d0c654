//! `happy-path` (flow 1): an owner backs a secret up 3-of-5 with five
//! custodians, all five acknowledge; the owner asks for it back, three
//! custodians approve, and the owner rebuilds the exact secret, which is
//! handed over once.

use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::Failure;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "happy-path",
    about: "an owner backs a secret up 3-of-5, asks for it back, 3 custodians approve, \
            the owner gets the exact secret, once",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let feeds = common::start_circle(net, s, &[]).await?;
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
    common::approvals(net, s, &request.id, &CUSTODIANS[..3]).await?;
    let owner = net.node(common::OWNER)?.feed_id().to_owned();
    common::recovers(
        net,
        s,
        common::OWNER,
        &owner,
        &made.id,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    common::released_once(net, s).await
}
