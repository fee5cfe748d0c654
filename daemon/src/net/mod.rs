//! Replication over libp2p: TCP + Noise + Yamux, identify, ping, gossipsub for
//! live push and `/sherd/sync/1` for catch-up, connection limits, and the
//! blocking of peers that send invalid data.
//!
//! [`spawn`] starts the network actor ([`service`]); a [`NetworkHandle`]
//! talks to it. Every entry that arrives, by gossip or sync, goes through
//! the store's validation and commit before it is accepted, acknowledged to
//! gossipsub (so forwarded) or reported; every entry the node publishes is
//! gossiped only once the store has committed it.
//!
//! [`test_hooks`] holds fault injection for the testnet (block a peer, drop
//! gossip, flood a peer); only `sherdd --test-hooks` lets the control API
//! reach it.

mod behaviour;
mod fetch;
pub mod gossip;
pub(crate) mod misbehaviour;
mod service;
mod stats;
pub mod sync;
pub mod test_hooks;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use sherd_protocol::{FeedId, Keypair};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use self::stats::ReceivedStats;
use crate::store::Store;

/// What the network needs to know.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on (for example `/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// Announce and discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Established connections at most.
    pub max_connections: u32,
    /// Entries asked for per sync request.
    pub sync_batch: u16,
    /// How often connected peers' heights are compared again, to catch what
    /// gossip missed.
    pub resync_interval: Duration,
    /// The gossipsub heartbeat.
    pub gossip_heartbeat: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 128,
            sync_batch: 2048,
            resync_interval: Duration::from_secs(30),
            gossip_heartbeat: Duration::from_millis(500),
        }
    }
}

/// Why the network could not start or a command failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport or a behaviour could not be set up.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A peer could not be dialed.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The network actor has stopped.
    #[error("the network is shut down")]
    Closed,
    /// A test hook cannot do what was asked (says why).
    #[error("{0}")]
    TestHook(String),
}

/// What the network reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// Listening on a new address.
    Listening(Multiaddr),
    /// A first connection to a peer is up.
    PeerConnected(PeerId),
    /// The last connection to a peer is down.
    PeerDisconnected(PeerId),
    /// A peer sent invalid data too often and is blocked.
    PeerBlocked {
        /// The peer.
        peer: PeerId,
        /// For how long.
        duration: Duration,
    },
    /// A blocked peer's time is up.
    PeerUnblocked(PeerId),
}

enum NetCommand {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    Follow(FeedId),
    Unfollow(FeedId),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Misbehaved(PeerId, &'static str),
    Test(test_hooks::TestCommand),
    Shutdown,
}

/// The libp2p peer id of a feed: the identity multihash of the same
/// Ed25519 key.
pub fn peer_id(feed: &FeedId) -> PeerId {
    PeerId::from_bytes(&feed.peer_id_bytes())
        .expect("the identity multihash of a 32-byte key is well formed")
}

/// A cloneable handle to the network actor.
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    commands: mpsc::Sender<NetCommand>,
    events: broadcast::Sender<NetEvent>,
    counters: Arc<stats::Counters>,
}

impl NetworkHandle {
    async fn send(&self, command: NetCommand) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Closed)
    }

    /// Dials a peer; returns its id once the connection is up, or why it failed.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Dial(addr, tx)).await?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// Starts replicating a feed.
    pub async fn follow(&self, feed: FeedId) -> Result<(), NetError> {
        self.send(NetCommand::Follow(feed)).await
    }

    /// Stops replicating a feed (what is stored stays).
    pub async fn unfollow(&self, feed: FeedId) -> Result<(), NetError> {
        self.send(NetCommand::Unfollow(feed)).await
    }

    /// The author of `feed` sent something it had no right to send (the
    /// engine refused it): a strike against the peer of that identity, which
    /// is blocked, for a growing period, once it has too many (as for
    /// invalid data, `misbehaviour.rs`).
    pub async fn misbehaved(&self, feed: &FeedId, reason: &'static str) -> Result<(), NetError> {
        self.send(NetCommand::Misbehaved(peer_id(feed), reason))
            .await
    }

    /// The addresses the node listens on (as bound: with the real port).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::ListenAddrs(tx)).await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Peers(tx)).await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// TEST ONLY: closes every connection to `peer` and refuses new ones,
    /// both ways, until [`NetworkHandle::test_unblock`].
    pub async fn test_block(&self, peer: PeerId) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Test(test_hooks::TestCommand::Block(peer, tx)))
            .await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// TEST ONLY: lifts [`NetworkHandle::test_block`] (a misbehaviour block
    /// stays) and redials the addresses known for `peer`; returns how many.
    pub async fn test_unblock(&self, peer: PeerId) -> Result<usize, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Test(test_hooks::TestCommand::Unblock(peer, tx)))
            .await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// TEST ONLY: drops `fraction` (0 to 1) of incoming gossip before validation.
    pub async fn test_gossip_drop(&self, fraction: f64) -> Result<(), NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Test(test_hooks::TestCommand::GossipDrop(
            fraction, tx,
        )))
        .await?;
        rx.await.map_err(|_| NetError::Closed)
    }

    /// TEST ONLY: misbehaves toward a peer (see [`test_hooks::Flood`]);
    /// answers when the flood is over, within [`test_hooks::FLOOD_LIMIT`].
    pub async fn test_flood(
        &self,
        flood: test_hooks::Flood,
    ) -> Result<test_hooks::FloodReport, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(NetCommand::Test(test_hooks::TestCommand::Flood(flood, tx)))
            .await?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// What arrived from peers since the start, copies counted (read from
    /// counters, without a round trip to the network actor; still counted
    /// after it stops).
    pub fn received(&self) -> ReceivedStats {
        self.counters.snapshot()
    }

    /// What the network reports from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    /// Stops the network: closes every connection and ends the actor.
    pub async fn shutdown(&self) {
        // If the actor is gone already, it is shut down: nothing to do.
        let _ = self.commands.send(NetCommand::Shutdown).await;
    }
}

/// Starts the network for the node `me`, replicating `follows` (the node's
/// own feed is always followed) through `store`.
pub fn spawn(
    me: &Keypair,
    store: Store,
    config: NetworkConfig,
    follows: Vec<FeedId>,
) -> Result<(NetworkHandle, JoinHandle<()>), NetError> {
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(1024);
    let service = service::Service::new(me, store, config, follows, rx, events.clone())?;
    let counters = service.counters();
    let task = tokio::spawn(service.run());
    Ok((
        NetworkHandle {
            commands,
            events,
            counters,
        },
        task,
    ))
}

#[cfg(test)]
mod tests;
