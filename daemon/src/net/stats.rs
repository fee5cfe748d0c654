//! What the network counts of the entries it receives, copies included, for
//! `GET /v1/status`: cheap atomic counters the actor bumps and any thread
//! reads, and gossipsub's own registry for the copies its duplicate filter
//! drops before the node sees them.
//!
//! gossipsub counts what it drops only through its `metrics` feature (a
//! prometheus-client registry, read back here from its text encoding: the
//! only way prometheus-client gives its values out). Two of its per-topic
//! counters matter: messages received before the duplicate filter and after
//! it. With this node's gossipsub set-up (anonymous messages, no data
//! transform, no gossipsub blacklist), nothing else drops a message between
//! the two counts, so their difference is the copies dropped as seen.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// The prefix of gossipsub's metrics in [`Counters::gossipsub`].
pub(super) const GOSSIPSUB_PREFIX: &str = "gossipsub";
/// Messages received per topic, before the duplicate filter (a counter
/// family, so `_total` in the text encoding).
const RECEIVED_UNFILTERED: &str = "gossipsub_topic_msg_recv_counts_unfiltered_total";
/// Messages received per topic, after the duplicate filter.
const RECEIVED_FILTERED: &str = "gossipsub_topic_msg_recv_counts_total";

/// A snapshot of [`Counters`]; see `sherd_api::Received` for each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceivedStats {
    /// Gossip messages received, every copy (gossipsub's count).
    pub gossip_messages: u64,
    /// Copies gossipsub's duplicate filter dropped.
    pub gossip_duplicates: u64,
    /// Gossiped entries offered to the store.
    pub gossip_entries: u64,
    /// Of those, appended.
    pub gossip_appended: u64,
    /// Of those, held already.
    pub gossip_held: u64,
    /// Entries received in sync responses.
    pub sync_entries: u64,
    /// Of those, appended.
    pub sync_appended: u64,
    /// Of those, held already.
    pub sync_held: u64,
}

/// The counters, shared by the network actor (which bumps them) and the
/// [`super::NetworkHandle`] (which reads them without a round trip).
#[derive(Default)]
pub(super) struct Counters {
    /// gossipsub's metrics, registered when the behaviour was built.
    pub(super) gossipsub: Registry,
    gossip_entries: AtomicU64,
    gossip_appended: AtomicU64,
    gossip_held: AtomicU64,
    sync_entries: AtomicU64,
    sync_appended: AtomicU64,
    sync_held: AtomicU64,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("received", &self.snapshot())
            .finish_non_exhaustive()
    }
}

/// What the store made of one gossiped entry, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GossipOutcome {
    /// Appended.
    Appended,
    /// Held already.
    Held,
    /// Neither (refused, not reached, the store failed).
    Other,
}

impl Counters {
    /// A counters set whose gossipsub figures come from `gossipsub`.
    pub(super) fn new(gossipsub: Registry) -> Self {
        Self {
            gossipsub,
            ..Self::default()
        }
    }

    /// One gossiped entry went through the store.
    pub(super) fn gossip_checked(&self, outcome: GossipOutcome) {
        self.gossip_entries.fetch_add(1, Ordering::Relaxed);
        match outcome {
            GossipOutcome::Appended => self.gossip_appended.fetch_add(1, Ordering::Relaxed),
            GossipOutcome::Held => self.gossip_held.fetch_add(1, Ordering::Relaxed),
            GossipOutcome::Other => 0,
        };
    }

    /// A sync response of `received` entries went through the store, which
    /// skipped `held` and appended `appended` of them.
    pub(super) fn sync_ingested(&self, received: usize, held: usize, appended: usize) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.sync_entries.fetch_add(n(received), Ordering::Relaxed);
        self.sync_held.fetch_add(n(held), Ordering::Relaxed);
        self.sync_appended.fetch_add(n(appended), Ordering::Relaxed);
    }

    /// The counts now.
    pub(super) fn snapshot(&self) -> ReceivedStats {
        let (unfiltered, filtered) = gossipsub_received(&self.gossipsub);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceivedStats {
            gossip_messages: unfiltered,
            gossip_duplicates: unfiltered.saturating_sub(filtered),
            gossip_entries: load(&self.gossip_entries),
            gossip_appended: load(&self.gossip_appended),
            gossip_held: load(&self.gossip_held),
            sync_entries: load(&self.sync_entries),
            sync_appended: load(&self.sync_appended),
            sync_held: load(&self.sync_held),
        }
    }
}

/// gossipsub's received messages summed over its topics: before the
/// duplicate filter, and after it. (0, 0) if the registry does not encode.
fn gossipsub_received(registry: &Registry) -> (u64, u64) {
    let mut text = String::new();
    if encode(&mut text, registry).is_err() {
        return (0, 0);
    }
    sum_received(&text)
}

/// Sums the two counters over their topics in a text encoding. A label
/// value has its `"`, `\` and line breaks escaped, so each sample is one
/// line that ends with its value.
fn sum_received(text: &str) -> (u64, u64) {
    let (mut unfiltered, mut filtered) = (0u64, 0u64);
    for line in text.lines() {
        let Some((name, _)) = line.split_once(['{', ' ']) else {
            continue;
        };
        let total = match name {
            RECEIVED_UNFILTERED => &mut unfiltered,
            RECEIVED_FILTERED => &mut filtered,
            _ => continue,
        };
        let value = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(0);
        *total = total.saturating_add(value);
    }
    (unfiltered, filtered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_counters_are_summed_over_topics_and_nothing_else() {
        let text = "\
# HELP gossipsub_topic_msg_recv_counts_unfiltered Number of gossip messages received.
# TYPE gossipsub_topic_msg_recv_counts_unfiltered counter
gossipsub_topic_msg_recv_counts_unfiltered_total{hash=\"sherd/feed/1/A\"} 7
gossipsub_topic_msg_recv_counts_unfiltered_total{hash=\"odd \\\"} 1000\"} 2
gossipsub_topic_msg_recv_counts_total{hash=\"sherd/feed/1/A\"} 3
gossipsub_topic_msg_recv_counts_total{hash=\"odd \\\"} 1000\"} 1
gossipsub_topic_msg_recv_bytes_total{hash=\"sherd/feed/1/A\"} 4000
gossipsub_topic_msg_recv_counts_unfiltered_total_extra 50
# EOF
";
        assert_eq!(sum_received(text), (9, 4));
    }

    #[test]
    fn a_registry_without_gossipsub_counts_nothing() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot(), ReceivedStats::default());
    }
}
