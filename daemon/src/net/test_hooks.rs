//! TEST ONLY: fault injection into the network, for the testnet's scenarios.
//! Reached from the control API only when `sherdd` runs with `--test-hooks`
//! (the routes do not exist otherwise); nothing here runs unless asked.
//!
//! - **block / unblock** a peer: a partition as seen from this node. Every
//!   connection to or from the peer is closed and refused through the same
//!   allow/block list as a misbehaviour block; the two kinds of block are
//!   kept apart, so that the end of one does not lift the other. On unblock
//!   the node redials the addresses it knew for the peer.
//! - **gossip drop**: a fraction of incoming gossip messages is dropped before
//!   validation (reported as ignored, so not forwarded), drawn from the OS RNG.
//! - **flood**: this node misbehaves toward a peer. It publishes entries on
//!   its own topic that continue its real chain with a broken signature, and
//!   sends the peer sync requests as fast as the connection lets it, keeping
//!   [`FLOOD_WINDOW`] in flight.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::gossipsub::TopicHash;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use rand_core::Rng as _;
use sherd_protocol::entry::{HEADER_LEN, PayloadKind, SignedHeader};
use sherd_protocol::{FeedId, Keypair};
use tokio::sync::oneshot;

use super::NetError;
use super::behaviour::Behaviour;
use super::sync::{MAX_FEEDS_PER_REQUEST, SyncRequest};
use crate::rng::os_rng;

/// Flood requests in flight at most: under the 64 concurrent streams a
/// connection's request-response handler takes, so that none is refused
/// on our own side.
pub const FLOOD_WINDOW: usize = 48;
/// How long a flood may run before it answers with what it did.
pub const FLOOD_LIMIT: Duration = Duration::from_secs(20);
/// Addresses kept per peer for a redial after an unblock.
const KNOWN_ADDRS: usize = 8;
/// Peers whose addresses are kept for a redial after a test unblock.
const KNOWN_PEERS: usize = 1024;

/// A flood to run toward `victim`.
#[derive(Debug, Clone)]
pub struct Flood {
    /// The peer to misbehave toward.
    pub victim: FeedId,
    /// Gossip messages to publish on this node's own topic (made by
    /// [`invalid_entries`]).
    pub gossip: Vec<Vec<u8>>,
    /// Sync requests to send the victim.
    pub sync_requests: u32,
}

/// What a flood did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Gossip messages published.
    pub invalid_entries: u32,
    /// Sync requests sent.
    pub sync_requests: u32,
    /// Sync requests answered.
    pub sync_answered: u32,
    /// Sync requests that failed (refused, cut off, timed out).
    pub sync_failed: u32,
    /// The victim closed every connection before the flood ended.
    pub disconnected: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Test commands to the network actor; each answers once it is in effect.
pub(super) enum TestCommand {
    Block(PeerId, oneshot::Sender<()>),
    Unblock(PeerId, oneshot::Sender<usize>),
    GossipDrop(f64, oneshot::Sender<()>),
    Flood(Flood, oneshot::Sender<Result<FloodReport, NetError>>),
}

/// `n` gossip messages of `key`'s feed, each continuing its real chain
/// (seq and backlink after `head`) with a valid payload but a broken
/// signature: any node that validates refuses them, and the author's store
/// never holds them. Each differs from the others (payload), so gossipsub
/// sees `n` distinct messages.
pub fn invalid_entries(
    key: &Keypair,
    head: Option<&SignedHeader>,
    n: u32,
    now_ms: u64,
) -> Vec<Vec<u8>> {
    (0..n)
        .filter_map(|i| {
            let payload = format!("{{\"test\":\"invalid entry {i}\"}}").into_bytes();
            let signed =
                SignedHeader::sign_next(key, head, now_ms, PayloadKind::Public, &payload).ok()?;
            let mut bytes = signed.as_bytes().to_vec();
            // The first byte of the signature's R: the header still decodes,
            // the signature no longer verifies.
            *bytes.get_mut(HEADER_LEN)? ^= 0x01;
            bytes.extend_from_slice(&payload);
            Some(bytes)
        })
        .collect()
}

/// A flood under way.
struct FloodRun {
    run: u64,
    peer: PeerId,
    victim: [u8; 32],
    left: u32,
    in_flight: usize,
    report: FloodReport,
    started: Instant,
    reply: oneshot::Sender<Result<FloodReport, NetError>>,
}

/// The network actor's test-hook state: empty and inert unless a test
/// command arrived.
#[derive(Default)]
pub(super) struct Hooks {
    /// Peers blocked by a test command (misbehaviour blocks are kept apart).
    blocked: HashSet<PeerId>,
    /// Dialable addresses of every peer met since the hooks were first used
    /// (test runs are small). Kept after a disconnection: when two nodes
    /// block each other, the first block closes the connection before the
    /// second lands, and the node that blocks second must still know where
    /// to redial at the heal.
    known_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// The fraction of incoming gossip to drop.
    gossip_drop: f64,
    flood: Option<FloodRun>,
    /// Flood requests not yet answered, by the run that sent them (a late
    /// answer to a finished run is recognised, not taken for a protocol
    /// violation by the victim).
    flood_ids: HashMap<OutboundRequestId, u64>,
    runs: u64,
}

impl Hooks {
    /// Whether a test command blocks `peer`.
    pub(super) fn blocks(&self, peer: &PeerId) -> bool {
        self.blocked.contains(peer)
    }

    /// Blocks `peer`: its connections are closed and refused.
    pub(super) fn block(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) {
        tracing::warn!(%peer, "test hook: blocking peer");
        self.blocked.insert(peer);
        swarm.behaviour_mut().blocked.block_peer(peer);
    }

    /// Lifts a test block of `peer` (unless misbehaviour blocks it too) and
    /// redials its known addresses; returns how many it dials.
    pub(super) fn unblock(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        misbehaved: bool,
    ) -> usize {
        if !self.blocked.remove(&peer) {
            return 0;
        }
        tracing::warn!(%peer, "test hook: unblocking peer");
        if misbehaved {
            return 0;
        }
        swarm.behaviour_mut().blocked.unblock_peer(peer);
        let addrs = self.known_addrs.get(&peer).cloned().unwrap_or_default();
        let count = addrs.len();
        if count > 0 {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "test hook: no redial after unblock");
                return 0;
            }
        }
        count
    }

    /// Remembers addresses `peer` can be dialed at.
    pub(super) fn note_addrs(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        // Noted on every node (a test may block later), so bounded: a
        // long-running node meets many peers and never unblocks one.
        if self.known_addrs.len() >= KNOWN_PEERS && !self.known_addrs.contains_key(&peer) {
            return;
        }
        let known = self.known_addrs.entry(peer).or_default();
        for addr in addrs {
            if known.len() < KNOWN_ADDRS && !known.contains(&addr) {
                known.push(addr);
            }
        }
    }

    /// The last connection to `peer` closed (its addresses are kept).
    pub(super) fn on_disconnected(&mut self, peer: PeerId) {
        if let Some(run) = self.flood.as_mut().filter(|r| r.peer == peer) {
            run.report.disconnected = true;
        }
    }

    /// Sets the fraction of gossip to drop.
    pub(super) fn set_gossip_drop(&mut self, fraction: f64) {
        tracing::warn!(fraction, "test hook: dropping incoming gossip");
        self.gossip_drop = fraction.clamp(0.0, 1.0);
    }

    /// Whether to drop the gossip message that just arrived.
    pub(super) fn drops_gossip(&self) -> bool {
        if self.gossip_drop <= 0.0 {
            return false;
        }
        if self.gossip_drop >= 1.0 {
            return true;
        }
        // 53 random bits: a uniform draw in [0, 1).
        let draw = (os_rng().next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.gossip_drop
    }

    /// Starts a flood: publishes its gossip at once and starts the requests.
    pub(super) fn start_flood(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        me: &FeedId,
        flood: Flood,
        reply: oneshot::Sender<Result<FloodReport, NetError>>,
    ) {
        let peer = super::peer_id(&flood.victim);
        let topic = super::gossip::topic(me).hash();
        if let Some(why) = self.refusal(swarm, peer, &topic, !flood.gossip.is_empty()) {
            let _ = reply.send(Err(NetError::TestHook(why)));
            return;
        }
        tracing::warn!(%peer, invalid_entries = flood.gossip.len(), sync_requests = flood.sync_requests, "test hook: flooding peer");
        let mut report = FloodReport::default();
        for data in flood.gossip {
            match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                Ok(_) => report.invalid_entries += 1,
                Err(e) => tracing::debug!(error = %e, "test hook: invalid entry not published"),
            }
        }
        self.runs += 1;
        self.flood = Some(FloodRun {
            run: self.runs,
            peer,
            victim: *flood.victim.as_bytes(),
            left: flood.sync_requests,
            in_flight: 0,
            report,
            started: Instant::now(),
            reply,
        });
        self.pump(swarm);
    }

    /// Why a flood toward `peer` cannot start, if it cannot.
    fn refusal(
        &self,
        swarm: &Swarm<Behaviour>,
        peer: PeerId,
        topic: &TopicHash,
        gossips: bool,
    ) -> Option<String> {
        if self.flood.is_some() {
            return Some("a flood is under way already; wait for its report".into());
        }
        if !swarm.is_connected(&peer) {
            return Some(format!("not connected to {peer}; connect first"));
        }
        let follows_us = swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(p, topics)| *p == peer && topics.contains(&topic));
        if gossips && !follows_us {
            return Some(format!(
                "{peer} does not follow this node's feed (yet), so the invalid entries would \
                 not reach it; add this node as its contact, or wait for its subscription"
            ));
        }
        None
    }

    /// Sends flood requests up to the window, and answers once the flood is
    /// over: all answered, or the victim gone with nothing left in flight.
    pub(super) fn pump(&mut self, swarm: &mut Swarm<Behaviour>) {
        let Some(run) = self.flood.as_mut() else {
            return;
        };
        let connected = swarm.is_connected(&run.peer);
        while connected && run.left > 0 && run.in_flight < FLOOD_WINDOW {
            let request = flood_request(run.report.sync_requests, run.victim);
            let id = swarm.behaviour_mut().sync.send_request(&run.peer, request);
            self.flood_ids.insert(id, run.run);
            run.left -= 1;
            run.in_flight += 1;
            run.report.sync_requests += 1;
        }
        if run.in_flight == 0 && (run.left == 0 || !connected) {
            self.finish();
        }
    }

    /// Whether `id` is a flood request; if so its outcome is counted (and
    /// more are sent). The caller then ignores the answer.
    pub(super) fn on_request_done(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        id: OutboundRequestId,
        answered: bool,
    ) -> bool {
        let Some(run_id) = self.flood_ids.remove(&id) else {
            return false;
        };
        if let Some(run) = self.flood.as_mut().filter(|r| r.run == run_id) {
            run.in_flight = run.in_flight.saturating_sub(1);
            if answered {
                run.report.sync_answered += 1;
            } else {
                run.report.sync_failed += 1;
            }
            self.pump(swarm);
        }
        true
    }

    /// When the flood under way must end.
    pub(super) fn flood_deadline(&self) -> Option<Instant> {
        self.flood.as_ref().map(|r| r.started + FLOOD_LIMIT)
    }

    /// Ends the flood under way, answering with what it did so far.
    pub(super) fn finish(&mut self) {
        if let Some(mut run) = self.flood.take() {
            run.report.elapsed = run.started.elapsed();
            tracing::warn!(peer = %run.peer, report = ?run.report, "test hook: flood over");
            let _ = run.reply.send(Ok(run.report));
        }
    }
}

/// The `n`th request of a flood, in turn: the victim's whole feed (the
/// most a request can make it read), a random feed from the start, and
/// the heights of as many random feeds as a request may name.
fn flood_request(n: u32, victim: [u8; 32]) -> SyncRequest {
    let mut rng = os_rng();
    let mut random_feed = || {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        key
    };
    match n % 3 {
        0 => SyncRequest::Entries {
            feed: victim,
            from_seq: 1,
            max: u16::MAX,
        },
        1 => SyncRequest::Entries {
            feed: random_feed(),
            from_seq: 1,
            max: u16::MAX,
        },
        _ => SyncRequest::Heights(
            (0..MAX_FEEDS_PER_REQUEST)
                .map(|_| (random_feed(), 0))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sherd_protocol::feed::{EntryError, Feed};

    #[test]
    fn invalid_entries_continue_the_chain_but_do_not_verify() {
        let key = Keypair::from_seed(&[5; 32]);
        let payload = b"{}";
        let head =
            SignedHeader::sign_next(&key, None, 1_000, PayloadKind::Public, payload).unwrap();
        let messages = invalid_entries(&key, Some(&head), 3, 2_000);
        assert_eq!(messages.len(), 3);
        let mut ids = HashSet::new();
        for data in &messages {
            let entry = super::super::gossip::decode(data).expect("decodes");
            assert_eq!(entry.header.header().seq, 2);
            assert_eq!(entry.header.header().backlink, Some(head.id()));
            assert!(ids.insert(entry.header.id()), "distinct messages");
            let mut feed = Feed::new(key.feed_id());
            feed.append(head.clone(), Some(payload), 2_000).unwrap();
            assert_eq!(
                feed.append(entry.header, entry.payload.as_deref(), 2_000),
                Err(EntryError::BadSignature)
            );
        }
    }

    #[test]
    fn gossip_drop_fractions() {
        let mut hooks = Hooks::default();
        assert!(!hooks.drops_gossip(), "off by default");
        hooks.set_gossip_drop(1.0);
        assert!((0..100).all(|_| hooks.drops_gossip()));
        hooks.set_gossip_drop(0.5);
        let dropped = (0..10_000).filter(|_| hooks.drops_gossip()).count();
        // Binomial(10000, 0.5): 10 standard deviations either side.
        assert!((4_500..=5_500).contains(&dropped), "{dropped}");
        hooks.set_gossip_drop(0.0);
        assert!(!(0..100).any(|_| hooks.drops_gossip()));
    }
}
