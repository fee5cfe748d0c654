//! Flow 1, first half, between real sherdd processes on 127.0.0.1: a 3-of-5
//! backup is made through the control API and every custodian's node
//! verifies its shard and acknowledges it; the owner sees five acks.

use std::time::Duration;

use base64::Engine as _;
use sherd_api::CreateBackup;
use sherd_testnet::Testnet;

const LIMIT: Duration = Duration::from_secs(60);
const CUSTODIANS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_of_5_backup_is_acknowledged_by_all_five_custodians() {
    tokio::time::timeout(LIMIT, async {
        let mut net = Testnet::new().unwrap();
        net.start("owner").await.unwrap();
        for c in CUSTODIANS {
            net.start(c).await.unwrap();
            net.connect(c, "owner").await.unwrap();
            net.befriend("owner", c).await.unwrap();
        }
        let owner = net.node("owner").unwrap();
        let custodians: Vec<String> = CUSTODIANS
            .iter()
            .map(|c| net.node(c).unwrap().feed_id().to_owned())
            .collect();

        // A custodian that is not a contact is refused, and nothing is made.
        let stranger = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5";
        let refused = owner
            .client()
            .create_backup(&CreateBackup {
                label: "wallet seed".into(),
                threshold: 1,
                custodians: vec![stranger.into()],
                secret: base64::engine::general_purpose::STANDARD
                    .encode(b"s")
                    .into(),
                ..CreateBackup::default()
            })
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("is not a contact"),
            "{refused}"
        );
        assert!(owner.client().backups().await.unwrap().is_empty());

        let secret = b"correct horse battery staple".to_vec();
        let made = owner
            .client()
            .create_backup(&CreateBackup {
                label: "wallet seed".into(),
                threshold: 3,
                custodians: custodians.clone(),
                secret: base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .into(),
                ..CreateBackup::default()
            })
            .await
            .unwrap();
        assert_eq!(made.threshold, 3);
        assert_eq!(made.custodians.len(), 5);
        assert_eq!(made.custodians[0].name.as_deref(), Some("c1"));

        // Every custodian verifies its shard and acknowledges it.
        loop {
            let shown = owner.client().backup(&made.id).await.unwrap();
            if shown.custodians.iter().all(|c| c.acked) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for c in CUSTODIANS {
            let held = net.node(c).unwrap().client().shards().await.unwrap();
            assert_eq!(held.len(), 1, "{c} holds one shard");
            assert_eq!(held[0].backup, made.id);
            assert_eq!(held[0].owner_name.as_deref(), Some("owner"));
        }

        // The secret is nowhere in the owner's store in the clear.
        let store = std::fs::read(owner.data_dir().join("store.redb")).unwrap();
        assert!(!store.windows(secret.len()).any(|w| w == secret.as_slice()));
    })
    .await
    .expect("bounded in time");
}
