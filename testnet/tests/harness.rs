//! The harness itself, end to end: real sherdd processes on 127.0.0.1,
//! driven through the control API, cleaned up whatever happens.

use std::time::Duration;

use sherd_testnet::Testnet;

const LIMIT: Duration = Duration::from_secs(30);

fn alive(pid: u32) -> bool {
    // A reaped or exited process has no /proc entry (or is a zombie).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_connect_befriend_and_survive_a_kill() {
    tokio::time::timeout(LIMIT, async {
        let mut net = Testnet::new().unwrap();
        net.start("alice").await.unwrap();
        net.start("bob").await.unwrap();
        net.connect("bob", "alice").await.unwrap();
        net.befriend("alice", "bob").await.unwrap();

        let bob = net.node("bob").unwrap();
        let status = bob.client().status().await.unwrap();
        assert_eq!(status.peers, 1);
        let alice_feed = net.node("alice").unwrap().feed_id().to_owned();
        assert!(
            status
                .feeds
                .iter()
                .any(|f| f.feed == alice_feed && f.name.as_deref() == Some("alice"))
        );

        // A crash and a restart from the same data dir: same identity, same contacts.
        let before = net.node("alice").unwrap().pid().unwrap();
        net.kill("alice").await.unwrap();
        assert!(!alive(before), "alice is dead after SIGKILL");
        net.restart("alice").await.unwrap();
        let alice = net.node("alice").unwrap();
        assert_eq!(alice.feed_id(), alice_feed);
        let contacts = alice.client().contacts().await.unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].name, "bob");

        // A clean stop ends the process and removes its socket.
        let pid = net.node("bob").unwrap().pid().unwrap();
        net.stop("bob").await.unwrap();
        assert!(!alive(pid));
        assert!(
            !net.node("bob")
                .unwrap()
                .data_dir()
                .join("sherdd.sock")
                .exists()
        );
    })
    .await
    .expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_testnet_kills_every_daemon() {
    let pids = tokio::time::timeout(LIMIT, async {
        let mut net = Testnet::new().unwrap();
        net.start("a").await.unwrap();
        net.start("b").await.unwrap();
        let pids: Vec<u32> = net.daemons().iter().filter_map(|d| d.pid()).collect();
        assert_eq!(pids.len(), 2);
        drop(net);
        pids
    })
    .await
    .expect("bounded in time");
    // SIGKILL is immediate; give the kernel and tokio's reaper a moment.
    for _ in 0..100 {
        if pids.iter().all(|p| !alive(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("daemons outlived the testnet: {pids:?}");
}
