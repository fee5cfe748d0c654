//! The node's libp2p behaviour: one struct composing every protocol it speaks.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity, mdns, ping,
    request_response,
};
use prometheus_client::registry::Registry;
use sherd_protocol::entry::{MAX_PAYLOAD_LEN, SIGNED_HEADER_LEN};

use super::sync::{PROTOCOL, SyncCodec};
use super::{NetworkConfig, gossip};

/// Protocol and agent names announced through identify.
const IDENTIFY_PROTOCOL: &str = "/sherd/id/1";

/// Every protocol of a sherd node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses connections past the configured limits.
    pub(crate) limits: connection_limits::Behaviour,
    /// Refuses and closes connections of blocked peers.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Exchanges listen addresses and protocols.
    pub(crate) identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub(crate) ping: ping::Behaviour,
    /// Live push of new entries.
    pub(crate) gossipsub: gossipsub::Behaviour,
    /// Catch-up sync.
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    /// LAN discovery, only when the config asks for it.
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

impl Behaviour {
    /// The behaviour of the node `key`; gossipsub registers its metrics
    /// (among them the copies its duplicate filter drops) in `metrics`.
    pub(super) fn new(
        key: &identity::Keypair,
        config: &NetworkConfig,
        metrics: &mut Registry,
    ) -> Result<Self, String> {
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(config.max_connections / 4 + 1))
            .with_max_pending_outgoing(Some(config.max_connections / 4 + 1));

        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            .message_id_fn(gossip::message_id)
            .max_transmit_size(SIGNED_HEADER_LEN + MAX_PAYLOAD_LEN + 1024)
            .heartbeat_interval(config.gossip_heartbeat)
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        // Entries carry their authors' signatures; gossipsub's own signing
        // would only add bytes (and tie messages to forwarders).
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)?
                .with_metrics(metrics, gossipsub::MetricsConfig::default());
        gossipsub.with_peer_score(
            gossipsub::PeerScoreParams::default(),
            gossipsub::PeerScoreThresholds::default(),
        )?;

        let sync = request_response::Behaviour::new(
            [(PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(64),
        );

        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id())
                    .map_err(|e| format!("mdns: {e}"))?,
            )
        } else {
            None
        };

        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            blocked: allow_block_list::Behaviour::default(),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("sherdd/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            gossipsub,
            sync,
            mdns: Toggle::from(mdns),
        })
    }
}
