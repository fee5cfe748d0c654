//! What the daemon's benches share: a signed feed to replicate or ingest.

use sherd_daemon::store::IncomingEntry;
use sherd_protocol::Keypair;
use sherd_protocol::entry::{PayloadKind, SignedHeader};

/// The timestamp of every bench entry.
pub(crate) const NOW: u64 = 1_700_000_000_000;

/// A feed of `n` entries by `author`, entry `i` carrying `payload(i)`.
pub(crate) fn signed_feed(
    author: &Keypair,
    n: usize,
    payload: impl Fn(usize) -> Vec<u8>,
) -> Vec<IncomingEntry> {
    let mut out: Vec<IncomingEntry> = Vec::with_capacity(n);
    for i in 0..n {
        let payload = payload(i);
        let header = SignedHeader::sign_next(
            author,
            out.last().map(|e| &e.header),
            NOW,
            PayloadKind::Public,
            &payload,
        )
        .expect("sign");
        out.push(IncomingEntry {
            header,
            payload: Some(payload),
        });
    }
    out
}

/// About the size of a small boxed entry's payload: what catch-up carries.
pub(crate) fn catch_up_payload(i: usize) -> Vec<u8> {
    format!(
        "{{\"type\":\"about\",\"version\":1,\"name\":\"entry {i:08}\",\"description\":\"{}\"}}",
        "x".repeat(120)
    )
    .into_bytes()
}
