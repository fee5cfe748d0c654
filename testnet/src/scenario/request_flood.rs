//! `request-flood` (issue 5, the request rate limit): the owner asks for its
//! 2-of-3 backup five times in a row, each a new request (a second owner
//! request while the recovery collects is taken: it joins the same
//! recovery). Each custodian takes the first three, the default
//! `requests_per_day`, and ignores the rest: two `request_rate_limited`
//! audit lines each, naming requests 4 and 5, and its request list holds the
//! first three alone. The limit does not get in the way of a recovery: two
//! custodians approve the first request and the owner gets the exact secret.

use sherd_testnet::Testnet;

use super::common::{self, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const CUSTODIANS: [&str; 3] = ["c1", "c2", "c3"];
const THRESHOLD: u8 = 2;
/// Requests the owner makes.
const REQUESTS: usize = 5;
/// Requests a custodian takes per requester and backup in 24 hours, by
/// default.
const PER_DAY: usize = 3;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "request-flood",
    about: "the owner asks 5 times in a row; each custodian takes 3 (the daily limit) and \
            ignores and audits the rest; the owner still recovers the exact secret",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let feeds = common::start_few(net, s, &CUSTODIANS, &[], &[]).await?;
    let made = common::back_up_with(
        net,
        s,
        &feeds,
        THRESHOLD,
        "the owner backs a 32-byte secret up 2-of-3 with c1..c3; all three ack",
    )
    .await?;
    let owner = net.node(OWNER)?.feed_id().to_owned();

    let title = format!(
        "the owner asks for its backup {REQUESTS} times in a row; each request is taken, \
         and all feed one recovery"
    );
    let ids = s
        .step(title, async |_| {
            let mut ids = Vec::new();
            for _ in 0..REQUESTS {
                ids.push(flow::request_recovery(net, OWNER, &made.id).await?.id);
            }
            let recovery = net
                .node(OWNER)?
                .client()
                .recovery(&made.id)
                .await
                .on(OWNER)?;
            if recovery.requests != ids {
                return Err(Failure::on(
                    OWNER,
                    format!(
                        "the recovery lists requests {:?}, not the {REQUESTS} made",
                        recovery.requests
                    ),
                ));
            }
            Ok(ids)
        })
        .await?;
    s.set("requests", REQUESTS);

    let title = format!(
        "each custodian takes the first {PER_DAY} and ignores the other {}: {} \
         request_rate_limited audit lines naming them, and only the first {PER_DAY} in its \
         request list",
        REQUESTS - PER_DAY,
        REQUESTS - PER_DAY
    );
    let limited = s
        .step(title, async |until| {
            let (taken, ignored) = ids.split_at(PER_DAY);
            let mut limited = 0;
            for c in CUSTODIANS {
                let log = flow::poll(until, c, "the ignored requests' audit lines", || async {
                    let log = flow::audit_log(net, c).await?;
                    let n = rate_limited(&log, &made.id, &owner).len();
                    Ok(if n >= ignored.len() {
                        Ok(log)
                    } else {
                        Err(format!("{n} request_rate_limited lines"))
                    })
                })
                .await?;
                let named = rate_limited(&log, &made.id, &owner);
                if named != ignored {
                    return Err(Failure::on(
                        c,
                        format!(
                            "request_rate_limited lines name {named:?}, not requests \
                             {}..{REQUESTS} {ignored:?}",
                            PER_DAY + 1
                        ),
                    ));
                }
                limited += named.len();
                let listed: Vec<String> = net
                    .node(c)?
                    .client()
                    .requests()
                    .await
                    .on(c)?
                    .into_iter()
                    .filter(|r| {
                        r.role == "custodian" && r.requester == owner && r.backup == made.id
                    })
                    .map(|r| r.id)
                    .collect();
                let mut want = taken.to_vec();
                want.sort_unstable();
                let mut got = listed.clone();
                got.sort_unstable();
                if got != want {
                    return Err(Failure::on(
                        c,
                        format!("{c} lists requests {listed:?}, not the first {PER_DAY} {taken:?}"),
                    ));
                }
            }
            Ok(limited)
        })
        .await?;
    s.set("rate_limited", limited);
    s.set("taken_per_custodian", PER_DAY);

    let first = ids.first().cloned().unwrap_or_default();
    common::approvals(net, s, &first, &["c1", "c3"]).await?;
    common::recovers_with(
        net,
        s,
        OWNER,
        &owner,
        &made.id,
        THRESHOLD,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    Ok(())
}

/// The requests of `requester` for `backup` that a custodian's audit log
/// says it ignored for the rate limit, in order.
fn rate_limited(log: &[sherd_api::AuditRecord], backup: &str, requester: &str) -> Vec<String> {
    log.iter()
        .filter(|a| {
            a.record["event"] == "request_rate_limited"
                && a.record["backup"] == backup
                && a.record["peer"] == requester
        })
        .filter_map(|a| a.record["request"].as_str().map(str::to_owned))
        .collect()
}
