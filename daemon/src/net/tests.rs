//! Nodes in one process, on 127.0.0.1 only, mDNS off, each test bounded in time.

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use sherd_protocol::entry::PayloadKind;
use sherd_protocol::feed::Feed;
use sherd_protocol::{FeedId, Keypair};

use super::{NetEvent, NetworkConfig, NetworkHandle, spawn};
use crate::store::{Store, StoreThread};

const LIMIT: Duration = Duration::from_secs(30);

struct Node {
    key: Arc<Keypair>,
    store: Store,
    net: NetworkHandle,
    addr: Multiaddr,
    _thread: StoreThread,
    _dir: tempfile::TempDir,
}

async fn node(seed: u8, follows: Vec<FeedId>) -> Node {
    // RUST_LOG=sherd_daemon=debug shows what the nodes did in a failing run.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(Keypair::from_seed(&[seed; 32]));
    let (store, thread) = Store::open(&dir.path().join("store.redb"), key.clone()).unwrap();
    let config = NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        sync_batch: 100,
        gossip_heartbeat: Duration::from_millis(100),
        ..NetworkConfig::default()
    };
    let (net, _task) = spawn(&key, store.clone(), config, follows).unwrap();
    let addr = tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(a) = net.listen_addrs().await.unwrap().into_iter().next() {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the node listens");
    assert!(addr.to_string().starts_with("/ip4/127.0.0.1/"), "{addr}");
    Node {
        key,
        store,
        net,
        addr,
        _thread: thread,
        _dir: dir,
    }
}

async fn publish(node: &Node, n: usize) {
    for i in 0..n {
        let payload = format!("{{\"type\":\"about\",\"version\":1,\"name\":\"n{i}\"}}");
        node.store
            .publish(
                PayloadKind::Public,
                payload.into_bytes(),
                crate::clock::now_ms(),
            )
            .await
            .unwrap();
    }
}

/// Waits until `node` holds `feed` up to `seq`, then checks the whole chain.
async fn wait_for(node: &Node, feed: &FeedId, seq: u64) {
    tokio::time::timeout(LIMIT, async {
        loop {
            let have = node.store.head(feed).unwrap().map_or(0, |h| h.header().seq);
            if have >= seq {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("feed {feed} did not reach {seq} in time"));
    let mut check = Feed::new(*feed);
    for e in node.store.entries(feed, 1, usize::MAX).unwrap() {
        check
            .append(e.header, e.payload.as_deref(), crate::clock::now_ms())
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_catches_up_in_batches_then_gets_new_entries_live() {
    let alice = node(1, vec![]).await;
    publish(&alice, 250).await;
    let bob = node(2, vec![alice.key.feed_id()]).await;

    bob.net.dial(alice.addr.clone()).await.unwrap();
    // 250 entries at 100 per request: three sync batches.
    wait_for(&bob, &alice.key.feed_id(), 250).await;

    // Live: one more entry reaches bob without a reconnect.
    publish(&alice, 5).await;
    wait_for(&bob, &alice.key.feed_id(), 255).await;
    assert_eq!(
        bob.net.peers().await.unwrap(),
        vec![libp2p::PeerId::from_bytes(&alice.key.feed_id().peer_id_bytes()).unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_travel_through_a_node_in_the_middle() {
    let alice = node(11, vec![]).await;
    let bob = node(12, vec![alice.key.feed_id()]).await;
    let carol = node(13, vec![alice.key.feed_id()]).await;
    // carol only knows bob; bob knows alice.
    bob.net.dial(alice.addr.clone()).await.unwrap();
    carol.net.dial(bob.addr.clone()).await.unwrap();
    publish(&alice, 20).await;
    wait_for(&bob, &alice.key.feed_id(), 20).await;
    wait_for(&carol, &alice.key.feed_id(), 20).await;
    assert!(carol.store.head(&alice.key.feed_id()).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_not_followed_is_not_replicated() {
    let alice = node(21, vec![]).await;
    let bob = node(22, vec![]).await;
    publish(&alice, 3).await;
    let mut events = bob.net.subscribe();
    bob.net.dial(alice.addr.clone()).await.unwrap();
    tokio::time::timeout(LIMIT, async {
        while !matches!(events.recv().await, Ok(NetEvent::PeerConnected(_))) {}
    })
    .await
    .unwrap();
    // Following later starts the catch-up at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bob.store.head(&alice.key.feed_id()).unwrap().is_none());
    bob.net.follow(alice.key.feed_id()).await.unwrap();
    wait_for(&bob, &alice.key.feed_id(), 3).await;
}
