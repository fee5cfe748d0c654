//! `health-check` (issue 5, health checks): the owner runs with a config
//! file that makes a round every second (`health_check_interval = "1s"`) and
//! calls a custodian silent after 3 s without a proof
//! (`custodian_silent_after = "3s"`); its 2-of-3 backup's custodians c1..c3
//! each prove they hold their shard. c1 stops (SIGTERM): the owner reports it
//! silent, and only it, once (one `custodian_silent` audit line and one
//! event, through later rounds too). c1 restarts from its data dir, proves
//! again, and is silent no more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sherd_api::{Backup, Event, StreamItem};
use sherd_testnet::Testnet;
use tokio::task::JoinSet;

use super::common::{self, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const CUSTODIANS: [&str; 3] = ["c1", "c2", "c3"];
const THRESHOLD: u8 = 2;
/// The custodian that goes quiet.
const QUIET: &str = "c1";
/// The owner's config: a round every second, silent after three.
const CONFIG: &str = "health_check_interval = \"1s\"\ncustodian_silent_after = \"3s\"\n";
/// Rounds the owner must run after it reported c1 silent, before the
/// reports are counted: a second report would come in the first.
const ROUNDS_AFTER: usize = 1;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "health-check",
    about: "the owner checks its custodians every second; c1 stops and is reported silent \
            (it alone, once); c1 restarts, proves again and is silent no more",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

/// The owner's events about health checks, as they arrive.
type Heard = Arc<Mutex<Vec<Event>>>;

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let config = net.root().join("health.toml");
    std::fs::write(&config, CONFIG)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config.display()))?;
    let config = config.to_string_lossy().into_owned();
    let feeds = common::start_few(net, s, &CUSTODIANS, &["--config", config.as_str()], &[]).await?;
    let made = common::back_up_with(
        net,
        s,
        &feeds,
        THRESHOLD,
        "the owner backs a 32-byte secret up 2-of-3 with c1..c3; all three ack",
    )
    .await?;
    let quiet = feeds[0].clone();

    // Dropped on the way out, whatever happened: the listener is aborted and
    // its stream closed.
    let mut listener = JoinSet::new();
    let heard: Heard = Arc::default();
    s.step(
        "the owner's event stream is followed; every custodian proves its shard \
         (each shows last_proof_ms, none silent)",
        async |until| {
            let stream = net.node(OWNER)?.client().events().await.on(OWNER)?;
            listener.spawn(listen(stream, Arc::clone(&heard)));
            wait_for_backup(net, until, &made.id, "a proof from each custodian", |b| {
                let proved = b
                    .custodians
                    .iter()
                    .filter(|c| c.last_proof_ms.is_some() && c.silent_since_ms.is_none())
                    .count();
                (proved == CUSTODIANS.len())
                    .then_some(())
                    .ok_or(format!("{proved} of {} proved", CUSTODIANS.len()))
            })
            .await
        },
    )
    .await?;
    s.set("proved", CUSTODIANS.len());

    let stopped_ms = s
        .step("c1 stops (SIGTERM)", async |_| {
            net.stop(QUIET).await?;
            Ok(now_ms())
        })
        .await?;
    s.set("stops", 1u64);

    let after_ms = s
        .step(
            "the owner reports c1 silent (silent_since_ms), and neither c2 nor c3",
            async |until| {
                let shown = wait_for_backup(net, until, &made.id, "c1 to be silent", |b| {
                    match b.custodians.iter().find(|c| c.feed == quiet) {
                        Some(c) if c.silent_since_ms.is_some() => Ok(b.clone()),
                        Some(_) => Err("c1 is not silent yet".to_owned()),
                        None => Err("c1 is not a custodian".to_owned()),
                    }
                })
                .await?;
                if let Some(c) = shown
                    .custodians
                    .iter()
                    .find(|c| c.feed != quiet && c.silent_since_ms.is_some())
                {
                    return Err(Failure::on(
                        OWNER,
                        format!("{} is silent too, since {:?}", c.feed, c.silent_since_ms),
                    ));
                }
                let since = shown
                    .custodians
                    .iter()
                    .find_map(|c| (c.feed == quiet).then_some(c.silent_since_ms).flatten())
                    .unwrap_or(0);
                Ok(since.saturating_sub(stopped_ms))
            },
        )
        .await?;
    s.note(format!("reported {after_ms} ms after c1 stopped"));
    s.set("silent_after_ms", after_ms);

    let title = format!(
        "after {ROUNDS_AFTER} more round(s) of checks, the owner has reported c1 silent once: \
         one custodian_silent audit line and one event, for c1 alone"
    );
    s.step(title, async |until| {
        let rounds = |log: &[sherd_api::AuditRecord]| {
            log.iter()
                .filter(|a| {
                    a.record["event"] == "health_check_sent"
                        && a.record["backup"] == made.id.as_str()
                })
                .count()
        };
        let at_report = rounds(&flow::audit_log(net, OWNER).await?);
        let log = flow::poll(until, OWNER, "more rounds", || async {
            let log = flow::audit_log(net, OWNER).await?;
            let now = rounds(&log);
            Ok(if now >= at_report + ROUNDS_AFTER {
                Ok(log)
            } else {
                Err(format!("{} rounds since", now - at_report))
            })
        })
        .await?;
        silent_once(&log, &heard, &made.id, &quiet)
    })
    .await?;
    s.set("silent_reports", 1u64);

    let back_ms = s
        .step(
            "c1 restarts from its data dir and dials the owner; it proves again and is \
             silent no more; still one silent report",
            async |until| {
                net.restart(QUIET).await?;
                net.connect(QUIET, OWNER).await?;
                let restarted = now_ms();
                wait_for_backup(net, until, &made.id, "c1 to prove again", |b| {
                    match b.custodians.iter().find(|c| c.feed == quiet) {
                        Some(c) if c.silent_since_ms.is_none() => match c.last_proof_ms {
                            Some(at) if at >= restarted => Ok(()),
                            other => Err(format!("not silent, last proof at {other:?}")),
                        },
                        Some(_) => Err("c1 is still silent".to_owned()),
                        None => Err("c1 is not a custodian".to_owned()),
                    }
                })
                .await?;
                let back = Duration::from_millis(now_ms().saturating_sub(restarted));
                // The event comes a moment after the record: waited for.
                flow::poll(until, OWNER, "the back-from-silence event", || async {
                    let events = heard.lock().map(|e| e.clone()).unwrap_or_default();
                    Ok(
                        if events.iter().any(|e| {
                            matches!(e, Event::ProofReceived {
                                custodian,
                                good: true,
                                back_from_silence: true,
                                ..
                            } if *custodian == quiet)
                        }) {
                            Ok(())
                        } else {
                            Err("no proof back from silence heard".to_owned())
                        },
                    )
                })
                .await?;
                let shown = net.node(OWNER)?.client().backup(&made.id).await.on(OWNER)?;
                if let Some(c) = shown
                    .custodians
                    .iter()
                    .find(|c| c.silent_since_ms.is_some())
                {
                    return Err(Failure::on(OWNER, format!("{} is silent", c.feed)));
                }
                silent_once(
                    &flow::audit_log(net, OWNER).await?,
                    &heard,
                    &made.id,
                    &quiet,
                )?;
                Ok(u64::try_from(back.as_millis()).unwrap_or(u64::MAX))
            },
        )
        .await?;
    s.note(format!("c1 proved again {back_ms} ms after its restart"));
    s.set("restarts", 1u64);
    s.set("back_after_ms", back_ms);

    let (proofs, ignored) = s
        .step(
            "the counts: proofs the owner took, challenges each custodian let pass",
            async |_| {
                let log = flow::audit_log(net, OWNER).await?;
                let proofs = log
                    .iter()
                    .filter(|a| a.record["event"] == "proof_ok")
                    .count();
                let mut ignored = Vec::new();
                for c in CUSTODIANS {
                    let n = flow::audit_log(net, c)
                        .await?
                        .iter()
                        .filter(|a| a.record["event"] == "challenge_ignored")
                        .count();
                    ignored.push((c, n));
                }
                Ok((proofs, ignored))
            },
        )
        .await?;
    let shown: Vec<String> = ignored.iter().map(|(c, n)| format!("{c} {n}")).collect();
    s.note(format!(
        "{proofs} good proofs taken by the owner; challenges ignored (a custodian proves at \
         most once per 0.2 s per backup; c1 also catches up on those sent while it was away): \
         {}",
        shown.join(", ")
    ));
    s.set("proofs_ok", proofs);
    for (c, n) in ignored {
        s.set(&format!("challenges_ignored_{c}"), n);
    }
    listener.abort_all();
    Ok(())
}

/// Reads the owner's events into `heard` (health checks only) until the
/// stream ends or the task is aborted.
async fn listen(mut stream: sherd_api::EventStream, heard: Heard) {
    while let Some(item) = stream.next().await {
        if let Ok(StreamItem::Event(
            event @ (Event::CustodianSilent { .. } | Event::ProofReceived { .. }),
        )) = item
            && let Ok(mut heard) = heard.lock()
        {
            heard.push(event);
        }
    }
}

/// One `custodian_silent` audit line and one event for `quiet` (of
/// `backup`), none for anyone else.
fn silent_once(
    log: &[sherd_api::AuditRecord],
    heard: &Heard,
    backup: &str,
    quiet: &str,
) -> Result<(), Failure> {
    let lines: Vec<&str> = log
        .iter()
        .filter(|a| a.record["event"] == "custodian_silent" && a.record["backup"] == backup)
        .filter_map(|a| a.record["peer"].as_str())
        .collect();
    if lines != [quiet] {
        return Err(Failure::on(
            OWNER,
            format!("custodian_silent lines for {lines:?}, not one for c1 ({quiet})"),
        ));
    }
    let events: Vec<String> = heard
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            Event::CustodianSilent {
                backup: b,
                custodian,
                ..
            } if b == backup => Some(custodian),
            _ => None,
        })
        .collect();
    if events != [quiet] {
        return Err(Failure::on(
            OWNER,
            format!("custodian_silent events for {events:?}, not one for c1 ({quiet})"),
        ));
    }
    Ok(())
}

/// Polls the owner's view of `backup` until `check` gives a value.
async fn wait_for_backup<T>(
    net: &Testnet,
    until: tokio::time::Instant,
    backup: &str,
    what: &str,
    check: impl Fn(&Backup) -> Result<T, String>,
) -> Result<T, Failure> {
    let client = net.node(OWNER)?.client();
    flow::poll(until, OWNER, what, || async {
        let shown = client.backup(backup).await.on(OWNER)?;
        Ok(check(&shown))
    })
    .await
}

/// Now, in ms since the Unix epoch (the daemons' clock).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
