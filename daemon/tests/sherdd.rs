//! `sherdd` as a black box: what a user sees when it cannot start.

use std::process::Command;

fn sherdd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sherdd"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHERD_") {
            c.env_remove(key);
        }
    }
    c
}

#[test]
fn a_bad_listen_address_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = sherdd()
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args(["--listen", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sherdd: config `network.listen`: \"nonsense\" is not a multiaddr"),
        "{err}"
    );
    assert!(!dir.path().join("node").exists(), "nothing was created");
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = data.join("identity.key");
    // A valid plain key file (magic, version 1, kind plain, public key, seed).
    let kp = sherd_protocol::Keypair::from_seed(&[7; 32]);
    let mut bytes = b"SHERDKEY\x01\x01".to_vec();
    bytes.extend_from_slice(kp.feed_id().as_bytes());
    bytes.extend_from_slice(&[7; 32]);
    std::fs::write(&key, bytes).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sherdd()
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has mode 0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
}
