//! Where each sync fetch stands: one per (peer, feed) being caught up.
//!
//! A fetch keeps the network and the store busy at once. As soon as a batch
//! of entries arrives, the request for the next one goes out (its first
//! sequence number is known from the batch itself), while the batch's
//! signatures are checked and it is committed. Batches reach the writer in
//! the order they arrived: each batch's ingest waits until the one before it
//! is queued with the writer ([`Plan::after`]), not until it is committed, so
//! the writer can commit several batches in one transaction. At most
//! [`MAX_BATCHES_IN_FLIGHT`] batches are being ingested at once per fetch;
//! past it the next request waits for one to finish, so a fast peer cannot
//! fill our memory.
//!
//! Each fetch has a generation: answers and ingests of a fetch that was
//! given up (a strike, a disconnection) or replaced are recognised and
//! ignored.
//!
//! This module only keeps the books; `service.rs` sends the requests and
//! runs the ingests it is told to.

use std::collections::HashMap;

use libp2p::PeerId;
use tokio::sync::oneshot;

/// Batches of one fetch being checked or committed at once, at most.
pub(super) const MAX_BATCHES_IN_FLIGHT: u32 = 3;

type Key = (PeerId, [u8; 32]);

#[derive(Debug)]
struct Fetch {
    generation: u64,
    /// The height to reach.
    target: u64,
    /// Whether an `Entries` request is out.
    requesting: bool,
    /// The next request's first sequence number, held back while
    /// `MAX_BATCHES_IN_FLIGHT` batches are being ingested.
    deferred: Option<u64>,
    /// Batches handed to ingests that have not reported back.
    ingesting: u32,
    /// Resolves (or is dropped) once the latest batch is queued with the writer.
    last_queued: Option<oneshot::Receiver<()>>,
    /// Entries appended by this fetch so far.
    appended: usize,
    /// The feed's head as far as this fetch's ingests have reported.
    head_seq: u64,
    /// An ingest stopped short (a fork, a refused entry): the batches after
    /// it cannot be taken, so nothing more is asked.
    halted: bool,
}

/// What to do with a batch that arrived.
#[derive(Debug)]
pub(super) struct Plan {
    /// Wait for this before handing the batch to the writer: the batch before
    /// it is queued then (an error means it never will be; go on anyway).
    pub after: Option<oneshot::Receiver<()>>,
    /// Send on it, or drop it, once this batch is queued with the writer.
    pub queued: oneshot::Sender<()>,
    /// Ask for the next batch from this sequence number now.
    pub request_from: Option<u64>,
}

/// A fetch that has nothing out any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Finished {
    pub target: u64,
    pub head_seq: u64,
    pub appended: usize,
}

/// What a finished ingest leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing yet: other batches or a request are still out.
    Wait,
    /// Send the request that was held back, for the fetch of this generation.
    Request { from_seq: u64, generation: u64 },
    /// The fetch is over.
    Finished(Finished),
}

#[derive(Debug, Default)]
pub(super) struct Fetches {
    fetches: HashMap<Key, Fetch>,
    generations: u64,
}

impl Fetches {
    /// Whether `feed` is being fetched from `peer`.
    pub(super) fn contains(&self, peer: PeerId, feed: [u8; 32]) -> bool {
        self.fetches.contains_key(&(peer, feed))
    }

    /// Starts a fetch whose first request, from `from_seq`, is being sent;
    /// returns its generation. Replaces any fetch of the same feed from the
    /// same peer.
    pub(super) fn start(
        &mut self,
        peer: PeerId,
        feed: [u8; 32],
        from_seq: u64,
        target: u64,
    ) -> u64 {
        self.generations += 1;
        self.fetches.insert(
            (peer, feed),
            Fetch {
                generation: self.generations,
                target,
                requesting: true,
                deferred: None,
                ingesting: 0,
                last_queued: None,
                appended: 0,
                head_seq: from_seq.saturating_sub(1),
                halted: false,
            },
        );
        self.generations
    }

    /// Raises the target of a fetch under way; false if there is none.
    pub(super) fn raise(&mut self, peer: PeerId, feed: [u8; 32], target: u64) -> bool {
        match self.fetches.get_mut(&(peer, feed)) {
            Some(f) => {
                f.target = f.target.max(target);
                true
            }
            None => false,
        }
    }

    /// A batch arrived for the request of generation `generation`. `last_seq`
    /// is its last entry's sequence number if the batch is whole (not empty,
    /// consecutive from what was asked, nothing malformed): only then is more
    /// asked. None if no fetch waits for it any more: drop the batch.
    pub(super) fn on_batch(
        &mut self,
        peer: PeerId,
        feed: [u8; 32],
        generation: u64,
        last_seq: Option<u64>,
    ) -> Option<Plan> {
        let f = self.current(peer, feed, generation)?;
        f.requesting = false;
        f.ingesting += 1;
        let (queued, next_queued) = oneshot::channel();
        let after = f.last_queued.replace(next_queued);
        let more = last_seq
            .filter(|&last| last < f.target && !f.halted)
            .map(|last| last + 1);
        let request_from = match more {
            Some(from) if f.ingesting < MAX_BATCHES_IN_FLIGHT => {
                f.requesting = true;
                Some(from)
            }
            Some(from) => {
                f.deferred = Some(from);
                None
            }
            None => None,
        };
        Some(Plan {
            after,
            queued,
            request_from,
        })
    }

    /// An ingest of generation `generation` reported: `appended` entries, the
    /// head now at `head_seq`, and whether it stopped short of its batch's end.
    pub(super) fn on_ingested(
        &mut self,
        peer: PeerId,
        feed: [u8; 32],
        generation: u64,
        (appended, head_seq): (usize, u64),
        stopped_short: bool,
    ) -> Next {
        let Some(f) = self.current(peer, feed, generation) else {
            return Next::Wait;
        };
        f.ingesting = f.ingesting.saturating_sub(1);
        f.appended += appended;
        f.head_seq = f.head_seq.max(head_seq);
        if stopped_short {
            f.halted = true;
            f.deferred = None;
        }
        if let Some(from_seq) = f.deferred.take() {
            f.requesting = true;
            return Next::Request {
                from_seq,
                generation,
            };
        }
        self.finish_if_idle(peer, feed)
    }

    /// The request of generation `generation` failed (or was answered with
    /// the wrong kind of response): no more is asked.
    pub(super) fn on_request_failed(
        &mut self,
        peer: PeerId,
        feed: [u8; 32],
        generation: u64,
    ) -> Next {
        let Some(f) = self.current(peer, feed, generation) else {
            return Next::Wait;
        };
        f.requesting = false;
        f.deferred = None;
        self.finish_if_idle(peer, feed)
    }

    /// Gives up the fetch of `feed` from `peer` (what is still out for it
    /// will be ignored).
    pub(super) fn abandon(&mut self, peer: PeerId, feed: [u8; 32]) {
        self.fetches.remove(&(peer, feed));
    }

    /// Gives up every fetch from `peer`.
    pub(super) fn abandon_peer(&mut self, peer: PeerId) {
        self.fetches.retain(|(p, _), _| *p != peer);
    }

    fn current(&mut self, peer: PeerId, feed: [u8; 32], generation: u64) -> Option<&mut Fetch> {
        self.fetches
            .get_mut(&(peer, feed))
            .filter(|f| f.generation == generation)
    }

    fn finish_if_idle(&mut self, peer: PeerId, feed: [u8; 32]) -> Next {
        match self.fetches.get(&(peer, feed)) {
            Some(f) if !f.requesting && f.ingesting == 0 && f.deferred.is_none() => {
                let finished = Finished {
                    target: f.target,
                    head_seq: f.head_seq,
                    appended: f.appended,
                };
                self.fetches.remove(&(peer, feed));
                Next::Finished(finished)
            }
            _ => Next::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: [u8; 32] = [7; 32];

    #[test]
    fn asks_for_the_next_batch_as_soon_as_one_arrives() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 1, 3000);
        let first = fetches
            .on_batch(peer, FEED, generation, Some(1000))
            .unwrap();
        assert_eq!(first.request_from, Some(1001));
        assert!(first.after.is_none(), "the first batch waits for nothing");
        let second = fetches
            .on_batch(peer, FEED, generation, Some(2000))
            .unwrap();
        assert_eq!(second.request_from, Some(2001));
        // The second batch goes to the writer after the first is queued.
        let mut after = second.after.unwrap();
        assert!(after.try_recv().is_err());
        first.queued.send(()).unwrap();
        assert!(after.try_recv().is_ok());
        // The last batch reaches the target: nothing more is asked.
        let third = fetches
            .on_batch(peer, FEED, generation, Some(3000))
            .unwrap();
        assert_eq!(third.request_from, None);
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (1000, 1000), false),
            Next::Wait
        );
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (1000, 2000), false),
            Next::Wait
        );
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (1000, 3000), false),
            Next::Finished(Finished {
                target: 3000,
                head_seq: 3000,
                appended: 3000
            })
        );
        assert!(!fetches.contains(peer, FEED));
    }

    #[test]
    fn holds_the_next_request_back_while_too_many_batches_are_ingesting() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 1, 10_000);
        let mut last = 0;
        for _ in 1..MAX_BATCHES_IN_FLIGHT {
            last += 1000;
            let plan = fetches
                .on_batch(peer, FEED, generation, Some(last))
                .unwrap();
            assert_eq!(plan.request_from, Some(last + 1));
        }
        last += 1000;
        let plan = fetches
            .on_batch(peer, FEED, generation, Some(last))
            .unwrap();
        assert_eq!(plan.request_from, None, "held back");
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (1000, 1000), false),
            Next::Request {
                from_seq: last + 1,
                generation
            }
        );
    }

    #[test]
    fn a_short_or_broken_batch_ends_the_fetch_once_ingested() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 101, 5000);
        // Empty, malformed or out of order: `last_seq` is None.
        let plan = fetches.on_batch(peer, FEED, generation, None).unwrap();
        assert_eq!(plan.request_from, None);
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (0, 0), false),
            Next::Finished(Finished {
                target: 5000,
                head_seq: 100,
                appended: 0
            })
        );
    }

    #[test]
    fn an_ingest_that_stopped_short_ends_the_fetch() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 1, 10_000);
        let first = fetches
            .on_batch(peer, FEED, generation, Some(1000))
            .unwrap();
        assert_eq!(first.request_from, Some(1001));
        // The first batch stopped at entry 500 (a fork, say).
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (499, 499), true),
            Next::Wait
        );
        // The batch already asked for arrives, but nothing more is asked.
        let second = fetches
            .on_batch(peer, FEED, generation, Some(2000))
            .unwrap();
        assert_eq!(second.request_from, None);
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (0, 499), true),
            Next::Finished(Finished {
                target: 10_000,
                head_seq: 499,
                appended: 499
            })
        );
    }

    #[test]
    fn a_raised_target_is_asked_for() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 1, 1000);
        assert!(fetches.raise(peer, FEED, 1500));
        let plan = fetches
            .on_batch(peer, FEED, generation, Some(1000))
            .unwrap();
        assert_eq!(plan.request_from, Some(1001));
        assert!(!fetches.raise(PeerId::random(), FEED, 10));
    }

    #[test]
    fn what_arrives_for_an_abandoned_or_replaced_fetch_is_ignored() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let old = fetches.start(peer, FEED, 1, 3000);
        let plan = fetches.on_batch(peer, FEED, old, Some(1000)).unwrap();
        assert_eq!(plan.request_from, Some(1001));
        fetches.abandon_peer(peer);
        assert!(fetches.on_batch(peer, FEED, old, Some(2000)).is_none());
        let new = fetches.start(peer, FEED, 1, 3000);
        assert!(fetches.on_batch(peer, FEED, old, Some(2000)).is_none());
        assert_eq!(
            fetches.on_ingested(peer, FEED, old, (1000, 1000), false),
            Next::Wait
        );
        assert_eq!(fetches.on_request_failed(peer, FEED, old), Next::Wait);
        assert!(fetches.contains(peer, FEED), "the new fetch goes on");
        assert_eq!(
            fetches.on_request_failed(peer, FEED, new),
            Next::Finished(Finished {
                target: 3000,
                head_seq: 0,
                appended: 0
            })
        );
    }

    #[test]
    fn a_failed_request_ends_the_fetch_after_its_batches() {
        let mut fetches = Fetches::default();
        let peer = PeerId::random();
        let generation = fetches.start(peer, FEED, 1, 3000);
        let plan = fetches
            .on_batch(peer, FEED, generation, Some(1000))
            .unwrap();
        assert_eq!(plan.request_from, Some(1001));
        assert_eq!(
            fetches.on_request_failed(peer, FEED, generation),
            Next::Wait
        );
        assert_eq!(
            fetches.on_ingested(peer, FEED, generation, (1000, 1000), false),
            Next::Finished(Finished {
                target: 3000,
                head_seq: 1000,
                appended: 1000
            })
        );
    }
}
