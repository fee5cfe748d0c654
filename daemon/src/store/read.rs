//! Reads, each in its own MVCC read transaction: they see the last commit and
//! never wait for the writer.

use redb::{Database, ReadableDatabase, ReadableTable};
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::feed::ForkProof;
use sherd_protocol::{EntryId, FeedId};

use super::StoreError;
use super::tables::{AUDIT, CONTACTS, ENTRIES, ENTRY_IDS, FORKS, HEADS, PAYLOADS};

/// An entry as stored: its signed header, and its payload unless erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The signed header.
    pub header: SignedHeader,
    /// The payload; `None` once erased.
    pub payload: Option<Vec<u8>>,
}

fn decode(author: &[u8; 32], seq: u64, bytes: &[u8; 182]) -> Result<SignedHeader, StoreError> {
    SignedHeader::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("entry {} #{seq}: {e}", hex_prefix(author))))
}

fn hex_prefix(bytes: &[u8; 32]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub(super) fn head(db: &Database, author: &FeedId) -> Result<Option<SignedHeader>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let heads = txn.open_table(HEADS).map_err(StoreError::db)?;
    let Some(seq) = heads.get(author.as_bytes()).map_err(StoreError::db)? else {
        return Ok(None);
    };
    let seq = seq.value();
    let entries = txn.open_table(ENTRIES).map_err(StoreError::db)?;
    let bytes = entries
        .get((author.as_bytes(), seq))
        .map_err(StoreError::db)?
        .ok_or_else(|| StoreError::Corrupt(format!("head {seq} of {author} is missing")))?;
    decode(author.as_bytes(), seq, bytes.value()).map(Some)
}

pub(super) fn entries(
    db: &Database,
    author: &FeedId,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let entries = txn.open_table(ENTRIES).map_err(StoreError::db)?;
    let payloads = txn.open_table(PAYLOADS).map_err(StoreError::db)?;
    let key = author.as_bytes();
    let mut out = Vec::new();
    for item in entries
        .range((key, from_seq)..=(key, u64::MAX))
        .map_err(StoreError::db)?
        .take(limit)
    {
        let (k, v) = item.map_err(StoreError::db)?;
        let seq = k.value().1;
        let header = decode(key, seq, v.value())?;
        let payload = payloads
            .get((key, seq))
            .map_err(StoreError::db)?
            .map(|p| p.value().to_vec());
        out.push(StoredEntry { header, payload });
    }
    Ok(out)
}

pub(super) fn entry(db: &Database, id: &EntryId) -> Result<Option<StoredEntry>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let ids = txn.open_table(ENTRY_IDS).map_err(StoreError::db)?;
    let Some(place) = ids.get(id.as_bytes()).map_err(StoreError::db)? else {
        return Ok(None);
    };
    let (author, seq) = place.value();
    let entries = txn.open_table(ENTRIES).map_err(StoreError::db)?;
    let bytes = entries
        .get((author, seq))
        .map_err(StoreError::db)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {id} is indexed but missing")))?;
    let header = decode(author, seq, bytes.value())?;
    let payloads = txn.open_table(PAYLOADS).map_err(StoreError::db)?;
    let payload = payloads
        .get((author, seq))
        .map_err(StoreError::db)?
        .map(|p| p.value().to_vec());
    Ok(Some(StoredEntry { header, payload }))
}

pub(super) fn fork(db: &Database, author: &FeedId) -> Result<Option<ForkProof>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let forks = txn.open_table(FORKS).map_err(StoreError::db)?;
    let Some(bytes) = forks.get(author.as_bytes()).map_err(StoreError::db)? else {
        return Ok(None);
    };
    ForkProof::decode(bytes.value())
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("fork proof of {author}")))
}

pub(super) fn audit_log(
    db: &Database,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let audit = txn.open_table(AUDIT).map_err(StoreError::db)?;
    audit
        .range(from..)
        .map_err(StoreError::db)?
        .take(limit)
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            Ok((k.value(), v.value().to_vec()))
        })
        .collect()
}

pub(super) fn contacts(db: &Database) -> Result<Vec<(FeedId, String)>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::db)?;
    let contacts = txn.open_table(CONTACTS).map_err(StoreError::db)?;
    contacts
        .iter()
        .map_err(StoreError::db)?
        .map(|item| {
            let (k, v) = item.map_err(StoreError::db)?;
            let feed = FeedId::from_bytes(k.value())
                .map_err(|e| StoreError::Corrupt(format!("contact key: {e}")))?;
            Ok((feed, v.value().to_owned()))
        })
        .collect()
}
