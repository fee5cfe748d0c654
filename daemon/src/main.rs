//! `sherdd`, the sherd node: durable feed store, libp2p replication, the
//! protocol engine and the control API. Only this crate touches the store and
//! the network.
//!
//! The node itself is built under issue 3; until then this binary states its
//! purpose and exits non-zero, so nothing mistakes it for a working node.

fn main() -> std::process::ExitCode {
    eprintln!(
        "sherdd {}: the sherd node is not built yet (see issue 3); \
         the protocol core lives in the sherd-protocol crate",
        sherd_api::VERSION
    );
    std::process::ExitCode::FAILURE
}
