//! The durable store: every feed entry, payload, head, fork proof and audit
//! record of the node, in one redb database.
//!
//! One thread owns every write ([`writer`]): commands arrive on a channel, a
//! batch of them is applied in one write transaction and committed with
//! immediate durability and two-phase commit, and only then is each caller
//! answered and each new entry announced to subscribers. So nothing is
//! acknowledged or gossiped before it is on disk, and `kill -9` at any moment
//! loses nothing acknowledged: redb's commit is atomic.
//!
//! Every entry goes through [`sherd_protocol::feed::Feed`] validation inside
//! the writer, against the committed head, so the store never holds an entry
//! that does not verify, whatever raced to write it. The signatures of an
//! ingested run are checked before it reaches the writer, on another thread
//! ([`Store::check_run`]); the writer takes them as checked only for the
//! exact entries the check names (`CheckedSignatures`). Sync submits a
//! feed's runs in order without waiting for each commit
//! ([`Store::submit_run`]). Reads ([`Store::head`], [`Store::entries`],
//! ...) run in their own MVCC read transactions on any thread and never wait
//! for the writer.
//!
//! Erasing payloads rewrites the database without them (`store/scrub.rs`),
//! so erased bytes do not linger in freed pages; readers then move to the
//! new file through [`DbSlot`].
//!
//! The entry-id index and the heads are derived from the entries;
//! [`Store::reindex`] rebuilds them offline (`store/reindex.rs`).

mod engine;
mod read;
mod reindex;
mod scrub;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;

use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::{CheckedSignatures, EntryError, ForkProof};
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair, RequestId};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use engine::{EngineUpdate, EngineWrite};
pub use read::StoredEntry;
pub use reindex::{ReindexError, ReindexReport};
#[cfg(test)]
pub(crate) use scrub::files_containing;

/// How many commands the writer takes into one transaction at most.
const MAX_BATCH: usize = 512;
/// Pending commands before callers wait: back-pressure instead of memory.
const QUEUE_DEPTH: usize = 4096;
/// Committed entries kept for slow subscribers before they lag.
const ANNOUNCE_DEPTH: usize = 4096;

/// Why a store operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("store database error: {0}")]
    Database(String),
    /// The database was written by another version of sherd's store layout.
    #[error(
        "store layout version {found} is not the one this sherdd reads ({expected}); use the matching sherdd version"
    )]
    Version {
        /// The version on disk.
        found: u64,
        /// The version this code reads.
        expected: u64,
    },
    /// A stored record does not decode: the file was damaged outside redb.
    #[error("store record damaged: {0}")]
    Corrupt(String),
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is shut down")]
    Closed,
    /// An entry of our own could not be made (payload too large).
    #[error("cannot publish: {0}")]
    Publish(String),
}

impl StoreError {
    fn db(e: impl std::fmt::Display) -> Self {
        Self::Database(e.to_string())
    }
}

/// An entry received from a peer: the signed header and, unless it was
/// erased upstream, the payload.
#[derive(Debug, Clone)]
pub struct IncomingEntry {
    /// The signed header.
    pub header: SignedHeader,
    /// The payload, if the peer has it.
    pub payload: Option<Vec<u8>>,
}

/// What became of a run of entries offered to [`Store::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// How many leading entries of the run were held already (skipped).
    pub skipped: usize,
    /// How many entries were appended: the ones after the skipped ones.
    pub appended: usize,
    /// Why the rest of the run was not taken, if it was not.
    pub stopped_by: Option<EntryError>,
    /// The feed's head after the ingest (0 if empty).
    pub head_seq: u64,
}

/// A run of one author's entries whose signatures are checked
/// ([`Store::check_run`]), ready for [`Store::submit_run`].
#[derive(Debug)]
pub struct CheckedRun {
    author: FeedId,
    run: Vec<IncomingEntry>,
    checked: Box<CheckedSignatures>,
}

/// A run queued for the writer ([`Store::submit_run`]).
#[derive(Debug)]
#[must_use = "the run's outcome is only known once committed"]
pub struct PendingIngest(oneshot::Receiver<Result<IngestOutcome, StoreError>>);

impl PendingIngest {
    /// Waits until the run is committed (or refused) and says what became of it.
    pub async fn committed(self) -> Result<IngestOutcome, StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

/// A committed entry, announced to subscribers after its commit.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The entry's author, validated (so subscribers need not check the key again).
    pub author: FeedId,
    /// The signed header.
    pub header: SignedHeader,
    /// The payload, if stored.
    pub payload: Option<Arc<Vec<u8>>>,
}

enum Command {
    Ingest {
        author: FeedId,
        run: Vec<IncomingEntry>,
        /// The run's signatures, checked before it reached the writer (boxed:
        /// it holds the author's key, the largest field of any command).
        checked: Box<CheckedSignatures>,
        now_ms: u64,
        reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
    },
    Publish {
        kind: PayloadKind,
        payload: Vec<u8>,
        timestamp_ms: u64,
        reply: oneshot::Sender<Result<SignedHeader, StoreError>>,
    },
    ErasePayloads {
        ids: Vec<EntryId>,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    Audit {
        record: Vec<u8>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    SetContact {
        feed: FeedId,
        name: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    RemoveContact {
        feed: FeedId,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    EngineWrite {
        write: EngineWrite,
        reply: oneshot::Sender<Result<Vec<SignedHeader>, StoreError>>,
    },
}

/// The database in use. The writer replaces it after a scrub; a reader takes
/// the current one for the length of its read transaction, so a reader that
/// started on the old file finishes on it.
#[derive(Clone)]
pub(crate) struct DbSlot {
    current: Arc<RwLock<Arc<redb::Database>>>,
    path: PathBuf,
}

impl DbSlot {
    fn new(db: redb::Database, path: &Path) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(db))),
            path: path.to_path_buf(),
        }
    }

    pub(crate) fn get(&self) -> Arc<redb::Database> {
        // A writer that panicked mid-swap left either the old or the new
        // handle in place: both are whole databases.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, db: redb::Database) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(db);
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// A cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    // Fields drop in this order. The database handle goes before the command
    // sender: when the last `Store` is dropped, the writer (which holds the
    // last database handle) exits only after this one is gone, so a joined
    // `StoreThread` means the database is closed and can be opened again.
    db: DbSlot,
    commands: mpsc::Sender<Command>,
    announce: broadcast::Sender<Committed>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The writer thread; join it after dropping every [`Store`] handle to be
/// sure the last commit is done.
#[derive(Debug)]
pub struct StoreThread(JoinHandle<()>);

impl StoreThread {
    /// Waits for the writer to finish its last batch and exit.
    pub fn join(self) {
        // A panic in the writer has already been reported by the panic hook;
        // there is nothing more to do with it here.
        let _ = self.0.join();
    }
}

impl Store {
    /// Opens (or creates) the store at `path`; `me` signs the node's own entries.
    pub fn open(path: &Path, me: Arc<Keypair>) -> Result<(Self, StoreThread), StoreError> {
        Self::open_with_announce_depth(path, me, ANNOUNCE_DEPTH)
    }

    /// Rebuilds the derived tables (the entry-id index and the feed heads)
    /// of the store at `path` from its entries, checking every feed's chain
    /// on the way; offline: refused while a daemon has the store open. One
    /// transaction: on any error nothing is written.
    pub fn reindex(path: &Path) -> Result<ReindexReport, ReindexError> {
        reindex::run(path)
    }

    /// [`Store::open`] keeping only `depth` announcements for a slow
    /// subscriber: tests use it to make subscribers lag.
    pub(crate) fn open_with_announce_depth(
        path: &Path,
        me: Arc<Keypair>,
        depth: usize,
    ) -> Result<(Self, StoreThread), StoreError> {
        let db = scrub::finish_interrupted(writer::open_database(path)?, path)?;
        let db = DbSlot::new(db, path);
        let (commands, rx) = mpsc::channel(QUEUE_DEPTH);
        let (announce, _) = broadcast::channel(depth);
        let thread = writer::spawn(db.clone(), me, rx, announce.clone())?;
        Ok((
            Self {
                commands,
                db,
                announce,
            },
            StoreThread(thread),
        ))
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Validates a run of `author`'s entries against the committed head and
    /// appends the longest valid prefix; returns once it is committed.
    ///
    /// The same as [`Store::check_run`], then [`Store::submit_run`], then
    /// waiting for the commit.
    pub async fn ingest(
        &self,
        author: FeedId,
        run: Vec<IncomingEntry>,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        let checked = Self::check_run(author, run).await?;
        self.submit_run(checked, now_ms).await?.committed().await
    }

    /// Checks the signatures of a run of `author`'s entries, the costly half
    /// of validation, on a blocking thread: the one writer thread then only
    /// checks the chain against the head and commits, and another run's
    /// signatures can be checked while it does.
    pub async fn check_run(
        author: FeedId,
        run: Vec<IncomingEntry>,
    ) -> Result<CheckedRun, StoreError> {
        tokio::task::spawn_blocking(move || {
            let headers: Vec<SignedHeader> = run.iter().map(|e| e.header.clone()).collect();
            let checked = Box::new(CheckedSignatures::check(&author, &headers));
            CheckedRun {
                author,
                run,
                checked,
            }
        })
        .await
        .map_err(|e| StoreError::Database(format!("signature check task failed: {e}")))
    }

    /// Hands a checked run to the writer and returns as soon as it is queued:
    /// runs are applied in the order they were submitted, so a caller that
    /// submits a feed's runs in order can have several on their way to the
    /// disk at once (the writer commits what is queued in one transaction).
    pub async fn submit_run(
        &self,
        run: CheckedRun,
        now_ms: u64,
    ) -> Result<PendingIngest, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Ingest {
                author: run.author,
                run: run.run,
                checked: run.checked,
                now_ms,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(PendingIngest(rx))
    }

    /// Signs and appends an entry to the node's own feed; returns once committed.
    pub async fn publish(
        &self,
        kind: PayloadKind,
        payload: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<SignedHeader, StoreError> {
        self.call(|reply| Command::Publish {
            kind,
            payload,
            timestamp_ms,
            reply,
        })
        .await
    }

    /// Erases these entries' payloads (the headers stay) and scrubs the
    /// store, so the bytes are in no file any more; returns once both are
    /// durable, with how many payloads there were to erase.
    pub async fn erase_payloads(&self, ids: Vec<EntryId>) -> Result<usize, StoreError> {
        self.call(|reply| Command::ErasePayloads { ids, reply })
            .await
    }

    /// Appends an audit record (JSON bytes); returns its sequence number.
    pub async fn audit(&self, record: Vec<u8>) -> Result<u64, StoreError> {
        self.call(|reply| Command::Audit { record, reply }).await
    }

    /// Names `feed` as a contact (or renames it); true if it was one already.
    pub async fn set_contact(&self, feed: FeedId, name: String) -> Result<bool, StoreError> {
        self.call(|reply| Command::SetContact { feed, name, reply })
            .await
    }

    /// Forgets a contact; true if it was one.
    pub async fn remove_contact(&self, feed: FeedId) -> Result<bool, StoreError> {
        self.call(|reply| Command::RemoveContact { feed, reply })
            .await
    }

    /// Commits what the protocol engine concluded from one step (entries to
    /// publish, records, audit lines, its cursor) in one transaction; returns
    /// the headers of the entries published, in order.
    pub async fn engine_write(&self, write: EngineWrite) -> Result<Vec<SignedHeader>, StoreError> {
        self.call(|reply| Command::EngineWrite { write, reply })
            .await
    }

    /// Every feed held, with the sequence number of its head.
    pub fn feeds(&self) -> Result<Vec<(FeedId, u64)>, StoreError> {
        engine::feeds(&self.db.get())
    }

    /// The protocol engine's cursors: per feed, the last entry it processed.
    pub fn engine_cursors(&self) -> Result<Vec<(FeedId, u64)>, StoreError> {
        engine::cursors(&self.db.get())
    }

    /// The owner's record of a backup (JSON), if this node made it.
    pub fn backup_record(&self, id: &BackupId) -> Result<Option<Vec<u8>>, StoreError> {
        engine::record(&self.db.get(), engine::RecordTable::Backups, id)
    }

    /// Every backup this node made, as (id, record JSON).
    pub fn backup_records(&self) -> Result<Vec<(BackupId, Vec<u8>)>, StoreError> {
        engine::records(&self.db.get(), engine::RecordTable::Backups)
    }

    /// The record of a shard this node holds as a custodian (JSON).
    pub fn held_shard_record(&self, id: &BackupId) -> Result<Option<Vec<u8>>, StoreError> {
        engine::record(&self.db.get(), engine::RecordTable::HeldShards, id)
    }

    /// Every shard this node holds, as (backup id, record JSON).
    pub fn held_shard_records(&self) -> Result<Vec<(BackupId, Vec<u8>)>, StoreError> {
        engine::records(&self.db.get(), engine::RecordTable::HeldShards)
    }

    /// The record of a recovery this node collects (JSON).
    pub fn recovery_record(&self, id: &BackupId) -> Result<Option<Vec<u8>>, StoreError> {
        engine::record(&self.db.get(), engine::RecordTable::Recoveries, id)
    }

    /// Every recovery this node collects, as (backup id, record JSON).
    pub fn recovery_records(&self) -> Result<Vec<(BackupId, Vec<u8>)>, StoreError> {
        engine::records(&self.db.get(), engine::RecordTable::Recoveries)
    }

    /// What this node was granted as a trustee for backup `id` (JSON).
    pub fn grant_record(&self, id: &BackupId) -> Result<Option<Vec<u8>>, StoreError> {
        engine::record(&self.db.get(), engine::RecordTable::Grants, id)
    }

    /// Every grant this node holds, as (backup id, record JSON).
    pub fn grant_records(&self) -> Result<Vec<(BackupId, Vec<u8>)>, StoreError> {
        engine::records(&self.db.get(), engine::RecordTable::Grants)
    }

    /// The record of request `id` made by `requester` (JSON).
    pub fn request_record(
        &self,
        requester: &FeedId,
        id: &RequestId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        engine::request(&self.db.get(), requester, id)
    }

    /// Every request record, as (requester, id, record JSON).
    pub fn request_records(&self) -> Result<Vec<(FeedId, RequestId, Vec<u8>)>, StoreError> {
        engine::requests(&self.db.get())
    }

    /// Whether recovery requests from `feed` are approved without asking.
    pub fn auto_approve(&self, feed: &FeedId) -> Result<bool, StoreError> {
        engine::auto_approve(&self.db.get(), feed)
    }

    /// Every contact with its name, in feed order.
    pub fn contacts(&self) -> Result<Vec<(FeedId, String)>, StoreError> {
        read::contacts(&self.db.get())
    }

    /// Entries committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.announce.subscribe()
    }

    /// The latest entry of a feed.
    pub fn head(&self, author: &FeedId) -> Result<Option<SignedHeader>, StoreError> {
        read::head(&self.db.get(), author)
    }

    /// Up to `limit` entries of a feed from `from_seq` on, in order.
    pub fn entries(
        &self,
        author: &FeedId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        read::entries(&self.db.get(), author, from_seq, limit)
    }

    /// An entry by id.
    pub fn entry(&self, id: &EntryId) -> Result<Option<StoredEntry>, StoreError> {
        read::entry(&self.db.get(), id)
    }

    /// The fork proof of a feed, if it forked.
    pub fn fork(&self, author: &FeedId) -> Result<Option<ForkProof>, StoreError> {
        read::fork(&self.db.get(), author)
    }

    /// Audit records from `from` on, up to `limit`, as (sequence, JSON bytes).
    pub fn audit_log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        read::audit_log(&self.db.get(), from, limit)
    }
}

#[cfg(test)]
mod tests;
