use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sherd_protocol::Keypair;
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::{EntryError, Feed};

use super::scrub::files_containing;
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
    assert_eq!(store.erase_payloads(vec![first.id()]).await.unwrap(), 1);
    assert!(
        store.erase_payloads(vec![first.id()]).await.unwrap() == 0,
        "erasing twice finds nothing"
    );
    let stored = store.entry(&first.id()).unwrap().unwrap();
    assert_eq!(stored.header, first);
    assert_eq!(stored.payload, None);
    assert_feed_valid(&store, &me, 2);
}

/// A payload no other test writes, so finding its bytes means finding it.
fn marked_payload(seed: u8) -> (Vec<u8>, Vec<u8>) {
    let marker: String = (0..48u32)
        .map(|i| char::from(b'a' + ((u32::from(seed) * 7 + i * 13) % 26) as u8))
        .collect();
    let payload = format!("{{\"secret\":\"{marker}\"}}").into_bytes();
    (payload, marker.into_bytes())
}

#[tokio::test]
async fn an_erased_payload_leaves_no_byte_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, thread) = open(dir.path(), &me);
    let (secret, marker) = marked_payload(1);
    let (kept, kept_marker) = marked_payload(2);
    for i in 0..50 {
        store
            .publish(
                PayloadKind::Public,
                format!("{{\"i\":{i}}}").into_bytes(),
                NOW,
            )
            .await
            .unwrap();
    }
    let erased = store
        .publish(PayloadKind::Public, secret, NOW)
        .await
        .unwrap();
    let other = store.publish(PayloadKind::Public, kept, NOW).await.unwrap();
    // The control: before the erasure the bytes are there to be found.
    assert_eq!(files_containing(dir.path(), &marker).len(), 1);

    assert_eq!(store.erase_payloads(vec![erased.id()]).await.unwrap(), 1);
    assert_eq!(
        files_containing(dir.path(), &marker),
        Vec::<std::path::PathBuf>::new(),
        "erased bytes must be in no file of the data dir"
    );
    assert_eq!(files_containing(dir.path(), &kept_marker).len(), 1);
    // Readers and the writer carry on with the rewritten store.
    assert_eq!(store.entry(&erased.id()).unwrap().unwrap().payload, None);
    assert!(store.entry(&other.id()).unwrap().unwrap().payload.is_some());
    store
        .publish(PayloadKind::Public, b"{\"after\":1}".to_vec(), NOW)
        .await
        .unwrap();
    assert_feed_valid(&store, &me, 53);
    drop(store);
    thread.join();

    let (store, _thread) = open(dir.path(), &me);
    assert_feed_valid(&store, &me, 53);
    assert_eq!(store.entry(&erased.id()).unwrap().unwrap().payload, None);
}

const ERASE_CHILD_DIR: &str = "SHERD_ERASE_CHILD_DIR";
const ERASE_CHILD_ENTRY: &str = "SHERD_ERASE_CHILD_ENTRY";

/// Not a test on its own: [`a_scrub_a_crash_interrupted_is_finished_at_open`]
/// runs it in a child process. It commits an erasure the way the writer
/// does, then dies before the scrub, without closing the database (a clean
/// close lets redb tidy its file, which a kill -9 would not).
#[test]
#[ignore = "run as a child process by a_scrub_a_crash_interrupted_is_finished_at_open"]
fn erase_then_die_child() {
    use redb::ReadableTable;

    use super::tables::{ENTRY_IDS, META, PAYLOADS};

    let (Ok(dir), Ok(entry)) = (
        std::env::var(ERASE_CHILD_DIR),
        std::env::var(ERASE_CHILD_ENTRY),
    ) else {
        return;
    };
    let id: sherd_protocol::EntryId = entry.parse().unwrap();
    let db = redb::Database::create(Path::new(&dir).join("store.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let ids = txn.open_table(ENTRY_IDS).unwrap();
        let place = ids.get(id.as_bytes()).unwrap().unwrap();
        let (author, seq) = place.value();
        txn.open_table(PAYLOADS)
            .unwrap()
            .remove((author, seq))
            .unwrap()
            .unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("scrub_pending", 1)
            .unwrap();
    }
    txn.commit().unwrap();
    std::fs::write(
        super::scrub::copy_path(&Path::new(&dir).join("store.redb")),
        b"half a copy",
    )
    .unwrap();
    std::process::exit(0);
}

#[tokio::test]
async fn a_scrub_a_crash_interrupted_is_finished_at_open() {
    use redb::ReadableDatabase;

    use super::tables::META;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (secret, marker) = marked_payload(3);
    let erased = {
        let (store, thread) = open(dir.path(), &me);
        let erased = store
            .publish(PayloadKind::Public, secret, NOW)
            .await
            .unwrap();
        for i in 0..50 {
            store
                .publish(
                    PayloadKind::Public,
                    format!("{{\"i\":{i}}}").into_bytes(),
                    NOW,
                )
                .await
                .unwrap();
        }
        drop(store);
        thread.join();
        erased
    };
    let status = Process::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::erase_then_die_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ERASE_CHILD_DIR, dir.path())
        .env(ERASE_CHILD_ENTRY, erased.id().to_string())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !files_containing(dir.path(), &marker).is_empty(),
        "the control: the erasure committed, its bytes still in a freed page"
    );
    assert!(super::scrub::copy_path(&path).exists());

    let (store, thread) = open(dir.path(), &me);
    assert!(files_containing(dir.path(), &marker).is_empty());
    assert!(!super::scrub::copy_path(&path).exists());
    assert_eq!(store.entry(&erased.id()).unwrap().unwrap().payload, None);
    assert_feed_valid(&store, &me, 51);
    drop(store);
    thread.join();
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert!(
        meta.get("scrub_pending").unwrap().is_none(),
        "the scrub is done"
    );
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

// `sherdd reindex` (`store/reindex.rs`).

mod reindex {
    use std::path::Path;
    use std::sync::Arc;

    use redb::{ReadableDatabase, ReadableTable};
    use sherd_protocol::entry::{DecodeError, PayloadKind, SignedHeader};
    use sherd_protocol::feed::EntryError;
    use sherd_protocol::{EntryId, FeedId, Keypair};

    use super::{NOW, chain, open};
    use crate::store::tables::{ENTRIES, ENTRY_IDS, HEADS};
    use crate::store::{IncomingEntry, ReindexError, Store, StoredEntry};

    /// What reads through the derived tables see, and what they must see
    /// again after a reindex.
    #[derive(Debug, PartialEq)]
    struct Seen {
        feeds: Vec<(FeedId, u64)>,
        heads: Vec<Option<SignedHeader>>,
        by_id: Vec<(EntryId, Option<StoredEntry>)>,
        forks: Vec<Option<u64>>,
        contacts: Vec<(FeedId, String)>,
        audit: Vec<(u64, Vec<u8>)>,
    }

    fn seen(store: &Store, authors: &[FeedId]) -> Seen {
        let mut by_id = Vec::new();
        for author in authors {
            for e in store.entries(author, 1, usize::MAX).unwrap() {
                let id = e.header.id();
                by_id.push((id, store.entry(&id).unwrap()));
            }
        }
        Seen {
            feeds: store.feeds().unwrap(),
            heads: authors.iter().map(|a| store.head(a).unwrap()).collect(),
            by_id,
            forks: authors
                .iter()
                .map(|a| store.fork(a).unwrap().map(|p| p.seq()))
                .collect(),
            contacts: store.contacts().unwrap(),
            audit: store.audit_log(1, usize::MAX).unwrap(),
        }
    }

    /// The raw rows of `entry_ids`, `heads` and `entries`.
    #[derive(Debug, PartialEq)]
    struct Raw {
        ids: Vec<([u8; 32], [u8; 32], u64)>,
        heads: Vec<([u8; 32], u64)>,
        entries: Vec<([u8; 32], u64, [u8; 182])>,
    }

    fn raw(path: &Path) -> Raw {
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let ids = txn.open_table(ENTRY_IDS).unwrap();
        let ids = ids
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let (author, seq) = v.value();
                (*k.value(), *author, seq)
            })
            .collect();
        let heads = txn.open_table(HEADS).unwrap();
        let heads = heads
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (*k.value(), v.value())
            })
            .collect();
        let entries = txn.open_table(ENTRIES).unwrap();
        let entries = entries
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let (author, seq) = k.value();
                (*author, seq, *v.value())
            })
            .collect();
        Raw {
            ids,
            heads,
            entries,
        }
    }

    /// Empties both derived tables, behind the store's back.
    fn wipe_index(path: &Path) {
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRY_IDS)
            .unwrap()
            .retain(|_, _| false)
            .unwrap();
        txn.open_table(HEADS).unwrap().retain(|_, _| false).unwrap();
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn reindex_rebuilds_the_entry_id_index_and_the_heads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let me = Arc::new(Keypair::from_seed(&[1; 32]));
        let long = Keypair::from_seed(&[2; 32]);
        let short = Keypair::from_seed(&[3; 32]);
        let forked = Keypair::from_seed(&[4; 32]);
        let authors = [
            me.feed_id(),
            long.feed_id(),
            short.feed_id(),
            forked.feed_id(),
        ];

        let (store, thread) = open(dir.path(), &me);
        // Our own feed, one payload erased.
        let mut first = None;
        for i in 0..20 {
            let h = store
                .publish(
                    PayloadKind::Public,
                    format!("{{\"i\":{i}}}").into_bytes(),
                    NOW,
                )
                .await
                .unwrap();
            first.get_or_insert(h);
        }
        assert_eq!(
            store
                .erase_payloads(vec![first.unwrap().id()])
                .await
                .unwrap(),
            1
        );
        // A feed longer than one verification batch, so the chain is carried
        // from one batch to the next.
        let long_len = super::super::reindex::BATCH + 7;
        let out = store
            .ingest(long.feed_id(), chain(&long, long_len), NOW)
            .await
            .unwrap();
        assert_eq!(out.appended, long_len);
        store
            .ingest(short.feed_id(), chain(&short, 1), NOW)
            .await
            .unwrap();
        // A forked feed: its proof is primary state and stays.
        let entries = chain(&forked, 3);
        store
            .ingest(forked.feed_id(), entries.clone(), NOW)
            .await
            .unwrap();
        let other = SignedHeader::sign_next(
            &forked,
            Some(&entries[0].header),
            NOW,
            PayloadKind::Public,
            b"{}",
        )
        .unwrap();
        store
            .ingest(
                forked.feed_id(),
                vec![IncomingEntry {
                    header: other,
                    payload: None,
                }],
                NOW,
            )
            .await
            .unwrap();
        store
            .set_contact(short.feed_id(), "short".into())
            .await
            .unwrap();
        store.audit(b"{\"n\":1}".to_vec()).await.unwrap();

        let before = seen(&store, &authors);
        assert_eq!(before.by_id.len(), 20 + long_len + 1 + 3);
        assert!(before.by_id.iter().all(|(_, e)| e.is_some()));
        assert_eq!(before.forks[3], Some(2));
        drop(store);
        thread.join();
        let raw_before = raw(&path);

        // Lose both derived tables, and leave a stale row behind in each.
        wipe_index(&path);
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(ENTRY_IDS)
                .unwrap()
                .insert(&[9; 32], (me.feed_id().as_bytes(), 1))
                .unwrap();
            txn.open_table(HEADS)
                .unwrap()
                .insert(long.feed_id().as_bytes(), 2)
                .unwrap();
            txn.commit().unwrap();
        }
        {
            let (store, thread) = open(dir.path(), &me);
            assert_ne!(seen(&store, &authors), before, "the index is broken");
            drop(store);
            thread.join();
        }

        let report = Store::reindex(&path).unwrap();
        assert_eq!(report.feeds, 4);
        assert_eq!(report.entries, before.by_id.len() as u64);

        let raw_after = raw(&path);
        assert_eq!(raw_after.ids, raw_before.ids, "entry_ids, row for row");
        assert_eq!(raw_after.heads, raw_before.heads, "heads, row for row");
        assert_eq!(raw_after.entries, raw_before.entries);
        let (store, thread) = open(dir.path(), &me);
        assert_eq!(seen(&store, &authors), before);
        assert!(store.entry(&EntryId([9; 32])).unwrap().is_none());
        // The writer goes on from the rebuilt head.
        let next = store
            .publish(PayloadKind::Public, b"{}".to_vec(), NOW)
            .await
            .unwrap();
        assert_eq!(next.header().seq, 21);
        drop(store);
        thread.join();

        // A second reindex finds the same.
        assert_eq!(Store::reindex(&path).unwrap().entries, report.entries + 1);
    }

    type EntriesTable<'t> = redb::Table<'t, (&'static [u8; 32], u64), &'static [u8; 182]>;

    /// One way a stored feed can be damaged, and what reindex must say.
    struct Damage {
        name: &'static str,
        /// Changes the `entries` table; gets the damaged feed's entries.
        apply: fn(&mut EntriesTable<'_>, &[IncomingEntry], &Keypair),
        /// The error expected, given the damaged feed.
        expect: fn(&FeedId, &ReindexError) -> bool,
    }

    fn bytes_of(e: &IncomingEntry) -> [u8; 182] {
        *e.header.as_bytes()
    }

    const DAMAGES: &[Damage] = &[
        Damage {
            name: "a flipped signature byte",
            apply: |t, e, _| {
                let mut b = bytes_of(&e[4]);
                b[150] ^= 0x01;
                t.insert((&e[4].header.header().author, 5), &b).unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 5, problem: EntryError::BadSignature } if feed.as_ref() == f),
        },
        Damage {
            name: "a flipped byte of the signed header",
            apply: |t, e, _| {
                let mut b = bytes_of(&e[9]);
                b[100] ^= 0x80; // in the payload hash
                t.insert((&e[9].header.header().author, 10), &b).unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 10, problem: EntryError::BadSignature } if feed.as_ref() == f),
        },
        Damage {
            name: "a missing entry",
            apply: |t, e, _| {
                t.remove((&e[2].header.header().author, 3)).unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 4, problem: EntryError::WrongSeq { expected: 3, found: 4 } } if feed.as_ref() == f),
        },
        Damage {
            name: "a missing first entry",
            apply: |t, e, _| {
                t.remove((&e[0].header.header().author, 1)).unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 2, problem: EntryError::WrongSeq { expected: 1, found: 2 } } if feed.as_ref() == f),
        },
        Damage {
            name: "another validly signed entry in the middle",
            apply: |t, e, kp| {
                let other = SignedHeader::sign_next(
                    kp,
                    Some(&e[1].header),
                    NOW,
                    PayloadKind::Public,
                    b"{}",
                )
                .unwrap();
                t.insert((&e[2].header.header().author, 3), other.as_bytes())
                    .unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 4, problem: EntryError::WrongBacklink } if feed.as_ref() == f),
        },
        Damage {
            name: "a header that does not decode",
            apply: |t, e, _| {
                let mut b = bytes_of(&e[1]);
                b[0] = 2; // format version
                t.insert((&e[1].header.header().author, 2), &b).unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 2, problem: EntryError::Decode(DecodeError::UnknownVersion(2)) } if feed.as_ref() == f),
        },
        Damage {
            name: "an entry stored under another seq",
            apply: |t, e, _| {
                t.insert((&e[5].header.header().author, 7), &bytes_of(&e[5]))
                    .unwrap();
            },
            expect: |f, err| matches!(err, ReindexError::Damaged { feed, seq: 7, problem: EntryError::WrongSeq { expected: 7, found: 6 } } if feed.as_ref() == f),
        },
        Damage {
            name: "an entry stored under another feed",
            apply: |t, e, _| {
                let intruder = Keypair::from_seed(&[0xee; 32]).feed_id();
                t.insert((intruder.as_bytes(), 1), &bytes_of(&e[0]))
                    .unwrap();
            },
            expect: |_, err| {
                let intruder = Keypair::from_seed(&[0xee; 32]).feed_id();
                matches!(err, ReindexError::Damaged { feed, seq: 1, problem: EntryError::WrongAuthor } if **feed == intruder)
            },
        },
        Damage {
            name: "entries under a key that is not a feed id",
            apply: |t, e, _| {
                // The all-zero key is a point of small order.
                t.insert((&[0; 32], 1), &bytes_of(&e[0])).unwrap();
            },
            expect: |_, err| matches!(err, ReindexError::BadAuthor { key } if *key == "00".repeat(32)),
        },
    ];

    #[tokio::test]
    async fn a_damaged_feed_stops_reindex_and_nothing_is_written() {
        for damage in DAMAGES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store.redb");
            let me = Arc::new(Keypair::from_seed(&[1; 32]));
            let a = Keypair::from_seed(&[5; 32]);
            let b = Keypair::from_seed(&[6; 32]);
            // The damaged feed is the one that sorts last, so that a sound
            // feed is reindexed (in the transaction) before the damage is met.
            let (sound, damaged) = if a.feed_id().as_bytes() < b.feed_id().as_bytes() {
                (a, b)
            } else {
                (b, a)
            };
            let damaged_entries = chain(&damaged, 12);
            let (store, thread) = open(dir.path(), &me);
            store
                .ingest(sound.feed_id(), chain(&sound, 12), NOW)
                .await
                .unwrap();
            store
                .ingest(damaged.feed_id(), damaged_entries.clone(), NOW)
                .await
                .unwrap();
            drop(store);
            thread.join();

            wipe_index(&path);
            {
                let db = redb::Database::open(&path).unwrap();
                let txn = db.begin_write().unwrap();
                (damage.apply)(
                    &mut txn.open_table(ENTRIES).unwrap(),
                    &damaged_entries,
                    &damaged,
                );
                txn.commit().unwrap();
            }
            let before = raw(&path);
            assert!(before.ids.is_empty() && before.heads.is_empty());

            let err = Store::reindex(&path).unwrap_err();
            assert!(
                (damage.expect)(&damaged.feed_id(), &err),
                "{}: {err:?}",
                damage.name
            );
            assert!(
                err.to_string().starts_with("the store is damaged: ")
                    && err
                        .to_string()
                        .ends_with("; nothing was changed (restore the data dir from a backup)"),
                "{}: {err}",
                damage.name
            );
            assert_eq!(raw(&path), before, "{}: nothing written", damage.name);
        }
    }

    #[test]
    fn the_damage_is_named_with_the_feed_and_seq() {
        let feed = Keypair::from_seed(&[6; 32]).feed_id();
        let err = ReindexError::Damaged {
            feed: Box::new(feed),
            seq: 4,
            problem: EntryError::WrongBacklink,
        };
        assert_eq!(
            err.to_string(),
            format!(
                "the store is damaged: feed {feed}, entry #4: backlink does not match the head of the feed; nothing was changed (restore the data dir from a backup)"
            )
        );
    }

    #[tokio::test]
    async fn reindex_is_refused_while_the_store_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let me = Arc::new(Keypair::from_seed(&[1; 32]));
        let (store, thread) = open(dir.path(), &me);
        store
            .publish(PayloadKind::Public, b"{}".to_vec(), NOW)
            .await
            .unwrap();
        let err = Store::reindex(&path).unwrap_err();
        assert!(matches!(err, ReindexError::InUse { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "a daemon is running on this data dir; stop it first ({} is open in another process)",
                path.display()
            )
        );
        // The store goes on, untouched.
        store
            .publish(PayloadKind::Public, b"{}".to_vec(), NOW)
            .await
            .unwrap();
        drop(store);
        thread.join();
        let report = Store::reindex(&path).unwrap();
        assert_eq!((report.feeds, report.entries), (1, 2));
    }

    #[test]
    fn reindex_of_a_missing_store_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let err = Store::reindex(&path).unwrap_err();
        assert!(matches!(err, ReindexError::NoStore { .. }), "{err:?}");
        assert!(!path.exists());
    }

    #[test]
    fn reindex_refuses_another_layout_version() {
        use crate::store::StoreError;
        use crate::store::tables::{META, SCHEMA_VERSION};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::reindex(&path).unwrap_err();
        assert!(
            matches!(err, ReindexError::Store(StoreError::Version { found, .. }) if found == SCHEMA_VERSION + 1),
            "{err:?}"
        );
    }
}
