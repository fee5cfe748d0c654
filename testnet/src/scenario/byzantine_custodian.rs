//! `byzantine-custodian` (flow 4): c5 runs with the hidden test flag
//! `--test-tamper-releases`, so every shard it releases is corrupted. It
//! approves first; the owner's recovery refuses its shard, naming c5 with a
//! reason, and takes none from it; three honest approvals then give the
//! exact secret back.

use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure};

/// The custodian that tampers with what it releases.
const BYZANTINE: &str = "c5";

pub(super) const SCENARIO: Scenario = Scenario {
    name: "byzantine-custodian",
    about: "c5 corrupts the shard it releases and approves first; the owner refuses it with a \
            reason naming c5, and recovers with 3 honest approvals",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let feeds = common::start_circle(net, s, &[(BYZANTINE, &["--test-tamper-releases"])]).await?;
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

    let byzantine = net.node(BYZANTINE)?.feed_id().to_owned();
    s.step(
        "c5 approves first; the owner refuses its shard with a reason naming c5",
        async |until| {
            flow::approve(net, BYZANTINE, &request.id, None).await?;
            let refused = flow::wait_for_recovery(
                net,
                until,
                OWNER,
                &made.id,
                "c5's shard to be refused",
                |r| !r.rejected.is_empty() || r.shards > 0,
            )
            .await?;
            let wrong = |why: String| Err(Failure::on(OWNER, why));
            match refused.rejected.as_slice() {
                [one] if one.custodian != byzantine => wrong(format!(
                    "the refused shard is {}'s, not c5's",
                    one.custodian
                )),
                [one] if one.reason.trim().is_empty() => {
                    wrong("the refused shard has no reason".into())
                }
                [_] if refused.shards == 0 && refused.state == "collecting" => Ok(()),
                [_] => wrong(format!(
                    "after refusing c5's shard the recovery is {} with {} shards, not collecting \
                     with 0",
                    refused.state, refused.shards
                )),
                _ => wrong(format!(
                    "c5's tampered shard was taken: {} shards in, {} refused",
                    refused.shards,
                    refused.rejected.len()
                )),
            }
        },
    )
    .await?;
    s.set("byzantine_approvals", 1);

    common::approvals(net, s, &request.id, &CUSTODIANS[..3]).await?;
    let owner = net.node(OWNER)?.feed_id().to_owned();
    let only_c5 = |rejected: &[sherd_api::RejectedShard]| match rejected {
        [one] if one.custodian == byzantine => Ok(()),
        _ => Err(format!(
            "the shards refused are {:?}, not c5's alone",
            rejected.iter().map(|r| &r.custodian).collect::<Vec<_>>()
        )),
    };
    common::recovers(net, s, OWNER, &owner, &made.id, &made.secret, only_c5).await?;
    common::released_once(net, s).await
}
