//! `lost-device` (flow 2), as the demo tells it: the owner's node and key
//! are deleted; the owner starts over on a new identity; c1, who checked
//! that identity out of band, starts a lost-device recovery toward it
//! (`request-recovery --owner OLD --to NEW`), releasing its own shard; c2
//! and c3 approve (c3 only toward the identity it checked); the new
//! identity rebuilds the exact secret.

use sherd_api::{DecideRequest, StartRecovery};
use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const NEW: &str = "new";

pub(super) const SCENARIO: Scenario = Scenario {
    name: "lost-device",
    about: "the owner loses its device; c1 starts a recovery toward the owner's new identity, \
            c2 and c3 approve, the new identity gets the exact secret",
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

    let old = s
        .step(
            "the owner loses its device: its node and key are deleted",
            async |_| {
                let old = net.node(OWNER)?.feed_id().to_owned();
                net.remove(OWNER).await?;
                Ok(old)
            },
        )
        .await?;

    let new = s
        .step(
            "a new node, a new identity; it reaches the custodians and follows c1",
            async |_| {
                net.start(NEW).await?;
                for c in &CUSTODIANS[1..] {
                    net.connect(c, CUSTODIANS[0]).await?;
                }
                for c in CUSTODIANS {
                    net.connect(NEW, c).await?;
                }
                let c1 = net.node(CUSTODIANS[0])?.feed_id().to_owned();
                let node = net.node(NEW)?;
                node.client()
                    .add_contact(&c1, CUSTODIANS[0], false)
                    .await
                    .on(NEW)?;
                Ok(node.feed_id().to_owned())
            },
        )
        .await?;
    s.add("daemons", 1);

    let request = s
        .step(
            "c1 starts a lost-device recovery toward the new identity; its own shard goes at once",
            async |_| {
                let request = net
                    .node("c1")?
                    .client()
                    .start_recovery(&StartRecovery {
                        backup: None,
                        owner: Some(old.clone()),
                        to: Some(new.clone()),
                    })
                    .await
                    .on("c1")?;
                let shape = (
                    request.kind.as_str(),
                    request.recipient.as_str(),
                    request.state.as_str(),
                );
                if shape != ("lost_device", new.as_str(), "released") {
                    return Err(Failure::on(
                        "c1",
                        format!(
                            "the request is {} toward {}, {}; not lost_device toward the new \
                             identity, released",
                            request.kind, request.recipient, request.state
                        ),
                    ));
                }
                Ok(request)
            },
        )
        .await?;
    s.set("requester_released", 1);

    s.step("c2 approves; c3 approves only toward the identity it checked", async |until| {
        flow::wait_for_pending(net, until, "c2", &request.id).await?;
        flow::approve(net, "c2", &request.id, None).await?;
        flow::wait_for_pending(net, until, "c3", &request.id).await?;
        // Toward another identity than the request's, nothing is released.
        let wrong = net
            .node("c3")?
            .client()
            .approve(
                &request.id,
                &DecideRequest {
                    to: Some(old.clone()),
                    ..DecideRequest::default()
                },
            )
            .await;
        match wrong {
            Err(e) if e.to_string().contains("nothing was released") => {}
            other => {
                return Err(Failure::on(
                    "c3",
                    format!(
                        "approving toward the old identity gave {other:?}, not `nothing was released`"
                    ),
                ));
            }
        }
        flow::approve(net, "c3", &request.id, Some(&new)).await?;
        Ok(())
    })
    .await?;
    s.set("approvals", 2);

    common::recovers(
        net,
        s,
        NEW,
        &old,
        &made.id,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    common::released_once(net, s).await
}
