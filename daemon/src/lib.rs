//! The sherd node as a library: the durable store, the node's keys,
//! replication over libp2p, the protocol engine, the control API and the
//! notifiers. `sherdd` (src/main.rs) is thin glue over it.
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
pub mod notify;
pub mod rng;
pub mod store;
