//! `gossip-50`: one entry's spread to 50 nodes, measured the way the
//! scenario of the same name measures it ([`crate::gossip50`]), with the
//! figures kept.

use serde::Serialize;
use sherd_testnet::Testnet;

use crate::flow::Failure;
use crate::gossip50::{self, Copies, NODES};
use crate::scenario::{Steps, millis};

/// How fast one entry reached the nodes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Propagation {
    /// Nodes, the publisher included.
    pub(crate) nodes: usize,
    /// Links of the mesh.
    pub(crate) links: usize,
    /// Entries published at once (the head's sequence number).
    pub(crate) entries: u64,
    /// Nodes that make 90% (rounded up).
    pub(crate) nodes_90: usize,
    /// When that many held the head, from the publisher's commit.
    pub(crate) reached_90_ms: f64,
    /// Nodes that make 99% (rounded up).
    pub(crate) nodes_99: usize,
    /// When that many held it.
    pub(crate) reached_99_ms: f64,
    /// Duplicates / unique deliveries over the receivers (`None`: nothing
    /// counted, a daemon without the counts).
    pub(crate) duplicate_ratio: Option<f64>,
    /// The share of it dropped by gossipsub's duplicate filter.
    pub(crate) duplicate_ratio_gossipsub: Option<f64>,
    /// The share of it held by the stores (copies past the filter, or by sync).
    pub(crate) duplicate_ratio_store: Option<f64>,
    /// The counts behind the ratios.
    pub(crate) copies: Copies,
    /// The sum of the daemons' resident memory afterwards.
    pub(crate) rss_sum_kib: u64,
}

/// Starts and wires the 50 nodes, publishes, times the spread.
pub(super) async fn measure(net: &mut Testnet, s: &mut Steps) -> Result<Propagation, Failure> {
    s.step(format!("start {NODES} nodes, n1..n{NODES}"), async |_| {
        gossip50::start(net).await
    })
    .await?;
    let links = s
        .step(
            "every node follows n1 and dials a sparse mesh (only n2..n4 dial n1)",
            async |until| gossip50::wire(net, until).await,
        )
        .await?;
    let spread = s
        .step(
            "n1 publishes a root and a shard in one commit; each node's event stream says \
             when it stored them; the copies they received are counted once settled",
            async |until| gossip50::publish_and_time(net, until).await,
        )
        .await?;
    let rss_sum_kib = s
        .step(
            format!("sum the resident memory of the {NODES} daemons"),
            async |_| gossip50::rss_sum_kib(net),
        )
        .await?;
    let ((nodes_90, t90), (nodes_99, t99)) = (spread.reached(90), spread.reached(99));
    let ratios = spread.copies.ratios();
    let figure = Propagation {
        nodes: NODES,
        links,
        entries: spread.head,
        nodes_90,
        reached_90_ms: millis(t90),
        nodes_99,
        reached_99_ms: millis(t99),
        duplicate_ratio: ratios.map(|r| round2(r.0)),
        duplicate_ratio_gossipsub: ratios.map(|r| round2(r.1)),
        duplicate_ratio_store: ratios.map(|r| round2(r.2)),
        copies: spread.copies,
        rss_sum_kib,
    };
    s.note(format!(
        "90% ({nodes_90} nodes) at {:.1} ms, 99% ({nodes_99}) at {:.1} ms; duplicate ratio {} \
         ({} duplicates / {} unique deliveries)",
        figure.reached_90_ms,
        figure.reached_99_ms,
        figure
            .duplicate_ratio
            .map_or_else(|| "unknown".to_owned(), |r| format!("{r:.2}")),
        spread.copies.duplicates(),
        spread.copies.unique
    ));
    Ok(figure)
}

/// `x` to two decimals.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
