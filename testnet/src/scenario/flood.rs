//! `flood`: nodes flood another with requests and with invalid entries.
//!
//! Two attackers with the test hooks become the victim's contacts: `trudy`
//! sends the victim sync requests as fast as the connection lets it, far
//! past its budget (the "requests" of the issue; the rate limits on recovery
//! requests are issue 5's); then `mallory`, whose feed the victim follows (a
//! real backup from mallory to the victim shows the path works), publishes
//! entries with broken signatures on its feed's gossip topic and sends sync
//! requests at once. Checked: the victim blocks each attacker for its own
//! misbehaviour (a `peer_blocked` line in its audit log with the reason, and
//! the attacker gone from its peers); it stays responsive (its control API
//! answers every status call made every 20 ms during the floods, the
//! slowest within a generous liveness bound, which is not a benchmark); its
//! memory stays bounded. The latencies and the memory are reported as
//! counts.

use std::cell::Cell;
use std::time::Duration;

use base64::Engine as _;
use sherd_api::CreateBackup;
use sherd_api::test_hooks::TestFlood;
use sherd_testnet::{Testnet, rss_kib};
use tokio::time::Instant;

use super::common::SECRET_LEN;
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

const VICTIM: &str = "victim";
/// Sends invalid entries and requests.
const MALLORY: &str = "mallory";
/// Sends requests only.
const TRUDY: &str = "trudy";
/// Status calls timed before the flood.
const BASELINE_SAMPLES: usize = 20;
/// How often the victim's status is asked during the flood.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Invalid entries mallory publishes.
const INVALID_ENTRIES: u32 = 200;
/// Sync requests mallory sends.
const SYNC_REQUESTS: u32 = 2000;
/// Sync requests trudy sends: far past the victim's budget (a burst of 512,
/// then 128 a second).
const TRUDY_SYNC_REQUESTS: u32 = 2000;
/// The slowest status answer allowed during the flood: a liveness bound.
const SLOWEST: Duration = Duration::from_secs(2);
/// How much the victim's resident memory may grow over the flood.
const RSS_GROWTH_KIB: u64 = 64 * 1024;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "flood",
    about: "trudy floods the victim with sync requests, mallory with invalid entries and \
            requests; the victim blocks both, keeps answering its API, its memory stays bounded",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    s.step(
        "start the victim's node, and mallory's and trudy's with --test-hooks",
        async |_| {
            net.start(VICTIM).await?;
            for attacker in [TRUDY, MALLORY] {
                net.start_with(attacker, &["--test-hooks"]).await?;
            }
            Ok(())
        },
    )
    .await?;
    s.set("daemons", 3u64);
    s.step(
        "mallory and trudy dial the victim and become its contacts; mallory backs a secret \
         up 1-of-1 with the victim, which acks (the victim follows mallory's feed)",
        async |until| {
            for attacker in [TRUDY, MALLORY] {
                net.connect(attacker, VICTIM).await?;
                net.befriend(attacker, VICTIM).await?;
            }
            let secret = flow::random_secret(SECRET_LEN)?;
            let request = CreateBackup {
                label: "mallory's secret".into(),
                threshold: 1,
                custodians: flow::feeds(net, &[VICTIM])?,
                secret: base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .into(),
                ..CreateBackup::default()
            };
            let made = net
                .node(MALLORY)?
                .client()
                .create_backup(&request)
                .await
                .on(MALLORY)?;
            flow::wait_for_acks(net, until, MALLORY, &made.id, 1).await?;
            Ok(())
        },
    )
    .await?;

    let victim_pid = net
        .node(VICTIM)?
        .pid()
        .ok_or_else(|| Failure::on(VICTIM, "the victim has no process"))?;
    let (baseline, rss_before) = s
        .step(
            format!("time {BASELINE_SAMPLES} status calls to the victim; read its memory"),
            async |_| {
                let client = net.node(VICTIM)?.client();
                let mut times = Vec::with_capacity(BASELINE_SAMPLES);
                for _ in 0..BASELINE_SAMPLES {
                    let asked = Instant::now();
                    client.status().await.on(VICTIM)?;
                    times.push(asked.elapsed());
                }
                Ok((times, rss_kib(victim_pid).on(VICTIM)?))
            },
        )
        .await?;
    let baseline = Latencies::of(baseline);
    s.note(format!("baseline {baseline}; RSS {rss_before} KiB"));
    s.set("baseline_p50_us", baseline.p50);
    s.set("baseline_p99_us", baseline.p99);
    s.set("baseline_max_us", baseline.max);
    s.set("rss_before_kib", rss_before);

    // Trudy sends requests only, past the victim's budget; mallory then
    // sends invalid entries and requests at once. Each is blocked for its
    // own misbehaviour, so each flood runs into its own block.
    let mut during = flood(net, s, TRUDY, 0, TRUDY_SYNC_REQUESTS).await?;
    blocked(net, s, TRUDY, "too many sync requests").await?;
    during.extend(flood(net, s, MALLORY, INVALID_ENTRIES, SYNC_REQUESTS).await?);
    blocked(net, s, MALLORY, "invalid entry gossiped").await?;
    let during = Latencies::of(during);
    s.set("status_samples", during.samples);
    s.set("flood_p50_us", during.p50);
    s.set("flood_p99_us", during.p99);
    s.set("flood_max_us", during.max);

    let rss_after = s
        .step(
            format!(
                "the victim stayed responsive (slowest status answer under {} s) and its \
                 memory grew by less than {} MiB",
                SLOWEST.as_secs(),
                RSS_GROWTH_KIB / 1024
            ),
            async |_| {
                if during.max > micros(SLOWEST) {
                    return Err(Failure::on(
                        VICTIM,
                        format!("a status call took {} ms during a flood", during.max / 1000),
                    ));
                }
                let after = rss_kib(victim_pid).on(VICTIM)?;
                if after > rss_before + RSS_GROWTH_KIB {
                    return Err(Failure::on(
                        VICTIM,
                        format!("its RSS grew from {rss_before} KiB to {after} KiB"),
                    ));
                }
                Ok(after)
            },
        )
        .await?;
    s.note(format!(
        "status during the floods: {during}; RSS {rss_before} KiB before, {rss_after} KiB after"
    ));
    s.set("rss_after_kib", rss_after);
    Ok(())
}

/// Step: `attacker` floods the victim with `invalid_entries` and
/// `sync_requests` while the victim's status is asked every
/// [`SAMPLE_EVERY`], from before the flood starts to after it ends; every
/// call must be answered. Returns how long each took.
async fn flood(
    net: &Testnet,
    s: &mut Steps,
    attacker: &str,
    invalid_entries: u32,
    sync_requests: u32,
) -> Result<Vec<Duration>, Failure> {
    let what = match invalid_entries {
        0 => format!("{sync_requests} sync requests"),
        n => format!("{n} invalid entries and {sync_requests} sync requests"),
    };
    let (report, times) = s
        .step(
            format!(
                "{attacker} floods the victim with {what}; the victim's status is asked \
                 every {} ms meanwhile, and answers every time",
                SAMPLE_EVERY.as_millis()
            ),
            async |_| {
                let victim = net.node(VICTIM)?.client();
                let client = net.node(attacker)?.client();
                let request = TestFlood {
                    peer: net.node(VICTIM)?.feed_id().to_owned(),
                    invalid_entries,
                    sync_requests,
                };
                let flooding = Cell::new(true);
                let flood = async {
                    let report = client.test_flood(&request).await;
                    flooding.set(false);
                    report.on(attacker)
                };
                let sampler = async {
                    let mut times = Vec::new();
                    while flooding.get() {
                        let asked = Instant::now();
                        victim.status().await.on(VICTIM)?;
                        times.push(asked.elapsed());
                        tokio::time::sleep(SAMPLE_EVERY).await;
                    }
                    Ok::<_, Failure>(times)
                };
                let (report, times) = tokio::join!(flood, sampler);
                Ok((report?, times?))
            },
        )
        .await?;
    s.note(format!(
        "{} invalid entries and {} sync requests sent in {} ms ({} answered, {} failed; \
         {}); status during the flood: {}",
        report.invalid_entries,
        report.sync_requests,
        report.elapsed_ms,
        report.sync_answered,
        report.sync_failed,
        if report.disconnected {
            "the victim cut the attacker off"
        } else {
            "the victim never cut the attacker off"
        },
        Latencies::of(times.clone()),
    ));
    s.add("invalid_entries", u64::from(report.invalid_entries));
    s.add("sync_requests", u64::from(report.sync_requests));
    s.add("sync_answered", u64::from(report.sync_answered));
    s.add("sync_failed", u64::from(report.sync_failed));
    s.add("flood_ms", report.elapsed_ms);
    Ok(times)
}

/// Step: the victim blocked `attacker` for `reason`: one `peer_blocked`
/// line in its audit log (written soon after the block, so waited for),
/// and the attacker gone from its peers.
async fn blocked(
    net: &Testnet,
    s: &mut Steps,
    attacker: &str,
    reason: &str,
) -> Result<(), Failure> {
    let title = format!(
        "the victim blocked {attacker} ({reason}): a peer_blocked line in its audit log, \
         {attacker} gone from its peers"
    );
    s.step(title, async |until| {
        let peer = net.node(attacker)?.feed_id().to_owned();
        let client = net.node(VICTIM)?.client();
        flow::poll(until, VICTIM, "the peer_blocked line", || async {
            let log = flow::audit_log(net, VICTIM).await?;
            let lines: Vec<_> = log
                .iter()
                .filter(|a| {
                    a.record["event"] == "peer_blocked" && a.record["peer"] == peer.as_str()
                })
                .collect();
            Ok(match lines.as_slice() {
                [] => Err("no peer_blocked line yet".to_owned()),
                [line] if line.record["reason"] == reason => Ok(()),
                [line] => Err(format!("blocked for {}", line.record["reason"])),
                more => Err(format!("{} peer_blocked lines", more.len())),
            })
        })
        .await?;
        flow::poll(
            until,
            VICTIM,
            &format!("{attacker} to be gone from its peers"),
            || async {
                let peers = client.peers().await.on(VICTIM)?;
                Ok(if peers.iter().any(|p| p.peer_id == peer) {
                    Err(format!("{attacker} is still connected"))
                } else {
                    Ok(())
                })
            },
        )
        .await
    })
    .await?;
    s.add("blocks", 1);
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The spread of a set of timings, in µs.
#[derive(Debug, Clone, Copy)]
struct Latencies {
    samples: usize,
    p50: u64,
    p99: u64,
    max: u64,
}

impl Latencies {
    fn of(times: Vec<Duration>) -> Self {
        let mut us: Vec<u64> = times.into_iter().map(micros).collect();
        us.sort_unstable();
        // The nearest-rank percentile.
        let at = |p: usize| {
            let rank = (us.len() * p).div_ceil(100).max(1);
            us.get(rank - 1).copied().unwrap_or(0)
        };
        Self {
            samples: us.len(),
            p50: at(50),
            p99: at(99),
            max: us.last().copied().unwrap_or(0),
        }
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.samples,
            self.p50 as f64 / 1000.0,
            self.p99 as f64 / 1000.0,
            self.max as f64 / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Latencies};

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let l = Latencies::of((1..=100).rev().map(ms).collect());
        assert_eq!(
            (l.samples, l.p50, l.p99, l.max),
            (100, 50_000, 99_000, 100_000)
        );
        let one = Latencies::of(vec![ms(3)]);
        assert_eq!((one.p50, one.p99, one.max), (3000, 3000, 3000));
        let none = Latencies::of(Vec::new());
        assert_eq!((none.samples, none.max), (0, 0));
    }
}
