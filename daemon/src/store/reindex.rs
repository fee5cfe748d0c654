//! `sherdd reindex`: rebuilds the store's derived tables from the entries
//! themselves, offline.
//!
//! Two tables are derived: `entry_ids` (entry id -> (author, seq)) and
//! `heads` (author -> latest seq). Everything they say can be read again from
//! `entries`, so when they are lost or suspect, [`run`] clears them, walks
//! `entries` in key order (feed by feed, seq by seq), checks each feed's chain
//! as [`Feed`] checks an incoming run (contiguous from 1, each backlink the id
//! of the entry before, every signature, in batches), and writes both tables
//! again. All of it is one write transaction committed with immediate
//! durability: a damaged feed aborts the transaction, so a failed reindex
//! leaves the store exactly as it found it.
//!
//! What this module never does: touch a table that is primary state
//! (`entries`, `payloads`, `forks`, `audit`, `contacts`, `meta`, the
//! engine's), open the identity key, or run beside a daemon. redb locks the
//! file for its one writer; an open that finds it locked is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{DatabaseError, ReadableTable, StorageError, Table};
use sherd_protocol::FeedId;
use sherd_protocol::entry::SignedHeader;
use sherd_protocol::feed::{EntryError, Feed};

use super::StoreError;
use super::tables::{ENTRIES, ENTRY_IDS, HEADS, META, SCHEMA_VERSION};
use super::writer::begin;

/// Entries verified in one batch: enough that batch verification pays, few
/// enough that a long feed is never held in memory whole.
pub(super) const BATCH: usize = 4096;

/// What a reindex did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReindexReport {
    /// Feeds whose chains were checked and indexed.
    pub feeds: u64,
    /// Entries indexed, all feeds together.
    pub entries: u64,
    /// From opening the store to the commit.
    pub elapsed: Duration,
}

/// Why a reindex did not happen. Whatever the variant, nothing was written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// Another process has the store open: a daemon is running on the data dir.
    #[error("a daemon is running on this data dir; stop it first ({} is open in another process)", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// There is no store file: nothing to reindex, and none is created.
    #[error("no store at {}: nothing to reindex (is the data dir right?)", path.display())]
    NoStore {
        /// The store file looked for.
        path: PathBuf,
    },
    /// A feed's stored chain does not verify at `seq`: an entry is missing
    /// there, or it does not decode, link to the one before, or carry its
    /// author's signature.
    #[error(
        "the store is damaged: feed {feed}, entry #{seq}: {problem}; nothing was changed (restore the data dir from a backup)"
    )]
    Damaged {
        /// The feed (boxed: a `FeedId` carries its decompressed key).
        feed: Box<FeedId>,
        /// The first entry of the feed that does not verify.
        seq: u64,
        /// The rule it breaks.
        problem: EntryError,
    },
    /// Entries are stored under a key that is not a valid feed id.
    #[error(
        "the store is damaged: entries are stored under {key}, which is not a feed id; nothing was changed (restore the data dir from a backup)"
    )]
    BadAuthor {
        /// The 32 key bytes, in hex.
        key: String,
    },
    /// The store could not be read or written, or is of another layout version.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rebuilds `entry_ids` and `heads` of the store at `path` from its entries.
/// See the module documentation.
pub(super) fn run(path: &Path) -> Result<ReindexReport, ReindexError> {
    let started = Instant::now();
    // `open`, not `create`: a mistyped data dir must not leave an empty store behind.
    let db = match redb::Database::builder().open(path) {
        Ok(db) => db,
        // A daemon holds the file's lock for as long as it runs. (A redb of
        // another locking generation holding it says the same thing.)
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
            return Err(ReindexError::InUse {
                path: path.to_owned(),
            });
        }
        Err(DatabaseError::Storage(StorageError::Io(e)))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(ReindexError::NoStore {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(StoreError::db(e).into()),
    };

    // Every early return below drops `txn` uncommitted: redb rolls it back.
    let txn = begin(&db)?;
    let found = txn
        .open_table(META)
        .map_err(StoreError::db)?
        .get("schema_version")
        .map_err(StoreError::db)?
        .map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(StoreError::Version {
                found,
                expected: SCHEMA_VERSION,
            }
            .into());
        }
        None => {
            return Err(StoreError::Corrupt(format!(
                "{} has no layout version: it is not a sherd store",
                path.display()
            ))
            .into());
        }
    }

    // Deleting a table frees its pages at once; opening it again makes it empty.
    txn.delete_table(ENTRY_IDS).map_err(StoreError::db)?;
    txn.delete_table(HEADS).map_err(StoreError::db)?;
    let mut report = ReindexReport {
        feeds: 0,
        entries: 0,
        elapsed: Duration::ZERO,
    };
    {
        let entries = txn.open_table(ENTRIES).map_err(StoreError::db)?;
        let mut out = Index {
            ids: txn.open_table(ENTRY_IDS).map_err(StoreError::db)?,
            heads: txn.open_table(HEADS).map_err(StoreError::db)?,
        };
        let mut walk: Option<FeedWalk> = None;
        for item in entries.iter().map_err(StoreError::db)? {
            let (key, value) = item.map_err(StoreError::db)?;
            let (author, seq) = key.value();
            if walk.as_ref().is_none_or(|w| w.feed.as_bytes() != author) {
                if let Some(done) = walk.take() {
                    report.entries += done.finish(&mut out)?;
                    report.feeds += 1;
                }
                let feed = FeedId::from_bytes(author).map_err(|_| ReindexError::BadAuthor {
                    key: author.iter().map(|b| format!("{b:02x}")).collect(),
                })?;
                walk = Some(FeedWalk::new(feed));
            }
            if let Some(w) = walk.as_mut() {
                w.push(seq, value.value(), &mut out)?;
            }
        }
        if let Some(done) = walk.take() {
            report.entries += done.finish(&mut out)?;
            report.feeds += 1;
        }
    }
    txn.commit().map_err(StoreError::db)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The two tables being rebuilt.
struct Index<'t> {
    ids: Table<'t, &'static [u8; 32], (&'static [u8; 32], u64)>,
    heads: Table<'t, &'static [u8; 32], u64>,
}

/// One feed's walk: the chain checked so far and the entries waiting for
/// their batch signature check.
struct FeedWalk {
    feed: FeedId,
    chain: Feed,
    pending: Vec<(SignedHeader, Option<&'static [u8]>)>,
    indexed: u64,
}

impl FeedWalk {
    fn new(feed: FeedId) -> Self {
        Self {
            feed,
            chain: Feed::new(feed),
            pending: Vec::with_capacity(BATCH),
            indexed: 0,
        }
    }

    fn damaged(&self, seq: u64, problem: EntryError) -> ReindexError {
        ReindexError::Damaged {
            feed: Box::new(self.feed),
            seq,
            problem,
        }
    }

    /// Takes the entry stored at `seq`; checks and indexes a full batch.
    fn push(
        &mut self,
        seq: u64,
        bytes: &[u8; 182],
        out: &mut Index<'_>,
    ) -> Result<(), ReindexError> {
        let header = SignedHeader::decode(bytes).map_err(|e| self.damaged(seq, e.into()))?;
        // The key is where readers look the entry up, so it must be the
        // entry's own seq; the chain check sees only the header.
        if header.header().seq != seq {
            return Err(self.damaged(
                seq,
                EntryError::WrongSeq {
                    expected: seq,
                    found: header.header().seq,
                },
            ));
        }
        // Payloads are not re-read: the indexes derive from headers alone,
        // and an erased payload leaves the chain valid.
        self.pending.push((header, None));
        if self.pending.len() >= BATCH {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Checks the pending entries as the next run of the chain and indexes them.
    fn flush(&mut self, out: &mut Index<'_>) -> Result<(), ReindexError> {
        // `u64::MAX` as the clock: an entry's timestamp was judged against the
        // clock when it arrived, and is no property of the stored chain.
        let (valid, stopped) = self.chain.append_run(&self.pending, u64::MAX);
        if let Some(problem) = stopped {
            let seq = self
                .pending
                .get(valid)
                .map_or(self.chain.seq().saturating_add(1), |(h, _)| h.header().seq);
            return Err(self.damaged(seq, problem));
        }
        let author = self.feed.as_bytes();
        for (header, _) in self.pending.drain(..) {
            out.ids
                .insert(header.id().as_bytes(), (author, header.header().seq))
                .map_err(StoreError::db)?;
        }
        self.indexed += valid as u64;
        Ok(())
    }

    /// Checks and indexes what is pending, sets the feed's head; returns the
    /// feed's number of entries.
    fn finish(mut self, out: &mut Index<'_>) -> Result<u64, ReindexError> {
        self.flush(out)?;
        out.heads
            .insert(self.feed.as_bytes(), self.chain.seq())
            .map_err(StoreError::db)?;
        Ok(self.indexed)
    }
}
