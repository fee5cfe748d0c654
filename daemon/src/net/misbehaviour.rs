//! Keeping count of peers that send invalid data, and blocking them.
//!
//! Each invalid entry or malformed message adds a strike. A peer with
//! `STRIKES_TO_BLOCK` strikes within `STRIKE_WINDOW` is blocked (connections
//! refused and closed) for a period that doubles each time it is blocked
//! again, from `FIRST_BLOCK` up to `MAX_BLOCK`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Strikes within the window that block a peer.
pub(crate) const STRIKES_TO_BLOCK: usize = 10;
/// How long a strike counts.
pub(crate) const STRIKE_WINDOW: Duration = Duration::from_secs(600);
/// The first block's length.
pub(crate) const FIRST_BLOCK: Duration = Duration::from_secs(600);
/// The longest block.
pub(crate) const MAX_BLOCK: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default)]
struct Record {
    strikes: Vec<Instant>,
    times_blocked: u32,
    blocked_until: Option<Instant>,
}

/// The strike count of every peer that misbehaved.
#[derive(Debug, Default)]
pub(crate) struct Misbehaviour {
    peers: HashMap<PeerId, Record>,
}

impl Misbehaviour {
    /// Records a strike; returns the block length if the peer is now blocked.
    pub(crate) fn strike(&mut self, peer: PeerId, now: Instant) -> Option<Duration> {
        let record = self.peers.entry(peer).or_default();
        record
            .strikes
            .retain(|t| now.duration_since(*t) < STRIKE_WINDOW);
        record.strikes.push(now);
        if record.strikes.len() < STRIKES_TO_BLOCK || record.blocked_until.is_some() {
            return None;
        }
        let length = FIRST_BLOCK
            .saturating_mul(2u32.saturating_pow(record.times_blocked))
            .min(MAX_BLOCK);
        record.times_blocked = record.times_blocked.saturating_add(1);
        record.blocked_until = Some(now + length);
        record.strikes.clear();
        Some(length)
    }

    /// Peers whose block has ended by `now`; they are unblocked here.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<PeerId> {
        let mut out = Vec::new();
        for (peer, record) in &mut self.peers {
            if record.blocked_until.is_some_and(|t| t <= now) {
                record.blocked_until = None;
                out.push(*peer);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_enough_strikes_for_a_growing_time() {
        let mut m = Misbehaviour::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for _ in 1..STRIKES_TO_BLOCK {
            assert_eq!(m.strike(peer, t0), None);
        }
        assert_eq!(m.strike(peer, t0), Some(FIRST_BLOCK));
        assert_eq!(m.strike(peer, t0), None, "already blocked");
        assert!(m.expired(t0).is_empty());
        assert_eq!(m.expired(t0 + FIRST_BLOCK), vec![peer]);
        for _ in 1..STRIKES_TO_BLOCK {
            m.strike(peer, t0 + FIRST_BLOCK);
        }
        assert_eq!(m.strike(peer, t0 + FIRST_BLOCK), Some(FIRST_BLOCK * 2));
    }

    #[test]
    fn old_strikes_expire() {
        let mut m = Misbehaviour::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for _ in 1..STRIKES_TO_BLOCK {
            m.strike(peer, t0);
        }
        assert_eq!(m.strike(peer, t0 + STRIKE_WINDOW), None);
    }
}
