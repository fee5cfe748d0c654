//! `gossip-50`: how fast one feed's new entries reach 50 nodes.
//!
//! Fifty daemons, n1..n50; every other node follows n1's feed (adds it as a
//! contact). They are wired sparsely, so that gossip must be relayed: each
//! node dials up to three nodes started before it, chosen by a fixed
//! pseudo-random sequence among those with fewer than 8 links, and only
//! n2..n4 dial n1 (every node is reachable, since each one links to earlier
//! ones). n1 then publishes the fewest
//! entries the API can make it publish (a 1-of-1 backup with n2: a root and
//! one shard, in one commit), and every node's status is polled, all of them
//! at once, round after round, until 99% of the nodes store n1's new head.
//! Reported: when 90% and 99% of the nodes were first seen holding it (the
//! precision is one polling round, also reported), and the sum of the
//! daemons' resident memory.
//!
//! Not measured: the ratio of duplicate gossip deliveries. The daemon counts
//! nothing of the kind that the control API shows; it would need a count of
//! gossip messages received per topic, and of those already seen (the
//! gossipsub duplicate cache's hits), in `GET /v1/status` or a test route.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use sherd_api::{Client, CreateBackup};
use sherd_testnet::Testnet;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::common::SECRET_LEN;
use super::flood::rss_kib;
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

/// Nodes in all, the publisher included.
const NODES: usize = 50;
/// Nodes each node dials, at most (among those started before it).
const DIALS: usize = 3;
/// The nodes that dial n1 (the others do not).
const DIAL_N1: usize = 3;
/// Links a node may have at most. gossipsub's default peer scoring
/// penalises every peer by -5 times the square of the number of peers past
/// 10 that share its IP address, and on the testnet every peer is
/// 127.0.0.1: from 12 links a node scores all its peers below the gossip
/// threshold (-10), from 15 below the graylist threshold (-80), where it
/// ignores every message they send and waits for the 30 s resync (seen:
/// with up to 15 links, one node took 25 s). Keeping every node at 10 links
/// or fewer measures gossip as it runs between nodes on distinct addresses.
const MAX_PEERS: usize = 8;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "gossip-50",
    about: "50 nodes follow one feed over a sparse mesh; one publish reaches 90% and 99% of \
            them, timed",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// The nodes each node dials (`dials[i]` for n`i`; empty for n1): up to
/// [`DIALS`] of the nodes started before it that have fewer than
/// [`MAX_PEERS`] links yet, drawn by a fixed linear congruential sequence;
/// n1 only for n2..n(1+DIAL_N1).
fn topology() -> Vec<Vec<usize>> {
    let mut links = vec![0; NODES + 1];
    let mut dials = vec![Vec::new(); NODES + 1];
    let mut x: u64 = 0x5eed;
    for i in 2..=NODES {
        let candidates: Vec<usize> = (1..i)
            .filter(|j| (*j > 1 || i <= 1 + DIAL_N1) && links[*j] < MAX_PEERS)
            .collect();
        let mut picked = Vec::new();
        while picked.len() < DIALS.min(candidates.len()) {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = candidates[usize::try_from(x >> 33).unwrap_or(0) % candidates.len()];
            if !picked.contains(&j) {
                picked.push(j);
            }
        }
        picked.sort_unstable();
        for j in &picked {
            links[*j] += 1;
            links[i] += 1;
        }
        dials[i] = picked;
    }
    dials
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    let names: Vec<String> = (1..=NODES).map(name).collect();
    let n1 = name(1);
    s.step(format!("start {NODES} nodes, n1..n{NODES}"), async |_| {
        for n in &names {
            net.start(n).await?;
        }
        Ok(())
    })
    .await?;
    s.set("daemons", NODES);

    let links = s
        .step(
            format!(
                "each node follows n1's feed and dials up to {DIALS} nodes started before it \
                 (only n2..n{} dial n1); n1 and n2 become contacts",
                1 + DIAL_N1
            ),
            async |until| {
                let feed = net.node(&n1)?.feed_id().to_owned();
                let dials = topology();
                let mut links = 0;
                for (i, to) in dials.iter().enumerate().skip(2) {
                    let me = name(i);
                    let client = net.node(&me)?.client();
                    if i == 2 {
                        net.befriend(&n1, &me).await?;
                    } else {
                        client.add_contact(&feed, &n1, false).await.on(&me)?;
                    }
                    for j in to {
                        net.connect(&me, &name(*j)).await?;
                        links += 1;
                    }
                }
                // Every node has its links up before anything is published.
                for i in 1..=NODES {
                    let me = name(i);
                    let want = (1..=NODES)
                        .filter(|j| dials[i].contains(j) || dials[*j].contains(&i))
                        .count();
                    let client = net.node(&me)?.client();
                    flow::poll(until, &me, &format!("{want} peers"), || async {
                        let peers = client.peers().await.on(&me)?.len();
                        Ok(if peers >= want {
                            Ok(())
                        } else {
                            Err(format!("{peers} peers"))
                        })
                    })
                    .await?;
                }
                Ok(links)
            },
        )
        .await?;
    s.set("links", links);
    s.set("followers", NODES - 1);

    let clients: Vec<(String, Client)> = names
        .iter()
        .map(|n| Ok((n.clone(), net.node(n)?.client().clone())))
        .collect::<Result<_, Failure>>()?;
    let feed = net.node(&n1)?.feed_id().to_owned();
    let (head, published) = s
        .step(
            "n1 publishes: a 1-of-1 backup with n2 (a root and a shard, one commit)",
            async |_| {
                let secret = flow::random_secret(SECRET_LEN)?;
                let request = CreateBackup {
                    label: "gossip".into(),
                    threshold: 1,
                    custodians: flow::feeds(net, &["n2"])?,
                    secret: base64::engine::general_purpose::STANDARD
                        .encode(&secret)
                        .into(),
                    ..CreateBackup::default()
                };
                let client = net.node(&n1)?.client();
                client.create_backup(&request).await.on(&n1)?;
                let published = Instant::now();
                let head = height(client, &feed).await.on(&n1)?;
                Ok((head, published))
            },
        )
        .await?;
    s.set("entries", head);

    let want_90 = (NODES * 90).div_ceil(100);
    let want_99 = (NODES * 99).div_ceil(100);
    let seen = s
        .step(
            format!(
                "poll all {NODES} nodes' status at once, round after round, until {want_99} \
                 of them store n1's seq {head}"
            ),
            async |until| {
                let mut first: BTreeMap<String, Duration> = BTreeMap::new();
                let mut rounds = 0u64;
                let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
                let mut slowest = Duration::ZERO;
                while first.len() < want_99 {
                    if Instant::now() >= until {
                        let missing: Vec<String> = names
                            .iter()
                            .filter(|n| !first.contains_key(*n))
                            .map(|n| {
                                format!("{n} (at seq {})", last_seen.get(n).copied().unwrap_or(0))
                            })
                            .collect();
                        return Err(Failure::on(
                            names
                                .iter()
                                .find(|n| !first.contains_key(*n))
                                .map_or("n1", String::as_str),
                            format!(
                                "after {} s, {} of {NODES} nodes store n1's seq {head}; not: {}",
                                flow::STEP_LIMIT.as_secs(),
                                first.len(),
                                missing.join(", ")
                            ),
                        ));
                    }
                    let round = Instant::now();
                    let mut asks = JoinSet::new();
                    for (n, client) in clients.iter().filter(|(n, _)| !first.contains_key(n)) {
                        let (n, client, feed) = (n.clone(), client.clone(), feed.clone());
                        asks.spawn(async move {
                            let seq = height(&client, &feed).await;
                            (n, seq, published.elapsed())
                        });
                    }
                    while let Some(asked) = asks.join_next().await {
                        let (n, seq, at) =
                            asked.map_err(|e| anyhow::anyhow!("a poll died: {e}"))?;
                        let seq = seq.on(&n)?;
                        if seq >= head {
                            first.insert(n, at);
                        } else {
                            last_seen.insert(n, seq);
                        }
                    }
                    rounds += 1;
                    slowest = slowest.max(round.elapsed());
                    tokio::time::sleep(flow::POLL).await;
                }
                let mut times: Vec<(Duration, String)> =
                    first.into_iter().map(|(n, t)| (t, n)).collect();
                times.sort_unstable();
                Ok((times, rounds, slowest))
            },
        )
        .await?;
    let (times, rounds, slowest) = seen;
    let at = |k: usize| times.get(k - 1).map(|(t, _)| *t).unwrap_or_default();
    let (t90, t99) = (at(want_90), at(want_99));
    let last: Vec<String> = times[want_90.min(times.len())..]
        .iter()
        .map(|(t, n)| format!("{n} {} ms", t.as_millis()))
        .collect();
    s.note(format!(
        "90% of the nodes ({want_90}) had it at {} ms, 99% ({want_99}, rounded up) at {} ms; \
         the last ones: {}; {rounds} polling rounds, the slowest {} ms (the precision of \
         those times); duplicate deliveries not measured (nothing counts them)",
        t90.as_millis(),
        t99.as_millis(),
        last.join(", "),
        slowest.as_millis()
    ));
    s.set("reached_90_ms", t90.as_millis());
    s.set("reached_99_ms", t99.as_millis());
    s.set("poll_rounds", rounds);
    s.set("poll_round_max_ms", slowest.as_millis());

    let rss = s
        .step(
            format!("sum the resident memory of the {NODES} daemons"),
            async |_| {
                let mut sum = 0;
                for d in net.daemons() {
                    let pid = d.pid().ok_or_else(|| Failure::on(d.name(), "no process"))?;
                    sum += rss_kib(pid).on(d.name())?;
                }
                Ok(sum)
            },
        )
        .await?;
    s.note(format!(
        "{} MiB in all, {} MiB a daemon",
        rss / 1024,
        rss / 1024 / NODES as u64
    ));
    s.set("rss_sum_kib", rss);

    s.step(format!("stop the {NODES} daemons (SIGTERM)"), async |_| {
        for n in &names {
            net.stop(n).await?;
        }
        Ok(())
    })
    .await
}

/// The seq of `feed` that the node of `client` stores (0 if none).
async fn height(client: &Client, feed: &str) -> Result<u64, sherd_api::ClientError> {
    let status = client.status().await?;
    Ok(status
        .feeds
        .iter()
        .find(|f| f.feed == feed)
        .map_or(0, |f| f.seq))
}

#[cfg(test)]
mod tests {
    use super::{DIAL_N1, DIALS, MAX_PEERS, NODES, topology};

    #[test]
    fn the_topology_is_sparse_bounded_and_connected() {
        let dials = topology();
        let mut links = vec![0; NODES + 1];
        let mut reached = [false; NODES + 1];
        reached[1] = true;
        for i in 2..=NODES {
            let d = &dials[i];
            assert!(!d.is_empty() && d.len() <= DIALS, "n{i} dials {d:?}");
            assert!(d.iter().all(|j| *j < i), "n{i} dials {d:?}");
            assert!(i <= 1 + DIAL_N1 || !d.contains(&1), "n{i} dials n1");
            assert!(d.iter().any(|j| reached[*j]), "n{i}");
            reached[i] = true;
            for j in d {
                links[*j] += 1;
                links[i] += 1;
            }
        }
        assert!(links.iter().all(|l| *l <= MAX_PEERS), "{links:?}");
        assert_eq!(links[1], DIAL_N1);
        assert!(dials[1 + DIAL_N1 + 1..].iter().all(|d| d.len() == DIALS));
    }
}
