//! The JSON Schemas (draft 2020-12) of sherd's content types, embedded with
//! `include_str!`: one schema per type in `v1/`, and the shared definitions
//! (`v1/defs.schema.json`) that they reference with `$ref`.
//!
//! This crate is data and nothing else: no I/O, no validation code, no
//! dependencies. Valid and invalid examples live in `examples/`, and
//! `tests/drift.rs` checks schemas and examples against
//! `sherd_protocol::content`, so the two cannot drift apart.
//!
//! A validator resolves the schemas' `$ref`s offline by registering [`DEFS`]
//! under [`DEFS_ID`] (no schema here is ever fetched from the network: the
//! `sherd.invalid` host does not exist on purpose).

/// Every content type with a schema, as its `type` string (the same list, in
/// the same order, as `sherd_protocol::content::CONTENT_TYPES`).
pub const CONTENT_TYPES: [&str; 14] = [
    "about",
    "contact",
    "root",
    "shard",
    "ack",
    "request",
    "reply",
    "forward",
    "deny",
    "revoke",
    "grant",
    "redeemed",
    "challenge",
    "proof",
];

/// The `$id` of the shared definitions, which the content schemas reference.
pub const DEFS_ID: &str = "https://sherd.invalid/schemas/v1/defs.schema.json";

/// The shared definitions (ids, feed ids, 32-byte values, sealed bytes,
/// bounded strings and numbers), as JSON text.
pub const DEFS: &str = include_str!("../v1/defs.schema.json");

/// The schema of a content type, as JSON text, or `None` for a type sherd
/// does not know.
pub fn schema(content_type: &str) -> Option<&'static str> {
    Some(match content_type {
        "about" => include_str!("../v1/about.schema.json"),
        "contact" => include_str!("../v1/contact.schema.json"),
        "root" => include_str!("../v1/root.schema.json"),
        "shard" => include_str!("../v1/shard.schema.json"),
        "ack" => include_str!("../v1/ack.schema.json"),
        "request" => include_str!("../v1/request.schema.json"),
        "reply" => include_str!("../v1/reply.schema.json"),
        "forward" => include_str!("../v1/forward.schema.json"),
        "deny" => include_str!("../v1/deny.schema.json"),
        "revoke" => include_str!("../v1/revoke.schema.json"),
        "grant" => include_str!("../v1/grant.schema.json"),
        "redeemed" => include_str!("../v1/redeemed.schema.json"),
        "challenge" => include_str!("../v1/challenge.schema.json"),
        "proof" => include_str!("../v1/proof.schema.json"),
        _ => return None,
    })
}
