//! Store throughput: durable appends (commit before ack) and catch-up ingest.
//!
//! `cargo bench -p sherd-daemon --bench store`. Figures go to BENCHMARKS.md.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sherd_daemon::store::{IncomingEntry, Store, StoreThread};
use sherd_protocol::Keypair;
use sherd_protocol::entry::{PayloadKind, SignedHeader};

const NOW: u64 = 1_700_000_000_000;

/// An empty store in a temp dir (the dir goes when the tuple is dropped).
fn fresh_store() -> (tempfile::TempDir, Store, StoreThread) {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = Arc::new(Keypair::from_seed(&[1; 32]));
    let (store, thread) = Store::open(&dir.path().join("s.redb"), me).expect("open");
    (dir, store, thread)
}

/// Many concurrent publishers, as a busy node has: the writer group-commits.
fn durable_append(c: &mut Criterion) {
    const N: u64 = 5_000;
    const WRITERS: u64 = 64;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));
    group.bench_function(
        "durable append, 64 concurrent publishers, 5000 entries",
        |b| {
            b.iter_batched(
                fresh_store,
                |(dir, store, thread)| {
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..WRITERS {
                            let store = store.clone();
                            tasks.push(tokio::spawn(async move {
                                for i in 0..N / WRITERS {
                                    let payload = format!(
                                        "{{\"type\":\"about\",\"version\":1,\"name\":\"w{w} {i}\"}}"
                                    );
                                    store
                                        .publish(PayloadKind::Public, payload.into_bytes(), NOW)
                                        .await
                                        .expect("publish");
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.expect("task");
                        }
                    });
                    drop(store);
                    thread.join();
                    drop(dir);
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
}

/// Catch-up: a peer's feed arrives in runs of 500, each validated (batch
/// signature check) and committed.
fn ingest(c: &mut Criterion) {
    const N: usize = 10_000;
    const RUN: usize = 500;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let peer = Keypair::from_seed(&[2; 32]);
    let mut entries: Vec<IncomingEntry> = Vec::with_capacity(N);
    for i in 0..N {
        let payload =
            format!("{{\"type\":\"about\",\"version\":1,\"name\":\"n{i}\"}}").into_bytes();
        let header = SignedHeader::sign_next(
            &peer,
            entries.last().map(|e| &e.header),
            NOW,
            PayloadKind::Public,
            &payload,
        )
        .expect("sign");
        entries.push(IncomingEntry {
            header,
            payload: Some(payload),
        });
    }
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(
        "ingest 10000 entries in runs of 500 (validate + commit)",
        |b| {
            b.iter_batched(
                fresh_store,
                |(dir, store, thread)| {
                    rt.block_on(async {
                        for run in entries.chunks(RUN) {
                            let out = store
                                .ingest(peer.feed_id(), run.to_vec(), NOW)
                                .await
                                .expect("ingest");
                            assert_eq!(out.appended, run.len());
                        }
                    });
                    drop(store);
                    thread.join();
                    drop(dir);
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
}

criterion_group!(benches, durable_append, ingest);
criterion_main!(benches);
