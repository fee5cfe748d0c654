use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sherd_protocol::Keypair;
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::{EntryError, Feed};

use super::{IncomingEntry, Store, StoreThread};

const NOW: u64 = 1_700_000_000_000;

fn open(dir: &Path, me: &Arc<Keypair>) -> (Store, StoreThread) {
    Store::open(&dir.join("store.redb"), me.clone()).unwrap()
}

fn chain(kp: &Keypair, n: usize) -> Vec<IncomingEntry> {
    let mut out: Vec<IncomingEntry> = Vec::new();
    for i in 0..n {
        let payload = format!("{{\"n\":{i}}}").into_bytes();
        let prev = out.last().map(|e| &e.header);
        let header = SignedHeader::sign_next(kp, prev, NOW, PayloadKind::Public, &payload).unwrap();
        out.push(IncomingEntry {
            header,
            payload: Some(payload),
        });
    }
    out
}

/// The whole feed as stored verifies from entry 1, payloads included where present.
fn assert_feed_valid(store: &Store, author: &Keypair, expected_len: u64) {
    let stored = store.entries(&author.feed_id(), 1, usize::MAX).unwrap();
    assert_eq!(stored.len() as u64, expected_len);
    let mut feed = Feed::new(author.feed_id());
    for e in stored {
        feed.append(e.header, e.payload.as_deref(), NOW).unwrap();
    }
}

#[tokio::test]
async fn concurrent_publishes_form_one_chain_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, thread) = open(dir.path(), &me);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .publish(
                    PayloadKind::Public,
                    format!("{{\"i\":{i}}}").into_bytes(),
                    NOW,
                )
                .await
                .unwrap()
                .header()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    drop(store);
    thread.join();

    let (store, _thread) = open(dir.path(), &me);
    assert_eq!(
        store.head(&me.feed_id()).unwrap().unwrap().header().seq,
        200
    );
    assert_feed_valid(&store, &me, 200);
}

#[tokio::test]
async fn ingest_takes_the_valid_prefix_and_skips_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let peer = Keypair::from_seed(&[2; 32]);
    let (store, _thread) = open(dir.path(), &me);
    let entries = chain(&peer, 10);

    let out = store
        .ingest(peer.feed_id(), entries[..4].to_vec(), NOW)
        .await
        .unwrap();
    assert_eq!((out.appended, out.stopped_by, out.head_seq), (4, None, 4));

    // An overlapping range: the known part is skipped, the rest appended.
    let out = store
        .ingest(peer.feed_id(), entries[2..7].to_vec(), NOW)
        .await
        .unwrap();
    assert_eq!(
        (out.skipped, out.appended, out.stopped_by, out.head_seq),
        (2, 3, None, 7)
    );

    // A gap changes nothing.
    let out = store
        .ingest(peer.feed_id(), entries[8..].to_vec(), NOW)
        .await
        .unwrap();
    assert_eq!(out.appended, 0);
    assert_eq!(
        out.stopped_by,
        Some(EntryError::WrongSeq {
            expected: 8,
            found: 9
        })
    );

    // A bad payload stops the run there; the entry before it is kept.
    let mut tampered = entries[7..].to_vec();
    tampered[1].payload = Some(b"{\"n\":7}".to_vec()); // same length, other bytes
    let out = store.ingest(peer.feed_id(), tampered, NOW).await.unwrap();
    assert_eq!(out.appended, 1);
    assert_eq!(out.stopped_by, Some(EntryError::PayloadHash));
    assert_eq!(out.head_seq, 8);
    assert_feed_valid(&store, &peer, 8);

    // Someone else's entries are refused outright.
    let out = store
        .ingest(peer.feed_id(), chain(&me, 1), NOW)
        .await
        .unwrap();
    assert_eq!(out.stopped_by, Some(EntryError::WrongAuthor));
}

#[tokio::test]
async fn a_fork_is_recorded_and_the_feed_is_not_followed_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let peer = Keypair::from_seed(&[3; 32]);
    let (store, _thread) = open(dir.path(), &me);
    let entries = chain(&peer, 3);
    store
        .ingest(peer.feed_id(), entries.clone(), NOW)
        .await
        .unwrap();

    // Another entry 2, validly signed: a fork behind the head.
    let other = SignedHeader::sign_next(
        &peer,
        Some(&entries[0].header),
        NOW,
        PayloadKind::Public,
        b"{}",
    )
    .unwrap();
    let out = store
        .ingest(
            peer.feed_id(),
            vec![IncomingEntry {
                header: other,
                payload: None,
            }],
            NOW,
        )
        .await
        .unwrap();
    assert!(matches!(out.stopped_by, Some(EntryError::Fork(ref p)) if p.seq() == 2));
    let proof = store.fork(&peer.feed_id()).unwrap().unwrap();
    assert_eq!(proof.seq(), 2);

    // Nothing more is taken from that feed.
    let more = chain(&peer, 4).split_off(3);
    let out = store.ingest(peer.feed_id(), more, NOW).await.unwrap();
    assert_eq!(out.appended, 0);
    assert!(matches!(out.stopped_by, Some(EntryError::Fork(_))));
    assert_eq!(out.head_seq, 3);
}

#[tokio::test]
async fn an_erased_payload_is_gone_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, _thread) = open(dir.path(), &me);
    let first = store
        .publish(PayloadKind::Public, b"{\"a\":1}".to_vec(), NOW)
        .await
        .unwrap();
    store
        .publish(PayloadKind::Public, b"{\"a\":2}".to_vec(), NOW)
        .await
        .unwrap();
    assert!(store.erase_payload(first.id()).await.unwrap());
    assert!(
        !store.erase_payload(first.id()).await.unwrap(),
        "erasing twice finds nothing"
    );
    let stored = store.entry(&first.id()).unwrap().unwrap();
    assert_eq!(stored.header, first);
    assert_eq!(stored.payload, None);
    assert_feed_valid(&store, &me, 2);
}

#[tokio::test]
async fn entries_are_announced_only_after_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, _thread) = open(dir.path(), &me);
    let mut announced = store.subscribe();
    let published = store
        .publish(PayloadKind::Public, b"{}".to_vec(), NOW)
        .await
        .unwrap();
    let got = announced.recv().await.unwrap();
    assert_eq!(got.header, published);
    // By the time it is announced, a reader sees it.
    assert!(store.entry(&published.id()).unwrap().is_some());
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, thread) = open(dir.path(), &me);
    for i in 1..=3u64 {
        assert_eq!(
            store
                .audit(format!("{{\"n\":{i}}}").into_bytes())
                .await
                .unwrap(),
            i
        );
    }
    drop(store);
    thread.join();
    let (store, _thread) = open(dir.path(), &me);
    let log = store.audit_log(2, 10).unwrap();
    assert_eq!(
        log,
        vec![(2, b"{\"n\":2}".to_vec()), (3, b"{\"n\":3}".to_vec())]
    );
    assert_eq!(store.audit(b"{}".to_vec()).await.unwrap(), 4);
}

/// Set in the environment of the child process of the crash test.
const CRASH_CHILD_DIR: &str = "SHERD_TEST_STORE_CRASH_DIR";

/// Not a test on its own: the child of `kill_9_loses_nothing_acknowledged`.
/// It publishes until killed, printing each acknowledged seq.
#[tokio::test]
#[ignore = "run as a child process by kill_9_loses_nothing_acknowledged"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_DIR) else {
        return;
    };
    let me = Arc::new(Keypair::from_seed(&[9; 32]));
    let (store, _thread) = open(Path::new(&dir), &me);
    let mut stdout = std::io::stdout();
    // Many writers at once, so batches with several commands are in flight
    // when the kill lands.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..8 {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..100_000 {
                let payload = format!("{{\"w\":{w},\"i\":{i}}}").into_bytes();
                let h = store
                    .publish(PayloadKind::Public, payload, NOW)
                    .await
                    .unwrap();
                if tx.send(h.header().seq).is_err() {
                    return;
                }
            }
        });
    }
    while let Some(seq) = rx.recv().await {
        writeln!(stdout, "ACK {seq}").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let me = Keypair::from_seed(&[9; 32]);
    let mut highest_acked = 0u64;
    for round in 0..3 {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "store::tests::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acks_this_round = 0;
        for line in stdout.lines() {
            let Some(seq) = line
                .unwrap()
                .strip_prefix("ACK ")
                .map(|s| s.parse::<u64>().unwrap())
            else {
                continue;
            };
            highest_acked = highest_acked.max(seq);
            acks_this_round += 1;
            if acks_this_round >= 300 + 97 * round || Instant::now() > deadline {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(
            acks_this_round > 0,
            "round {round}: the child acknowledged nothing"
        );

        let rt = tokio::runtime::Runtime::new().unwrap();
        let me = Arc::new(Keypair::from_seed(&[9; 32]));
        let (store, thread) = open(dir.path(), &me);
        let head = store.head(&me.feed_id()).unwrap().unwrap().header().seq;
        assert!(
            head >= highest_acked,
            "round {round}: acked {highest_acked}, store has {head}"
        );
        assert_feed_valid(&store, &me, head);
        drop(store);
        thread.join();
        drop(rt);
    }
    let _ = me;
}

#[tokio::test]
async fn contacts_are_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let alice = Keypair::from_seed(&[2; 32]).feed_id();
    let bob = Keypair::from_seed(&[3; 32]).feed_id();
    let (store, thread) = open(dir.path(), &me);
    assert!(!store.set_contact(alice, "alice".into()).await.unwrap());
    assert!(!store.set_contact(bob, "bob".into()).await.unwrap());
    assert!(
        store.set_contact(bob, "Bob".into()).await.unwrap(),
        "a rename"
    );
    assert!(store.remove_contact(alice).await.unwrap());
    assert!(!store.remove_contact(alice).await.unwrap());
    drop(store);
    thread.join();
    let (store, _thread) = open(dir.path(), &me);
    assert_eq!(store.contacts().unwrap(), vec![(bob, "Bob".to_owned())]);
}

#[test]
fn a_store_of_another_layout_version_is_refused() {
    use redb::{ReadableDatabase, TableDefinition};

    use super::StoreError;
    use super::tables::{META, SCHEMA_VERSION};

    // A store as version 1 wrote it: payloads keyed by entry id.
    const PAYLOADS_V1: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("payloads");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
        txn.open_table(PAYLOADS_V1)
            .unwrap()
            .insert(&[7; 32], b"{}".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let err = Store::open(&path, me.clone()).unwrap_err();
    assert!(
        matches!(err, StoreError::Version { found: 1, expected } if expected == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "store layout version 1 is not the one this sherdd reads ({SCHEMA_VERSION}); use the matching sherdd version"
        )
    );
    // Refused means untouched: the old version and table are still there.
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 1);
    let payloads = txn.open_table(PAYLOADS_V1).unwrap();
    assert!(payloads.get(&[7; 32]).unwrap().is_some());
    drop(me);
}
