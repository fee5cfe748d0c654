//! Emergency access (issue 5, flow 4): an owner names a trustee; the
//! trustee asks; every custodian opens the owner's veto window.
//!
//! - `emergency-veto`: the owner vetoes inside the window; every custodian
//!   cancels, nothing is released, and the trustee's recovery ends, saying
//!   the owner vetoed it.
//! - `emergency-release`: the owner stays silent; when the (short, test)
//!   window closes, each custodian releases on its own (`release: auto`),
//!   never before the window's end; the trustee rebuilds the exact secret.

use base64::Engine as _;
use sherd_api::{CreateBackup, DecideRequest, RecoveryRequest};
use sherd_testnet::Testnet;

use super::common::{self, CUSTODIANS, OWNER, SECRET_LEN, THRESHOLD};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

pub(super) const TRUSTEE: &str = "trustee";

pub(super) const VETO: Scenario = Scenario {
    name: "emergency-veto",
    about: "a trustee asks; the owner vetoes inside the window; nothing is released",
    run: run_veto,
};

pub(super) const RELEASE: Scenario = Scenario {
    name: "emergency-release",
    about: "a trustee asks; no veto; after the window custodians release and the \
            trustee gets the exact secret",
    run: run_release,
};

fn run_veto<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(veto(net, s))
}

fn run_release<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(release(net, s))
}

/// The emergency terms of a scenario's backup.
#[derive(Debug, Clone, Copy)]
pub(super) struct Terms {
    /// The owner's veto window.
    pub(super) veto_delay_secs: u32,
    /// `auto` or `approve`.
    pub(super) release: &'static str,
    /// Whether the trustee's access is one-time.
    pub(super) one_time: bool,
    /// Whether the custodians and the trustee run with `--test-hooks`.
    pub(super) test_hooks: bool,
}

/// Steps: the circle, a trustee befriended with the owner, a 3-of-5 backup
/// naming it on `terms`, five acks, the grant at the trustee. Returns the
/// backup id and the secret.
pub(super) async fn set_up(
    net: &mut Testnet,
    s: &mut Steps,
    terms: Terms,
) -> Result<(String, Vec<u8>), Failure> {
    let Terms {
        veto_delay_secs,
        release,
        one_time,
        test_hooks,
    } = terms;
    let hooks: &[&str] = if test_hooks { &["--test-hooks"] } else { &[] };
    let flags: Vec<(&str, &[&str])> = if test_hooks {
        CUSTODIANS.iter().map(|c| (*c, hooks)).collect()
    } else {
        Vec::new()
    };
    let feeds = common::start_circle(net, s, &flags).await?;
    let title = format!(
        "start the trustee's node{}; it dials the owner and they become contacts",
        if test_hooks { " with --test-hooks" } else { "" }
    );
    s.step(title, async |_| {
        net.start_with(TRUSTEE, hooks).await?;
        flow::befriend_owner(net, OWNER, &[TRUSTEE]).await
    })
    .await?;
    let title = format!(
        "the owner backs a secret up 3-of-5 naming the trustee (veto window {veto_delay_secs} s, \
         release {release}{}); five acks; the trustee holds its grant",
        if one_time { ", one-time" } else { "" }
    );
    let made = s
        .step(title, async |until| {
            let secret = flow::random_secret(SECRET_LEN)?;
            let trustee = net.node(TRUSTEE)?.feed_id().to_owned();
            let request = CreateBackup {
                label: "scenario secret".into(),
                threshold: THRESHOLD,
                custodians: feeds.clone(),
                secret: base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .into(),
                trustees: vec![trustee],
                veto_delay_secs: Some(veto_delay_secs),
                release: Some(release.to_owned()),
                one_time,
            };
            let made = net
                .node(OWNER)?
                .client()
                .create_backup(&request)
                .await
                .on(OWNER)?;
            flow::wait_for_acks(net, until, OWNER, &made.id, CUSTODIANS.len()).await?;
            let client = net.node(TRUSTEE)?.client();
            flow::poll(until, TRUSTEE, "its grant", || async {
                let grants = client.grants().await.on(TRUSTEE)?;
                Ok(match grants.iter().find(|g| g.backup == made.id) {
                    Some(g) if g.policy.one_time != one_time => {
                        Err(format!("a grant with one_time {}", g.policy.one_time))
                    }
                    Some(g) if usize::from(g.threshold) == usize::from(THRESHOLD) => Ok(()),
                    Some(g) => Err(format!("a grant of threshold {}", g.threshold)),
                    None => Err("no grant yet".to_owned()),
                })
            })
            .await?;
            Ok((made.id, secret))
        })
        .await?;
    s.set("acks", CUSTODIANS.len());
    s.set("trustees", 1u64);
    s.set("custodians", CUSTODIANS.len());
    s.set("threshold", THRESHOLD);
    s.set("secret_bytes", SECRET_LEN);
    Ok(made)
}

/// Step: the trustee asks; the owner and every custodian record the
/// request in its veto window.
pub(super) async fn trustee_asks(
    net: &Testnet,
    s: &mut Steps,
    backup: &str,
) -> Result<RecoveryRequest, Failure> {
    s.step(
        "the trustee asks; the owner and c1..c5 hold it in the veto window",
        async |until| {
            let request = flow::request_recovery(net, TRUSTEE, backup).await?;
            if request.kind != "emergency" {
                return Err(Failure::on(
                    TRUSTEE,
                    format!("the request is {}, not emergency", request.kind),
                ));
            }
            for name in std::iter::once(OWNER).chain(CUSTODIANS) {
                wait_for_state(net, until, name, &request.id, "waiting").await?;
            }
            Ok(request)
        },
    )
    .await
}

/// Waits until `name` (owner or custodian) holds request `id` in `state`.
pub(super) async fn wait_for_state(
    net: &Testnet,
    until: tokio::time::Instant,
    name: &str,
    id: &str,
    state: &str,
) -> Result<RecoveryRequest, Failure> {
    let client = net.node(name)?.client();
    flow::poll(
        until,
        name,
        &format!("the request to be {state}"),
        || async {
            let requests = client.requests().await.on(name)?;
            Ok(
                match requests
                    .into_iter()
                    .find(|r| r.id == id && (r.role == "custodian" || r.role == "owner"))
                {
                    Some(r) if r.state == state => Ok(r),
                    Some(r) => Err(format!("it is {}", r.state)),
                    None => Err("it has not arrived".to_owned()),
                },
            )
        },
    )
    .await
}

/// Step: no custodian released anything (from their audit logs).
async fn nothing_released(net: &Testnet, s: &mut Steps) -> Result<(), Failure> {
    s.step("no custodian released its shard", async |_| {
        for c in CUSTODIANS {
            let log = flow::audit_log(net, c).await?;
            let released = flow::audit_count(&log, "shard_released", "request");
            if !released.is_empty() {
                return Err(Failure::on(c, format!("{c} released: {released:?}")));
            }
        }
        Ok(())
    })
    .await
}

async fn veto(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let terms = Terms {
        veto_delay_secs: 3600,
        release: "auto",
        one_time: false,
        test_hooks: false,
    };
    let (backup, _) = set_up(net, s, terms).await?;
    let request = trustee_asks(net, s, &backup).await?;
    s.step(
        "inside the window, c1's approval is refused: the window is open",
        async |_| {
            let early = net
                .node("c1")?
                .client()
                .approve(&request.id, &DecideRequest::default())
                .await;
            match early {
                Err(e) if e.to_string().contains("veto window is open") => Ok(()),
                Err(e) => Err(Failure::on("c1", format!("refused with `{e}`"))),
                Ok(r) => Err(Failure::on("c1", format!("approved: {}", r.state))),
            }
        },
    )
    .await?;
    s.step(
        "the owner vetoes; every custodian cancels; the trustee is told",
        async |until| {
            let vetoed = net
                .node(OWNER)?
                .client()
                .deny(
                    &request.id,
                    &DecideRequest {
                        reason: Some("I am fine, thank you".into()),
                        ..DecideRequest::default()
                    },
                )
                .await
                .on(OWNER)?;
            if vetoed.state != "vetoed" {
                return Err(Failure::on(
                    OWNER,
                    format!("the veto left it {}", vetoed.state),
                ));
            }
            for c in CUSTODIANS {
                wait_for_state(net, until, c, &request.id, "vetoed").await?;
            }
            let ended =
                flow::wait_for_recovery(net, until, TRUSTEE, &backup, "its recovery to end", |r| {
                    r.state == "failed"
                })
                .await?;
            match ended.reason.as_deref() {
                Some(reason) if reason.contains("vetoed") => Ok(()),
                other => Err(Failure::on(
                    TRUSTEE,
                    format!("the recovery failed with {other:?}, not a veto"),
                )),
            }
        },
    )
    .await?;
    s.set("vetoed", CUSTODIANS.len());
    nothing_released(net, s).await
}

async fn release(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    const WINDOW_SECS: u32 = 2;
    let terms = Terms {
        veto_delay_secs: WINDOW_SECS,
        release: "auto",
        one_time: false,
        test_hooks: false,
    };
    let (backup, secret) = set_up(net, s, terms).await?;
    let request = trustee_asks(net, s, &backup).await?;
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
    s.step(
        "no custodian released before the window closed, none twice",
        async |_| {
            let mut released = 0u64;
            for c in CUSTODIANS {
                let client = net.node(c)?.client();
                let asked = client
                    .requests()
                    .await
                    .on(c)?
                    .into_iter()
                    .find(|r| r.id == request.id && r.role == "custodian")
                    .ok_or_else(|| Failure::on(c, "the request is gone"))?;
                let window_end = asked.received_ms + u64::from(WINDOW_SECS) * 1000;
                let log = flow::audit_log(net, c).await?;
                for line in log.iter().filter(|a| {
                    a.record["event"] == "shard_released"
                        && a.record["request"] == request.id.as_str()
                }) {
                    released += 1;
                    let at = line.record["time_ms"].as_u64().unwrap_or(0);
                    if at < window_end {
                        return Err(Failure::on(
                            c,
                            format!(
                                "{c} released {} ms before the window closed",
                                window_end - at
                            ),
                        ));
                    }
                }
                let count = flow::audit_count(&log, "shard_released", "request");
                if count.values().any(|n| *n > 1) {
                    return Err(Failure::on(c, format!("{c} released twice: {count:?}")));
                }
            }
            Ok(released)
        },
    )
    .await
    .map(|released| s.set("shards_released", released))
}
