//! The control API's request and response types and a small client, shared by
//! `sherdd`, `sherdctl` and the testnet, so that the CLI never links libp2p or
//! the store. It never touches the network beyond the daemon's Unix socket.
//!
//! The API itself is built under issue 3.

/// The version of the sherd workspace this API belongs to.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
