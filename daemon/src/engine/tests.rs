//! The engine in process: whole [`Node`]s on 127.0.0.1 (mDNS off) for the
//! flows, and a bare store + network + engine for what must be exact (lagged
//! announcements, entries stored while no engine ran). Every wait is bounded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use sherd_protocol::backup::{self, BackupSpec};
use sherd_protocol::content::{Ack, Content, Release, V1};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::envelope;
use sherd_protocol::secret::SecretMaterial;
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair};
use zeroize::Zeroizing;

use super::records::{self, BackupRecord};
use super::{EngineError, EngineEvent, EngineHandle};
use crate::config::Config;
use crate::net::{self, NetworkConfig, NetworkHandle};
use crate::node::Node;
use crate::rng::os_rng;
use crate::store::{IncomingEntry, Store, StoreThread};

/// Any one wait in these tests.
const LIMIT: Duration = Duration::from_secs(60);

fn init_tracing() {
    // RUST_LOG=sherd_daemon=debug shows what the nodes did in a failing run.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn network() -> NetworkConfig {
    NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        sync_batch: 100,
        gossip_heartbeat: Duration::from_millis(100),
        resync_interval: Duration::from_secs(2),
        ..NetworkConfig::default()
    }
}

async fn start(dir: &Path) -> Node {
    start_with(dir, super::EngineOptions::default()).await
}

async fn start_with(dir: &Path, engine: super::EngineOptions) -> Node {
    init_tracing();
    let config = Config {
        data_dir: dir.to_path_buf(),
        passphrase_file: None,
        log: String::new(),
        network: network(),
        engine,
    };
    assert!(!config.network.mdns);
    Node::start(config, None).await.unwrap()
}

async fn addr(node: &Node) -> Multiaddr {
    let addr = eventually("the node listens", || async {
        node.net.listen_addrs().await.unwrap().into_iter().next()
    })
    .await;
    assert!(addr.to_string().starts_with("/ip4/127.0.0.1/"), "{addr}");
    addr
}

/// Polls `probe` every 25 ms until it gives a value; fails the test past LIMIT.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"))
}

/// `a` names `b` a contact and follows it.
async fn befriend(a: &Node, b: &Node) {
    let feed = b.key.feed_id();
    a.store
        .set_contact(feed, format!("n{}", &feed.to_string()[..8]))
        .await
        .unwrap();
    a.net.follow(feed).await.unwrap();
}

/// An owner and its custodians, each custodian a contact of the owner and
/// the other way round, each connected to the owner.
struct Net {
    owner: Node,
    custodians: Vec<Option<Node>>,
    dirs: Vec<tempfile::TempDir>,
    owner_addr: Multiaddr,
}

impl Net {
    async fn new(custodians: usize) -> Self {
        Self::with_owner_options(custodians, super::EngineOptions::default()).await
    }

    async fn with_owner_options(custodians: usize, options: super::EngineOptions) -> Self {
        let dirs: Vec<_> = (0..=custodians)
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let owner = start_with(dirs[0].path(), options).await;
        let owner_addr = addr(&owner).await;
        let mut nodes = Vec::new();
        for dir in &dirs[1..] {
            let c = start(dir.path()).await;
            befriend(&owner, &c).await;
            befriend(&c, &owner).await;
            c.net.dial(owner_addr.clone()).await.unwrap();
            nodes.push(Some(c));
        }
        Self {
            owner,
            custodians: nodes,
            dirs,
            owner_addr,
        }
    }

    fn custodian(&self, i: usize) -> &Node {
        self.custodians[i].as_ref().expect("custodian is running")
    }

    /// The custodians' feeds (call while all of them run).
    fn feeds(&self) -> Vec<FeedId> {
        self.custodians
            .iter()
            .map(|c| c.as_ref().expect("all running").key.feed_id())
            .collect()
    }

    async fn stop(&mut self, i: usize) {
        let node = self.custodians[i].take().expect("running");
        assert!(node.shutdown(LIMIT).await, "custodian {i} stopped in time");
    }

    async fn restart(&mut self, i: usize) {
        self.restart_with(i, super::EngineOptions::default()).await;
    }

    async fn restart_with(&mut self, i: usize, options: super::EngineOptions) {
        assert!(self.custodians[i].is_none(), "stopped first");
        let node = start_with(self.dirs[i + 1].path(), options).await;
        node.net.dial(self.owner_addr.clone()).await.unwrap();
        self.custodians[i] = Some(node);
    }

    async fn shutdown(mut self) {
        for i in 0..self.custodians.len() {
            if self.custodians[i].is_some() {
                self.stop(i).await;
            }
        }
        assert!(self.owner.shutdown(LIMIT).await);
    }
}

fn spec(custodians: Vec<FeedId>, threshold: usize) -> BackupSpec {
    BackupSpec {
        material: SecretMaterial {
            secret: Zeroizing::new(b"correct horse battery staple".to_vec()),
            label: "wallet seed".into(),
            metadata: Zeroizing::new(Vec::new()),
        },
        threshold,
        custodians,
        trustees: Vec::new(),
        veto_delay_secs: 0,
        one_time: false,
        release: Release::Approve,
    }
}

fn record(node: &Node, id: &BackupId) -> BackupRecord {
    records::backup(&node.store, id)
        .unwrap()
        .expect("the owner has the record")
}

/// Waits until the owner's record of `id` shows `n` acks.
async fn wait_for_acks(owner: &Node, id: &BackupId, n: usize) -> BackupRecord {
    eventually(&format!("{n} custodians acked"), || async {
        records::backup(&owner.store, id)
            .unwrap()
            .filter(|r| r.acks() >= n)
    })
    .await
}

/// The acks of backup `id` in `author`'s feed, as stored by `reader`, opened
/// with the owner's key (only the owner can open them), with their entry ids.
fn acks_in_feed(
    reader: &Store,
    author: &FeedId,
    owner: &Keypair,
    id: &BackupId,
) -> Vec<(EntryId, Ack)> {
    let secret = owner.x25519_secret();
    reader
        .entries(author, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let payload = e.payload?;
            let plain = envelope::open(&secret, author, &payload).ok()??;
            match Content::parse(&plain).ok()? {
                Content::Ack(ack) if ack.backup == *id => Some((e.header.id(), ack)),
                _ => None,
            }
        })
        .collect()
}

/// The audit lines of a node, as JSON.
fn audit(store: &Store) -> Vec<serde_json::Value> {
    store
        .audit_log(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap())
        .collect()
}

fn audit_events<'a>(lines: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// Every custodian of `record` acked with the one ack in its feed, and holds
/// the shard published for it.
fn assert_acked_once(net: &Net, id: &BackupId, record: &BackupRecord, custodian: usize) {
    let c = net.custodian(custodian);
    let feed = c.key.feed_id();
    let entry = record
        .custodians
        .iter()
        .find(|r| r.feed == feed)
        .expect("a custodian of the backup");
    let acks = acks_in_feed(&c.store, &feed, &net.owner.key, id);
    assert_eq!(
        acks.len(),
        1,
        "custodian {custodian} acked exactly once: {acks:?}"
    );
    assert_eq!(
        acks[0].1.shard, entry.shard,
        "the ack names the shard entry"
    );
    assert_eq!(entry.acked, Some(acks[0].0), "the owner counted that ack");
    let held = records::held_shard(&c.store, id).unwrap().expect("held");
    assert_eq!(held.owner, net.owner.key.feed_id());
    assert_eq!(held.shard, entry.shard);
    assert_eq!(held.ack, acks[0].0);
    // The sealed shard stays in the owner's entry, held in the custodian's store.
    let shard_entry = c
        .store
        .entry(&entry.shard)
        .unwrap()
        .expect("shard entry held");
    assert!(shard_entry.payload.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_3_of_5_backup_is_acknowledged_once_by_each_custodian() {
    let net = Net::new(5).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 3))
        .await
        .unwrap();
    assert_eq!(created.shards.len(), 5);
    assert_eq!(
        created.shards.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        custodians
    );

    let record = wait_for_acks(&net.owner, &created.id, 5).await;
    assert_eq!(record.threshold, 3);
    assert_eq!(record.label, "wallet seed");
    assert_eq!(record.root, created.root);
    for (r, (feed, shard)) in record.custodians.iter().zip(&created.shards) {
        assert_eq!((r.feed, r.shard), (*feed, *shard));
    }

    // Let everything settle, then look for a second ack anywhere.
    for c in &net.custodians {
        c.as_ref().unwrap().engine.caught_up().await.unwrap();
    }
    net.owner.engine.caught_up().await.unwrap();
    let record = record_after_settling(&net, &created.id).await;
    for i in 0..5 {
        assert_acked_once(&net, &created.id, &record, i);
        let lines = audit(&net.custodian(i).store);
        assert_eq!(audit_events(&lines, "shard_held").len(), 1, "{lines:?}");
        assert!(audit_events(&lines, "shard_refused").is_empty());
    }
    let lines = audit(&net.owner.store);
    assert_eq!(audit_events(&lines, "backup_created").len(), 1);
    assert_eq!(audit_events(&lines, "ack_received").len(), 5, "{lines:?}");
    assert!(audit_events(&lines, "ack_ignored").is_empty(), "{lines:?}");
    // Audit lines carry ids, never the secret or the label.
    for line in lines {
        let text = line.to_string();
        assert!(
            !text.contains("correct horse") && !text.contains("wallet seed"),
            "{text}"
        );
    }
    net.shutdown().await;
}

/// The owner's record once every node says it is caught up, after a pause
/// long enough for a gossip round or two (a duplicate ack would land then).
async fn record_after_settling(net: &Net, id: &BackupId) -> BackupRecord {
    tokio::time::sleep(Duration::from_millis(500)).await;
    net.owner.engine.caught_up().await.unwrap();
    record(&net.owner, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custodian_offline_during_the_backup_catches_up_and_acks() {
    let mut net = Net::new(5).await;
    let custodians = net.feeds();
    net.stop(4).await;

    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 3))
        .await
        .unwrap();
    let record = wait_for_acks(&net.owner, &created.id, 4).await;
    assert_eq!(record.custodians[4].feed, custodians[4]);
    assert_eq!(
        record.custodians[4].acked, None,
        "the offline custodian did not ack"
    );

    net.restart(4).await;
    let record = wait_for_acks(&net.owner, &created.id, 5).await;
    assert!(record.custodians.iter().all(|c| c.acked.is_some()));
    net.custodian(4).engine.caught_up().await.unwrap();
    let record = record_after_settling(&net, &created.id).await;
    for i in 0..5 {
        assert_acked_once(&net, &created.id, &record, i);
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_custodian_does_not_ack_again() {
    let mut net = Net::new(3).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 2))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    let before = records::held_shard(&net.custodian(0).store, &created.id)
        .unwrap()
        .unwrap();

    net.stop(0).await;
    net.restart(0).await;
    let c = net.custodian(0);
    // The owner's feed is replicated again (nothing new in it) and the
    // engine has rescanned from its cursors.
    let owner_head = net
        .owner
        .store
        .head(&net.owner.key.feed_id())
        .unwrap()
        .unwrap();
    eventually("the restarted custodian is connected", || async {
        (!c.net.peers().await.unwrap().is_empty()).then_some(())
    })
    .await;
    c.engine.caught_up().await.unwrap();
    let cursors: std::collections::HashMap<_, _> =
        c.store.engine_cursors().unwrap().into_iter().collect();
    assert_eq!(
        cursors.get(&net.owner.key.feed_id()),
        Some(&owner_head.header().seq),
        "the cursor past the owner's entries survived the restart"
    );

    let record = record_after_settling(&net, &created.id).await;
    c.engine.caught_up().await.unwrap();
    for i in 0..3 {
        assert_acked_once(&net, &created.id, &record, i);
    }
    let after = records::held_shard(&c.store, &created.id).unwrap().unwrap();
    assert_eq!(before, after, "the held-shard record is untouched");
    let lines = audit(&c.store);
    assert_eq!(audit_events(&lines, "shard_held").len(), 1, "{lines:?}");
    assert!(
        audit_events(&lines, "shard_duplicate").is_empty(),
        "{lines:?}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_shard_is_refused_with_a_reason_and_not_acked() {
    let net = Net::new(3).await;
    let custodians = net.feeds();
    let mut events = net.custodian(0).engine.subscribe();
    let created = net
        .owner
        .engine
        .create_backup_tampered(spec(custodians.clone(), 2), custodians[0])
        .await
        .unwrap();

    // The honest two ack; the tampered one refuses, says why, and audits it.
    wait_for_acks(&net.owner, &created.id, 2).await;
    let refused = eventually("the tampered shard is refused", || {
        let lines = audit(&net.custodian(0).store);
        async move { lines.into_iter().find(|l| l["event"] == "shard_refused") }
    })
    .await;
    assert_eq!(refused["result"], "refused");
    assert_eq!(refused["backup"], created.id.to_string());
    assert_eq!(refused["peer"], net.owner.key.feed_id().to_string());
    assert_eq!(refused["entry"], created.shards[0].1.to_string());
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("does not open"),
        "{refused}"
    );
    let event = tokio::time::timeout(LIMIT, async {
        loop {
            if let EngineEvent::ShardRefused { entry, reason, .. } = events.recv().await.unwrap() {
                return (entry, reason);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(event.0, created.shards[0].1);

    net.custodian(0).engine.caught_up().await.unwrap();
    let record = record_after_settling(&net, &created.id).await;
    assert_eq!(record.custodians[0].acked, None);
    assert_eq!(record.acks(), 2);
    let c0 = net.custodian(0);
    assert!(
        records::held_shard(&c0.store, &created.id)
            .unwrap()
            .is_none()
    );
    assert!(acks_in_feed(&c0.store, &c0.key.feed_id(), &net.owner.key, &created.id).is_empty());
    for i in 1..3 {
        assert_acked_once(&net, &created.id, &record, i);
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ack_naming_another_entry_is_ignored_and_audited() {
    let net = Net::new(2).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 1))
        .await
        .unwrap();
    // Custodian 0 also sends an ack naming the root entry instead of its shard.
    let c0 = net.custodian(0);
    let bogus = Content::Ack(Ack {
        version: V1,
        backup: created.id,
        shard: created.root,
    })
    .to_json()
    .unwrap();
    let boxed = envelope::seal(
        &mut os_rng(),
        &c0.key.feed_id(),
        &[net.owner.key.feed_id()],
        &bogus,
    )
    .unwrap();
    let bogus_entry = c0
        .store
        .publish(PayloadKind::Boxed, boxed, crate::clock::now_ms())
        .await
        .unwrap()
        .id();

    let ignored = eventually("the wrong ack is ignored", || {
        let lines = audit(&net.owner.store);
        async move { lines.into_iter().find(|l| l["event"] == "ack_ignored") }
    })
    .await;
    assert_eq!(ignored["entry"], bogus_entry.to_string());
    assert_eq!(ignored["peer"], c0.key.feed_id().to_string());
    assert_eq!(ignored["result"], "ignored");
    assert!(
        ignored["reason"]
            .as_str()
            .unwrap()
            .contains("not the shard entry"),
        "{ignored}"
    );

    // The real acks still count, and the bogus one is not what counted.
    wait_for_acks(&net.owner, &created.id, 2).await;
    let record = record_after_settling(&net, &created.id).await;
    assert_ne!(record.custodians[0].acked, Some(bogus_entry));
    let held = records::held_shard(&c0.store, &created.id)
        .unwrap()
        .unwrap();
    assert_eq!(record.custodians[0].acked, Some(held.ack));
    let lines = audit(&net.owner.store);
    assert_eq!(audit_events(&lines, "ack_ignored").len(), 1, "{lines:?}");
    assert_eq!(audit_events(&lines, "ack_received").len(), 2, "{lines:?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_needs_contacts_and_a_valid_spec_and_publishes_nothing_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let owner = start(dir.path()).await;
    let stranger = Keypair::from_seed(&[7; 32]).feed_id();
    let err = owner
        .engine
        .create_backup(spec(vec![stranger], 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::NotAContact(f) if **f == stranger),
        "{err}"
    );

    owner.store.set_contact(stranger, "s".into()).await.unwrap();
    let err = owner
        .engine
        .create_backup(spec(vec![stranger], 2))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Backup(_)), "{err}");
    assert!(owner.store.head(&owner.key.feed_id()).unwrap().is_none());
    assert!(records::backups(&owner.store).unwrap().is_empty());
    assert!(owner.shutdown(LIMIT).await);
}

// ---- A bare store, network and engine: exact control over what is stored.

/// A custodian's store, network (listening nowhere) and engine.
struct Bare {
    key: Arc<Keypair>,
    store: Store,
    net: NetworkHandle,
    engine: EngineHandle,
    task: tokio::task::JoinHandle<()>,
    net_task: tokio::task::JoinHandle<()>,
    thread: StoreThread,
}

fn bare(dir: &Path, seed: u8, announce_depth: usize) -> Bare {
    init_tracing();
    let key = Arc::new(Keypair::from_seed(&[seed; 32]));
    let (store, thread) =
        Store::open_with_announce_depth(&dir.join("store.redb"), key.clone(), announce_depth)
            .unwrap();
    let (net, net_task) =
        net::spawn(&key, store.clone(), NetworkConfig::default(), Vec::new()).unwrap();
    let (engine, task) = super::spawn(
        key.clone(),
        store.clone(),
        net.clone(),
        super::EngineOptions::default(),
    );
    Bare {
        key,
        store,
        net,
        engine,
        task,
        net_task,
        thread,
    }
}

impl Bare {
    async fn stop(self) {
        self.engine.shutdown().await;
        self.task.await.unwrap();
        self.net.shutdown().await;
        // Every store handle gone before the writer is joined, so that the
        // database is closed when the next test step opens it again.
        self.net_task.await.unwrap();
        drop(self.store);
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .unwrap();
    }
}

/// An owner's feed, signed here: `filler` public entries, then `copies`
/// entries each carrying the shard for `custodian` of one fresh 1-of-1
/// backup, then `filler` more. The shard entries come back as (id, seq).
fn owner_feed(
    owner: &Keypair,
    custodian: FeedId,
    filler: usize,
    copies: usize,
) -> (BackupId, Vec<(EntryId, u64)>, Vec<IncomingEntry>) {
    let now = crate::clock::now_ms();
    let mut rng = os_rng();
    let made = backup::create(&mut rng, owner, now, &spec(vec![custodian], 1)).unwrap();
    let (_, shard) = made.shards.into_iter().next().unwrap();
    let json = Content::Shard(shard).to_json().unwrap();
    let mut run: Vec<IncomingEntry> = Vec::new();
    let mut shards = Vec::new();
    for i in 0..(2 * filler + copies) {
        let is_shard = (filler..filler + copies).contains(&i);
        let (kind, payload) = if is_shard {
            let boxed = envelope::seal(&mut rng, &owner.feed_id(), &[custodian], &json).unwrap();
            (PayloadKind::Boxed, boxed)
        } else {
            (
                PayloadKind::Public,
                format!("{{\"type\":\"about\",\"version\":1,\"name\":\"n{i}\"}}").into_bytes(),
            )
        };
        let header =
            SignedHeader::sign_next(owner, run.last().map(|e| &e.header), now, kind, &payload)
                .unwrap();
        if is_shard {
            shards.push((header.id(), header.header().seq));
        }
        run.push(IncomingEntry {
            header,
            payload: Some(payload),
        });
    }
    (made.id, shards, run)
}

/// Waits until `node` holds the shard of `id` (entry `shard`, at `seq` in
/// the owner's feed), then checks it acked once.
async fn assert_held_and_acked_once(
    node: &Bare,
    owner: &Keypair,
    id: &BackupId,
    (shard, seq): (EntryId, u64),
) {
    let held = eventually("the shard is held", || async {
        records::held_shard(&node.store, id).unwrap()
    })
    .await;
    // Read at once, before any idle flush: the cursor past the shard entry
    // committed with the record, not after it.
    let cursors: std::collections::HashMap<_, _> =
        node.store.engine_cursors().unwrap().into_iter().collect();
    assert!(
        cursors.get(&owner.feed_id()).is_some_and(|c| *c >= seq),
        "cursor {cursors:?} is past entry {seq}"
    );
    assert_eq!(held.shard, shard);
    assert_eq!(held.owner, owner.feed_id());
    assert_eq!(held.follows, vec![owner.feed_id()]);
    node.engine.caught_up().await.unwrap();
    let acks = acks_in_feed(&node.store, &node.key.feed_id(), owner, id);
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].0, held.ack);
    assert_eq!(acks[0].1.shard, shard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagged_engine_rescans_from_its_cursors_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two announcements kept for the engine.
    let node = bare(dir.path(), 31, 2);
    let mut events = node.engine.subscribe();
    let owner = Keypair::from_seed(&[32; 32]);
    let other = Keypair::from_seed(&[33; 32]);
    let (id, shards, run) = owner_feed(&owner, node.key.feed_id(), 5, 1);
    let (_, _, noise) = owner_feed(&other, Keypair::from_seed(&[34; 32]).feed_id(), 50, 0);

    // While the engine is held, the owner's entries are announced, then
    // enough of another feed's to push every one of them out: only a rescan
    // from the cursors can find the shard (no later announcement of the
    // owner's feed is left to reveal a gap).
    let release = node.engine.hold().await;
    let now = crate::clock::now_ms();
    assert_eq!(
        node.store
            .ingest(owner.feed_id(), run, now)
            .await
            .unwrap()
            .appended,
        11
    );
    assert_eq!(
        node.store
            .ingest(other.feed_id(), noise, now)
            .await
            .unwrap()
            .appended,
        100
    );
    release.send(()).unwrap();

    assert_held_and_acked_once(&node, &owner, &id, shards[0]).await;
    let mut lagged = false;
    while let Ok(event) = events.try_recv() {
        lagged |= matches!(event, EngineEvent::Lagged { .. });
    }
    assert!(lagged, "the engine lagged (else this test tests nothing)");
    let cursors: std::collections::HashMap<_, _> =
        node.store.engine_cursors().unwrap().into_iter().collect();
    assert_eq!(cursors.get(&owner.feed_id()), Some(&11));
    assert_eq!(cursors.get(&other.feed_id()), Some(&100));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_stored_while_no_engine_ran_are_processed_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Keypair::from_seed(&[42; 32]);
    let me = Keypair::from_seed(&[41; 32]).feed_id();
    let (id, shards, run) = owner_feed(&owner, me, 20, 1);
    {
        // The store alone: the entries arrive, nobody processes them.
        let key = Arc::new(Keypair::from_seed(&[41; 32]));
        let (store, thread) = Store::open(&dir.path().join("store.redb"), key).unwrap();
        store
            .ingest(owner.feed_id(), run, crate::clock::now_ms())
            .await
            .unwrap();
        drop(store);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .unwrap();
    }

    let node = bare(dir.path(), 41, 4096);
    assert_held_and_acked_once(&node, &owner, &id, shards[0]).await;
    node.stop().await;

    // Again: nothing new to do, and nothing done twice.
    let node = bare(dir.path(), 41, 4096);
    node.engine.caught_up().await.unwrap();
    assert_held_and_acked_once(&node, &owner, &id, shards[0]).await;
    let lines = audit(&node.store);
    assert_eq!(audit_events(&lines, "shard_held").len(), 1, "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_shard_for_a_held_backup_is_not_acked() {
    let dir = tempfile::tempdir().unwrap();
    let node = bare(dir.path(), 51, 4096);
    let owner = Keypair::from_seed(&[52; 32]);
    let (id, shards, run) = owner_feed(&owner, node.key.feed_id(), 3, 2);
    node.store
        .ingest(owner.feed_id(), run, crate::clock::now_ms())
        .await
        .unwrap();
    assert_held_and_acked_once(&node, &owner, &id, shards[0]).await;
    let lines = audit(&node.store);
    let duplicate = audit_events(&lines, "shard_duplicate");
    assert_eq!(duplicate.len(), 1, "{lines:?}");
    assert_eq!(duplicate[0]["entry"], shards[1].0.to_string());
    assert_eq!(duplicate[0]["result"], "ignored");
    node.stop().await;
}

// ---- recovery: requests, approvals, replies and forwards ----

/// The secret `spec` backs up.
const SECRET: &[u8] = b"correct horse battery staple";

/// Waits until `node` has a request asked of it (as custodian) with `id`.
async fn wait_for_pending(node: &Node, id: sherd_protocol::RequestId) {
    eventually("the request reached the custodian", || async {
        records::requests(&node.store)
            .unwrap()
            .into_iter()
            .find(|(_, rid, r)| *rid == id && r.state == records::RequestState::Pending)
            .map(|_| ())
    })
    .await;
}

/// Waits until `node`'s recovery of `backup` is complete.
async fn wait_for_complete(node: &Node, backup: &BackupId) -> records::RecoveryRecord {
    eventually("the recovery completed", || async {
        records::recovery(&node.store, backup)
            .unwrap()
            .filter(|r| r.state == records::RecoveryState::Complete)
    })
    .await
}

fn approve() -> super::Decision {
    super::Decision::Approve { to: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_recovers_after_three_approvals_and_each_shard_goes_out_once() {
    let net = Net::new(5).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 3))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 5).await;
    // Custodian 4 drops the owner from its contacts: it still follows the
    // owner's feed, for the shard it holds.
    let c4 = net.custodian(4);
    assert!(
        c4.store
            .remove_contact(net.owner.key.feed_id())
            .await
            .unwrap()
    );
    c4.engine
        .release_follows(vec![net.owner.key.feed_id()])
        .await
        .unwrap();

    let (requester, id, request) = net
        .owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    assert_eq!(requester, net.owner.key.feed_id());
    assert_eq!(request.custodians, custodians);
    assert_eq!(request.role, records::Role::Requester);
    // Nothing is released without approval: the owner only collects.
    for i in 0..5 {
        wait_for_pending(net.custodian(i), id).await;
    }
    let early = net.owner.engine.take_secret(created.id).await.unwrap_err();
    assert!(matches!(early, EngineError::NotRecovered(_)), "{early}");

    // Custodian 0 gets two approvals at once: one release, one refusal.
    let c0 = net.custodian(0);
    let (a, b) = tokio::join!(
        c0.engine.decide(id, None, approve()),
        c0.engine.decide(id, None, approve())
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let refused = if a.is_err() { a } else { b }.unwrap_err();
    assert!(
        matches!(refused, EngineError::RequestClosed("released")),
        "{refused}"
    );
    net.custodian(1)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap();
    // Custodian 2 says no, with a reason the owner sees.
    let denied = net
        .custodian(2)
        .engine
        .decide(
            id,
            None,
            super::Decision::Deny {
                reason: Some("call me first".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        denied.2.state,
        records::RequestState::Denied {
            reason: Some("call me first".into())
        }
    );
    net.custodian(3)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap();

    let recovery = wait_for_complete(&net.owner, &created.id).await;
    assert_eq!(recovery.shards.len(), 3);
    assert_eq!(recovery.threshold, Some(3));
    assert!(recovery.rejected.is_empty(), "{:?}", recovery.rejected);
    let secret = net.owner.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    assert_eq!(secret.label, "wallet seed");
    // Once: the second take finds it gone, and the shards' payloads erased.
    let again = net.owner.engine.take_secret(created.id).await.unwrap_err();
    assert!(matches!(again, EngineError::AlreadyDelivered(_)), "{again}");
    for taken in &recovery.shards {
        let entry = net.owner.store.entry(&taken.entry).unwrap().unwrap();
        assert!(
            entry.payload.is_none(),
            "shard payload erased after delivery"
        );
    }
    // The owner heard of the denial.
    eventually("the owner saw the denial", || async {
        records::recovery(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| !r.denied.is_empty())
    })
    .await;
    // A decided request stays decided, through a restart of the engine's view.
    let late = net
        .custodian(1)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap_err();
    assert!(
        matches!(late, EngineError::RequestClosed("released")),
        "{late}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_identity_recovers_when_a_custodian_starts_a_lost_device_recovery() {
    let mut net = Net::new(5).await;
    let custodians = net.feeds();
    let old = net.owner.key.feed_id();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 3))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 5).await;

    // The owner's device is lost: its node is gone for good.
    let dir = tempfile::tempdir().unwrap();
    let new = start(dir.path()).await;
    let new_feed = new.key.feed_id();
    // Custodians reach each other and the new node directly now.
    let c0_addr = addr(net.custodian(0)).await;
    for i in 1..5 {
        net.custodian(i).net.dial(c0_addr.clone()).await.unwrap();
        let a = addr(net.custodian(i)).await;
        new.net.dial(a).await.unwrap();
    }
    new.net.dial(c0_addr).await.unwrap();
    let owner = std::mem::replace(
        &mut net.owner,
        start(tempfile::tempdir().unwrap().path()).await,
    );
    assert!(owner.shutdown(LIMIT).await);
    // The person behind NEW proved who they are to custodian 0, who adds
    // NEW as a contact so that NEW follows it back.
    befriend(&new, net.custodian(0)).await;

    // Refused before anything is published: a custodian cannot be NEW.
    let bad = net
        .custodian(0)
        .engine
        .start_lost_device_recovery(old, custodians[1], None)
        .await
        .unwrap_err();
    assert!(matches!(bad, EngineError::InvalidRecipient(_)), "{bad}");

    let (_, id, request) = net
        .custodian(0)
        .engine
        .start_lost_device_recovery(old, new_feed, None)
        .await
        .unwrap();
    assert!(matches!(
        request.state,
        records::RequestState::Released { .. }
    ));
    for i in 1..3 {
        wait_for_pending(net.custodian(i), id).await;
        // `forward --to NEW`: the custodian checks the recipient it verified.
        let wrong = net
            .custodian(i)
            .engine
            .decide(id, None, super::Decision::Approve { to: Some(old) })
            .await
            .unwrap_err();
        assert!(
            matches!(wrong, EngineError::RecipientMismatch { .. }),
            "{wrong}"
        );
        net.custodian(i)
            .engine
            .decide(id, None, super::Decision::Approve { to: Some(new_feed) })
            .await
            .unwrap();
    }
    let recovery = wait_for_complete(&new, &created.id).await;
    assert_eq!(recovery.owner, old);
    assert_eq!(recovery.shards.len(), 3);
    let secret = new.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    assert!(new.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_shard_is_refused_with_a_reason_and_honest_ones_complete_the_recovery() {
    let mut net = Net::new(5).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 3))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 5).await;
    // Custodian 4 turns byzantine: every shard it releases is corrupted.
    net.stop(4).await;
    net.restart_with(
        4,
        super::EngineOptions {
            tamper_releases: true,
            ..super::EngineOptions::default()
        },
    )
    .await;

    let (_, id, _) = net
        .owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    wait_for_pending(net.custodian(4), id).await;
    net.custodian(4)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap();
    let rejected = eventually("the tampered shard was refused", || async {
        records::recovery(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| !r.rejected.is_empty())
    })
    .await;
    assert_eq!(rejected.rejected[0].custodian, custodians[4]);
    assert!(
        rejected.rejected[0]
            .reason
            .as_deref()
            .is_some_and(|r| !r.is_empty()),
        "{:?}",
        rejected.rejected
    );
    assert!(rejected.shards.is_empty());
    let lines = audit(&net.owner.store);
    assert_eq!(audit_events(&lines, "shard_refused").len(), 1, "{lines:?}");

    for i in 0..3 {
        wait_for_pending(net.custodian(i), id).await;
        net.custodian(i)
            .engine
            .decide(id, None, approve())
            .await
            .unwrap();
    }
    let recovery = wait_for_complete(&net.owner, &created.id).await;
    assert_eq!(recovery.shards.len(), 3);
    assert_eq!(recovery.rejected.len(), 1);
    let secret = net.owner.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_complete_recovery_survives_a_restart_of_the_owner_and_an_auto_approved_contact_releases_at_once()
 {
    let net = Net::new(2).await;
    let custodians = net.feeds();
    let created = net
        .owner
        .engine
        .create_backup(spec(custodians.clone(), 2))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 2).await;
    // Both custodians trust the owner's requests without asking.
    for i in 0..2 {
        let write =
            crate::store::EngineWrite::updates(vec![crate::store::EngineUpdate::AutoApprove {
                feed: net.owner.key.feed_id(),
                on: true,
            }]);
        net.custodian(i).store.engine_write(write).await.unwrap();
    }
    net.owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    wait_for_complete(&net.owner, &created.id).await;
    for i in 0..2 {
        let lines = audit(&net.custodian(i).store);
        assert_eq!(audit_events(&lines, "shard_released").len(), 1, "{lines:?}");
    }

    // The secret was never stored: after a restart the owner rebuilds it
    // from the replies it holds, and hands it over once.
    let Net {
        owner,
        custodians: nodes,
        dirs,
        ..
    } = net;
    assert!(owner.shutdown(LIMIT).await);
    let owner = start(dirs[0].path()).await;
    let secret = owner.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    assert!(matches!(
        owner.engine.take_secret(created.id).await.unwrap_err(),
        EngineError::AlreadyDelivered(_)
    ));
    assert!(owner.shutdown(LIMIT).await);
    for node in nodes.into_iter().flatten() {
        assert!(node.shutdown(LIMIT).await);
    }
}

// ---- emergency access: trustees, the veto window, release ----

/// A trustee node, a contact of the owner both ways, connected to it.
async fn trustee_of(net: &Net, dir: &Path) -> Node {
    let t = start(dir).await;
    befriend(&net.owner, &t).await;
    befriend(&t, &net.owner).await;
    t.net.dial(net.owner_addr.clone()).await.unwrap();
    t
}

fn emergency_spec(
    custodians: Vec<FeedId>,
    trustee: FeedId,
    veto_delay_secs: u32,
    release: Release,
) -> BackupSpec {
    BackupSpec {
        trustees: vec![trustee],
        veto_delay_secs,
        release,
        ..spec(custodians, 2)
    }
}

/// Waits until `node` records request `id` (asked of it) in state `state`.
async fn wait_for_state(node: &Node, id: sherd_protocol::RequestId, state: &str) {
    eventually(&format!("the request is {state}"), || async {
        records::requests(&node.store)
            .unwrap()
            .into_iter()
            .find(|(_, rid, r)| {
                *rid == id && r.role != records::Role::Requester && r.state.name() == state
            })
            .map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_vetoes_an_emergency_request_and_nothing_is_released() {
    let net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(emergency_spec(
            net.feeds(),
            trustee.key.feed_id(),
            3600,
            Release::Auto,
        ))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    let grant = eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    assert_eq!(grant.owner, net.owner.key.feed_id());
    assert_eq!(grant.threshold, 2);
    assert_eq!(grant.policy.veto_delay_secs, 3600);

    let (_, id, request) = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    assert_eq!(
        request.kind,
        sherd_protocol::content::RequestKind::Emergency
    );
    for i in 0..3 {
        wait_for_state(net.custodian(i), id, "waiting").await;
    }
    wait_for_state(&net.owner, id, "waiting").await;
    // Inside the window, a custodian cannot release.
    let early = net
        .custodian(0)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap_err();
    assert!(matches!(early, EngineError::VetoWindowOpen(_)), "{early}");

    // The owner vetoes: every custodian cancels, the trustee is told.
    let vetoed = net
        .owner
        .engine
        .decide(
            id,
            None,
            super::Decision::Deny {
                reason: Some("I am fine".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(vetoed.2.state, records::RequestState::Vetoed);
    for i in 0..3 {
        wait_for_state(net.custodian(i), id, "vetoed").await;
    }
    let failed = eventually("the trustee's recovery ended", || async {
        records::recovery(&trustee.store, &created.id)
            .unwrap()
            .filter(|r| matches!(r.state, records::RecoveryState::Failed { .. }))
    })
    .await;
    assert_eq!(failed.shards.len(), 0);
    for i in 0..3 {
        let lines = audit(&net.custodian(i).store);
        assert!(
            audit_events(&lines, "shard_released").is_empty(),
            "{lines:?}"
        );
    }
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_veto_custodians_release_after_the_window_even_across_a_restart() {
    let mut net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(emergency_spec(
            net.feeds(),
            trustee.key.feed_id(),
            2,
            Release::Auto,
        ))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    let (_, id, _) = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    for i in 0..3 {
        wait_for_state(net.custodian(i), id, "waiting").await;
    }
    // Custodian 0 is down when the window closes: its deadline was stored,
    // so it releases once it is back, neither earlier nor never.
    net.stop(0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recovery = wait_for_complete(&trustee, &created.id).await;
    assert_eq!(
        recovery.kind,
        sherd_protocol::content::RequestKind::Emergency
    );
    net.restart(0).await;
    wait_for_state(net.custodian(0), id, "released").await;
    let secret = trustee.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_approves_early_and_custodians_release_on_their_own_approval() {
    let net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(emergency_spec(
            net.feeds(),
            trustee.key.feed_id(),
            3600,
            Release::Approve,
        ))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    let (_, id, _) = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    wait_for_state(&net.owner, id, "waiting").await;
    let approved = net.owner.engine.decide(id, None, approve()).await.unwrap();
    assert!(matches!(
        approved.2.state,
        records::RequestState::Approved { .. }
    ));
    // The window is over, but `release: approve` still asks each custodian.
    for i in 0..2 {
        wait_for_state(net.custodian(i), id, "pending").await;
        net.custodian(i)
            .engine
            .decide(id, None, approve())
            .await
            .unwrap();
    }
    wait_for_complete(&trustee, &created.id).await;
    let secret = trustee.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    // Custodian 2 never approved: it released nothing.
    let lines = audit(&net.custodian(2).store);
    assert!(
        audit_events(&lines, "shard_released").is_empty(),
        "{lines:?}"
    );
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_request_in_a_day_is_ignored_and_audited() {
    let net = Net::new(1).await;
    let created = net
        .owner
        .engine
        .create_backup(spec(net.feeds(), 1))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 1).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (_, id, _) = net
            .owner
            .engine
            .start_owner_recovery(created.id)
            .await
            .unwrap();
        ids.push(id);
    }
    let c = net.custodian(0);
    for id in &ids[..3] {
        wait_for_pending(c, *id).await;
    }
    eventually("the fourth was refused", || async {
        let lines = audit(&c.store);
        (audit_events(&lines, "request_rate_limited").len() == 1).then_some(())
    })
    .await;
    let taken = records::requests(&c.store).unwrap();
    assert_eq!(taken.len(), 3, "{taken:?}");
    assert!(taken.iter().all(|(_, id, _)| *id != ids[3]));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_backup_is_erased_by_every_custodian_and_can_no_longer_be_released() {
    let net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(emergency_spec(
            net.feeds(),
            trustee.key.feed_id(),
            3600,
            Release::Approve,
        ))
        .await
        .unwrap();
    let record = wait_for_acks(&net.owner, &created.id, 3).await;
    eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    // Every custodian and the trustee replicate the owner's feed, so each
    // holds every custodian's boxed shard (the control: on disk, before).
    let shards: Vec<EntryId> = record.custodians.iter().map(|c| c.shard).collect();
    let sealed: Vec<Vec<u8>> = shards
        .iter()
        .map(|id| net.owner.store.entry(id).unwrap().unwrap().payload.unwrap())
        .collect();
    let replicas: Vec<(&Store, &Path)> = (0..3)
        .map(|i| (&net.custodian(i).store, net.dirs[i + 1].path()))
        .chain(std::iter::once((&trustee.store, dir.path())))
        .collect();
    for (node, (store, path)) in replicas.iter().enumerate() {
        for (shard, bytes) in shards.iter().zip(&sealed) {
            eventually("the replica holds every shard", || async {
                let held = store.entry(shard).unwrap().and_then(|e| e.payload);
                held.is_some().then_some(())
            })
            .await;
            assert!(
                !crate::store::files_containing(path, bytes).is_empty(),
                "the control: node {node} has shard {shard} on disk"
            );
        }
    }
    // A request waits at the custodians when the owner revokes.
    let (_, id, _) = net
        .owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    for i in 0..3 {
        wait_for_pending(net.custodian(i), id).await;
    }
    let revoked = net.owner.engine.revoke_backup(created.id).await.unwrap();
    assert!(revoked.revoked.is_some());
    let again = net
        .owner
        .engine
        .revoke_backup(created.id)
        .await
        .unwrap_err();
    assert!(matches!(again, EngineError::AlreadyRevoked(_)), "{again}");

    let record = eventually("every custodian erased and said so", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.custodians.iter().all(|c| c.revoke_acked.is_some()))
    })
    .await;
    for (i, c) in record.custodians.iter().enumerate() {
        let node = net.custodian(i);
        let shard = node.store.entry(&c.shard).unwrap().expect("header kept");
        assert!(shard.payload.is_none(), "custodian {i} erased its shard");
        let held = records::held_shard(&node.store, &created.id)
            .unwrap()
            .unwrap();
        assert!(held.revoked.is_some());
        // The pending request is closed; approving it releases nothing.
        let late = node.engine.decide(id, None, approve()).await.unwrap_err();
        assert!(
            matches!(late, EngineError::RequestClosed("denied")),
            "{late}"
        );
        let lines = audit(&node.store);
        assert!(
            audit_events(&lines, "shard_released").is_empty(),
            "{lines:?}"
        );
        assert_eq!(audit_events(&lines, "shard_erased").len(), 1, "{lines:?}");
    }
    // Every replica dropped every custodian's shard, from every file: the
    // custodians and the trustee alike.
    for (node, (store, path)) in replicas.iter().enumerate() {
        for (shard, bytes) in shards.iter().zip(&sealed) {
            eventually("the replica erased the shard, from every file", || async {
                let entry = store.entry(shard).unwrap().expect("header kept");
                let gone = entry.payload.is_none()
                    && crate::store::files_containing(path, bytes).is_empty();
                gone.then_some(())
            })
            .await;
        }
        assert!(
            store.head(&net.owner.key.feed_id()).unwrap().is_some(),
            "node {node}"
        );
    }
    let grant = records::grant(&trustee.store, &created.id)
        .unwrap()
        .unwrap();
    assert!(grant.revoked.is_some());
    assert_eq!(grant.erased_replicas.len(), 3);
    let lines = audit(&trustee.store);
    assert_eq!(audit_events(&lines, "grant_revoked").len(), 1, "{lines:?}");
    // Neither the owner nor the trustee can ask for a revoked backup.
    let asked = net
        .owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap_err();
    assert!(matches!(asked, EngineError::AlreadyRevoked(_)), "{asked}");
    let asked = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap_err();
    assert!(matches!(asked, EngineError::AlreadyRevoked(_)), "{asked}");
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_time_backup_is_redeemed_once_and_erased_from_every_custodian_store() {
    let net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(BackupSpec {
            one_time: true,
            ..emergency_spec(net.feeds(), trustee.key.feed_id(), 0, Release::Auto)
        })
        .await
        .unwrap();
    let record = wait_for_acks(&net.owner, &created.id, 3).await;
    eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    // What each custodian must lose: the boxed `shard` payload it holds.
    let sealed: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let entry = net.custodian(i).store.entry(&record.custodians[i].shard);
            entry.unwrap().unwrap().payload.expect("held before")
        })
        .collect();
    for (i, bytes) in sealed.iter().enumerate() {
        let found = crate::store::files_containing(net.dirs[i + 1].path(), bytes);
        assert_eq!(found.len(), 1, "the control: custodian {i} has it on disk");
    }

    let (_, id, _) = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    let recovery = wait_for_complete(&trustee, &created.id).await;
    // The replies it took are replicated by the owner and every custodian
    // (each follows the custodians' feeds): the control, before.
    let replies: Vec<(EntryId, Vec<u8>)> = recovery
        .shards
        .iter()
        .map(|s| {
            let entry = trustee.store.entry(&s.entry).unwrap().unwrap();
            (s.entry, entry.payload.expect("held until taken"))
        })
        .collect();
    let everyone: Vec<(&Store, &Path)> = std::iter::once((&net.owner.store, net.dirs[0].path()))
        .chain((0..3).map(|i| (&net.custodian(i).store, net.dirs[i + 1].path())))
        .collect();
    for (store, path) in &everyone {
        for (entry, bytes) in &replies {
            eventually("the reply is replicated", || async {
                let held = store.entry(entry).unwrap().and_then(|e| e.payload);
                held.is_some().then_some(())
            })
            .await;
            assert!(!crate::store::files_containing(path, bytes).is_empty());
        }
    }
    let secret = trustee.engine.take_secret(created.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), SECRET);
    // The `redeemed` lists them, and every replica drops them.
    for (store, path) in &everyone {
        for (entry, bytes) in &replies {
            eventually("every replica of every reply erased", || async {
                let gone = store.entry(entry).unwrap().unwrap().payload.is_none()
                    && crate::store::files_containing(path, bytes).is_empty();
                gone.then_some(())
            })
            .await;
        }
    }

    for (i, bytes) in sealed.iter().enumerate() {
        let node = net.custodian(i);
        eventually("the custodian erased its shard", || async {
            let shard = node.store.entry(&record.custodians[i].shard).unwrap();
            shard.expect("header kept").payload.is_none().then_some(())
        })
        .await;
        let held = records::held_shard(&node.store, &created.id).unwrap();
        assert!(held.unwrap().redeemed.is_some());
        // Readers see the deletion as soon as it commits; the scrub that
        // rewrites the file follows it, before the erasure is acknowledged.
        eventually(
            "the shard's bytes are in no file of its data dir",
            || async {
                crate::store::files_containing(net.dirs[i + 1].path(), bytes)
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        // What it released to the trustee is erased too.
        for (_, rid, r) in records::requests(&node.store).unwrap() {
            if let records::RequestState::Released { entry, .. } = r.state {
                assert_eq!(rid, id);
                let reply = node.store.entry(&entry).unwrap().expect("header kept");
                assert!(reply.payload.is_none(), "custodian {i} erased its reply");
            }
        }
    }
    let owner_record = eventually("the owner heard of the redemption", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .and_then(|r| r.redeemed)
    })
    .await;
    // Nor does the owner keep (and serve) its copies of the sealed shards,
    // and the trustee keeps none of the replies, late ones included.
    for (i, bytes) in sealed.iter().enumerate() {
        eventually("the owner erased its copy, from every file", || async {
            let entry = net.owner.store.entry(&record.custodians[i].shard).unwrap();
            let gone = entry.expect("header kept").payload.is_none()
                && crate::store::files_containing(net.dirs[0].path(), bytes).is_empty();
            gone.then_some(())
        })
        .await;
        let released = records::requests(&net.custodian(i).store)
            .unwrap()
            .into_iter()
            .find_map(|(_, _, r)| match r.state {
                records::RequestState::Released { entry, .. } => Some(entry),
                _ => None,
            })
            .expect("every custodian released (auto, no window)");
        eventually("the trustee erased the reply", || async {
            let reply = trustee.store.entry(&released).unwrap();
            reply
                .map(|e| e.payload.is_none())
                .unwrap_or(false)
                .then_some(())
        })
        .await;
    }
    assert_eq!(owner_record.by, trustee.key.feed_id());
    assert_eq!(owner_record.request, id);
    // The owner revoked it in the same step, so every custodian and the
    // trustee drop their replicas of everyone's boxed shard too.
    let replicas: Vec<(&Store, &Path)> = (0..3)
        .map(|i| (&net.custodian(i).store, net.dirs[i + 1].path()))
        .chain(std::iter::once((&trustee.store, dir.path())))
        .collect();
    for (store, path) in &replicas {
        for (c, bytes) in record.custodians.iter().zip(&sealed) {
            eventually("every replica of every shard erased", || async {
                let entry = store.entry(&c.shard).unwrap().expect("header kept");
                let gone = entry.payload.is_none()
                    && crate::store::files_containing(path, bytes).is_empty();
                gone.then_some(())
            })
            .await;
        }
    }
    eventually("every custodian acknowledged the revocation", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.revoked.is_some())
            .filter(|r| r.custodians.iter().all(|c| c.revoke_acked.is_some()))
    })
    .await;
    let reshare = net
        .owner
        .engine
        .reshare_backup(created.id, spec(net.feeds(), 2))
        .await
        .unwrap_err();
    assert!(matches!(reshare, EngineError::Redeemed(_)), "{reshare}");

    // The trustee cannot ask again, and the owner's own request is answered
    // "redeemed" by every custodian.
    let again = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap_err();
    assert!(matches!(again, EngineError::Redeemed(_)), "{again}");
    net.owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    let denied = eventually("every custodian answered", || async {
        records::recovery(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.denied.len() == 3)
    })
    .await;
    for (_, reason) in &denied.denied {
        assert_eq!(reason.as_deref(), Some(super::redeem::REDEEMED));
    }
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reshare_makes_the_new_backup_and_revokes_the_old_in_one_step() {
    let net = Net::new(3).await;
    let feeds = net.feeds();
    let old = net
        .owner
        .engine
        .create_backup(spec(feeds[..2].to_vec(), 2))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &old.id, 2).await;
    // A request for the old backup waits at its custodians.
    let (_, asked, _) = net.owner.engine.start_owner_recovery(old.id).await.unwrap();
    for i in 0..2 {
        wait_for_pending(net.custodian(i), asked).await;
    }

    // Refusals publish nothing.
    let head = || {
        net.owner
            .store
            .head(&net.owner.key.feed_id())
            .unwrap()
            .map(|h| h.header().seq)
    };
    let before = head();
    let unknown = BackupId::random(&mut os_rng());
    let refused = net
        .owner
        .engine
        .reshare_backup(unknown, spec(feeds[1..].to_vec(), 2))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EngineError::UnknownBackup(_)),
        "{refused}"
    );
    assert_eq!(head(), before);

    let new = net
        .owner
        .engine
        .reshare_backup(old.id, spec(feeds[1..].to_vec(), 2))
        .await
        .unwrap();
    assert_ne!(new.id, old.id);
    assert!(record(&net.owner, &old.id).revoked.is_some());
    wait_for_acks(&net.owner, &new.id, 2).await;
    eventually("the old backup's custodians erased", || async {
        records::backup(&net.owner.store, &old.id)
            .unwrap()
            .filter(|r| r.custodians.iter().all(|c| c.revoke_acked.is_some()))
    })
    .await;
    for i in 0..2 {
        let late = net
            .custodian(i)
            .engine
            .decide(asked, None, approve())
            .await
            .unwrap_err();
        assert!(
            matches!(late, EngineError::RequestClosed("denied")),
            "{late}"
        );
    }
    let again = net
        .owner
        .engine
        .reshare_backup(old.id, spec(feeds[1..].to_vec(), 2))
        .await
        .unwrap_err();
    assert!(matches!(again, EngineError::AlreadyRevoked(_)), "{again}");

    // The new backup recovers.
    let (_, id, _) = net.owner.engine.start_owner_recovery(new.id).await.unwrap();
    for i in 1..3 {
        wait_for_pending(net.custodian(i), id).await;
        net.custodian(i)
            .engine
            .decide(id, None, approve())
            .await
            .unwrap();
    }
    wait_for_complete(&net.owner, &new.id).await;
    let secret = net.owner.engine.take_secret(new.id).await.unwrap();
    assert_eq!(secret.secret.as_slice(), b"correct horse battery staple");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custodians_prove_their_shards_and_one_gone_quiet_is_reported_silent() {
    let options = super::EngineOptions {
        health_check_interval_ms: 1_500,
        custodian_silent_after_ms: 4_000,
        ..super::EngineOptions::default()
    };
    let mut net = Net::with_owner_options(3, options).await;
    let mut events = net.owner.engine.subscribe();
    let created = net
        .owner
        .engine
        .create_backup(spec(net.feeds(), 2))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    let quiet = net.custodian(2).key.feed_id();
    let proved = eventually("every custodian proved its shard", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.custodians.iter().all(|c| c.last_proof_ms.is_some()))
    })
    .await;
    assert!(
        proved
            .custodians
            .iter()
            .all(|c| c.silent_since_ms.is_none())
    );

    // Custodian 2 goes away: after the limit it is reported, once; the
    // others keep proving.
    net.stop(2).await;
    let silent = eventually("the quiet custodian is reported", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.custodians[2].silent_since_ms.is_some())
    })
    .await;
    assert!(
        silent.custodians[..2]
            .iter()
            .all(|c| c.silent_since_ms.is_none())
    );
    let mut reported = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let EngineEvent::CustodianSilent { custodian, .. } = event {
            reported.push(custodian);
        }
    }
    assert_eq!(reported, vec![quiet], "reported once, and only it");
    let lines = audit(&net.owner.store);
    assert_eq!(
        audit_events(&lines, "custodian_silent").len(),
        1,
        "{lines:?}"
    );
    assert!(
        audit_events(&lines, "proof_refused").is_empty(),
        "{lines:?}"
    );

    // Back, it proves again and is no longer silent.
    net.restart(2).await;
    eventually("the custodian is back", || async {
        records::backup(&net.owner.store, &created.id)
            .unwrap()
            .filter(|r| r.custodians[2].silent_since_ms.is_none())
    })
    .await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custodian_keeps_a_request_open_no_longer_than_its_own_limit() {
    let mut net = Net::new(2).await;
    let created = net
        .owner
        .engine
        .create_backup(spec(net.feeds(), 2))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 2).await;
    // Custodian 0 keeps requests open for a second; the owner asked for 30 days.
    net.stop(0).await;
    let short = super::EngineOptions {
        request_ttl_ms: 1_000,
        ..super::EngineOptions::default()
    };
    net.restart_with(0, short).await;
    let (_, id, asked) = net
        .owner
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    assert!(asked.expires_ms >= asked.received_ms + super::DEFAULT_REQUEST_TTL_MS);
    for i in 0..2 {
        wait_for_pending(net.custodian(i), id).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let late = net
        .custodian(0)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap_err();
    assert!(
        matches!(late, EngineError::RequestClosed("expired")),
        "{late}"
    );
    // The other custodian, with the default limit, still releases.
    net.custodian(1)
        .engine
        .decide(id, None, approve())
        .await
        .unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_veto_forged_by_someone_other_than_the_owner_changes_nothing() {
    let net = Net::new(3).await;
    let dir = tempfile::tempdir().unwrap();
    let trustee = trustee_of(&net, dir.path()).await;
    let created = net
        .owner
        .engine
        .create_backup(emergency_spec(
            net.feeds(),
            trustee.key.feed_id(),
            3600,
            Release::Auto,
        ))
        .await
        .unwrap();
    wait_for_acks(&net.owner, &created.id, 3).await;
    eventually("the trustee has its grant", || async {
        records::grant(&trustee.store, &created.id).unwrap()
    })
    .await;
    let (_, id, _) = trustee
        .engine
        .start_owner_recovery(created.id)
        .await
        .unwrap();
    for i in 0..3 {
        wait_for_state(net.custodian(i), id, "waiting").await;
    }
    // Custodian 1 "vetoes" toward custodian 0: the content an owner would send.
    let forged = Content::Deny(sherd_protocol::content::Deny {
        version: V1,
        request: id,
        backup: created.id,
        reason: Some("the owner says no".into()),
    })
    .to_json()
    .unwrap();
    let c1 = net.custodian(1);
    let boxed = envelope::seal(
        &mut os_rng(),
        &c1.key.feed_id(),
        &[net.custodian(0).key.feed_id()],
        &forged,
    )
    .unwrap();
    let forged_entry = c1
        .store
        .publish(PayloadKind::Boxed, boxed, crate::clock::now_ms())
        .await
        .unwrap()
        .id();
    let c0 = net.custodian(0);
    let ignored = eventually("the forged veto is ignored", || {
        let lines = audit(&c0.store);
        async move { lines.into_iter().find(|l| l["event"] == "deny_ignored") }
    })
    .await;
    assert_eq!(ignored["entry"], forged_entry.to_string());
    assert_eq!(ignored["peer"], c1.key.feed_id().to_string());
    let lines = audit(&c0.store);
    assert!(audit_events(&lines, "owner_vetoed").is_empty(), "{lines:?}");
    wait_for_state(c0, id, "waiting").await;
    assert!(trustee.shutdown(LIMIT).await);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_keeps_asking_for_what_it_may_not_have_is_blocked() {
    use sherd_protocol::content::{Request, RequestKind};

    let net = Net::new(1).await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = start(dir.path()).await;
    let c0 = net.custodian(0);
    befriend(c0, &stranger).await;
    befriend(&stranger, c0).await;
    stranger.net.dial(addr(c0).await).await.unwrap();
    // Requests for backups c0 holds no shard of: each refused, each a strike
    // (different backups, so the daily limit per backup does not apply).
    for _ in 0..crate::net::misbehaviour::STRIKES_TO_BLOCK {
        let request = Content::Request(Request {
            version: V1,
            id: sherd_protocol::RequestId::random(&mut os_rng()),
            kind: RequestKind::Owner,
            backup: BackupId::random(&mut os_rng()),
            owner: stranger.key.feed_id(),
            recipient: stranger.key.feed_id(),
            custodians: vec![c0.key.feed_id()],
            expires_ms: crate::clock::now_ms() + 3_600_000,
        })
        .to_json()
        .unwrap();
        let boxed = envelope::seal(
            &mut os_rng(),
            &stranger.key.feed_id(),
            &[c0.key.feed_id()],
            &request,
        )
        .unwrap();
        stranger
            .store
            .publish(PayloadKind::Boxed, boxed, crate::clock::now_ms())
            .await
            .unwrap();
    }
    let blocked = eventually("the stranger is blocked", || {
        let lines = audit(&c0.store);
        async move { lines.into_iter().find(|l| l["event"] == "peer_blocked") }
    })
    .await;
    assert_eq!(
        blocked["peer"],
        crate::net::peer_id(&stranger.key.feed_id()).to_string()
    );
    let lines = audit(&c0.store);
    assert_eq!(
        audit_events(&lines, "request_refused").len(),
        crate::net::misbehaviour::STRIKES_TO_BLOCK,
        "{lines:?}"
    );
    assert!(stranger.shutdown(LIMIT).await);
    net.shutdown().await;
}

/// Signs `contents` as the next entries of `author`'s feed after `previous`,
/// each boxed to its recipients.
fn boxed_entries(
    author: &Keypair,
    previous: Option<&SignedHeader>,
    contents: &[(&[FeedId], Content)],
) -> Vec<IncomingEntry> {
    let now = crate::clock::now_ms();
    let mut rng = os_rng();
    let mut run: Vec<IncomingEntry> = Vec::new();
    for (to, content) in contents {
        let json = content.to_json().unwrap();
        let boxed = envelope::seal(&mut rng, &author.feed_id(), to, &json).unwrap();
        let last = run.last().map(|e| &e.header).or(previous);
        let header =
            SignedHeader::sign_next(author, last, now, PayloadKind::Boxed, &boxed).unwrap();
        run.push(IncomingEntry {
            header,
            payload: Some(boxed),
        });
    }
    run
}

// The owner revokes a redeemed backup to have every replica erased, and its
// `revoke` can reach a custodian before the trustee's `redeemed`. Here it
// does, deterministically, at a custodian whose user had not approved yet
// (the trustee recovered from the others): the revocation closes the request,
// and the redemption still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_that_arrives_after_the_owners_revocation_still_counts() {
    use sherd_protocol::content::{Redeemed, Request, RequestKind, Revoke};

    let dir = tempfile::tempdir().unwrap();
    let node = bare(dir.path(), 41, 64);
    let me = node.key.feed_id();
    let owner = Keypair::from_seed(&[42; 32]);
    let trustee = Keypair::from_seed(&[43; 32]);
    let mut rng = os_rng();
    let spec = BackupSpec {
        one_time: true,
        threshold: 1,
        ..emergency_spec(vec![me], trustee.feed_id(), 0, Release::Approve)
    };
    let made = backup::create(&mut rng, &owner, crate::clock::now_ms(), &spec).unwrap();
    let backup = made.id;
    let (_, shard) = made.shards.into_iter().next().unwrap();
    let owner_run = boxed_entries(&owner, None, &[(&[me], Content::Shard(shard))]);
    let shard_entry = owner_run[0].header.id();
    node.store
        .ingest(owner.feed_id(), owner_run.clone(), crate::clock::now_ms())
        .await
        .unwrap();
    eventually("the shard is held", || async {
        records::held_shard(&node.store, &backup).unwrap()
    })
    .await;

    // The trustee asks; with no window, the request waits for the user.
    let request = sherd_protocol::RequestId::random(&mut rng);
    let ask = Content::Request(Request {
        version: V1,
        id: request,
        kind: RequestKind::Emergency,
        backup,
        owner: owner.feed_id(),
        recipient: trustee.feed_id(),
        custodians: vec![me],
        expires_ms: crate::clock::now_ms() + 3_600_000,
    });
    let trustee_run = boxed_entries(&trustee, None, &[(&[me, owner.feed_id()], ask)]);
    node.store
        .ingest(
            trustee.feed_id(),
            trustee_run.clone(),
            crate::clock::now_ms(),
        )
        .await
        .unwrap();
    eventually("the request is pending", || async {
        records::request(&node.store, &trustee.feed_id(), &request)
            .unwrap()
            .filter(|r| r.state == records::RequestState::Pending)
    })
    .await;

    // The owner's revocation arrives first ...
    let revoke = Content::Revoke(Revoke {
        version: V1,
        backup,
        shards: vec![shard_entry],
    });
    let revoke_run = boxed_entries(&owner, Some(&owner_run[0].header), &[(&[me], revoke)]);
    node.store
        .ingest(owner.feed_id(), revoke_run, crate::clock::now_ms())
        .await
        .unwrap();
    eventually("the shard is revoked", || async {
        records::held_shard(&node.store, &backup)
            .unwrap()
            .filter(|h| h.revoked.is_some())
    })
    .await;
    let closed = records::request(&node.store, &trustee.feed_id(), &request)
        .unwrap()
        .unwrap();
    assert!(
        matches!(closed.state, records::RequestState::Denied { .. }),
        "{closed:?}"
    );

    // ... then the trustee's `redeemed`: it counts.
    let redeemed = Content::Redeemed(Redeemed {
        version: V1,
        backup,
        request,
        replies: Vec::new(),
    });
    let redeemed_run = boxed_entries(
        &trustee,
        Some(&trustee_run[0].header),
        &[(&[me, owner.feed_id()], redeemed)],
    );
    node.store
        .ingest(trustee.feed_id(), redeemed_run, crate::clock::now_ms())
        .await
        .unwrap();
    eventually("the redemption is recorded", || async {
        records::held_shard(&node.store, &backup)
            .unwrap()
            .filter(|h| h.redeemed.is_some())
    })
    .await;
    node.engine.caught_up().await.unwrap();
    let lines = audit(&node.store);
    assert_eq!(audit_events(&lines, "shard_erased").len(), 1, "{lines:?}");
    assert_eq!(
        audit_events(&lines, "releases_erased").len(),
        1,
        "{lines:?}"
    );
    assert!(
        audit_events(&lines, "redeemed_ignored").is_empty(),
        "{lines:?}"
    );
    node.stop().await;
}
