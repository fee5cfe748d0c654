//! What an erasure leaves on disk: the bytes of an entry's payload as a node
//! stores them (through the TEST ONLY route `GET /v1/test/entry/{id}`, so
//! the node must run with `--test-hooks`), and the files of a data dir that
//! hold them. A scenario reads the bytes before the erasure, finds them on
//! disk (the control), and finds them in no file after it.

use std::path::{Path, PathBuf};

use sherd_api::ClientError;
use sherd_testnet::Testnet;
use tokio::time::Instant;

use crate::flow::{self, Failure, On as _};

/// The payload of entry `id` as the node `name` stores it: `None` once
/// erased. Fails if the node does not store the entry at all.
pub(super) async fn payload_of(
    net: &Testnet,
    name: &str,
    id: &str,
) -> Result<Option<Vec<u8>>, Failure> {
    let entry = match net.node(name)?.client().test_entry(id).await {
        Ok(entry) => entry,
        Err(ClientError::Api { status: 404, .. }) => {
            return Err(Failure::on(
                name,
                format!(
                    "{name} does not store entry {id} (or runs without --test-hooks, \
                     which `GET /v1/test/entry` needs)"
                ),
            ));
        }
        Err(e) => return Err(e).on(name),
    };
    entry
        .payload_hex
        .map(|hex| unhex(&hex).on(name))
        .transpose()
}

/// The payload of entry `id` on `name`, which must still hold it.
pub(super) async fn stored_payload(
    net: &Testnet,
    name: &str,
    id: &str,
) -> Result<Vec<u8>, Failure> {
    payload_of(net, name, id).await?.ok_or_else(|| {
        Failure::on(
            name,
            format!("{name} stores entry {id} without its payload: erased already"),
        )
    })
}

/// Lowercase hex to bytes.
fn unhex(hex: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        hex.len().is_multiple_of(2),
        "odd-length hex from the test route"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("bad hex from the test route at {i}"))
        })
        .collect()
}

/// Every regular file under `dir` (recursively) whose bytes contain
/// `needle`. A file that vanishes while the directory is read (the store's
/// scrub copy, renamed over the store) is skipped: what replaced it is read
/// under its own name.
pub(super) fn files_holding(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => anyhow::bail!("cannot list {}: {e}", dir.display()),
        };
        for entry in entries {
            let entry = entry.map_err(|e| anyhow::anyhow!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
                };
                if contains(&bytes, needle) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `needle` occurs in `haystack`: candidates by the needle's first
/// 8 bytes read as one word, then a full comparison.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(head) = needle.first_chunk::<8>() else {
        return !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle);
    };
    let head = u64::from_ne_bytes(*head);
    let last = match haystack.len().checked_sub(needle.len()) {
        Some(last) => last,
        None => return false,
    };
    haystack[..last + 8].windows(8).enumerate().any(|(at, w)| {
        w.first_chunk::<8>()
            .is_some_and(|w| u64::from_ne_bytes(*w) == head)
            && haystack.get(at..at + needle.len()) == Some(needle)
    })
}

/// The files of `name`'s data dir that hold `needle`.
pub(super) fn on_disk(net: &Testnet, name: &str, needle: &[u8]) -> Result<Vec<PathBuf>, Failure> {
    files_holding(net.node(name)?.data_dir(), needle).on(name)
}

/// Waits until no file of `name`'s data dir holds `needle` (an erasure is
/// committed before the store is scrubbed, so this may take a moment);
/// returns how long it waited, in ms.
pub(super) async fn wait_gone(
    net: &Testnet,
    until: Instant,
    name: &str,
    what: &str,
    needle: &[u8],
) -> Result<u64, Failure> {
    let started = Instant::now();
    flow::poll(
        until,
        name,
        &format!("the bytes of {what} to be in no file of its data dir"),
        || async {
            let files = on_disk(net, name, needle)?;
            Ok(if files.is_empty() {
                Ok(())
            } else {
                Err(format!("they are still in {files:?}"))
            })
        },
    )
    .await?;
    Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{contains, files_holding, unhex};

    #[test]
    fn a_needle_is_found_wherever_it_sits() {
        let needle: Vec<u8> = (0..40u8).collect();
        for at in [0, 1, 7, 100] {
            for tail in [0, 1, 9] {
                let mut hay = vec![0xee; at];
                hay.extend_from_slice(&needle);
                hay.extend(std::iter::repeat_n(0xdd, tail));
                assert!(contains(&hay, &needle), "at {at}, tail {tail}");
                hay[at + 20] ^= 1;
                assert!(!contains(&hay, &needle), "at {at}, tail {tail}");
            }
        }
        assert!(!contains(&needle[..39], &needle));
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abcdef", b"ced"));
        assert!(!contains(b"abc", b""));
    }

    #[test]
    fn files_are_searched_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), b"xx needle in a haystack xx").unwrap();
        std::fs::write(dir.path().join("sub/b"), b"a needle in a haystack").unwrap();
        std::fs::write(dir.path().join("c"), b"no needl in a haystack").unwrap();
        let found = files_holding(dir.path(), b"needle in a hay").unwrap();
        assert_eq!(found, vec![dir.path().join("a"), dir.path().join("sub/b")]);
    }

    #[test]
    fn hex_is_decoded() {
        assert_eq!(unhex("00ff7a").unwrap(), vec![0, 255, 0x7a]);
        assert!(unhex("0").is_err());
        assert!(unhex("zz").is_err());
    }
}
