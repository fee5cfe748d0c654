//! sherd's protocol core: the formats, the cryptography, the validation rules
//! and the recovery state machine, as pure functions over bytes.
//!
//! What this crate never does: I/O of any kind (files, sockets, processes),
//! async, reading a clock, or drawing from a global RNG. Callers pass the time
//! (milliseconds since the Unix epoch) and a [`rand_core::CryptoRng`]. No input,
//! however malformed, makes it panic: every failure is a typed error.
//!
//! The map:
//! - [`identity`]: ed25519 node keys, feed ids (libp2p PeerId strings) and the
//!   libsodium-compatible conversion to X25519.
//! - [`entry`] and [`feed`]: signed feed entries and their validation against
//!   the head of a feed, fork proofs, batch verification.
//! - [`envelope`]: the multi-recipient box that carries private content.
//! - [`content`]: the typed JSON content of entries, parsed strictly.
//! - [`backup`], [`shard`] and [`recovery`]: the social backup pipeline, from a
//!   secret to sealed shards and back.
//!
//! PROTOCOL.md at the root of the repository specifies every byte.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod backup;
mod bytes;
pub mod content;
pub mod entry;
pub mod envelope;
pub mod feed;
pub mod health;
pub mod identity;
pub mod ids;
mod nacl;
pub mod recovery;
pub mod sealed;
pub mod secret;
pub mod shard;

pub use identity::{FeedId, Keypair, X25519PublicKey, X25519SecretKey};
pub use ids::{BackupId, EntryId, RequestId};
