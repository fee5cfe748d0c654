//! `gossip-50`: how fast one feed's new entries reach 50 nodes.
//!
//! The network and the measurement are [`crate::gossip50`]'s (the bench
//! runs the same): fifty daemons in a sparse mesh, every one following n1;
//! n1 publishes a root and a shard in one commit, and each node's time to
//! store them comes from its event stream. Reported: when 90% and 99% of the
//! nodes held n1's new head, the slowest ones, the duplicate ratio
//! (duplicates / unique deliveries over the 49 receivers, from their
//! `received` counts in `GET /v1/status`: [`crate::gossip50::Copies`]), and
//! the sum of the daemons' resident memory.

use sherd_testnet::Testnet;

use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::Failure;
use crate::gossip50::{self, DIAL_N1, NODES};
use crate::mesh;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "gossip-50",
    about: "50 nodes follow one feed over a sparse mesh; one publish reaches 90% and 99% of \
            them, timed",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    s.step(format!("start {NODES} nodes, n1..n{NODES}"), async |_| {
        gossip50::start(net).await
    })
    .await?;
    s.set("daemons", NODES);

    let links = s
        .step(
            format!(
                "each node follows n1's feed and dials up to {} nodes started before it \
                 (only n2..n{} dial n1); n1 and n2 become contacts",
                mesh::DIALS,
                1 + DIAL_N1
            ),
            async |until| gossip50::wire(net, until).await,
        )
        .await?;
    s.set("links", links);
    s.set("followers", NODES - 1);

    let spread = s
        .step(
            format!(
                "every node's event stream open, n1 publishes (a 1-of-1 backup with n2: a root \
                 and a shard, one commit); wait until 99% of the {NODES} nodes store it"
            ),
            async |until| gossip50::publish_and_time(net, until).await,
        )
        .await?;
    s.set("entries", spread.head);
    let ((want_90, t90), (want_99, t99)) = (spread.reached(90), spread.reached(99));
    let last: Vec<String> = spread
        .arrivals
        .iter()
        .skip(want_90)
        .map(|(t, n)| format!("{n} {:.1} ms", t.as_secs_f64() * 1000.0))
        .collect();
    let c = spread.copies;
    let ratios = match c.ratios() {
        Some((all, gossipsub, store)) => format!(
            "duplicate ratio {all:.2} ({} duplicates / {} unique deliveries: {gossipsub:.2} \
             dropped by gossipsub's filter, {store:.2} held by the store)",
            c.duplicates(),
            c.unique
        ),
        None => "no unique delivery counted: duplicate ratio unknown".to_owned(),
    };
    s.note(format!(
        "90% of the nodes ({want_90}) had it at {:.1} ms, 99% ({want_99}, rounded up) at \
         {:.1} ms, each node timed by its own event stream; the last ones: {}; over the {} \
         receivers, {ratios}; {} gossip copies arrived, {} entries by sync; counts {} {:.0} ms \
         after the 99% point",
        t90.as_secs_f64() * 1000.0,
        t99.as_secs_f64() * 1000.0,
        last.join(", "),
        c.receivers,
        c.gossip_messages,
        c.sync_entries,
        if c.settled { "settled" } else { "still moving" },
        c.settled_ms,
    ));
    s.set("reached_90_ms", t90.as_millis());
    s.set("reached_99_ms", t99.as_millis());
    s.set("timed_nodes", spread.arrivals.len());
    s.set("unique_deliveries", c.unique);
    s.set("gossip_copies", c.gossip_messages);
    s.set("gossipsub_duplicates", c.gossipsub_duplicates);
    s.set("store_held_gossip", c.store_held_gossip);
    s.set("sync_entries", c.sync_entries);
    s.set("store_held_sync", c.store_held_sync);
    s.set("duplicates", c.duplicates());
    // Counts are integers: the ratio in thousandths.
    if let Some((all, _, _)) = c.ratios() {
        s.set("duplicate_ratio_permille", (all * 1000.0).round() as u64);
    }

    let rss = s
        .step(
            format!("sum the resident memory of the {NODES} daemons"),
            async |_| gossip50::rss_sum_kib(net),
        )
        .await?;
    s.note(format!(
        "{} MiB in all, {} MiB a daemon",
        rss / 1024,
        rss / 1024 / NODES as u64
    ));
    s.set("rss_sum_kib", rss);

    s.step(format!("stop the {NODES} daemons (SIGTERM)"), async |_| {
        for n in gossip50::names() {
            net.stop(&n).await?;
        }
        Ok(())
    })
    .await
}
