//! Store throughput: durable appends (commit before ack) and catch-up ingest.
//!
//! `cargo bench -p sherd-daemon --bench store`. Figures go to BENCHMARKS.md.
//!
//! `cargo bench -p sherd-daemon --bench store -- ingest_growth` runs instead
//! a store-only catch-up (no network): one feed of 100k entries ingested in
//! runs of 1000, timed per 10k, three times, to show whether the cost per
//! entry grows with the feed's size.
//!
//! `cargo bench -p sherd-daemon --bench store -- erase_scrub` times erasing
//! one payload (the deletion, then the scrub: a copy of the whole store
//! renamed over it) in stores of 10k and 100k entries, five times each.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use sherd_daemon::store::{Store, StoreThread};
use sherd_protocol::Keypair;
use sherd_protocol::entry::PayloadKind;

mod common;

use common::{NOW, catch_up_payload, signed_feed};

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
    let entries = signed_feed(&peer, N, |i| {
        format!("{{\"type\":\"about\",\"version\":1,\"name\":\"n{i}\"}}").into_bytes()
    });
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

/// Store-only catch-up: 100k entries of one feed in runs of 1000 (the sync
/// batch size), timed per block of 10k. Flat blocks mean a flat cost per entry.
fn ingest_growth() {
    const N: usize = 100_000;
    const RUN: usize = 1_000;
    const BLOCK: usize = 10_000;
    const RUNS: usize = 3;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let peer = Keypair::from_seed(&[2; 32]);
    let entries = signed_feed(&peer, N, catch_up_payload);
    println!("store-only ingest of {N} entries in runs of {RUN}, seconds per {BLOCK}, {RUNS} runs");
    let mut totals = Vec::new();
    for _ in 0..RUNS {
        let (dir, store, thread) = fresh_store();
        let mut blocks = Vec::new();
        let start = std::time::Instant::now();
        let mut block_start = start;
        rt.block_on(async {
            for (i, run) in entries.chunks(RUN).enumerate() {
                let out = store
                    .ingest(peer.feed_id(), run.to_vec(), NOW)
                    .await
                    .expect("ingest");
                assert_eq!(out.appended, run.len());
                if ((i + 1) * RUN).is_multiple_of(BLOCK) {
                    blocks.push(block_start.elapsed().as_secs_f64());
                    block_start = std::time::Instant::now();
                }
            }
        });
        let total = start.elapsed().as_secs_f64();
        totals.push(total);
        let blocks: Vec<String> = blocks.iter().map(|b| format!("{b:.3}")).collect();
        println!(
            "total {total:.3}s ({:.0} entries/s); per 10k: {}",
            N as f64 / total,
            blocks.join(" ")
        );
        drop(store);
        thread.join();
        drop(dir);
    }
    totals.sort_by(f64::total_cmp);
    println!(
        "median {:.3}s, {:.0} entries/s",
        totals[RUNS / 2],
        N as f64 / totals[RUNS / 2]
    );
}

/// The cost of an erasure, which copies the store: per store size, five
/// erasures of one payload each, and the store file's size.
fn erase_scrub() {
    const SIZES: [usize; 2] = [10_000, 100_000];
    const ERASURES: usize = 5;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let peer = Keypair::from_seed(&[2; 32]);
    for n in SIZES {
        let entries = signed_feed(&peer, n, catch_up_payload);
        let (dir, store, thread) = fresh_store();
        let mut times = Vec::new();
        rt.block_on(async {
            for run in entries.chunks(1_000) {
                store
                    .ingest(peer.feed_id(), run.to_vec(), NOW)
                    .await
                    .expect("ingest");
            }
            for i in 0..ERASURES {
                let id = entries[i * (n / ERASURES)].header.id();
                let start = std::time::Instant::now();
                let erased = store.erase_payloads(vec![id]).await.expect("erase");
                times.push(start.elapsed().as_secs_f64());
                assert_eq!(erased, 1);
            }
        });
        let bytes = std::fs::metadata(dir.path().join("s.redb")).map_or(0, |m| m.len());
        times.sort_by(f64::total_cmp);
        let shown: Vec<String> = times.iter().map(|t| format!("{:.0}", t * 1000.0)).collect();
        println!(
            "erase one payload in a store of {n} entries ({:.1} MiB): median {:.0} ms (ms: {})",
            bytes as f64 / (1024.0 * 1024.0),
            times[ERASURES / 2] * 1000.0,
            shown.join(" ")
        );
        drop(store);
        thread.join();
        drop(dir);
    }
}

criterion_group!(benches, durable_append, ingest);

fn main() {
    if std::env::args().any(|a| a == "ingest_growth") {
        ingest_growth();
        return;
    }
    if std::env::args().any(|a| a == "erase_scrub") {
        erase_scrub();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
