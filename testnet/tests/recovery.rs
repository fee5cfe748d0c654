//! The recovery flows between real sherdd processes on 127.0.0.1 (issue 3):
//!
//! - flows 1, 3 and 4 together: a 3-of-5 backup made while one custodian is
//!   offline (it catches up and acks when it returns); the owner asks for its
//!   shards back; a byzantine custodian's shard is refused with a reason; three
//!   honest approvals give the secret back byte for byte, once;
//! - flow 2: the owner's node is deleted; a custodian starts a lost-device
//!   recovery toward the owner's new identity with `sherdctl`; two
//!   co-custodians approve; the new node recovers the secret into a 0600 file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use sherd_api::{Client, CreateBackup, DecideRequest, StartRecovery};
use sherd_testnet::Testnet;

const LIMIT: Duration = Duration::from_secs(120);
const SECRET: &[u8] = b"correct horse battery staple";

/// Polls `probe` every 50 ms until it gives a value (the test's own timeout
/// bounds the wait).
async fn eventually<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn backup(owner: &Client, custodians: Vec<String>, threshold: u8) -> String {
    owner
        .create_backup(&CreateBackup {
            label: "wallet seed".into(),
            threshold,
            custodians,
            secret: base64::engine::general_purpose::STANDARD
                .encode(SECRET)
                .into(),
            ..CreateBackup::default()
        })
        .await
        .unwrap()
        .id
}

async fn wait_for_acks(owner: &Client, id: &str, n: usize) {
    eventually(|| async {
        let shown = owner.backup(id).await.unwrap();
        (shown.custodians.iter().filter(|c| c.acked).count() >= n).then_some(())
    })
    .await;
}

/// Waits until `node` was asked request `id` and it waits for a decision.
async fn wait_for_pending(node: &Client, id: &str) {
    eventually(|| async {
        node.requests()
            .await
            .unwrap()
            .into_iter()
            .any(|r| r.id == id && r.role == "custodian" && r.state == "pending")
            .then_some(())
    })
    .await;
}

fn approve() -> DecideRequest {
    DecideRequest::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_recovers_despite_an_offline_and_a_byzantine_custodian() {
    tokio::time::timeout(LIMIT, async {
        let mut net = Testnet::new().unwrap();
        net.start("owner").await.unwrap();
        for c in ["c1", "c2", "c3", "c4"] {
            net.start(c).await.unwrap();
        }
        // c5 corrupts every shard it releases (a test-only flag).
        net.start_with("c5", &["--test-tamper-releases"])
            .await
            .unwrap();
        let names = ["c1", "c2", "c3", "c4", "c5"];
        for c in names {
            net.connect(c, "owner").await.unwrap();
            net.befriend("owner", c).await.unwrap();
        }
        let feeds: Vec<String> = names
            .iter()
            .map(|c| net.node(c).unwrap().feed_id().to_owned())
            .collect();

        // Flow 3: c4 is offline while the backup is made.
        net.stop("c4").await.unwrap();
        let owner = net.node("owner").unwrap().client().clone();
        let id = backup(&owner, feeds.clone(), 3).await;
        wait_for_acks(&owner, &id, 4).await;
        net.restart("c4").await.unwrap();
        net.connect("c4", "owner").await.unwrap();
        wait_for_acks(&owner, &id, 5).await;

        // Flow 1: the owner asks; nothing is released before approval.
        let request = owner
            .start_recovery(&StartRecovery {
                backup: Some(id.clone()),
                ..StartRecovery::default()
            })
            .await
            .unwrap();
        assert_eq!(request.kind, "owner");
        assert_eq!(request.role, "requester");
        assert_eq!(request.custodians, feeds);
        for c in names {
            wait_for_pending(net.node(c).unwrap().client(), &request.id).await;
        }
        let early = owner.take_secret(&id).await.unwrap_err();
        assert!(early.to_string().contains("not recovered yet"), "{early}");

        // Flow 4: the byzantine custodian's shard is refused with a reason.
        let c5 = net.node("c5").unwrap().client();
        c5.approve(&request.id, &approve()).await.unwrap();
        let refused = eventually(|| async {
            let r = owner.recovery(&id).await.unwrap();
            (!r.rejected.is_empty()).then_some(r)
        })
        .await;
        assert_eq!(refused.rejected[0].custodian, feeds[4]);
        assert!(!refused.rejected[0].reason.is_empty());
        assert_eq!(refused.shards, 0);

        // Three honest approvals; the first custodian's second one is refused.
        let c1 = net.node("c1").unwrap().client();
        let released = c1.approve(&request.id, &approve()).await.unwrap();
        assert_eq!(released.state, "released");
        let twice = c1.approve(&request.id, &approve()).await.unwrap_err();
        assert!(twice.to_string().contains("released"), "{twice}");
        for c in ["c2", "c3"] {
            let node = net.node(c).unwrap().client();
            node.approve(&request.id, &approve()).await.unwrap();
        }
        let done = eventually(|| async {
            let r = owner.recovery(&id).await.unwrap();
            (r.state == "complete").then_some(r)
        })
        .await;
        assert_eq!((done.shards, done.threshold), (3, Some(3)));
        let secret = owner.take_secret(&id).await.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret.secret.as_bytes())
            .unwrap();
        assert_eq!(bytes, SECRET);
        assert_eq!(secret.label, "wallet seed");
        // Once.
        let again = owner.take_secret(&id).await.unwrap_err();
        assert!(again.to_string().contains("handed over already"), "{again}");

        // Each custodian's node released at most one shard, and says so.
        for c in names {
            let audit = net
                .node(c)
                .unwrap()
                .client()
                .audit(sherd_api::AuditQuery::default())
                .await
                .unwrap();
            let released = audit
                .iter()
                .filter(|a| a.record["event"] == "shard_released")
                .count();
            assert!(released <= 1, "{c} released {released} shards");
        }
    })
    .await
    .expect("bounded in time");
}

/// Runs `sherdctl` against `data_dir` and returns its stdout; fails the test
/// with its stderr if it fails.
fn sherdctl(net: &Testnet, data_dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(net.sherdctl())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SHERD_SOCKET")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sherdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_recovers_after_a_custodian_starts_a_lost_device_recovery() {
    tokio::time::timeout(LIMIT, async {
        let mut net = Testnet::new().unwrap();
        net.start("owner").await.unwrap();
        let names = ["c1", "c2", "c3", "c4", "c5"];
        for c in names {
            net.start(c).await.unwrap();
            net.connect(c, "owner").await.unwrap();
            net.befriend("owner", c).await.unwrap();
        }
        let feeds: Vec<String> = names
            .iter()
            .map(|c| net.node(c).unwrap().feed_id().to_owned())
            .collect();
        let old = net.node("owner").unwrap().feed_id().to_owned();
        let id = backup(net.node("owner").unwrap().client(), feeds, 3).await;
        wait_for_acks(net.node("owner").unwrap().client(), &id, 5).await;

        // The device is lost: the owner's node and its key are gone.
        net.remove("owner").await.unwrap();
        net.start("new").await.unwrap();
        let new = net.node("new").unwrap().feed_id().to_owned();
        // The custodians reach each other and the new node; the person behind
        // NEW proved who they are to c1, and NEW follows c1.
        for c in ["c2", "c3", "c4", "c5"] {
            net.connect(c, "c1").await.unwrap();
            net.connect("new", c).await.unwrap();
        }
        net.connect("new", "c1").await.unwrap();
        let c1_feed = net.node("c1").unwrap().feed_id().to_owned();
        net.node("new")
            .unwrap()
            .client()
            .add_contact(&c1_feed, "c1", false)
            .await
            .unwrap();

        // c1 starts it from its own machine, with sherdctl.
        let c1_dir = net.node("c1").unwrap().data_dir().to_owned();
        let started = sherdctl(
            &net,
            &c1_dir,
            &["--json", "request-recovery", "--owner", &old, "--to", &new],
        );
        let request: sherd_api::RecoveryRequest = serde_json::from_str(&started).unwrap();
        assert_eq!(request.kind, "lost_device");
        assert_eq!(request.recipient, new);
        assert_eq!(request.state, "released", "c1's own shard went at once");

        // Two co-custodians approve: one with `approve`, one with `forward
        // --to NEW`, which checks the identity it verified.
        let c2 = net.node("c2").unwrap();
        wait_for_pending(c2.client(), &request.id).await;
        sherdctl(&net, c2.data_dir(), &["approve", &request.id]);
        let c3 = net.node("c3").unwrap();
        wait_for_pending(c3.client(), &request.id).await;
        let wrong = c3
            .client()
            .approve(
                &request.id,
                &DecideRequest {
                    to: Some(old.clone()),
                    ..DecideRequest::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            wrong.to_string().contains("nothing was released"),
            "{wrong}"
        );
        sherdctl(&net, c3.data_dir(), &["forward", &request.id, "--to", &new]);

        // The new identity recovers into a file only its user can read.
        let new_node = net.node("new").unwrap();
        let out = net.root().join("recovered.bin");
        let out_arg = out.to_str().unwrap();
        sherdctl(
            &net,
            new_node.data_dir(),
            &["recover", &id, "--output", out_arg, "--timeout", "60"],
        );
        assert_eq!(std::fs::read(&out).unwrap(), SECRET);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let recovery = new_node.client().recovery(&id).await.unwrap();
        assert_eq!(recovery.owner, old);
        assert_eq!(recovery.state, "delivered");
    })
    .await
    .expect("bounded in time");
}
