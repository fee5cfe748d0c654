//! The control API's view of a running node: [`NodeControl`] implements
//! [`ControlBackend`] over the node's store and network, and turns their
//! happenings into API [`Event`]s.
//!
//! The API server validated every input before it gets here; this layer adds
//! what needs the node's state (is it a contact already? is it ourselves?).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use libp2p::Multiaddr;
use sherd_api::test_hooks::{TestEntry, TestFillReport, TestFloodReport};
use sherd_api::{
    AuditRecord, Backup, BackupCustodian, BackupPolicy, BackupRedeemed, BackupTrustee, Contact,
    Denial, Event, FeedStatus, Grant, HeldShard, Peer, RecoveredSecret, Recovery, RecoveryRequest,
    RejectedShard, Reshared, Status,
};
use sherd_protocol::backup::{BackupError, BackupSpec};
use sherd_protocol::content::{About, Content, Release, RequestKind, V1};
use sherd_protocol::entry::PayloadKind;
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair, RequestId};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use crate::api::{ApiError, ControlBackend, NewBackup, NewRecovery, RequestDecision};
use crate::engine::records::{self, BackupRecord, RecoveryRecord, RequestRecord};
use crate::engine::{Decision, EngineError, EngineEvent, EngineHandle};
use crate::net::{NetError, NetEvent, NetworkHandle};
use crate::store::{EngineUpdate, EngineWrite, Store, StoreError};

/// How long `connect` waits for the connection before giving up.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// API events kept for a slow subscriber before it is told it lagged.
const EVENT_DEPTH: usize = 256;
/// Filler entries signed and committed per transaction by the fill test
/// hook: the size of a sync run, so that filling a feed costs the writer
/// about what ingesting it costs a follower.
const FILL_RUN: u32 = 1000;
/// The description of every filler entry: about 120 bytes, so that an entry's
/// JSON is about 200 bytes, like the payloads of the in-process catch-up
/// bench (`daemon/benches/common`), and the figures compare.
const FILL_DESCRIPTION: &str = "filler entry, appended by POST /v1/test/fill (sherdd --test-hooks) \
                                to make a long feed fast for the testnet's benches.";

/// The node, as the control API sees it.
#[derive(Debug)]
pub struct NodeControl {
    key: Arc<Keypair>,
    store: Store,
    net: NetworkHandle,
    engine: EngineHandle,
    events: broadcast::Sender<Event>,
    /// Whether the TEST ONLY routes are served (`sherdd --test-hooks`).
    test_hooks: bool,
}

fn release_name(release: Release) -> &'static str {
    match release {
        Release::Approve => "approve",
        Release::Auto => "auto",
    }
}

fn policy_view(policy: &records::PolicyRecord) -> BackupPolicy {
    BackupPolicy {
        veto_delay_secs: policy.veto_delay_secs,
        one_time: policy.one_time,
        release: release_name(policy.release).into(),
    }
}

/// What the engine backs up for a validated request; the secret moves, it
/// is not copied.
fn spec_of(request: NewBackup) -> BackupSpec {
    BackupSpec {
        material: SecretMaterial {
            secret: request.secret,
            label: request.label,
            metadata: Zeroizing::new(Vec::new()),
        },
        threshold: usize::from(request.threshold),
        custodians: request.custodians,
        trustees: request.trustees,
        veto_delay_secs: request.veto_delay_secs,
        one_time: request.one_time,
        release: request.release,
    }
}

/// The API's answer to an engine refusal: what the user can fix is 4xx and
/// says how; the rest is 5xx.
fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::UnknownBackup(_)
        | EngineError::UnknownRequest(_)
        | EngineError::UnknownRecovery(_) => ApiError::NotFound(e.to_string()),
        EngineError::NoShardOf { .. } => ApiError::NotFound(e.to_string()),
        EngineError::AmbiguousBackup(ref ids) => ApiError::invalid(
            "backup",
            format!(
                "{e}: {}",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        EngineError::AmbiguousRequest(ref feeds) => ApiError::invalid(
            "from",
            format!(
                "{e}: {}",
                feeds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        EngineError::InvalidRecipient(_) => ApiError::invalid("to", e.to_string()),
        EngineError::NotAContact(feed) => ApiError::invalid(
            "custodians",
            format!("{feed} is not a contact; add it first with `sherdctl contacts add`"),
        ),
        EngineError::Backup(BackupError::OwnerIsCustodian) => {
            ApiError::invalid("custodians", "this node cannot be its own custodian")
        }
        EngineError::Backup(e) => ApiError::invalid("body", e.to_string()),
        EngineError::AlreadyRecovered(_)
        | EngineError::RequestClosed(_)
        | EngineError::VetoWindowOpen(_)
        | EngineError::AlreadyRevoked(_)
        | EngineError::Redeemed(_)
        | EngineError::RecipientMismatch { .. }
        | EngineError::ShardUnavailable(_)
        | EngineError::NotRecovered(_)
        | EngineError::AlreadyDelivered(_)
        | EngineError::RecoveryFailed(_) => ApiError::Conflict(e.to_string()),
        EngineError::Closed => ApiError::Unavailable("the node is shutting down".into()),
        other => {
            tracing::error!(error = %other, "engine error behind the control API");
            ApiError::Internal(other.to_string())
        }
    }
}

/// A network refusal as the API says it.
fn net_error(e: NetError) -> ApiError {
    match e {
        NetError::TestHook(why) => ApiError::Conflict(why),
        other => ApiError::Unavailable(other.to_string()),
    }
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
            engine.subscribe(),
            events.clone(),
        ));
        Self {
            key,
            store,
            net,
            engine,
            events,
            test_hooks: false,
        }
    }

    /// The same backend, serving the TEST ONLY fault-injection routes if
    /// `on` (`sherdd --test-hooks`, never otherwise).
    pub fn with_test_hooks(self, on: bool) -> Self {
        Self {
            test_hooks: on,
            ..self
        }
    }

    /// The peer a test hook acts on: any feed but this node's own.
    fn test_peer(&self, feed: FeedId) -> Result<libp2p::PeerId, ApiError> {
        if feed == self.key.feed_id() {
            return Err(ApiError::invalid("peer", "that is this node's own feed"));
        }
        Ok(crate::net::peer_id(&feed))
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn names(&self) -> Result<HashMap<FeedId, String>, ApiError> {
        Ok(self
            .store
            .contacts()
            .map_err(internal)?
            .into_iter()
            .collect())
    }

    /// A backup this node made, as the API shows it.
    fn backup_view(&self, id: &BackupId) -> Result<Backup, ApiError> {
        let record = records::backup(&self.store, id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::Internal(format!("backup {id} made but not recorded")))?;
        self.to_api(id, record)
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
                    erased: c.revoke_acked.is_some(),
                    last_proof_ms: c.last_proof_ms,
                    silent_since_ms: c.silent_since_ms,
                })
                .collect(),
            trustees: record
                .trustees
                .into_iter()
                .map(|t| BackupTrustee {
                    name: names.get(&t.feed).cloned(),
                    feed: t.feed.to_string(),
                })
                .collect(),
            policy: Some(policy_view(&record.policy)),
            revoked: record.revoked.is_some(),
            redeemed: record.redeemed.map(|r| BackupRedeemed {
                name: names.get(&r.by).cloned(),
                by: r.by.to_string(),
                at_ms: r.at_ms,
            }),
        })
    }

    /// Records whether `feed`'s requests are approved without asking, with
    /// an audit line when it changes.
    async fn write_auto_approve(&self, feed: FeedId, on: bool) -> Result<(), ApiError> {
        if self.store.auto_approve(&feed).map_err(internal)? == on {
            return Ok(());
        }
        let line = serde_json::json!({
            "time_ms": crate::clock::now_ms(),
            "event": if on { "auto_approve_on" } else { "auto_approve_off" },
            "peer": feed.to_string(),
            "result": "ok",
        });
        let write = EngineWrite::updates(vec![
            EngineUpdate::AutoApprove { feed, on },
            EngineUpdate::Audit(line.to_string().into_bytes()),
        ]);
        self.store.engine_write(write).await.map_err(internal)?;
        Ok(())
    }

    fn request_view(
        &self,
        names: &HashMap<FeedId, String>,
        requester: FeedId,
        id: RequestId,
        record: RequestRecord,
    ) -> RecoveryRequest {
        let release_at_ms = match &record.state {
            records::RequestState::Waiting { release_at_ms } => Some(*release_at_ms),
            _ => None,
        };
        let (released, reason) = match &record.state {
            records::RequestState::Released { entry, .. } => (Some(entry.to_string()), None),
            records::RequestState::Denied { reason } => (None, reason.clone()),
            _ => (None, None),
        };
        RecoveryRequest {
            id: id.to_string(),
            kind: kind_name(record.kind).into(),
            role: match record.role {
                records::Role::Requester => "requester",
                records::Role::Custodian => "custodian",
                records::Role::Recipient => "recipient",
                records::Role::Owner => "owner",
            }
            .into(),
            backup: record.backup.to_string(),
            owner: record.owner.to_string(),
            owner_name: names.get(&record.owner).cloned(),
            requester: requester.to_string(),
            requester_name: names.get(&requester).cloned(),
            recipient: record.recipient.to_string(),
            custodians: record.custodians.iter().map(ToString::to_string).collect(),
            received_ms: record.received_ms,
            expires_ms: record.expires_ms,
            release_at_ms,
            state: record.state.name().into(),
            released,
            reason,
        }
    }

    fn recovery_view(backup: BackupId, record: RecoveryRecord) -> Recovery {
        let reason = match &record.state {
            records::RecoveryState::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        Recovery {
            reason,
            backup: backup.to_string(),
            owner: record.owner.to_string(),
            kind: kind_name(record.kind).into(),
            shards: record.shards.len(),
            threshold: record.threshold,
            state: record.state.name().into(),
            requests: record
                .requests
                .iter()
                .map(|(_, id)| id.to_string())
                .collect(),
            rejected: record
                .rejected
                .into_iter()
                .map(|r| RejectedShard {
                    custodian: r.custodian.to_string(),
                    entry: r.entry.to_string(),
                    reason: r.reason.unwrap_or_default(),
                })
                .collect(),
            denied: record
                .denied
                .into_iter()
                .map(|(custodian, reason)| Denial {
                    custodian: custodian.to_string(),
                    reason,
                })
                .collect(),
        }
    }

    fn seq_of(&self, feed: &FeedId) -> Result<u64, ApiError> {
        Ok(self
            .store
            .head(feed)
            .map_err(internal)?
            .map_or(0, |h| h.header().seq))
    }
}

/// The payload of the filler entry meant for `seq`: a public `about`
/// entry, valid content that every node stores and that no engine acts on
/// (public entries are never trial-opened).
fn filler_payload(seq: u64) -> Result<Vec<u8>, ApiError> {
    Content::About(About {
        version: V1,
        name: format!("filler {seq:08}"),
        description: Some(FILL_DESCRIPTION.to_owned()),
    })
    .to_json()
    .map_err(|e| ApiError::Internal(format!("filler entry: {e}")))
}

fn kind_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Owner => "owner",
        RequestKind::LostDevice => "lost_device",
        RequestKind::Emergency => "emergency",
    }
}

/// The API's view of an engine event; `None` for the engine's own business.
fn engine_event(event: EngineEvent) -> Option<Event> {
    Some(match event {
        EngineEvent::BackupCreated { backup, custodians } => Event::BackupCreated {
            backup: backup.to_string(),
            custodians,
        },
        EngineEvent::ShardHeld { backup, owner } => Event::ShardHeld {
            backup: backup.to_string(),
            owner: owner.to_string(),
        },
        EngineEvent::ShardRefused {
            owner,
            entry,
            reason,
        } => Event::Refused {
            what: "shard".into(),
            peer: owner.to_string(),
            entry: entry.to_string(),
            reason,
        },
        EngineEvent::AckReceived {
            backup,
            custodian,
            acks,
            custodians,
        } => Event::AckReceived {
            backup: backup.to_string(),
            custodian: custodian.to_string(),
            acks,
            custodians,
        },
        EngineEvent::AckIgnored {
            custodian,
            entry,
            reason,
        } => Event::Refused {
            what: "ack".into(),
            peer: custodian.to_string(),
            entry: entry.to_string(),
            reason,
        },
        EngineEvent::Refused {
            what,
            peer,
            entry,
            reason,
        } => Event::Refused {
            what: what.into(),
            peer: peer.to_string(),
            entry: entry.to_string(),
            reason,
        },
        EngineEvent::RequestReceived {
            request,
            kind,
            backup,
            requester,
            recipient,
        } => Event::RequestReceived {
            request: request.to_string(),
            kind: kind_name(kind).into(),
            backup: backup.to_string(),
            requester: requester.to_string(),
            recipient: recipient.to_string(),
        },
        EngineEvent::ShardReleased {
            request,
            backup,
            recipient,
        } => Event::ShardReleased {
            request: request.to_string(),
            backup: backup.to_string(),
            recipient: recipient.to_string(),
        },
        EngineEvent::RequestDenied {
            request,
            backup,
            by,
        } => Event::RequestDenied {
            request: request.to_string(),
            backup: backup.to_string(),
            by: by.to_string(),
        },
        EngineEvent::RecoveryProgress {
            backup,
            shards,
            threshold,
        } => Event::RecoveryProgress {
            backup: backup.to_string(),
            shards,
            threshold,
        },
        EngineEvent::RecoveryComplete { backup } => Event::RecoveryComplete {
            backup: backup.to_string(),
        },
        EngineEvent::RecoveryFailed { backup, reason } => Event::RecoveryFailed {
            backup: backup.to_string(),
            reason,
        },
        EngineEvent::ShardErased { backup, owner } => Event::ShardErased {
            backup: backup.to_string(),
            owner: owner.to_string(),
        },
        EngineEvent::RateLimited {
            backup,
            requester,
            request,
        } => Event::RateLimited {
            backup: backup.to_string(),
            requester: requester.to_string(),
            request: request.to_string(),
        },
        EngineEvent::CustodianSilent {
            backup,
            custodian,
            last_heard_ms,
        } => Event::CustodianSilent {
            backup: backup.to_string(),
            custodian: custodian.to_string(),
            last_heard_ms,
        },
        EngineEvent::ProofReceived {
            backup,
            custodian,
            good,
            back_from_silence,
        } => Event::ProofReceived {
            backup: backup.to_string(),
            custodian: custodian.to_string(),
            good,
            back_from_silence,
        },
        EngineEvent::RevokeAcked {
            backup,
            custodian,
            erased,
            custodians,
        } => Event::RevokeAcked {
            backup: backup.to_string(),
            custodian: custodian.to_string(),
            erased,
            custodians,
        },
        EngineEvent::GrantReceived { backup, owner } => Event::GrantReceived {
            backup: backup.to_string(),
            owner: owner.to_string(),
        },
        EngineEvent::ReleaseDue { request, backup } => Event::ReleaseDue {
            request: request.to_string(),
            backup: backup.to_string(),
        },
        EngineEvent::Lagged { .. } => return None,
    })
}

async fn forward_events(
    mut stored: broadcast::Receiver<crate::store::Committed>,
    mut network: broadcast::Receiver<NetEvent>,
    mut engine: broadcast::Receiver<EngineEvent>,
    events: broadcast::Sender<Event>,
) {
    loop {
        let event = tokio::select! {
            e = engine.recv() => match e {
                Ok(e) => match engine_event(e) {
                    Some(event) => event,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
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

/// The network's counts of what it received, as the API shows them.
fn received(r: crate::net::ReceivedStats) -> sherd_api::Received {
    sherd_api::Received {
        gossip_messages: r.gossip_messages,
        gossip_duplicates: r.gossip_duplicates,
        gossip_entries: r.gossip_entries,
        gossip_appended: r.gossip_appended,
        gossip_held: r.gossip_held,
        sync_entries: r.sync_entries,
        sync_appended: r.sync_appended,
        sync_held: r.sync_held,
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
            received: received(self.net.received()),
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
        self.store
            .contacts()
            .map_err(internal)?
            .into_iter()
            .map(|(feed, name)| {
                Ok(Contact {
                    feed: feed.to_string(),
                    name,
                    auto_approve: self.store.auto_approve(&feed).map_err(internal)?,
                })
            })
            .collect()
    }

    async fn add_contact(
        &self,
        feed: FeedId,
        name: String,
        auto_approve: bool,
    ) -> Result<Contact, ApiError> {
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
        // The approval setting first: a contact never exists, even for a
        // moment, with a setting other than the one asked for.
        self.write_auto_approve(feed, auto_approve).await?;
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
            auto_approve,
        })
    }

    async fn set_auto_approve(
        &self,
        feed: FeedId,
        auto_approve: bool,
    ) -> Result<Contact, ApiError> {
        let Some((_, name)) = self
            .store
            .contacts()
            .map_err(internal)?
            .into_iter()
            .find(|(f, _)| *f == feed)
        else {
            return Err(ApiError::NotFound(format!("{feed} is not a contact")));
        };
        self.write_auto_approve(feed, auto_approve).await?;
        Ok(Contact {
            feed: feed.to_string(),
            name,
            auto_approve,
        })
    }

    async fn remove_contact(&self, feed: FeedId) -> Result<(), ApiError> {
        if !self.store.remove_contact(feed).await.map_err(internal)? {
            return Err(ApiError::NotFound(format!("{feed} is not a contact")));
        }
        // A contact added again later starts from "ask me".
        self.write_auto_approve(feed, false).await?;
        // Unfollowed only if no flow needs it: a custodian keeps following
        // the owner of a shard it holds.
        self.engine
            .release_follows(vec![feed])
            .await
            .map_err(engine_error)?;
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
        let created = self
            .engine
            .create_backup(spec_of(request))
            .await
            .map_err(engine_error)?;
        self.backup_view(&created.id)
    }

    async fn reshare_backup(
        &self,
        old: BackupId,
        request: NewBackup,
    ) -> Result<Reshared, ApiError> {
        let created = self
            .engine
            .reshare_backup(old, spec_of(request))
            .await
            .map_err(engine_error)?;
        Ok(Reshared {
            new: self.backup_view(&created.id)?,
            old: self.backup_view(&old)?,
        })
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
            // A revoked or redeemed shard's payload is erased: it is no
            // longer held (its record stays, to refuse requests for it).
            .filter(|(_, held)| held.revoked.is_none() && held.redeemed.is_none())
            .map(|(backup, held)| HeldShard {
                backup: backup.to_string(),
                owner: held.owner.to_string(),
                owner_name: names.get(&held.owner).cloned(),
                shard: held.shard.to_string(),
                received_ms: held.received_ms,
            })
            .collect())
    }

    async fn revoke_backup(&self, id: BackupId) -> Result<Backup, ApiError> {
        let record = self.engine.revoke_backup(id).await.map_err(engine_error)?;
        self.to_api(&id, record)
    }

    async fn grants(&self) -> Result<Vec<Grant>, ApiError> {
        let names = self.names()?;
        Ok(records::grants(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|(backup, g)| Grant {
                backup: backup.to_string(),
                owner: g.owner.to_string(),
                owner_name: names.get(&g.owner).cloned(),
                label: g.label,
                custodians: g.custodians.iter().map(ToString::to_string).collect(),
                threshold: g.threshold,
                policy: policy_view(&g.policy),
                received_ms: g.received_ms,
                redeemed_ms: g.redeemed_ms,
            })
            .collect())
    }

    async fn start_recovery(&self, recovery: NewRecovery) -> Result<RecoveryRequest, ApiError> {
        let (requester, id, record) = match recovery {
            NewRecovery::Owner { backup } => self.engine.start_owner_recovery(backup).await,
            NewRecovery::LostDevice { owner, to, backup } => {
                if *owner == self.key.feed_id() {
                    return Err(ApiError::invalid(
                        "owner",
                        "that is this node: an owner asks with `request-recovery BACKUP`",
                    ));
                }
                self.engine
                    .start_lost_device_recovery(*owner, *to, backup)
                    .await
            }
        }
        .map_err(engine_error)?;
        Ok(self.request_view(&self.names()?, requester, id, record))
    }

    async fn requests(&self) -> Result<Vec<RecoveryRequest>, ApiError> {
        let names = self.names()?;
        let mut all: Vec<RecoveryRequest> = records::requests(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|(requester, id, record)| self.request_view(&names, requester, id, record))
            .collect();
        // Newest first: what needs a decision is usually recent.
        all.sort_by_key(|r| std::cmp::Reverse(r.received_ms));
        Ok(all)
    }

    async fn decide(
        &self,
        id: RequestId,
        from: Option<FeedId>,
        decision: RequestDecision,
    ) -> Result<RecoveryRequest, ApiError> {
        let decision = match decision {
            RequestDecision::Approve { to } => Decision::Approve { to },
            RequestDecision::Deny { reason } => Decision::Deny { reason },
        };
        let (requester, id, record) = self
            .engine
            .decide(id, from, decision)
            .await
            .map_err(engine_error)?;
        Ok(self.request_view(&self.names()?, requester, id, record))
    }

    async fn recoveries(&self) -> Result<Vec<Recovery>, ApiError> {
        Ok(records::recoveries(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|(backup, record)| Self::recovery_view(backup, record))
            .collect())
    }

    async fn recovery(&self, backup: BackupId) -> Result<Recovery, ApiError> {
        let record = records::recovery(&self.store, &backup)
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no recovery of backup {backup} on this node: as its owner, start one \
                     with `sherdctl request-recovery {backup}`; as a new identity, wait \
                     until a custodian's request reaches this node (`sherdctl requests` \
                     lists what has)"
                ))
            })?;
        Ok(Self::recovery_view(backup, record))
    }

    async fn take_secret(&self, backup: BackupId) -> Result<RecoveredSecret, ApiError> {
        let material = self
            .engine
            .take_secret(backup)
            .await
            .map_err(engine_error)?;
        Ok(RecoveredSecret {
            backup: backup.to_string(),
            label: material.label.clone(),
            secret: Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(material.secret.as_slice()),
            ),
        })
    }

    fn test_hooks(&self) -> bool {
        self.test_hooks
    }

    async fn test_block(&self, peer: FeedId) -> Result<(), ApiError> {
        let peer = self.test_peer(peer)?;
        self.net.test_block(peer).await.map_err(net_error)
    }

    async fn test_unblock(&self, peer: FeedId) -> Result<(), ApiError> {
        let peer = self.test_peer(peer)?;
        self.net.test_unblock(peer).await.map_err(net_error)?;
        Ok(())
    }

    async fn test_gossip_drop(&self, fraction: f64) -> Result<(), ApiError> {
        self.net.test_gossip_drop(fraction).await.map_err(net_error)
    }

    async fn test_flood(
        &self,
        peer: FeedId,
        invalid_entries: u32,
        sync_requests: u32,
    ) -> Result<TestFloodReport, ApiError> {
        self.test_peer(peer)?;
        let me = self.key.feed_id();
        let head = self.store.head(&me).map_err(internal)?;
        let gossip = crate::net::test_hooks::invalid_entries(
            &self.key,
            head.as_ref(),
            invalid_entries,
            crate::clock::now_ms(),
        );
        let flood = crate::net::test_hooks::Flood {
            victim: peer,
            gossip,
            sync_requests,
        };
        let report = self.net.test_flood(flood).await.map_err(net_error)?;
        Ok(TestFloodReport {
            invalid_entries: report.invalid_entries,
            sync_requests: report.sync_requests,
            sync_answered: report.sync_answered,
            sync_failed: report.sync_failed,
            disconnected: report.disconnected,
            elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        })
    }

    async fn test_fill(&self, count: u32) -> Result<TestFillReport, ApiError> {
        let me = self.key.feed_id();
        let mut head_seq = self.seq_of(&me)?;
        let mut left = count;
        while left > 0 {
            let run = left.min(FILL_RUN);
            let payloads = (1..=u64::from(run))
                .map(|i| Ok((PayloadKind::Public, filler_payload(head_seq + i)?)))
                .collect::<Result<Vec<_>, ApiError>>()?;
            // The store has no batch publish of its own; an engine write
            // with no table updates is one: the run is signed against the
            // committed head, written in one transaction and announced
            // (so gossiped) like any publish.
            let write = EngineWrite::publishing(payloads, crate::clock::now_ms(), |_| Vec::new());
            let signed = self.store.engine_write(write).await.map_err(internal)?;
            head_seq = signed.last().map_or(head_seq, |h| h.header().seq);
            left -= run;
        }
        tracing::warn!(count, head_seq, "test hook: filled this node's feed");
        Ok(TestFillReport {
            appended: count,
            head_seq,
        })
    }

    async fn test_entry(&self, id: EntryId) -> Result<TestEntry, ApiError> {
        let entry = self
            .store
            .entry(&id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("no entry {id} in this node's store")))?;
        Ok(TestEntry {
            payload_hex: entry
                .payload
                .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect()),
        })
    }
}
