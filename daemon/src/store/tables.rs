//! The store's tables. Keys are fixed-size byte arrays so that redb orders
//! them bytewise: entries of one feed are contiguous and in `seq` order.

use redb::TableDefinition;

/// The layout version written in [`META`]; a store of another version is refused.
///
/// 2: `payloads` keyed by (author, seq) instead of entry id.
pub(crate) const SCHEMA_VERSION: u64 = 2;

/// (author, seq) -> the 182-byte signed header.
pub(crate) const ENTRIES: TableDefinition<'_, (&[u8; 32], u64), &[u8; 182]> =
    TableDefinition::new("entries");
/// (author, seq) -> payload bytes. Kept apart so a payload can be erased while
/// the header stays and the chain still verifies. Keyed like [`ENTRIES`], so
/// a feed's payloads are appended in order: a catch-up batch dirties a few
/// leaf pages at the end of the feed, not one page per entry across the tree.
pub(crate) const PAYLOADS: TableDefinition<'_, (&[u8; 32], u64), &[u8]> =
    TableDefinition::new("payloads");
/// entry id -> (author, seq): find an entry by its id. The one table keyed
/// by a hash, so its inserts land all over the tree. Derived from [`ENTRIES`]:
/// `reindex.rs` rebuilds it (as every table derived from them must be).
pub(crate) const ENTRY_IDS: TableDefinition<'_, &[u8; 32], (&[u8; 32], u64)> =
    TableDefinition::new("entry_ids");
/// author -> seq of the feed's latest entry. Derived from [`ENTRIES`], rebuilt
/// by `reindex.rs`.
pub(crate) const HEADS: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("heads");
/// author -> fork proof (two signed headers): the feed is not followed past it.
pub(crate) const FORKS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("forks");
/// sequence number -> one audit record (JSON). Append-only.
pub(crate) const AUDIT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("audit");
/// feed -> the petname the user gave it. A contact is followed.
pub(crate) const CONTACTS: TableDefinition<'_, &[u8; 32], &str> = TableDefinition::new("contacts");
/// name -> value: the schema version.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

// The protocol engine's state (`crate::engine`). Written only through
// `Command::EngineWrite`, so that what the engine concluded from an entry and
// the cursor past that entry commit together.

/// feed -> seq of the last entry of that feed the engine has processed.
pub(crate) const ENGINE_CURSOR: TableDefinition<'_, &[u8; 32], u64> =
    TableDefinition::new("engine_cursor");
/// backup id -> the owner's record of a backup it made (JSON, `engine::records`).
pub(crate) const BACKUPS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("backups");
/// backup id -> a shard this node holds as a custodian (JSON, `engine::records`).
/// The sealed shard itself stays in the `shard` entry's payload.
pub(crate) const HELD_SHARDS: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("held_shards");
/// requester feed ‖ request id -> a recovery request this node made, was
/// asked, or receives the shards of (JSON, `engine::records`). Its state
/// (pending, released...) is what makes a release happen at most once.
pub(crate) const REQUESTS: TableDefinition<'_, &[u8; 48], &[u8]> = TableDefinition::new("requests");
/// backup id -> a recovery this node collects shards for (JSON,
/// `engine::records`). It points at the `reply` / `forward` entries taken;
/// the shards themselves stay in those entries' payloads.
pub(crate) const RECOVERIES: TableDefinition<'_, &[u8; 32], &[u8]> =
    TableDefinition::new("recoveries");
/// feed -> 1 if recovery requests from that contact are approved without asking.
pub(crate) const AUTO_APPROVE: TableDefinition<'_, &[u8; 32], u8> =
    TableDefinition::new("auto_approve");
/// backup id -> what this node was granted as a trustee (JSON, `engine::records`).
pub(crate) const GRANTS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("grants");
