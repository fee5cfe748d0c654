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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_gossip_are_counted_and_every_entry_is_appended_once() {
    let alice = node(51, vec![]).await;
    let feed = alice.key.feed_id();
    let bob = node(52, vec![feed]).await;
    let carol = node(53, vec![feed]).await;
    // A triangle: once the meshes stand, an entry reaches carol from alice
    // and again from bob, who relays what it validated (and so on around).
    bob.net.dial(alice.addr.clone()).await.unwrap();
    carol.net.dial(alice.addr.clone()).await.unwrap();
    carol.net.dial(bob.addr.clone()).await.unwrap();

    // One entry at a time until gossipsub's filter has dropped a copy
    // somewhere; no timing is asserted, only that it happens.
    let mut published = 0;
    tokio::time::timeout(LIMIT, async {
        loop {
            publish(&alice, 1).await;
            published += 1;
            wait_for(&bob, &feed, published).await;
            wait_for(&carol, &feed, published).await;
            let dropped: u64 = [&alice, &bob, &carol]
                .iter()
                .map(|n| n.net.received().gossip_duplicates)
                .sum();
            if dropped > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("gossipsub drops a copy in a triangle");

    for (name, n) in [("bob", &bob), ("carol", &carol)] {
        // The counters move just after the commit that wait_for saw.
        until(
            &format!("{name} counts each entry appended once"),
            || async {
                let r = n.net.received();
                r.gossip_appended + r.sync_appended == published
            },
        )
        .await;
        let r = n.net.received();
        // What reached the store by gossip passed gossipsub's filter first.
        assert!(
            r.gossip_messages - r.gossip_duplicates >= r.gossip_entries,
            "{name}: {r:?}"
        );
        assert!(
            r.gossip_entries >= r.gossip_appended + r.gossip_held,
            "{name}: {r:?}"
        );
        assert!(
            r.sync_entries >= r.sync_appended + r.sync_held,
            "{name}: {r:?}"
        );
    }
    // alice appends nothing of her own feed from peers.
    let r = alice.net.received();
    assert_eq!((r.gossip_appended, r.sync_appended), (0, 0), "{r:?}");
}

fn peer_of(node: &Node) -> libp2p::PeerId {
    super::peer_id(&node.key.feed_id())
}

/// Polls `probe` every 20 ms until it holds; fails the test past LIMIT.
async fn until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(LIMIT, async {
        while !probe().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {LIMIT:?}"));
}

fn seq_of(node: &Node, feed: &FeedId) -> u64 {
    node.store.head(feed).unwrap().map_or(0, |h| h.header().seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_block_cuts_a_peer_off_both_ways_until_unblocked() {
    let alice = node(31, vec![]).await;
    let bob = node(32, vec![alice.key.feed_id()]).await;
    publish(&alice, 2).await;
    bob.net.dial(alice.addr.clone()).await.unwrap();
    wait_for(&bob, &alice.key.feed_id(), 2).await;
    // Identify has told alice where bob listens by now (it runs at once on
    // a new connection); the redial after the unblock uses it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    alice.net.test_block(peer_of(&bob)).await.unwrap();
    until("both sides see the connection gone", || async {
        alice.net.peers().await.unwrap().is_empty() && bob.net.peers().await.unwrap().is_empty()
    })
    .await;
    // Outgoing: refused before anything is sent.
    let err = tokio::time::timeout(LIMIT, alice.net.dial(bob.addr.clone()))
        .await
        .expect("a dial answers")
        .unwrap_err();
    assert!(err.to_string().contains("cannot dial"), "{err}");
    // Incoming: the transport may finish on bob's side, but alice closes it
    // and never counts bob as a peer.
    let _ = tokio::time::timeout(LIMIT, bob.net.dial(alice.addr.clone())).await;
    for _ in 0..10 {
        assert!(!alice.net.peers().await.unwrap().contains(&peer_of(&bob)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until("bob's attempt is closed", || async {
        bob.net.peers().await.unwrap().is_empty()
    })
    .await;
    // Partitioned: what alice publishes does not reach bob.
    publish(&alice, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seq_of(&bob, &alice.key.feed_id()), 2);

    // Unblocked, alice redials bob where identify said it listens, and the
    // heights exchange of the new connection catches bob up.
    let redialed = alice.net.test_unblock(peer_of(&bob)).await.unwrap();
    assert!(redialed >= 1, "{redialed} addresses redialed");
    wait_for(&bob, &alice.key.feed_id(), 5).await;
    assert_eq!(alice.net.peers().await.unwrap(), vec![peer_of(&bob)]);
    // A dial works again too.
    assert_eq!(
        alice.net.dial(bob.addr.clone()).await.unwrap(),
        peer_of(&bob)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_gossip_is_not_delivered_live_and_the_gap_is_fetched_later() {
    let alice = node(41, vec![]).await;
    let bob = node(42, vec![alice.key.feed_id()]).await;
    publish(&alice, 2).await;
    bob.net.dial(alice.addr.clone()).await.unwrap();
    wait_for(&bob, &alice.key.feed_id(), 2).await;

    bob.net.test_gossip_drop(1.0).await.unwrap();
    publish(&alice, 1).await;
    // Gossip takes milliseconds on loopback; the next periodic resync is 30 s
    // away, and nothing else would fetch it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seq_of(&bob, &alice.key.feed_id()),
        2,
        "dropped, not delivered"
    );

    // Gossip back on: the next entry arrives live, shows a gap, and the
    // missing one is fetched by sync.
    bob.net.test_gossip_drop(0.0).await.unwrap();
    publish(&alice, 1).await;
    wait_for(&bob, &alice.key.feed_id(), 4).await;
}

/// Waits for `victim` to block `attacker`; returns the block's audit record.
async fn blocked(
    victim: &Node,
    events: &mut tokio::sync::broadcast::Receiver<NetEvent>,
    attacker: &Node,
) -> serde_json::Value {
    let attacker = peer_of(attacker);
    tokio::time::timeout(LIMIT, async {
        loop {
            match events.recv().await {
                Ok(NetEvent::PeerBlocked { peer, .. }) if peer == attacker => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the attacker is blocked");
    let mut record = None;
    until("the block is audited", || {
        let found = victim
            .store
            .audit_log(0, 1000)
            .unwrap()
            .into_iter()
            .map(|(_, bytes)| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
            .find(|r| r["event"] == "peer_blocked" && r["peer"] == attacker.to_string());
        let done = found.is_some();
        record = found;
        async move { done }
    })
    .await;
    record.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gossiping_invalid_entries_is_blocked_after_ten() {
    use super::misbehaviour::STRIKES_TO_BLOCK;
    use super::test_hooks::{Flood, invalid_entries};

    let attacker = node(51, vec![]).await;
    let victim = node(52, vec![attacker.key.feed_id()]).await;
    publish(&attacker, 1).await;
    let mut events = victim.net.subscribe();
    victim.net.dial(attacker.addr.clone()).await.unwrap();
    wait_for(&victim, &attacker.key.feed_id(), 1).await;

    let head = attacker.store.head(&attacker.key.feed_id()).unwrap();
    // Exactly enough to be blocked: each one must count, even when they
    // arrive in one burst and are validated in one batch.
    let n = u32::try_from(STRIKES_TO_BLOCK).unwrap();
    let gossip = invalid_entries(&attacker.key, head.as_ref(), n, crate::clock::now_ms());
    // Refused until gossipsub has told the attacker that the victim
    // subscribed to its feed's topic.
    let report = tokio::time::timeout(LIMIT, async {
        loop {
            let flood = Flood {
                victim: victim.key.feed_id(),
                gossip: gossip.clone(),
                sync_requests: 0,
            };
            match attacker.net.test_flood(flood).await {
                Ok(report) => return report,
                Err(e) if e.to_string().contains("does not follow") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the victim subscribes to the attacker's feed");
    assert_eq!(report.invalid_entries, n);

    let record = blocked(&victim, &mut events, &attacker).await;
    assert_eq!(record["reason"], "invalid entry gossiped");
    // None of them entered the victim's store (nor the attacker's own).
    assert_eq!(seq_of(&victim, &attacker.key.feed_id()), 1);
    assert_eq!(seq_of(&attacker, &attacker.key.feed_id()), 1);
    until("the victim closed the connection", || async {
        victim.net.peers().await.unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_sync_requests_is_refused_past_its_budget_then_blocked() {
    use super::misbehaviour::{STRIKES_TO_BLOCK, SYNC_BURST};
    use super::test_hooks::Flood;

    let victim = node(61, vec![]).await;
    let attacker = node(62, vec![]).await;
    // Something to read: each flood request for the victim's feed reads it all.
    publish(&victim, 200).await;
    let mut events = victim.net.subscribe();
    attacker.net.dial(victim.addr.clone()).await.unwrap();

    // The victim's network loop answers its own commands all along: what
    // the control API's status and peers wait on.
    let (stop_probe, mut stopped) = tokio::sync::watch::channel(false);
    let probe = {
        let net = victim.net.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut samples = 0u32;
            while !*stopped.borrow_and_update() {
                let asked = tokio::time::Instant::now();
                net.peers().await.unwrap();
                net.listen_addrs().await.unwrap();
                worst = worst.max(asked.elapsed());
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (worst, samples)
        })
    };
    let requests = 5_000;
    let report = attacker
        .net
        .test_flood(Flood {
            victim: victim.key.feed_id(),
            gossip: Vec::new(),
            sync_requests: requests,
        })
        .await
        .unwrap();
    let record = blocked(&victim, &mut events, &attacker).await;
    stop_probe.send(true).unwrap();
    let (worst, samples) = probe.await.unwrap();
    assert_eq!(record["reason"], "too many sync requests");
    assert!(report.disconnected, "{report:?}");
    // The whole burst is served, then the refill, then the refusals
    // (strikes) block it well before the end.
    assert!(
        report.sync_answered >= SYNC_BURST && report.sync_answered < requests,
        "{report:?}"
    );
    assert!(
        report.sync_failed >= u32::try_from(STRIKES_TO_BLOCK).unwrap(),
        "{report:?}"
    );
    assert_eq!(
        report.sync_requests,
        report.sync_answered + report.sync_failed,
        "{report:?}"
    );
    eprintln!(
        "sync flood: {report:?}; the victim's loop answered {samples} probes, the slowest in {worst:?}"
    );
    assert!(worst < Duration::from_secs(1), "{worst:?}");
}
