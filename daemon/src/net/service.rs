//! The network actor: one task owning the swarm, its loop one `select!` over
//! commands, swarm events, the store's commit announcements, finished
//! background work and two timers.
//!
//! Store work (validation and commit of received entries, reads to answer a
//! sync request) runs in spawned tasks that report back through `done`, so
//! the loop never waits on the disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, mdns, noise, tcp, yamux};
use prometheus_client::registry::Registry;
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::feed::EntryError;
use sherd_protocol::{FeedId, Keypair};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::fetch::{Fetches, Next, Plan};
use super::misbehaviour::{Misbehaviour, SyncBudget};
use super::stats::{Counters, GOSSIPSUB_PREFIX, GossipOutcome};
use super::sync::{
    MAX_ENTRIES_PER_RESPONSE, MAX_RESPONSE_BYTES, SyncRequest, SyncResponse, WireEntry,
};
use super::test_hooks::{Hooks, TestCommand};
use super::{NetCommand, NetError, NetEvent, NetworkConfig, gossip};
use crate::clock::now_ms;
use crate::store::{Committed, IncomingEntry, IngestOutcome, Store, StoreError};

/// What an outbound sync request asked, to read its answer.
enum Asked {
    Heights,
    Entries {
        /// Boxed: a feed id carries its decoded key, the largest field here.
        feed: Box<FeedId>,
        from_seq: u64,
        /// The fetch it belongs to ([`Fetches`]).
        generation: u64,
    },
}

/// Gossip messages waiting for validation, at most; past it they are ignored
/// (not forwarded) and sync fetches what they carried.
const GOSSIP_QUEUE: usize = 4096;
/// Gossip messages validated in one store batch at most.
const GOSSIP_BATCH: usize = 1024;

/// A gossiped entry waiting for validation.
struct GossipItem {
    message_id: MessageId,
    source: PeerId,
    feed: FeedId,
    entry: IncomingEntry,
}

/// What validation made of one gossiped entry.
enum Verdict {
    /// Newly appended.
    Appended,
    /// Held already.
    Held,
    /// Refused for this reason; the feed's head is `head_seq`.
    Refused {
        error: Option<EntryError>,
        head_seq: u64,
    },
    /// Not looked at: an entry before it in the batch was refused.
    NotReached { head_seq: u64, seq: u64 },
    /// The store failed.
    StoreFailed,
}

/// Background work that finished.
enum Done {
    GossipChecked {
        message_id: MessageId,
        source: PeerId,
        feed: FeedId,
        verdict: Verdict,
    },
    SyncServed {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    SyncIngested {
        peer: PeerId,
        feed: FeedId,
        generation: u64,
        received: usize,
        outcome: Result<IngestOutcome, StoreError>,
    },
}

pub(super) struct Service {
    swarm: Swarm<Behaviour>,
    store: Store,
    me: FeedId,
    config: NetworkConfig,
    follows: HashMap<[u8; 32], FeedId>,
    commands: mpsc::Receiver<NetCommand>,
    events: broadcast::Sender<NetEvent>,
    announced: broadcast::Receiver<Committed>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    gossip_tx: mpsc::Sender<GossipItem>,
    gossip_rx: Option<mpsc::Receiver<GossipItem>>,
    outbound: HashMap<OutboundRequestId, Asked>,
    /// Dials under way, answered when the connection is up or has failed.
    dialing: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>>,
    /// The addresses actually bound (a `/tcp/0` listen resolves to a port).
    listening: Vec<Multiaddr>,
    /// Feeds being fetched from peers by sync.
    fetching: Fetches,
    misbehaviour: Misbehaviour,
    /// Every peer's inbound sync request budget.
    sync_budget: SyncBudget,
    /// Test hooks' state: inert unless a test command arrives.
    hooks: Hooks,
    /// What arrived from peers, copies counted; read by the handle too.
    counters: Arc<Counters>,
}

/// Whether a refusal proves that the sender did not validate what it sent
/// (so it is penalised), rather than a disagreement an honest peer can have.
fn proves_misbehaviour(error: &EntryError) -> bool {
    matches!(
        error,
        EntryError::Decode(_)
            | EntryError::WrongAuthor
            | EntryError::BadSignature
            | EntryError::PayloadLength { .. }
            | EntryError::PayloadHash
    )
}

impl Service {
    pub(super) fn new(
        me: &Keypair,
        store: Store,
        config: NetworkConfig,
        follows: Vec<FeedId>,
        commands: mpsc::Receiver<NetCommand>,
        events: broadcast::Sender<NetEvent>,
    ) -> Result<Self, NetError> {
        let mut seed = me.seed();
        let key = identity::Keypair::ed25519_from_bytes(&mut seed[..])
            .map_err(|e| NetError::Setup(format!("node key: {e}")))?;
        let behaviour_config = config.clone();
        let mut metrics = Registry::with_prefix(GOSSIPSUB_PREFIX);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(format!("transport: {e}")))?
            .with_behaviour(|key| {
                Behaviour::new(key, &behaviour_config, &mut metrics)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        let me_id = me.feed_id();
        let mut follow_map = HashMap::new();
        for feed in std::iter::once(me_id).chain(follows) {
            follow_map.insert(*feed.as_bytes(), feed);
            // Subscribing only fails if the topic is refused by a filter; we set none.
            let _ = swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&gossip::topic(&feed));
        }
        for addr in &config.bootstrap {
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
        Ok(Self {
            gossip_tx,
            gossip_rx: Some(gossip_rx),
            announced: store.subscribe(),
            swarm,
            store,
            me: me_id,
            config,
            follows: follow_map,
            commands,
            events,
            done_tx,
            done_rx,
            outbound: HashMap::new(),
            listening: Vec::new(),
            dialing: HashMap::new(),
            fetching: Fetches::default(),
            misbehaviour: Misbehaviour::default(),
            sync_budget: SyncBudget::default(),
            hooks: Hooks::default(),
            counters: Arc::new(Counters::new(metrics)),
        })
    }

    /// The counters this service bumps, for its handle.
    pub(super) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub(super) async fn run(mut self) {
        if let Some(queue) = self.gossip_rx.take() {
            tokio::spawn(validate_gossip(
                self.store.clone(),
                queue,
                self.done_tx.clone(),
            ));
        }
        let mut resync = tokio::time::interval(self.config.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unblock = tokio::time::interval(Duration::from_secs(5));
        loop {
            let flood_deadline = self.hooks.flood_deadline();
            tokio::select! {
                command = self.commands.recv() => match command {
                    None | Some(NetCommand::Shutdown) => break,
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                committed = self.announced.recv() => match committed {
                    Ok(c) => self.on_committed(&c),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // The periodic resync delivers what was not pushed.
                        tracing::warn!(missed = n, "gossip fell behind the store");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(done) = self.done_rx.recv() => self.on_done(done),
                _ = resync.tick() => self.resync_all(),
                _ = unblock.tick() => self.unblock_expired(),
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(
                    flood_deadline.unwrap_or_else(Instant::now),
                )), if flood_deadline.is_some() => self.hooks.finish(),
            }
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            // Already disconnected is fine: that is the goal.
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        tracing::debug!("network stopped");
    }

    fn emit(&self, event: NetEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Dial(addr, reply) => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dialing.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            NetCommand::Follow(feed) => {
                if self.follows.insert(*feed.as_bytes(), feed).is_none() {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .subscribe(&gossip::topic(&feed));
                    self.resync_all();
                }
            }
            NetCommand::Unfollow(feed) => {
                if feed != self.me && self.follows.remove(feed.as_bytes()).is_some() {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .unsubscribe(&gossip::topic(&feed));
                }
            }
            NetCommand::ListenAddrs(reply) => {
                let _ = reply.send(self.listening.clone());
            }
            NetCommand::Peers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            NetCommand::Misbehaved(peer, reason) => {
                if peer != *self.swarm.local_peer_id() {
                    self.strike(peer, reason);
                }
            }
            NetCommand::Test(command) => self.on_test(command),
            NetCommand::Shutdown => {}
        }
    }

    fn on_test(&mut self, command: TestCommand) {
        match command {
            TestCommand::Block(peer, reply) => {
                self.hooks.block(&mut self.swarm, peer);
                let _ = reply.send(());
            }
            TestCommand::Unblock(peer, reply) => {
                let misbehaved = self.misbehaviour.is_blocked(&peer);
                let redialed = self.hooks.unblock(&mut self.swarm, peer, misbehaved);
                let _ = reply.send(redialed);
            }
            TestCommand::GossipDrop(fraction, reply) => {
                self.hooks.set_gossip_drop(fraction);
                let _ = reply.send(());
            }
            TestCommand::Flood(flood, reply) => {
                self.hooks
                    .start_flood(&mut self.swarm, &self.me, flood, reply);
            }
        }
    }

    fn on_committed(&mut self, committed: &Committed) {
        if committed.header.header().author != *self.me.as_bytes() {
            return;
        }
        let data = gossip::encode(
            &committed.header,
            committed.payload.as_deref().map(Vec::as_slice),
        );
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossip::topic(&self.me), data)
        {
            // Alone on the network, or no subscriber yet: sync delivers it later.
            tracing::debug!(error = %e, seq = committed.header.header().seq, "entry not gossiped");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listening.push(address.clone());
                self.emit(NetEvent::Listening(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.hooks
                        .note_addrs(peer_id, [endpoint.get_remote_address().clone()]);
                }
                if let Some(reply) = self.dialing.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "connected");
                    self.emit(NetEvent::PeerConnected(peer_id));
                    self.send_heights(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some(reply) = self.dialing.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: Multiaddr::empty(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                tracing::debug!(peer = %peer_id, "disconnected");
                self.fetching.abandon_peer(peer_id);
                self.hooks.on_disconnected(peer_id);
                self.emit(NetEvent::PeerDisconnected(peer_id));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, &message),
            // A peer now listens for a feed we hold: entries we gossiped
            // before it subscribed never reached it. Our heights tell it what
            // to fetch.
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) if self
                .follows
                .values()
                .any(|f| gossip::topic(f).hash() == topic) =>
            {
                self.send_heights(peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_sync_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_sync_response(peer, request_id, response),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                if self
                    .hooks
                    .on_request_done(&mut self.swarm, request_id, false)
                {
                    return;
                }
                tracing::debug!(%peer, %error, "sync request failed");
                if let Some(Asked::Entries {
                    feed, generation, ..
                }) = self.outbound.remove(&request_id)
                {
                    let next = self
                        .fetching
                        .on_request_failed(peer, *feed.as_bytes(), generation);
                    self.go_on(peer, *feed, next);
                }
            }
            // Known addresses of a peer, for a redial after a test unblock.
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.hooks.note_addrs(peer_id, info.listen_addrs),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, message_id: MessageId, message: &gossipsub::Message) {
        let report = |swarm: &mut Swarm<Behaviour>, acceptance| {
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &source, acceptance);
        };
        if self.hooks.drops_gossip() {
            tracing::debug!(peer = %source, "test hook: gossip message dropped");
            report(&mut self.swarm, MessageAcceptance::Ignore);
            return;
        }
        let Some(entry) = gossip::decode(&message.data) else {
            report(&mut self.swarm, MessageAcceptance::Reject);
            self.strike(source, "malformed gossip message");
            return;
        };
        let Some(feed) = self.follows.get(&entry.header.header().author).copied() else {
            report(&mut self.swarm, MessageAcceptance::Ignore);
            return;
        };
        if message.topic != gossip::topic(&feed).hash() {
            report(&mut self.swarm, MessageAcceptance::Reject);
            self.strike(source, "entry gossiped on another feed's topic");
            return;
        }
        let item = GossipItem {
            message_id: message_id.clone(),
            source,
            feed,
            entry,
        };
        if self.gossip_tx.try_send(item).is_err() {
            // Too much at once: not forwarded; sync fetches it if we need it.
            report(&mut self.swarm, MessageAcceptance::Ignore);
        }
    }

    fn on_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if !self.sync_budget.take(peer, Instant::now()) {
            // Not answered: dropping the channel closes the stream, and the
            // peer sees its request fail.
            drop(channel);
            self.strike(peer, "too many sync requests");
            return;
        }
        let store = self.store.clone();
        let done = self.done_tx.clone();
        match request {
            SyncRequest::Heights(asked) => {
                // The exchange is symmetric: the requester's heights tell us
                // where it is ahead of us, and we fetch those from it.
                self.fetch_where_behind(peer, &asked);
                let feeds: Vec<FeedId> = asked
                    .iter()
                    .filter_map(|(key, _)| self.follows.get(key).copied())
                    .collect();
                tokio::task::spawn_blocking(move || {
                    let heights = feeds
                        .iter()
                        .filter_map(|f| match store.head(f) {
                            Ok(Some(h)) => Some((*f.as_bytes(), h.header().seq)),
                            _ => None,
                        })
                        .collect();
                    let _ = done.send(Done::SyncServed {
                        channel,
                        response: SyncResponse::Heights(heights),
                    });
                });
            }
            SyncRequest::Entries {
                feed,
                from_seq,
                max,
            } => {
                let feed = self.follows.get(&feed).copied();
                tokio::task::spawn_blocking(move || {
                    let limit = usize::from(max).min(MAX_ENTRIES_PER_RESPONSE);
                    let stored = match feed {
                        Some(f) => store.entries(&f, from_seq, limit).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    let mut bytes = 0usize;
                    let mut entries = Vec::with_capacity(stored.len());
                    for e in stored {
                        bytes += e.header.as_bytes().len() + e.payload.as_ref().map_or(0, Vec::len);
                        entries.push(WireEntry {
                            header: e.header.as_bytes().to_vec(),
                            payload: e.payload,
                        });
                        if bytes >= MAX_RESPONSE_BYTES {
                            break;
                        }
                    }
                    let _ = done.send(Done::SyncServed {
                        channel,
                        response: SyncResponse::Entries(entries),
                    });
                });
            }
        }
    }

    fn on_sync_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: SyncResponse,
    ) {
        if self
            .hooks
            .on_request_done(&mut self.swarm, request_id, true)
        {
            return;
        }
        match (self.outbound.remove(&request_id), response) {
            (Some(Asked::Heights), SyncResponse::Heights(theirs)) => {
                self.fetch_where_behind(peer, &theirs);
            }
            (
                Some(Asked::Entries {
                    feed,
                    from_seq,
                    generation,
                }),
                SyncResponse::Entries(wire),
            ) => self.on_entries(peer, *feed, from_seq, generation, wire),
            (asked, _) => {
                if let Some(Asked::Entries {
                    feed, generation, ..
                }) = asked
                {
                    let next = self
                        .fetching
                        .on_request_failed(peer, *feed.as_bytes(), generation);
                    self.go_on(peer, *feed, next);
                }
                self.strike(peer, "sync response of the wrong kind");
            }
        }
    }

    /// A batch of `feed`'s entries from `peer`, asked from `from_seq`: asks
    /// for the next batch at once and ingests this one after the previous.
    fn on_entries(
        &mut self,
        peer: PeerId,
        feed: FeedId,
        from_seq: u64,
        generation: u64,
        wire: Vec<WireEntry>,
    ) {
        let received = wire.len();
        let mut run = Vec::with_capacity(received);
        let mut whole = true;
        for (w, expected) in wire.into_iter().zip(from_seq..) {
            match SignedHeader::decode(&w.header) {
                Ok(header) if header.header().seq == expected => run.push(IncomingEntry {
                    header,
                    payload: w.payload,
                }),
                Ok(_) => {
                    self.strike(peer, "sync response out of order");
                    whole = false;
                    break;
                }
                Err(_) => {
                    self.strike(peer, "malformed entry in a sync response");
                    whole = false;
                    break;
                }
            }
        }
        let last_seq = run.last().filter(|_| whole).map(|e| e.header.header().seq);
        let key = *feed.as_bytes();
        let Some(plan) = self.fetching.on_batch(peer, key, generation, last_seq) else {
            // The fetch was given up (a strike, a disconnection) or replaced.
            return;
        };
        let Plan {
            after,
            queued,
            request_from,
        } = plan;
        if let Some(from) = request_from {
            self.request_entries(peer, feed, from, generation);
        }
        let store = self.store.clone();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let outcome = match Store::check_run(feed, run).await {
                Ok(checked) => {
                    // Runs reach the writer in the order they arrived; an
                    // error means the one before will never be queued.
                    if let Some(after) = after {
                        let _ = after.await;
                    }
                    let pending = store.submit_run(checked, now_ms()).await;
                    drop(queued);
                    match pending {
                        Ok(pending) => pending.committed().await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let _ = done.send(Done::SyncIngested {
                peer,
                feed,
                generation,
                received,
                outcome,
            });
        });
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::GossipChecked {
                message_id,
                source,
                feed,
                verdict,
            } => {
                self.counters.gossip_checked(match verdict {
                    Verdict::Appended => GossipOutcome::Appended,
                    Verdict::Held => GossipOutcome::Held,
                    _ => GossipOutcome::Other,
                });
                let acceptance = match verdict {
                    Verdict::Appended => MessageAcceptance::Accept,
                    Verdict::Refused { error: Some(e), .. } if proves_misbehaviour(&e) => {
                        self.strike(source, "invalid entry gossiped");
                        MessageAcceptance::Reject
                    }
                    Verdict::Refused {
                        error: Some(EntryError::WrongSeq { expected, found }),
                        head_seq,
                    } if found > expected => {
                        // A gap: we missed entries; fetch them from whoever sent this.
                        self.fetch_up_to(source, feed, head_seq, found);
                        MessageAcceptance::Ignore
                    }
                    Verdict::NotReached { head_seq, seq } => {
                        self.fetch_up_to(source, feed, head_seq, seq);
                        MessageAcceptance::Ignore
                    }
                    Verdict::Held | Verdict::Refused { .. } | Verdict::StoreFailed => {
                        MessageAcceptance::Ignore
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
            }
            Done::SyncServed { channel, response } => {
                // The peer may have gone; then there is no one to answer.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Done::SyncIngested {
                peer,
                feed,
                generation,
                received,
                outcome,
            } => {
                let key = *feed.as_bytes();
                match outcome {
                    Ok(o) => {
                        self.counters.sync_ingested(received, o.skipped, o.appended);
                        if let Some(e) = o.stopped_by.as_ref().filter(|e| proves_misbehaviour(e)) {
                            tracing::warn!(%peer, feed = %feed, error = %e, "invalid entry in a sync response");
                            self.strike(peer, "invalid entry in a sync response");
                            self.fetching.abandon(peer, key);
                        } else {
                            let next = self.fetching.on_ingested(
                                peer,
                                key,
                                generation,
                                (o.appended, o.head_seq),
                                o.stopped_by.is_some(),
                            );
                            self.go_on(peer, feed, next);
                        }
                    }
                    Err(e) => {
                        self.counters.sync_ingested(received, 0, 0);
                        tracing::error!(error = %e, "store refused a sync batch");
                        self.fetching.abandon(peer, key);
                    }
                }
            }
        }
    }

    /// Takes a fetch on as [`Fetches`] says.
    fn go_on(&mut self, peer: PeerId, feed: FeedId, next: Next) {
        match next {
            Next::Wait => {}
            Next::Request {
                from_seq,
                generation,
            } => self.request_entries(peer, feed, from_seq, generation),
            Next::Finished(f) if f.appended > 0 && f.head_seq < f.target => {
                // Progress, but short of the height we were told: the peer
                // sent less than it had (a batch cut short); ask again.
                self.fetch(peer, feed, f.head_seq + 1, f.target);
            }
            Next::Finished(f) if f.appended > 0 => {
                // Caught up by sync, so nothing was gossiped: peers that
                // follow this feed learn our new height.
                self.offer_heights(feed, peer);
            }
            Next::Finished(_) => {}
        }
    }

    /// Fetches `feed` from `peer` up to `target`, or raises the target of a
    /// fetch already under way.
    fn fetch_up_to(&mut self, peer: PeerId, feed: FeedId, head_seq: u64, target: u64) {
        if !self.fetching.raise(peer, *feed.as_bytes(), target) {
            self.fetch(peer, feed, head_seq + 1, target);
        }
    }

    /// Fetches from `peer` every followed feed it holds further than we do.
    fn fetch_where_behind(&mut self, peer: PeerId, theirs: &[super::sync::Height]) {
        for (key, their_seq) in theirs {
            let Some(feed) = self.follows.get(key).copied() else {
                continue;
            };
            let ours = self
                .store
                .head(&feed)
                .ok()
                .flatten()
                .map_or(0, |h| h.header().seq);
            if *their_seq > ours && !self.fetching.contains(peer, *key) {
                self.fetch(peer, feed, ours + 1, *their_seq);
            }
        }
    }

    /// Starts fetching `feed` from `peer`, from `from_seq` up to `target`.
    fn fetch(&mut self, peer: PeerId, feed: FeedId, from_seq: u64, target: u64) {
        let generation = self
            .fetching
            .start(peer, *feed.as_bytes(), from_seq, target);
        self.request_entries(peer, feed, from_seq, generation);
    }

    fn request_entries(&mut self, peer: PeerId, feed: FeedId, from_seq: u64, generation: u64) {
        let request = SyncRequest::Entries {
            feed: *feed.as_bytes(),
            from_seq,
            max: self.config.sync_batch,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.outbound.insert(
            id,
            Asked::Entries {
                feed: Box::new(feed),
                from_seq,
                generation,
            },
        );
    }

    fn send_heights(&mut self, peer: PeerId) {
        let heights = self
            .follows
            .values()
            .map(|f| {
                let seq = self
                    .store
                    .head(f)
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.header().seq);
                (*f.as_bytes(), seq)
            })
            .collect();
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Heights(heights));
        self.outbound.insert(id, Asked::Heights);
    }

    /// Sends our heights to every peer subscribed to `feed`'s topic but `except`.
    fn offer_heights(&mut self, feed: FeedId, except: PeerId) {
        let topic = gossip::topic(&feed).hash();
        let peers: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(p, topics)| **p != except && topics.contains(&&topic))
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            self.send_heights(peer);
        }
    }

    fn resync_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.send_heights(peer);
        }
    }

    fn strike(&mut self, peer: PeerId, reason: &'static str) {
        tracing::debug!(%peer, reason, "peer misbehaved");
        if let Some(duration) = self.misbehaviour.strike(peer, Instant::now()) {
            tracing::warn!(%peer, ?duration, reason, "blocking peer");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.emit(NetEvent::PeerBlocked { peer, duration });
            let record = serde_json::json!({
                "time_ms": now_ms(),
                "event": "peer_blocked",
                "peer": peer.to_string(),
                "reason": reason,
                "duration_secs": duration.as_secs(),
            });
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.audit(record.to_string().into_bytes()).await {
                    tracing::error!(error = %e, "cannot write the audit record of a block");
                }
            });
        }
    }

    fn unblock_expired(&mut self) {
        let now = Instant::now();
        for peer in self.misbehaviour.expired(now) {
            // A test block outlives a misbehaviour block that ends.
            if !self.hooks.blocks(&peer) {
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                self.emit(NetEvent::PeerUnblocked(peer));
            }
        }
        self.sync_budget.forget_idle(now);
    }
}

/// Validates gossiped entries in arrival order, batching what is queued: the
/// entries of one feed go to the store as one run (one commit), sorted by seq,
/// so a burst is neither reordered into false gaps nor committed one by one.
///
/// An entry that proves misbehaviour stops its run, and would hide what
/// follows it in the batch (an honest entry for the same seq, or more
/// invalid ones, each of which is a strike): the rest of the run is then
/// checked entry by entry without the store (signature, payload), each
/// invalid one refused, and the others offered to the store again, once.
async fn validate_gossip(
    store: Store,
    mut queue: mpsc::Receiver<GossipItem>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Some(first) = queue.recv().await {
        let mut items = vec![first];
        while items.len() < GOSSIP_BATCH {
            match queue.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        let mut by_feed: Vec<(FeedId, Vec<GossipItem>)> = Vec::new();
        for item in items {
            match by_feed.iter_mut().find(|(f, _)| *f == item.feed) {
                Some((_, group)) => group.push(item),
                None => by_feed.push((item.feed, vec![item])),
            }
        }
        for (feed, mut group) in by_feed {
            group.sort_by_key(|i| i.entry.header.header().seq);
            let result = ingest_items(&store, feed, &group).await;
            let rest = match &result {
                Ok(o) if o.stopped_by.as_ref().is_some_and(proves_misbehaviour) => {
                    let refused = o.skipped + o.appended;
                    group.split_off((refused + 1).min(group.len()))
                }
                _ => Vec::new(),
            };
            if !report_verdicts(&done, feed, &result, group) {
                return; // the network stopped
            }
            let Ok(outcome) = result else { continue };
            if rest.is_empty() {
                continue;
            }
            let Ok(checked) = tokio::task::spawn_blocking(move || {
                rest.into_iter()
                    .map(|item| {
                        let error = provable_error(&feed, &item.entry);
                        (item, error)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            else {
                return; // the runtime is shutting down
            };
            let mut again = Vec::new();
            for (item, error) in checked {
                match error {
                    None => again.push(item),
                    Some(error) => {
                        let verdict = Verdict::Refused {
                            error: Some(error),
                            head_seq: outcome.head_seq,
                        };
                        if !report(&done, feed, item, verdict) {
                            return;
                        }
                    }
                }
            }
            if !again.is_empty() {
                let result = ingest_items(&store, feed, &again).await;
                if !report_verdicts(&done, feed, &result, again) {
                    return;
                }
            }
        }
    }
}

/// Offers `items` (sorted by seq) to the store as one run.
async fn ingest_items(
    store: &Store,
    feed: FeedId,
    items: &[GossipItem],
) -> Result<IngestOutcome, StoreError> {
    let run = items.iter().map(|i| i.entry.clone()).collect();
    store.ingest(feed, run, now_ms()).await
}

/// Reports what one ingest made of each of its `items`; false once the
/// network has stopped.
fn report_verdicts(
    done: &mpsc::UnboundedSender<Done>,
    feed: FeedId,
    result: &Result<IngestOutcome, StoreError>,
    items: Vec<GossipItem>,
) -> bool {
    for (k, item) in items.into_iter().enumerate() {
        let verdict = match result {
            Ok(o) if k < o.skipped => Verdict::Held,
            Ok(o) if k < o.skipped + o.appended => Verdict::Appended,
            Ok(o) if k == o.skipped + o.appended => Verdict::Refused {
                error: o.stopped_by.clone(),
                head_seq: o.head_seq,
            },
            Ok(o) => Verdict::NotReached {
                head_seq: o.head_seq,
                seq: item.entry.header.header().seq,
            },
            Err(e) => {
                tracing::error!(error = %e, "store failed to validate gossip");
                Verdict::StoreFailed
            }
        };
        if !report(done, feed, item, verdict) {
            return false;
        }
    }
    true
}

fn report(
    done: &mpsc::UnboundedSender<Done>,
    feed: FeedId,
    item: GossipItem,
    verdict: Verdict,
) -> bool {
    let checked = Done::GossipChecked {
        message_id: item.message_id,
        source: item.source,
        feed,
        verdict,
    };
    done.send(checked).is_ok()
}

/// What proves, without the store, that `entry` is not a valid entry of
/// `feed`: a wrong author, a bad signature, a payload that does not match.
fn provable_error(feed: &FeedId, entry: &IncomingEntry) -> Option<EntryError> {
    let header = &entry.header;
    if header.header().author != *feed.as_bytes() {
        return Some(EntryError::WrongAuthor);
    }
    if feed
        .verify(&header.signed_message(), &header.signature())
        .is_err()
    {
        return Some(EntryError::BadSignature);
    }
    let payload = entry.payload.as_deref()?;
    sherd_protocol::feed::check_payload(header, payload).err()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sherd_protocol::entry::PayloadKind;

    use super::*;
    use crate::net::test_hooks::invalid_entries;

    fn entry(author: &Keypair, previous: Option<&SignedHeader>, n: u8) -> IncomingEntry {
        let payload = format!("{{\"n\":{n}}}").into_bytes();
        let header =
            SignedHeader::sign_next(author, previous, now_ms(), PayloadKind::Public, &payload)
                .unwrap();
        IncomingEntry {
            header,
            payload: Some(payload),
        }
    }

    /// Runs `entries` through the gossip validation worker as one burst and
    /// hands what it reports to `service`, as the actor's loop would.
    async fn gossip_through(service: &mut Service, feed: FeedId, entries: &[&IncomingEntry]) {
        let (queue_tx, queue) = mpsc::channel(16);
        for (i, e) in entries.iter().enumerate() {
            let item = GossipItem {
                message_id: MessageId::new(&[u8::try_from(i).unwrap()]),
                source: PeerId::random(),
                feed,
                entry: (*e).clone(),
            };
            queue_tx.try_send(item).unwrap();
        }
        drop(queue_tx);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        tokio::time::timeout(
            Duration::from_secs(20),
            validate_gossip(service.store.clone(), queue, done_tx),
        )
        .await
        .unwrap();
        while let Ok(done) = done_rx.try_recv() {
            service.on_done(done);
        }
    }

    #[tokio::test]
    async fn entries_delivered_twice_count_as_held_whichever_way_they_came() {
        let dir = tempfile::tempdir().unwrap();
        let me = Arc::new(Keypair::from_seed(&[73; 32]));
        let author = Keypair::from_seed(&[74; 32]);
        let feed = author.feed_id();
        let (store, _thread) = Store::open(&dir.path().join("store.redb"), me.clone()).unwrap();
        let (_commands_tx, commands) = mpsc::channel(1);
        let (events, _) = broadcast::channel(16);
        let config = NetworkConfig::default();
        let mut service = Service::new(&me, store, config, vec![feed], commands, events).unwrap();
        let mut entries = vec![entry(&author, None, 1)];
        for n in 2..=5 {
            let next = entry(&author, Some(&entries[entries.len() - 1].header), n);
            entries.push(next);
        }
        let first_three: Vec<&IncomingEntry> = entries.iter().take(3).collect();

        // Gossip: the same three entries twice (as after gossipsub's
        // duplicate cache forgot them, or from a restarted node).
        gossip_through(&mut service, feed, &first_three).await;
        let once = service.counters.snapshot();
        assert_eq!(
            (once.gossip_entries, once.gossip_appended, once.gossip_held),
            (3, 3, 0)
        );
        gossip_through(&mut service, feed, &first_three).await;
        let twice = service.counters.snapshot();
        assert_eq!(
            (
                twice.gossip_entries,
                twice.gossip_appended,
                twice.gossip_held
            ),
            (6, 3, 3)
        );

        // Sync: a response with all five, three of which are held.
        let outcome = service.store.ingest(feed, entries.clone(), now_ms()).await;
        service.on_done(Done::SyncIngested {
            peer: PeerId::random(),
            feed,
            generation: 0,
            received: 5,
            outcome,
        });
        let after = service.counters.snapshot();
        assert_eq!(
            (after.sync_entries, after.sync_appended, after.sync_held),
            (5, 2, 3)
        );
        // None of it came through gossipsub, whose own counts stay at zero.
        assert_eq!((after.gossip_messages, after.gossip_duplicates), (0, 0));
        assert_eq!(service.store.head(&feed).unwrap().unwrap().header().seq, 5);
    }

    // Regression: one batch used to stop at its first invalid entry, so a
    // burst of invalid entries cost one strike, and a valid entry for the
    // same seq queued behind an invalid one was not accepted.
    #[tokio::test]
    async fn an_invalid_entry_hides_neither_valid_nor_invalid_ones_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let me = Arc::new(Keypair::from_seed(&[71; 32]));
        let author = Keypair::from_seed(&[72; 32]);
        let feed = author.feed_id();
        let (store, _thread) = Store::open(&dir.path().join("store.redb"), me).unwrap();
        let first = entry(&author, None, 1);
        store
            .ingest(feed, vec![first.clone()], now_ms())
            .await
            .unwrap();
        let good2 = entry(&author, Some(&first.header), 2);
        let good3 = entry(&author, Some(&good2.header), 3);
        let bad: Vec<IncomingEntry> = invalid_entries(&author, Some(&first.header), 2, now_ms())
            .iter()
            .map(|data| gossip::decode(data).unwrap())
            .collect();

        // One batch, in this arrival order: bad, good, bad (all seq 2), good (seq 3).
        let (queue_tx, queue) = mpsc::channel(16);
        let arrivals = [&bad[0], &good2, &bad[1], &good3];
        for (i, e) in arrivals.iter().enumerate() {
            let item = GossipItem {
                message_id: MessageId::new(&[u8::try_from(i).unwrap()]),
                source: PeerId::random(),
                feed,
                entry: (*e).clone(),
            };
            queue_tx.try_send(item).unwrap();
        }
        drop(queue_tx);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        tokio::time::timeout(
            Duration::from_secs(20),
            validate_gossip(store.clone(), queue, done_tx),
        )
        .await
        .unwrap();

        let mut verdicts = Vec::new();
        while let Ok(Done::GossipChecked {
            message_id,
            verdict,
            ..
        }) = done_rx.try_recv()
        {
            let what = match verdict {
                Verdict::Appended => "appended",
                Verdict::Refused {
                    error: Some(EntryError::BadSignature),
                    ..
                } => "bad signature",
                _ => "other",
            };
            verdicts.push((message_id.0[0], what));
        }
        verdicts.sort();
        assert_eq!(
            verdicts,
            vec![
                (0, "bad signature"),
                (1, "appended"),
                (2, "bad signature"),
                (3, "appended")
            ]
        );
        assert_eq!(store.head(&feed).unwrap().unwrap().id(), good3.header.id());
    }
}
