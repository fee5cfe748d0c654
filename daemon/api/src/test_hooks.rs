//! TEST ONLY: the fault-injection routes under `/v1/test/`, served only by a
//! daemon started with `sherdd --test-hooks` (a hidden flag, with no
//! environment variable and no config key). Any other daemon answers them
//! 404 (`not_found`), like any unknown route.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/test/block` | [`TestPeer`] | 204 |
//! | `POST /v1/test/unblock` | [`TestPeer`] | 204 |
//! | `POST /v1/test/gossip-drop` | [`TestGossipDrop`] | 204 |
//! | `POST /v1/test/flood` | [`TestFlood`] | 200 [`TestFloodReport`] |
//! | `POST /v1/test/fill` | [`TestFill`] | 200 [`TestFillReport`] |
//! | `GET /v1/test/entry/{id}` | | 200 [`TestEntry`] |
//!
//! They exist for the testnet's scenarios and benches: a network partition
//! seen from one node (block, unblock), lossy gossip (gossip-drop), a node
//! that misbehaves toward a peer (flood), a long feed made fast (fill), and
//! the bytes of a stored payload, to look for on disk once it is erased
//! (entry).

use serde::{Deserialize, Serialize};

/// Invalid entries one flood may publish at most.
pub const MAX_FLOOD_INVALID_ENTRIES: u32 = 10_000;

/// Sync requests one flood may send at most.
pub const MAX_FLOOD_SYNC_REQUESTS: u32 = 100_000;

/// Filler entries one fill may append at most.
pub const MAX_FILL_COUNT: u32 = 1_000_000;

/// `POST /v1/test/block` and `POST /v1/test/unblock`: the peer to cut off
/// (every connection to or from it closed and refused, until unblocked), or
/// to let back (the node then redials the addresses it knew for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPeer {
    /// The peer's feed id (`12D3KooW...`); not this node's own.
    pub peer: String,
}

/// `POST /v1/test/gossip-drop`: drop this fraction of the gossip messages
/// that arrive, before validation (they are reported to gossipsub as
/// ignored, so not forwarded). `0` turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGossipDrop {
    /// From 0.0 (drop nothing, the default) to 1.0 (drop everything).
    pub fraction: f64,
}

/// `POST /v1/test/flood`: this node misbehaves toward `peer`. It publishes
/// `invalid_entries` entries on its own feed's gossip topic that continue
/// its real chain but carry a broken signature (so they never enter its own
/// store), and sends `peer` `sync_requests` sync requests as fast as the
/// connection lets it. The answer comes when all are sent and answered, or
/// the peer closed the connection, or after 20 seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFlood {
    /// The victim's feed id; it must be connected, and follow this node's
    /// feed if `invalid_entries` is not 0 (else the entries cannot reach it).
    pub peer: String,
    /// Invalid entries to publish (at most [`MAX_FLOOD_INVALID_ENTRIES`]).
    #[serde(default)]
    pub invalid_entries: u32,
    /// Sync requests to send (at most [`MAX_FLOOD_SYNC_REQUESTS`]).
    #[serde(default)]
    pub sync_requests: u32,
}

/// The answer to `POST /v1/test/flood`: what was sent, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFloodReport {
    /// Invalid entries published on gossip.
    pub invalid_entries: u32,
    /// Sync requests sent.
    pub sync_requests: u32,
    /// Of those, how many the peer answered.
    pub sync_answered: u32,
    /// Of those, how many failed: refused by the peer (the stream closed
    /// without an answer), cut off with the connection, or timed out.
    pub sync_failed: u32,
    /// Whether the peer closed every connection to this node before the
    /// flood ended (it blocked us, most likely).
    pub disconnected: bool,
    /// How long the flood took, in milliseconds.
    pub elapsed_ms: u64,
}

/// `POST /v1/test/fill`: append `count` filler entries to this node's own
/// feed: public `about` entries (a name and a description of ~120 bytes,
/// about 200 bytes of JSON each), which every node stores and no engine
/// acts on.
/// They are signed and committed in runs of 1000, each run one transaction,
/// and gossiped like any new entry. The answer comes once all are committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFill {
    /// How many entries to append: 1 to [`MAX_FILL_COUNT`].
    pub count: u32,
}

/// The answer to `POST /v1/test/fill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFillReport {
    /// Entries appended (the `count` asked for).
    pub appended: u32,
    /// The sequence number of the feed's head afterwards.
    pub head_seq: u64,
}

/// `GET /v1/test/entry/{id}`: the payload of the entry `id` (an entry id,
/// 64 hex characters) as this node stores it. 404 (`not_found`) if the
/// store holds no such entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEntry {
    /// The payload's bytes, lowercase hex, exactly as stored (for a boxed
    /// entry, the envelope); `None` (`null`) once the payload is erased.
    pub payload_hex: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields_and_default_counts() {
        let flood: TestFlood = serde_json::from_str(r#"{"peer":"P","sync_requests":3}"#).unwrap();
        assert_eq!(
            flood,
            TestFlood {
                peer: "P".into(),
                invalid_entries: 0,
                sync_requests: 3
            }
        );
        assert!(serde_json::from_str::<TestFlood>(r#"{"peer":"P","bytes":1}"#).is_err());
        assert!(serde_json::from_str::<TestPeer>(r#"{"peer":"P","for":1}"#).is_err());
        let drop: TestGossipDrop = serde_json::from_str(r#"{"fraction":1}"#).unwrap();
        assert_eq!(drop.fraction, 1.0);
        let fill: TestFill = serde_json::from_str(r#"{"count":7}"#).unwrap();
        assert_eq!(fill, TestFill { count: 7 });
        assert!(serde_json::from_str::<TestFill>(r#"{"count":7,"size":1}"#).is_err());
        assert!(serde_json::from_str::<TestFill>("{}").is_err());
        let erased: TestEntry = serde_json::from_str(r#"{"payload_hex":null}"#).unwrap();
        assert_eq!(erased, TestEntry { payload_hex: None });
        assert_eq!(
            serde_json::to_string(&TestEntry {
                payload_hex: Some("00ff".into())
            })
            .unwrap(),
            r#"{"payload_hex":"00ff"}"#
        );
    }
}
