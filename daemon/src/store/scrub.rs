//! Scrubbing: how an erased payload really leaves the data dir.
//!
//! redb is copy-on-write: removing a value frees its pages but does not
//! overwrite them, so the bytes of an erased payload (a revoked or redeemed
//! shard, a delivered reply) would stay readable in `store.redb` until the
//! pages happen to be reused. So after a transaction that erased payloads
//! commits, the writer copies every live row into a fresh file beside the
//! store, commits it durably, and renames it over the store: the erased
//! bytes are then in no file of the data dir. An erasure is acknowledged only
//! after that.
//!
//! The erasing transaction also sets `scrub_pending` in `meta`, and the copy
//! does not carry it. So a crash anywhere in between is finished at the next
//! open: a half-written copy is deleted (the store itself was not touched
//! until the atomic rename), and a store still marked pending is scrubbed
//! before anything else runs.
//!
//! The copy refuses to run if the store holds a table it does not know: it
//! would rather leave erased bytes in place than drop a table's rows.
//!
//! What a program cannot promise: the old file's blocks go back to the
//! filesystem, which does not overwrite them; on SSDs (wear levelling) and
//! copy-on-write filesystems no overwrite from user space would be reliable
//! anyway. Full-disk encryption is the answer there (ARCHITECTURE.md).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    Value, WriteTransaction,
};

use super::StoreError;
use super::tables::{
    AUDIT, AUTO_APPROVE, BACKUPS, CONTACTS, ENGINE_CURSOR, ENTRIES, ENTRY_IDS, FORKS, GRANTS,
    HEADS, HELD_SHARDS, META, PAYLOADS, RECOVERIES, REQUESTS,
};
use super::writer::begin;

/// The `meta` key set by a transaction that erased payloads.
const PENDING: &str = "scrub_pending";

/// Where the copy is written before it replaces the store.
pub(super) fn copy_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".scrub");
    store.with_file_name(name)
}

/// In the transaction that erases: marks the store as holding erased bytes
/// until the next scrub if `erased` is true. Returns whether a scrub is due,
/// which it also is when an earlier one failed.
pub(super) fn mark_pending(txn: &WriteTransaction, erased: bool) -> Result<bool, StoreError> {
    let mut meta = txn.open_table(META).map_err(StoreError::db)?;
    if erased {
        meta.insert(PENDING, 1).map_err(StoreError::db)?;
        return Ok(true);
    }
    Ok(meta.get(PENDING).map_err(StoreError::db)?.is_some())
}

/// Whether an erasure committed without its scrub (a crash in between).
fn is_pending(db: &Database) -> Result<bool, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let meta = txn.open_table(META).map_err(StoreError::db)?;
    Ok(meta.get(PENDING).map_err(StoreError::db)?.is_some())
}

/// At open: deletes a copy a crash left behind and finishes a scrub the
/// crash interrupted. Returns the database to use.
pub(super) fn finish_interrupted(db: Database, store: &Path) -> Result<Database, StoreError> {
    remove_copy(store)?;
    if is_pending(&db)? {
        tracing::info!("finishing the scrub of erased payloads that a stop interrupted");
        return rewrite(&db, store);
    }
    Ok(db)
}

/// Copies every live row of `db` into a fresh file, commits it durably and
/// renames it over `store`; returns the new database, which replaces `db`
/// (the old file's inode goes with its last handle). On error the store is
/// as it was (still marked pending, so the scrub is tried again).
pub(super) fn rewrite(db: &Database, store: &Path) -> Result<Database, StoreError> {
    let copy = copy_path(store);
    remove_copy(store)?;
    let result = write_copy(db, &copy).and_then(|fresh| {
        fs::rename(&copy, store).map_err(|e| {
            StoreError::Database(format!(
                "cannot replace the store with its scrubbed copy: {e}"
            ))
        })?;
        sync_dir(store)?;
        Ok(fresh)
    });
    if result.is_err() {
        // Best effort: the copy is useless now, and the next open deletes it anyway.
        let _ = fs::remove_file(&copy);
    }
    result
}

fn write_copy(db: &Database, copy: &Path) -> Result<Database, StoreError> {
    let fresh = Database::builder().create(copy).map_err(StoreError::db)?;
    let from = db.begin_read().map_err(StoreError::db)?;
    check_every_table_is_known(&from)?;
    let to = begin(&fresh)?;
    copy_table(&from, &to, ENTRIES)?;
    copy_table(&from, &to, PAYLOADS)?;
    copy_table(&from, &to, ENTRY_IDS)?;
    copy_table(&from, &to, HEADS)?;
    copy_table(&from, &to, FORKS)?;
    copy_table(&from, &to, AUDIT)?;
    copy_table(&from, &to, CONTACTS)?;
    copy_table(&from, &to, ENGINE_CURSOR)?;
    copy_table(&from, &to, BACKUPS)?;
    copy_table(&from, &to, HELD_SHARDS)?;
    copy_table(&from, &to, REQUESTS)?;
    copy_table(&from, &to, RECOVERIES)?;
    copy_table(&from, &to, AUTO_APPROVE)?;
    copy_table(&from, &to, GRANTS)?;
    copy_table(&from, &to, META)?;
    {
        let mut meta = to.open_table(META).map_err(StoreError::db)?;
        meta.remove(PENDING).map_err(StoreError::db)?;
    }
    to.commit().map_err(StoreError::db)?;
    Ok(fresh)
}

/// The tables [`write_copy`] copies, by name.
const COPIED: [&str; 15] = [
    "entries",
    "payloads",
    "entry_ids",
    "heads",
    "forks",
    "audit",
    "contacts",
    "engine_cursor",
    "backups",
    "held_shards",
    "requests",
    "recoveries",
    "auto_approve",
    "grants",
    "meta",
];

fn check_every_table_is_known(txn: &ReadTransaction) -> Result<(), StoreError> {
    let known: BTreeSet<&str> = COPIED.into_iter().collect();
    for table in txn.list_tables().map_err(StoreError::db)? {
        if !known.contains(table.name()) {
            return Err(StoreError::Database(format!(
                "the store holds a table this sherdd does not know ({}); not scrubbing it",
                table.name()
            )));
        }
    }
    Ok(())
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<'_, K, V>,
) -> Result<(), StoreError> {
    let source = from.open_table(table).map_err(StoreError::db)?;
    let mut target = to.open_table(table).map_err(StoreError::db)?;
    for row in source.iter().map_err(StoreError::db)? {
        let (key, value) = row.map_err(StoreError::db)?;
        target
            .insert(key.value(), value.value())
            .map_err(StoreError::db)?;
    }
    Ok(())
}

fn remove_copy(store: &Path) -> Result<(), StoreError> {
    match fs::remove_file(copy_path(store)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Database(format!(
            "cannot remove an unfinished scrub copy: {e}"
        ))),
    }
}

/// Makes the rename durable: the directory entry is what changed.
fn sync_dir(store: &Path) -> Result<(), StoreError> {
    let dir = match store.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Database(format!("cannot sync the data dir: {e}")))
}

/// Tests: every file under `dir` whose bytes contain `needle`.
#[cfg(test)]
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file()
                && std::fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}
