//! Two-node catch-up over the real network layer on 127.0.0.1: node A holds
//! a feed of N entries, node B (empty, following A) dials A and the clock
//! runs until B has committed all N. Each B is fresh; A is filled once.
//!
//! `cargo bench -p sherd-daemon --bench catchup` (prints a table; figures go
//! to BENCHMARKS.md). Medians of 3 runs per size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sherd_daemon::net::{self, NetworkConfig};
use sherd_daemon::store::Store;
use sherd_protocol::Keypair;

mod common;

use common::{NOW, catch_up_payload, signed_feed};

const RUNS: usize = 3;

fn config() -> NetworkConfig {
    NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        ..NetworkConfig::default()
    }
}

async fn wait_for_listen(handle: &net::NetworkHandle) -> libp2p::Multiaddr {
    loop {
        if let Some(a) = handle
            .listen_addrs()
            .await
            .expect("listen addrs")
            .into_iter()
            .next()
        {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn catch_up(n: usize) -> Vec<Duration> {
    let alice = Arc::new(Keypair::from_seed(&[1; 32]));
    let dir_a = tempfile::tempdir().expect("tempdir");
    let (store_a, _thread_a) =
        Store::open(&dir_a.path().join("a.redb"), alice.clone()).expect("open");
    for run in signed_feed(&alice, n, catch_up_payload).chunks(2000) {
        let out = store_a
            .ingest(alice.feed_id(), run.to_vec(), NOW)
            .await
            .expect("fill");
        assert_eq!(out.appended, run.len());
    }
    let (net_a, _task_a) = net::spawn(&alice, store_a.clone(), config(), vec![]).expect("net a");
    let addr = wait_for_listen(&net_a).await;

    let mut times = Vec::new();
    for r in 0..RUNS {
        let bob = Arc::new(Keypair::from_seed(&[10 + r as u8; 32]));
        let dir_b = tempfile::tempdir().expect("tempdir");
        let (store_b, thread_b) =
            Store::open(&dir_b.path().join("b.redb"), bob.clone()).expect("open");
        let (net_b, task_b) =
            net::spawn(&bob, store_b.clone(), config(), vec![alice.feed_id()]).expect("net b");
        let start = Instant::now();
        net_b.dial(addr.clone()).await.expect("dial");
        loop {
            let have = store_b
                .head(&alice.feed_id())
                .expect("head")
                .map_or(0, |h| h.header().seq);
            if have as usize >= n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "catch-up of {n} stalled at {have}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(start.elapsed());
        net_b.shutdown().await;
        let _ = task_b.await;
        drop(store_b);
        drop(net_b);
        let _ = tokio::task::spawn_blocking(move || thread_b.join()).await;
    }
    net_a.shutdown().await;
    times
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("two-node catch-up on 127.0.0.1 (validate + commit every entry), {RUNS} runs each");
    println!(
        "{:>8}  {:>10}  {:>10}  {:>10}  {:>12}",
        "entries", "min", "median", "max", "entries/s"
    );
    for n in [10_000usize, 100_000] {
        let mut times = rt.block_on(catch_up(n));
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{n:>8}  {:>9.3}s  {:>9.3}s  {:>9.3}s  {:>12.0}",
            times[0].as_secs_f64(),
            median.as_secs_f64(),
            times[times.len() - 1].as_secs_f64(),
            n as f64 / median.as_secs_f64()
        );
    }
}
