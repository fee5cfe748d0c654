//! Keeping count of peers that send invalid data, and blocking them.
//!
//! Each invalid entry or malformed message adds a strike. A peer with
//! `STRIKES_TO_BLOCK` strikes within `STRIKE_WINDOW` is blocked (connections
//! refused and closed) for a period that doubles each time it is blocked
//! again, from `FIRST_BLOCK` up to `MAX_BLOCK`.
//!
//! Sync requests are also budgeted per peer ([`SyncBudget`]): a token bucket
//! of `SYNC_BURST` requests refilled at `SYNC_PER_SEC`. A request past the
//! budget is not answered and is a strike, so a peer that floods is blocked
//! after `STRIKES_TO_BLOCK` of them. An honest peer stays far below: it asks
//! for a batch of 2048 entries of a feed when the previous one arrives, at
//! most three ahead of its store (which takes about 56k entries a second:
//! under 30 requests a second per feed), plus one heights exchange per
//! shared feed when it connects.

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
/// Sync requests a peer may send at once.
pub(crate) const SYNC_BURST: u32 = 512;
/// Sync requests a second a peer may keep sending.
pub(crate) const SYNC_PER_SEC: u32 = 128;

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

    /// Whether `peer` is blocked for misbehaviour now.
    pub(crate) fn is_blocked(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|r| r.blocked_until.is_some())
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

/// A peer's sync request tokens.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The sync request budget of every peer that asked recently.
#[derive(Debug, Default)]
pub(crate) struct SyncBudget {
    peers: HashMap<PeerId, Bucket>,
}

impl SyncBudget {
    /// Takes one request's token from `peer`'s budget; false if it has none
    /// left.
    pub(crate) fn take(&mut self, peer: PeerId, now: Instant) -> bool {
        let bucket = self.peers.entry(peer).or_insert(Bucket {
            tokens: f64::from(SYNC_BURST),
            at: now,
        });
        let refill =
            now.saturating_duration_since(bucket.at).as_secs_f64() * f64::from(SYNC_PER_SEC);
        bucket.tokens = (bucket.tokens + refill).min(f64::from(SYNC_BURST));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets the peers whose budget is whole again by `now` (a new bucket
    /// starts whole), so that the map holds only recent askers.
    pub(crate) fn forget_idle(&mut self, now: Instant) {
        self.peers.retain(|_, b| {
            let missing = f64::from(SYNC_BURST) - b.tokens;
            now.saturating_duration_since(b.at).as_secs_f64() * f64::from(SYNC_PER_SEC) < missing
        });
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

    #[test]
    fn sync_budget_allows_a_burst_then_the_rate() {
        let mut b = SyncBudget::default();
        let peer = PeerId::random();
        let other = PeerId::random();
        let t0 = Instant::now();
        for _ in 0..SYNC_BURST {
            assert!(b.take(peer, t0));
        }
        assert!(!b.take(peer, t0), "the burst is spent");
        assert!(b.take(other, t0), "budgets are per peer");
        // A second refills SYNC_PER_SEC requests, no more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..SYNC_PER_SEC {
            assert!(b.take(peer, t1));
        }
        assert!(!b.take(peer, t1));
        // Idle long enough, a peer is forgotten (and starts whole).
        b.forget_idle(t1);
        assert_eq!(b.peers.len(), 1, "the other one is whole again");
        b.forget_idle(t1 + Duration::from_secs(u64::from(SYNC_BURST / SYNC_PER_SEC) + 1));
        assert!(b.peers.is_empty());
    }

    #[test]
    fn is_blocked_follows_the_block() {
        let mut m = Misbehaviour::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for _ in 0..STRIKES_TO_BLOCK {
            assert!(!m.is_blocked(&peer));
            m.strike(peer, t0);
        }
        assert!(m.is_blocked(&peer));
        m.expired(t0 + FIRST_BLOCK);
        assert!(!m.is_blocked(&peer));
    }
}
