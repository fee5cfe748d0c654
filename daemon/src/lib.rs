//! The sherd node as a library: the durable store, the node's keys,
//! replication over libp2p and (as issue 3 lands) the protocol engine and the
//! control API. `sherdd` (src/main.rs) is thin glue over it.
//!
//! Only this crate touches the disk and the network. It never logs a secret:
//! key material and recovered secrets live in zeroizing types with redacted
//! `Debug`.

pub mod api;
pub mod clock;
pub mod config;
pub mod control;
pub mod engine;
pub mod keys;
pub mod net;
pub mod node;
pub mod rng;
pub mod store;
