//! The gossip-50 network and its measurement, shared by `scenario
//! gossip-50` (which checks and narrates it) and `bench` (which reports its
//! figures): how fast one feed's new entry reaches 50 nodes.
//!
//! Fifty daemons, n1..n50; every other node follows n1's feed (adds it as a
//! contact). They are wired as a sparse mesh ([`crate::mesh::sparse`]), so
//! that gossip must be relayed: each node dials up to three nodes started
//! before it, and only n2..n4 dial n1. n1 then publishes the fewest entries
//! the API can make it publish (a 1-of-1 backup with n2: a root and one
//! shard, in one commit).
//!
//! Timing: every node's event stream is open before the publish, and a
//! node's time is when its `entry_stored` event for n1's new head reached
//! the testnet, counted from n1's own `entry_stored` for it. Both travel the
//! same path (the store's announcement, the control API's event stream over
//! its socket), so that path's delay mostly cancels out, and each time is
//! the node's own, not a polling round's.
//!
//! Copies ([`Copies`]): every node's `received` counts in `GET /v1/status`
//! are read before the publish and again once they stop moving after it;
//! the differences, summed over the 49 receivers (n1 is left out: it
//! publishes, it does not receive), give the unique deliveries (entries
//! appended, each new to the node that appended it) and the duplicates
//! (copies gossipsub's filter dropped, plus copies the store found it held,
//! by gossip or sync). The duplicate ratio is duplicates / unique deliveries.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use sherd_api::{CreateBackup, Event, Received, StreamItem};
use sherd_testnet::Testnet;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::flow::{self, Failure, On as _};
use crate::mesh;

/// Nodes in all, the publisher included.
pub(crate) const NODES: usize = 50;
/// The nodes that dial n1, the publisher (n2..n4); the others do not.
pub(crate) const DIAL_N1: usize = 3;
/// Bytes of the secret n1 backs up.
const SECRET_LEN: usize = 32;
/// How often the receivers' counts are read once 99% hold the head, until
/// two readings in a row agree: longer than gossipsub's heartbeat (500 ms),
/// after which a late copy (an IWANT answer) would arrive.
const SETTLE_EVERY: Duration = Duration::from_millis(600);
/// Readings of the counts at most, after the 99% point.
const SETTLE_READINGS: usize = 10;

/// The name of node `i`, from 0: `n1` for the publisher.
pub(crate) fn name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// The publisher's name.
pub(crate) fn publisher() -> String {
    name(0)
}

/// Every node's name, the publisher first.
pub(crate) fn names() -> Vec<String> {
    (0..NODES).map(name).collect()
}

/// Starts the [`NODES`] daemons.
pub(crate) async fn start(net: &mut Testnet) -> Result<(), Failure> {
    for n in names() {
        net.start(&n).await?;
    }
    Ok(())
}

/// Every node but n1 follows n1's feed (n2 and n1 become contacts, since
/// n2 is the custodian of n1's backup); the mesh is dialled and up. Returns
/// the number of links.
pub(crate) async fn wire(net: &Testnet, until: Instant) -> Result<usize, Failure> {
    let names = names();
    let n1 = publisher();
    let feed = net.node(&n1)?.feed_id().to_owned();
    for me in names.iter().skip(1) {
        if *me == name(1) {
            net.befriend(&n1, me).await?;
        } else {
            let client = net.node(me)?.client();
            client.add_contact(&feed, &n1, false).await.on(me)?;
        }
    }
    mesh::connect(net, &names, &mesh::sparse(NODES, DIAL_N1), until).await
}

/// When each node stored the publisher's new head.
#[derive(Debug, Clone)]
pub(crate) struct Spread {
    /// The head's sequence number (the entries n1 published).
    pub(crate) head: u64,
    /// Each node that stored it in time, with when: the publisher first, at
    /// zero, then in order of arrival.
    pub(crate) arrivals: Vec<(Duration, String)>,
    /// The copies the receivers got, counted once they settled.
    pub(crate) copies: Copies,
}

/// The copies of the publish that reached the 49 receivers, summed over
/// them: the differences of their `received` counts (`GET /v1/status`)
/// across the publish. Field names say what `sherd_api::Received` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Copies {
    /// Receivers counted (every node but the publisher).
    pub(crate) receivers: usize,
    /// Unique deliveries: entries appended by the receivers, by gossip or
    /// sync (each new to the node that appended it). Should be
    /// `receivers` times the entries published.
    pub(crate) unique: u64,
    /// Gossip messages that arrived, every copy (gossipsub's count).
    pub(crate) gossip_messages: u64,
    /// Copies gossipsub's duplicate filter dropped before the node saw them.
    pub(crate) gossipsub_duplicates: u64,
    /// Gossiped copies that passed the filter, reached the store and were
    /// held already.
    pub(crate) store_held_gossip: u64,
    /// Entries that arrived by sync.
    pub(crate) sync_entries: u64,
    /// Of those, held already.
    pub(crate) store_held_sync: u64,
    /// Copies gossipsub dropped at the publisher (its own entries coming
    /// back); not in the ratio.
    pub(crate) publisher_gossipsub_duplicates: u64,
    /// When the counts were last read, from the moment 99% of the nodes
    /// held the head.
    pub(crate) settled_ms: f64,
    /// Whether they had stopped moving then (two readings agreed); if not,
    /// time ran out and more copies may have come.
    pub(crate) settled: bool,
}

impl Copies {
    /// Every duplicate: dropped by gossipsub, or held by the store.
    pub(crate) fn duplicates(&self) -> u64 {
        self.gossipsub_duplicates + self.store_held_gossip + self.store_held_sync
    }

    /// Duplicates / unique deliveries, and the same for gossipsub's and the
    /// store's share; `None` if nothing was delivered (a daemon without the
    /// counts).
    pub(crate) fn ratios(&self) -> Option<(f64, f64, f64)> {
        if self.unique == 0 {
            return None;
        }
        let per = |n: u64| n as f64 / self.unique as f64;
        Some((
            per(self.duplicates()),
            per(self.gossipsub_duplicates),
            per(self.store_held_gossip + self.store_held_sync),
        ))
    }

    /// The differences from `before` to `after`, publisher first in both,
    /// read `at` after the 99% point (`settled`: the counts had stopped).
    fn between(before: &[Received], after: &[Received], at: Duration, settled: bool) -> Self {
        let d = |f: fn(&Received) -> u64, i: usize| {
            let b = before.get(i).map_or(0, f);
            after.get(i).map_or(0, f).saturating_sub(b)
        };
        let sum = |f: fn(&Received) -> u64| (1..after.len()).map(|i| d(f, i)).sum::<u64>();
        Self {
            receivers: after.len().saturating_sub(1),
            unique: sum(|r| r.gossip_appended + r.sync_appended),
            gossip_messages: sum(|r| r.gossip_messages),
            gossipsub_duplicates: sum(|r| r.gossip_duplicates),
            store_held_gossip: sum(|r| r.gossip_held),
            sync_entries: sum(|r| r.sync_entries),
            store_held_sync: sum(|r| r.sync_held),
            publisher_gossipsub_duplicates: d(|r| r.gossip_duplicates, 0),
            settled_ms: crate::scenario::millis(at),
            settled,
        }
    }
}

/// Every node's `received` counts, the publisher first.
async fn received(net: &Testnet) -> Result<Vec<Received>, Failure> {
    let mut all = Vec::with_capacity(NODES);
    for n in names() {
        all.push(net.node(&n)?.client().status().await.on(&n)?.received);
    }
    Ok(all)
}

impl Spread {
    /// How many nodes make `percent`% of all [`NODES`] (rounded up), and
    /// when that many held the head (the publisher included).
    pub(crate) fn reached(&self, percent: usize) -> (usize, Duration) {
        let want = (NODES * percent).div_ceil(100);
        let at = self
            .arrivals
            .get(want.saturating_sub(1))
            .map(|(t, _)| *t)
            .unwrap_or_default();
        (want, at)
    }
}

/// What one node's event stream said.
enum Heard {
    /// It stored the publisher's entry `seq`, seen at `at`.
    Stored { node: String, seq: u64, at: Instant },
    /// Its stream lagged, broke or ended: its time cannot be known.
    Lost { node: String, why: String },
}

/// n1 publishes (a 1-of-1 backup with n2), and every node's time to store
/// its new head is taken from the event streams, until 99% of the nodes
/// have it or `until` passes; then the copies they received are counted,
/// once the counts stop moving.
pub(crate) async fn publish_and_time(net: &Testnet, until: Instant) -> Result<Spread, Failure> {
    let n1 = publisher();
    let feed = net.node(&n1)?.feed_id().to_owned();
    let (tx, mut heard) = mpsc::unbounded_channel();
    // Dropped on the way out, aborting every listener (and closing its
    // stream) whatever happened.
    let mut listeners = JoinSet::new();
    for n in names() {
        let stream = net.node(&n)?.client().events().await.on(&n)?;
        listeners.spawn(listen(n, feed.clone(), stream, tx.clone()));
    }
    drop(tx);
    let before = received(net).await?;

    let secret = flow::random_secret(SECRET_LEN)?;
    let request = CreateBackup {
        label: "gossip".into(),
        threshold: 1,
        custodians: flow::feeds(net, &[name(1).as_str()])?,
        secret: base64::engine::general_purpose::STANDARD
            .encode(&secret)
            .into(),
        ..CreateBackup::default()
    };
    let client = net.node(&n1)?.client();
    client.create_backup(&request).await.on(&n1)?;
    let head = flow::height(client, &feed).await.on(&n1)?;

    let (want, _) = Spread {
        head,
        arrivals: Vec::new(),
        copies: Copies::default(),
    }
    .reached(99);
    let mut first: BTreeMap<String, Instant> = BTreeMap::new();
    let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
    while first.len() < want {
        let next = tokio::time::timeout_at(until, heard.recv()).await;
        match next {
            Ok(Some(Heard::Stored { node, seq, at })) => {
                if seq >= head {
                    first.entry(node).or_insert(at);
                } else {
                    last_seen.insert(node, seq);
                }
            }
            Ok(Some(Heard::Lost { node, why })) if !first.contains_key(&node) => {
                return Err(Failure::on(
                    &node,
                    format!("{node}'s arrival time cannot be known: {why}"),
                ));
            }
            Ok(Some(Heard::Lost { .. })) => {}
            Ok(None) => {
                return Err(Failure::on(&n1, "every event stream ended"));
            }
            Err(_) => {
                let missing: Vec<String> = names()
                    .into_iter()
                    .filter(|n| !first.contains_key(n))
                    .map(|n| {
                        let seq = last_seen.get(&n).copied().unwrap_or(0);
                        format!("{n} (at seq {seq})")
                    })
                    .collect();
                let blamed = names()
                    .into_iter()
                    .find(|n| !first.contains_key(n))
                    .unwrap_or_else(|| n1.clone());
                return Err(Failure::on(
                    &blamed,
                    format!(
                        "{} of {NODES} nodes store n1's seq {head} in time; not: {}",
                        first.len(),
                        missing.join(", ")
                    ),
                ));
            }
        }
    }
    let zero = first
        .get(&n1)
        .copied()
        .ok_or_else(|| Failure::on(&n1, "n1 never said it stored its own entry"))?;
    let mut arrivals: Vec<(Duration, String)> = first
        .into_iter()
        .map(|(n, at)| (at.saturating_duration_since(zero), n))
        .collect();
    // The publisher first, whatever the order its event came in.
    arrivals.sort_unstable_by_key(|(t, n)| (*n != n1, *t));

    // Late copies (relayed by the last nodes, or answers to gossip's IWANT)
    // still arrive after the 99% point: read until two readings agree.
    let reached = Instant::now();
    let mut last = received(net).await?;
    let mut settled = false;
    for _ in 0..SETTLE_READINGS {
        if Instant::now() + SETTLE_EVERY > until {
            break;
        }
        tokio::time::sleep(SETTLE_EVERY).await;
        let now = received(net).await?;
        settled = now == last;
        last = now;
        if settled {
            break;
        }
    }
    let copies = Copies::between(&before, &last, reached.elapsed(), settled);
    Ok(Spread {
        head,
        arrivals,
        copies,
    })
}

/// Forwards what `node`'s event stream says of `feed`'s entries.
async fn listen(
    node: String,
    feed: String,
    mut stream: sherd_api::EventStream,
    tx: mpsc::UnboundedSender<Heard>,
) {
    let why = loop {
        match stream.next().await {
            Some(Ok(StreamItem::Event(Event::EntryStored { feed: f, seq }))) if f == feed => {
                let at = Instant::now();
                let stored = Heard::Stored {
                    node: node.clone(),
                    seq,
                    at,
                };
                if tx.send(stored).is_err() {
                    return;
                }
            }
            Some(Ok(StreamItem::Lagged { missed })) => {
                break format!("its event stream lagged ({missed} events missed)");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("its event stream broke: {e}"),
            None => break "its event stream ended".to_owned(),
        }
    };
    let _ = tx.send(Heard::Lost { node, why });
}

/// The sum of the resident memory of every daemon of `net`, in KiB.
pub(crate) fn rss_sum_kib(net: &Testnet) -> Result<u64, Failure> {
    let mut sum = 0;
    for d in net.daemons() {
        sum += d.rss_kib()?;
    }
    Ok(sum)
}
