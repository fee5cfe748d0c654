//! The control API's view of a running node: [`NodeControl`] implements
//! [`ControlBackend`] over the node's store and network, and turns their
//! happenings into API [`Event`]s.
//!
//! The API server validated every input before it gets here; this layer adds
//! what needs the node's state (is it a contact already? is it ourselves?).

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use sherd_api::{
    AuditRecord, Backup, BackupCustodian, Contact, Event, FeedStatus, HeldShard, Peer, Status,
};
use sherd_protocol::backup::{BackupError, BackupSpec};
use sherd_protocol::content::Release;
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{BackupId, FeedId, Keypair};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use crate::api::{ApiError, ControlBackend, NewBackup};
use crate::engine::records::{self, BackupRecord};
use crate::engine::{EngineError, EngineHandle};
use crate::net::{NetEvent, NetworkHandle};
use crate::store::{Store, StoreError};

/// How long `connect` waits for the connection before giving up.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// The veto delay of a backup made without an emergency policy (issue 5 adds
/// trustees; a careful default in the meantime).
const DEFAULT_VETO_DELAY_SECS: u32 = 72 * 3600;
/// API events kept for a slow subscriber before it is told it lagged.
const EVENT_DEPTH: usize = 256;

/// The node, as the control API sees it.
#[derive(Debug)]
pub struct NodeControl {
    key: Arc<Keypair>,
    store: Store,
    net: NetworkHandle,
    engine: EngineHandle,
    events: broadcast::Sender<Event>,
}

fn internal(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store error behind the control API");
    ApiError::Internal(e.to_string())
}

impl NodeControl {
    /// The backend for `key`'s node; spawns the task that turns network and
    /// store happenings into API events.
    pub fn new(key: Arc<Keypair>, store: Store, net: NetworkHandle, engine: EngineHandle) -> Self {
        let (events, _) = broadcast::channel(EVENT_DEPTH);
        // Receivers only: a Store handle here would keep the writer alive
        // past shutdown.
        tokio::spawn(forward_events(
            store.subscribe(),
            net.subscribe(),
            events.clone(),
        ));
        Self {
            key,
            store,
            net,
            engine,
            events,
        }
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn names(&self) -> Result<std::collections::HashMap<FeedId, String>, ApiError> {
        Ok(self
            .store
            .contacts()
            .map_err(internal)?
            .into_iter()
            .collect())
    }

    fn to_api(&self, id: &BackupId, record: BackupRecord) -> Result<Backup, ApiError> {
        let names = self.names()?;
        Ok(Backup {
            id: id.to_string(),
            label: record.label,
            threshold: record.threshold,
            created_ms: record.created_ms,
            custodians: record
                .custodians
                .into_iter()
                .map(|c| BackupCustodian {
                    feed: c.feed.to_string(),
                    name: names.get(&c.feed).cloned(),
                    shard: c.shard.to_string(),
                    acked: c.acked.is_some(),
                })
                .collect(),
        })
    }

    fn seq_of(&self, feed: &FeedId) -> Result<u64, ApiError> {
        Ok(self
            .store
            .head(feed)
            .map_err(internal)?
            .map_or(0, |h| h.header().seq))
    }
}

async fn forward_events(
    mut stored: broadcast::Receiver<crate::store::Committed>,
    mut network: broadcast::Receiver<NetEvent>,
    events: broadcast::Sender<Event>,
) {
    loop {
        let event = tokio::select! {
            s = stored.recv() => match s {
                Ok(c) => Event::EntryStored { feed: c.author.to_string(), seq: c.header.header().seq },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            n = network.recv() => match n {
                Ok(NetEvent::PeerConnected(p)) => Event::PeerConnected { peer: p.to_string() },
                Ok(NetEvent::PeerDisconnected(p)) => Event::PeerDisconnected { peer: p.to_string() },
                Ok(NetEvent::PeerBlocked { peer, duration }) => Event::PeerBlocked {
                    peer: peer.to_string(),
                    duration_secs: duration.as_secs(),
                },
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let _ = events.send(event);
    }
}

impl ControlBackend for NodeControl {
    async fn status(&self) -> Result<Status, ApiError> {
        let me = self.key.feed_id();
        let mut feeds = vec![FeedStatus {
            feed: me.to_string(),
            name: None,
            seq: self.seq_of(&me)?,
        }];
        for (feed, name) in self.store.contacts().map_err(internal)? {
            feeds.push(FeedStatus {
                feed: feed.to_string(),
                name: Some(name),
                seq: self.seq_of(&feed)?,
            });
        }
        let unavailable = |e: crate::net::NetError| ApiError::Unavailable(e.to_string());
        Ok(Status {
            feed_id: me.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            listen: self
                .net
                .listen_addrs()
                .await
                .map_err(unavailable)?
                .iter()
                .map(ToString::to_string)
                .collect(),
            peers: self.net.peers().await.map_err(unavailable)?.len(),
            feeds,
        })
    }

    async fn peers(&self) -> Result<Vec<Peer>, ApiError> {
        let peers = self
            .net
            .peers()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(peers
            .into_iter()
            .map(|p| Peer {
                peer_id: p.to_string(),
            })
            .collect())
    }

    async fn connect(&self, addr: Multiaddr) -> Result<(), ApiError> {
        match tokio::time::timeout(CONNECT_LIMIT, self.net.dial(addr.clone())).await {
            Ok(Ok(_peer)) => Ok(()),
            Ok(Err(e)) => Err(ApiError::Unavailable(format!(
                "cannot connect to {addr}: {e}"
            ))),
            Err(_) => Err(ApiError::Unavailable(format!(
                "no connection to {addr} within {}s",
                CONNECT_LIMIT.as_secs()
            ))),
        }
    }

    async fn contacts(&self) -> Result<Vec<Contact>, ApiError> {
        Ok(self
            .store
            .contacts()
            .map_err(internal)?
            .into_iter()
            .map(|(feed, name)| Contact {
                feed: feed.to_string(),
                name,
            })
            .collect())
    }

    async fn add_contact(&self, feed: FeedId, name: String) -> Result<Contact, ApiError> {
        if feed == self.key.feed_id() {
            return Err(ApiError::invalid("feed", "that is this node's own feed"));
        }
        if self
            .store
            .contacts()
            .map_err(internal)?
            .iter()
            .any(|(f, _)| *f == feed)
        {
            return Err(ApiError::Conflict(format!("{feed} is a contact already")));
        }
        self.store
            .set_contact(feed, name.clone())
            .await
            .map_err(internal)?;
        self.net
            .follow(feed)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        self.emit(Event::ContactAdded {
            feed: feed.to_string(),
            name: name.clone(),
        });
        Ok(Contact {
            feed: feed.to_string(),
            name,
        })
    }

    async fn remove_contact(&self, feed: FeedId) -> Result<(), ApiError> {
        if !self.store.remove_contact(feed).await.map_err(internal)? {
            return Err(ApiError::NotFound(format!("{feed} is not a contact")));
        }
        self.net
            .unfollow(feed)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        self.emit(Event::ContactRemoved {
            feed: feed.to_string(),
        });
        Ok(())
    }

    async fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>, ApiError> {
        self.store
            .audit_log(from, limit)
            .map_err(internal)?
            .into_iter()
            .map(|(seq, bytes)| {
                let record = serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::Internal(format!("audit record {seq} is not JSON: {e}"))
                })?;
                Ok(AuditRecord { seq, record })
            })
            .collect()
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn create_backup(&self, request: NewBackup) -> Result<Backup, ApiError> {
        let spec = BackupSpec {
            material: SecretMaterial {
                secret: request.secret,
                label: request.label,
                metadata: Zeroizing::new(Vec::new()),
            },
            threshold: usize::from(request.threshold),
            custodians: request.custodians,
            trustees: Vec::new(),
            veto_delay_secs: DEFAULT_VETO_DELAY_SECS,
            one_time: false,
            release: Release::Approve,
        };
        let created = self.engine.create_backup(spec).await.map_err(|e| match e {
            EngineError::NotAContact(feed) => ApiError::invalid(
                "custodians",
                format!("{feed} is not a contact; add it first with `sherdctl contacts add`"),
            ),
            EngineError::Backup(BackupError::OwnerIsCustodian) => {
                ApiError::invalid("custodians", "this node cannot be its own custodian")
            }
            EngineError::Backup(e) => ApiError::invalid("body", e.to_string()),
            EngineError::Closed => ApiError::Unavailable("the node is shutting down".into()),
            other => ApiError::Internal(other.to_string()),
        })?;
        let record = records::backup(&self.store, &created.id)
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::Internal(format!("backup {} made but not recorded", created.id))
            })?;
        self.to_api(&created.id, record)
    }

    async fn backups(&self) -> Result<Vec<Backup>, ApiError> {
        records::backups(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|(id, record)| self.to_api(&id, record))
            .collect()
    }

    async fn backup(&self, id: BackupId) -> Result<Backup, ApiError> {
        let record = records::backup(&self.store, &id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("no backup {id} on this node")))?;
        self.to_api(&id, record)
    }

    async fn shards(&self) -> Result<Vec<HeldShard>, ApiError> {
        let names = self.names()?;
        Ok(records::held_shards(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|(backup, held)| HeldShard {
                backup: backup.to_string(),
                owner: held.owner.to_string(),
                owner_name: names.get(&held.owner).cloned(),
                shard: held.shard.to_string(),
                received_ms: held.received_ms,
            })
            .collect())
    }
}
