//! `recovery`: how long an owner waits, once its custodians have approved,
//! for the secret to be rebuilt (DESIGN.md 9: "recovery, 3 of 5, after
//! approvals").
//!
//! An owner and n custodians, made contacts, wired as a sparse mesh
//! ([`mesh::sparse`]; the owner has at most [`mesh::MAX_PEERS`] links, so
//! that 20 custodians on one IP address do not trip gossipsub's scoring).
//! Each run backs a fresh secret up t of n, waits until every custodian
//! holds its shard, and asks for it back; c1..c(t-1) approve and their
//! shards reach the owner (a person's approvals come minutes apart, so the
//! earlier shards are in when the last one is given); then ct approves.
//! The figure runs from the answer to ct's approval (its shard is committed
//! and on its way) to the owner's `recovery_complete` event, on an event
//! stream opened before that approval; `with_approval` runs from the moment
//! the approval was sent, so it also holds ct's own work (re-sealing its
//! shard, committing the reply). The secret is then taken and checked,
//! untimed.
//!
//! Both ends are seen by this process: on a loaded machine, a late look at
//! the approval's answer can make the figure too small (down to zero, when
//! the owner's event is read first); `with_approval` has no such blind
//! spot.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use sherd_api::{Event, StreamItem};
use sherd_testnet::Testnet;
use tokio::time::Instant;

use super::Runs;
use crate::flow::{self, Failure, On as _};
use crate::mesh;
use crate::scenario::{Steps, millis};

const OWNER: &str = "owner";
/// Bytes of each run's secret.
const SECRET_LEN: usize = 32;
/// Custodians a backup may have at most (PROTOCOL.md 7.1).
const MAX_CUSTODIANS: u8 = 32;

/// A recovery to measure: `threshold` of `custodians`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoverySize {
    /// Shards needed.
    pub(crate) threshold: u8,
    /// Custodians, each holding a shard.
    pub(crate) custodians: u8,
}

impl RecoverySize {
    /// Parses `3of5`: a threshold of 1 to the custodians, 1 to 32 of them.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let shape = || format!("`{text}` is not THRESHOLDofCUSTODIANS, like 3of5");
        let (t, n) = text.split_once("of").ok_or_else(shape)?;
        let (threshold, custodians): (u8, u8) = (
            t.trim().parse().map_err(|_| shape())?,
            n.trim().parse().map_err(|_| shape())?,
        );
        if !(1..=MAX_CUSTODIANS).contains(&custodians) {
            return Err(format!(
                "{custodians} custodians: a backup has 1 to {MAX_CUSTODIANS}"
            ));
        }
        if !(1..=custodians).contains(&threshold) {
            return Err(format!(
                "a threshold of {threshold}: it must be 1 to the number of custodians ({custodians})"
            ));
        }
        Ok(Self {
            threshold,
            custodians,
        })
    }
}

impl fmt::Display for RecoverySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}of{}", self.threshold, self.custodians)
    }
}

/// The latency of one recovery size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecoveryLatency {
    /// Shards needed.
    pub(crate) threshold: u8,
    /// Custodians.
    pub(crate) custodians: u8,
    /// Links of the mesh (the owner's among them: `owner_links`).
    pub(crate) links: usize,
    /// Custodians the owner is linked to directly.
    pub(crate) owner_links: usize,
    /// Each run, from the last approval's answer to `recovery_complete`.
    #[serde(flatten)]
    pub(crate) after_approval: Runs,
    /// Each run, from the moment the last approval was sent.
    pub(crate) with_approval: Runs,
}

/// Measures `runs` recoveries of `size`.
pub(super) async fn measure(
    net: &mut Testnet,
    s: &mut Steps,
    size: RecoverySize,
    runs: u8,
) -> Result<RecoveryLatency, Failure> {
    let n = usize::from(size.custodians);
    let t = usize::from(size.threshold);
    let custodians: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let names: Vec<String> = std::iter::once(OWNER.to_owned())
        .chain(custodians.iter().cloned())
        .collect();
    s.step(
        format!("start the owner and {n} custodians, c1..c{n}"),
        async |_| {
            for name in &names {
                net.start(name).await?;
            }
            Ok(())
        },
    )
    .await?;
    s.set("daemons", names.len());
    let dials = mesh::sparse(names.len(), mesh::MAX_PEERS);
    let links = s
        .step(
            format!(
                "the owner and each custodian become contacts; they dial a sparse mesh (at \
                 most {} links a node)",
                mesh::MAX_PEERS
            ),
            async |until| {
                for c in &custodians {
                    net.befriend(OWNER, c).await?;
                }
                mesh::connect(net, &names, &dials, until).await
            },
        )
        .await?;
    s.set("links", links);

    let approvers: Vec<&str> = custodians.iter().take(t).map(String::as_str).collect();
    let (first, last) = match approvers.split_last() {
        Some((last, first)) => (first.to_vec(), *last),
        None => {
            return Err(Failure::on(
                OWNER,
                "a recovery needs a threshold of 1 or more",
            ));
        }
    };
    let (mut after, mut with) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let backup = s
            .step(
                format!("run {run}: the owner backs a secret up {t} of {n}; every custodian holds its shard"),
                async |until| back_up(net, &custodians, size.threshold, until).await,
            )
            .await?;
        let request = s
            .step(
                format!("run {run}: the owner asks for it back; the request waits at c1..c{t}"),
                async |until| {
                    let request = flow::request_recovery(net, OWNER, &backup.id).await?;
                    for c in &approvers {
                        flow::wait_for_pending(net, until, c, &request.id).await?;
                    }
                    Ok(request)
                },
            )
            .await?;
        if !first.is_empty() {
            s.step(
                format!(
                    "run {run}: {} approve{}; the owner holds {} shard{}",
                    first.join(", "),
                    if first.len() == 1 { "s" } else { "" },
                    first.len(),
                    if first.len() == 1 { "" } else { "s" },
                ),
                async |until| {
                    for c in &first {
                        flow::approve(net, c, &request.id, None).await?;
                    }
                    let shown = flow::wait_for_recovery(
                        net,
                        until,
                        OWNER,
                        &backup.id,
                        &format!("{} shards", first.len()),
                        |r| r.shards >= first.len() || r.state == "failed",
                    )
                    .await?;
                    if shown.state == "failed" {
                        return Err(Failure::on(
                            OWNER,
                            format!(
                                "the recovery failed: {}",
                                shown.reason.as_deref().unwrap_or("no reason given")
                            ),
                        ));
                    }
                    Ok(())
                },
            )
            .await?;
        }
        let took = s
            .step(
                format!("run {run}: {last} approves; time until the owner's recovery completes"),
                async |until| last_approval(net, last, &request.id, &backup.id, until).await,
            )
            .await?;
        s.note(format!(
            "{:.1} ms after the approval's answer, {:.1} ms after it was sent",
            millis(took.after_answer),
            millis(took.after_request)
        ));
        s.step(
            format!("run {run}: the owner takes the exact secret"),
            async |_| {
                let recovered = flow::take_secret(net, OWNER, &backup.id).await?;
                flow::same_secret(OWNER, &backup.secret, &recovered)
            },
        )
        .await?;
        after.push(millis(took.after_answer));
        with.push(millis(took.after_request));
    }
    s.set("runs", after.len());
    Ok(RecoveryLatency {
        threshold: size.threshold,
        custodians: size.custodians,
        links,
        owner_links: mesh::degree(&dials, 0),
        after_approval: Runs::of(after),
        with_approval: Runs::of(with),
    })
}

/// A backup made for one run.
struct Made {
    id: String,
    secret: Vec<u8>,
}

/// The owner backs a fresh secret up `threshold` of `custodians`; waits
/// until each custodian holds its shard (not for the acks: they add
/// nothing to what is measured, and reach the owner through the mesh only
/// by gossip relays or the periodic resync).
async fn back_up(
    net: &Testnet,
    custodians: &[String],
    threshold: u8,
    until: Instant,
) -> Result<Made, Failure> {
    let secret = flow::random_secret(SECRET_LEN)?;
    let names: Vec<&str> = custodians.iter().map(String::as_str).collect();
    let feeds = flow::feeds(net, &names)?;
    let made = flow::create_backup(net, OWNER, "bench secret", threshold, &feeds, &secret).await?;
    for c in custodians {
        let client = net.node(c)?.client();
        flow::poll(until, c, "its shard", || async {
            let held = client.shards().await.on(c)?;
            Ok(if held.iter().any(|h| h.backup == made.id) {
                Ok(())
            } else {
                Err(format!("{} shards held, not this backup's", held.len()))
            })
        })
        .await?;
    }
    Ok(Made {
        id: made.id,
        secret,
    })
}

/// How long the owner waited for its secret, from the last approval.
struct Waited {
    /// From the approval's answer.
    after_answer: Duration,
    /// From the moment the approval was sent.
    after_request: Duration,
}

/// `last` approves `request`; returns the time from the approval to the
/// owner's `recovery_complete` event for `backup`.
async fn last_approval(
    net: &Testnet,
    last: &str,
    request: &str,
    backup: &str,
    until: Instant,
) -> Result<Waited, Failure> {
    // Open before the approval, so that the event cannot be missed.
    let mut events = net.node(OWNER)?.client().events().await.on(OWNER)?;
    let sent = Instant::now();
    flow::approve(net, last, request, None).await?;
    let approved = Instant::now();
    let completed = loop {
        let item = tokio::time::timeout_at(until, events.next())
            .await
            .map_err(|_| {
                Failure::on(
                    OWNER,
                    format!(
                        "no recovery_complete event for backup {backup} within {} s of the \
                         last approval",
                        flow::STEP_LIMIT.as_secs()
                    ),
                )
            })?;
        match item {
            Some(Ok(StreamItem::Event(Event::RecoveryComplete { backup: b }))) if b == backup => {
                break Instant::now();
            }
            Some(Ok(StreamItem::Event(Event::RecoveryFailed { backup: b, reason })))
                if b == backup =>
            {
                return Err(Failure::on(OWNER, format!("the recovery failed: {reason}")));
            }
            Some(Ok(StreamItem::Lagged { missed })) => {
                return Err(Failure::on(
                    OWNER,
                    format!("the owner's event stream lagged ({missed} events missed)"),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Failure::on(OWNER, format!("event stream: {e}"))),
            None => return Err(Failure::on(OWNER, "the owner's event stream ended")),
        }
    };
    let shown = net.node(OWNER)?.client().recovery(backup).await.on(OWNER)?;
    if shown.state != "complete" {
        return Err(Failure::on(
            OWNER,
            format!(
                "after recovery_complete, the recovery is {}, not complete",
                shown.state
            ),
        ));
    }
    // The event may beat the approval's answer to this process: then the
    // wait was nothing.
    Ok(Waited {
        after_answer: completed.saturating_duration_since(approved),
        after_request: completed.saturating_duration_since(sent),
    })
}

#[cfg(test)]
mod tests {
    use super::RecoverySize;

    #[test]
    fn sizes_parse_and_are_bounded() {
        let size = RecoverySize::parse("10of20").unwrap();
        assert_eq!((size.threshold, size.custodians), (10, 20));
        assert_eq!(size.to_string(), "10of20");
        assert_eq!(RecoverySize::parse("1of1").unwrap().custodians, 1);
        for bad in ["3-of-5", "of5", "3of", "6of5", "0of5", "3of33", "3of0", "x"] {
            assert!(RecoverySize::parse(bad).is_err(), "{bad}");
        }
    }
}
