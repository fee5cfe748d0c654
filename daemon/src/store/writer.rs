//! The writer thread: the one owner of write transactions.
//!
//! It takes a batch of pending commands (up to `MAX_BATCH`), applies them all
//! in one transaction, commits durably, and only then answers each caller and
//! announces the new entries. One fsync'd commit per batch is what makes
//! appends fast under load without acknowledging anything early. If anything
//! in the batch fails at the database level, the transaction is dropped
//! (aborted) and every caller in it gets the error: nothing half-applied.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::feed::{CheckedSignatures, EntryError, Feed, ForkProof};
use sherd_protocol::{EntryId, FeedId, Keypair};
use tokio::sync::{broadcast, mpsc};

use super::tables::{
    AUDIT, AUTO_APPROVE, BACKUPS, CONTACTS, ENGINE_CURSOR, ENTRIES, ENTRY_IDS, FORKS, GRANTS,
    HEADS, HELD_SHARDS, META, PAYLOADS, RECOVERIES, REQUESTS, SCHEMA_VERSION,
};
use super::{
    Command, Committed, DbSlot, IncomingEntry, IngestOutcome, MAX_BATCH, StoreError, scrub,
};

/// Opens or creates the database, creates every table, checks the layout version.
pub(super) fn open_database(path: &Path) -> Result<Database, StoreError> {
    let db = Database::builder().create(path).map_err(StoreError::db)?;
    let txn = begin(&db)?;
    {
        let mut meta = txn.open_table(META).map_err(StoreError::db)?;
        let found = meta
            .get("schema_version")
            .map_err(StoreError::db)?
            .map(|v| v.value());
        match found {
            Some(v) if v != SCHEMA_VERSION => {
                return Err(StoreError::Version {
                    found: v,
                    expected: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(StoreError::db)?;
            }
        }
        // Create every table now, so that readers never meet a missing one.
        txn.open_table(ENTRIES).map_err(StoreError::db)?;
        txn.open_table(PAYLOADS).map_err(StoreError::db)?;
        txn.open_table(ENTRY_IDS).map_err(StoreError::db)?;
        txn.open_table(HEADS).map_err(StoreError::db)?;
        txn.open_table(FORKS).map_err(StoreError::db)?;
        txn.open_table(AUDIT).map_err(StoreError::db)?;
        txn.open_table(CONTACTS).map_err(StoreError::db)?;
        txn.open_table(ENGINE_CURSOR).map_err(StoreError::db)?;
        txn.open_table(BACKUPS).map_err(StoreError::db)?;
        txn.open_table(HELD_SHARDS).map_err(StoreError::db)?;
        txn.open_table(REQUESTS).map_err(StoreError::db)?;
        txn.open_table(RECOVERIES).map_err(StoreError::db)?;
        txn.open_table(AUTO_APPROVE).map_err(StoreError::db)?;
        txn.open_table(GRANTS).map_err(StoreError::db)?;
    }
    txn.commit().map_err(StoreError::db)?;
    Ok(db)
}

/// A write transaction committed with immediate durability and two-phase commit.
pub(super) fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::db)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::db)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
}

pub(super) fn spawn(
    db: DbSlot,
    me: Arc<Keypair>,
    mut commands: mpsc::Receiver<Command>,
    announce: broadcast::Sender<Committed>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("sherd-store".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = commands.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match commands.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                apply_batch(&db, &me, batch.drain(..), &announce);
            }
            tracing::debug!("store writer: every handle dropped, exiting");
        })
        .map_err(|e| StoreError::Database(format!("cannot start the store thread: {e}")))
}

/// Answers one caller once the batch's fate is known.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn finish<T: Send + 'static>(
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, StoreError>,
) -> Finish {
    Box::new(move |batch_error| {
        let answer = match batch_error {
            Some(e) => Err(StoreError::Database(e.to_string())),
            None => result,
        };
        // The caller may have given up waiting; that is its choice.
        let _ = reply.send(answer);
    })
}

pub(super) struct Tables<'t> {
    /// The transaction, for the tables only some commands need (the
    /// engine's), opened on demand so that the append path does not pay for them.
    pub(super) txn: &'t WriteTransaction,
    entries: Table<'t, (&'static [u8; 32], u64), &'static [u8; 182]>,
    payloads: Table<'t, (&'static [u8; 32], u64), &'static [u8]>,
    entry_ids: Table<'t, &'static [u8; 32], (&'static [u8; 32], u64)>,
    heads: Table<'t, &'static [u8; 32], u64>,
    forks: Table<'t, &'static [u8; 32], &'static [u8]>,
    audit: Table<'t, u64, &'static [u8]>,
    contacts: Table<'t, &'static [u8; 32], &'static str>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            txn,
            entries: txn.open_table(ENTRIES).map_err(StoreError::db)?,
            payloads: txn.open_table(PAYLOADS).map_err(StoreError::db)?,
            entry_ids: txn.open_table(ENTRY_IDS).map_err(StoreError::db)?,
            heads: txn.open_table(HEADS).map_err(StoreError::db)?,
            forks: txn.open_table(FORKS).map_err(StoreError::db)?,
            audit: txn.open_table(AUDIT).map_err(StoreError::db)?,
            contacts: txn.open_table(CONTACTS).map_err(StoreError::db)?,
        })
    }
}

fn apply_batch(
    slot: &DbSlot,
    me: &Keypair,
    batch: impl Iterator<Item = Command>,
    announce: &broadcast::Sender<Committed>,
) {
    let db = slot.get();
    let mut finishers: Vec<Finish> = Vec::new();
    let mut committed: Vec<Committed> = Vec::new();
    // Erasures are done after the batch, in their own transaction, because
    // each costs a scrub (a copy of the store) and must not be acknowledged
    // before it: batching them means one copy for all of them.
    let mut erasures: Vec<(Vec<EntryId>, Reply<usize>)> = Vec::new();
    let outcome = (|| -> Result<(), StoreError> {
        let txn = begin(&db)?;
        {
            let mut t = Tables::open(&txn)?;
            for command in batch {
                match command {
                    Command::ErasePayloads { ids, reply } => erasures.push((ids, reply)),
                    command => finishers.push(apply(&mut t, me, command, &mut committed)?),
                }
            }
        }
        txn.commit().map_err(StoreError::db)
    })();
    let error = outcome.err();
    if let Some(e) = &error {
        tracing::error!(error = %e, "store batch aborted; nothing of it was written");
        committed.clear();
    }
    for f in finishers {
        f(error.as_ref());
    }
    for entry in committed {
        // No subscriber is not an error: nothing listens yet.
        let _ = announce.send(entry);
    }
    if !erasures.is_empty() {
        erase_and_scrub(slot, erasures);
    }
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// Removes the payloads of every erasure asked for, commits, and rewrites
/// the store without their bytes (`scrub.rs`) before answering anyone. The
/// removal and the mark that a scrub is due commit together; if the scrub
/// then fails, the callers hear so, and it is retried at the next erasure
/// or start. Erasing what is gone already costs no copy (the engine asks
/// again on every start, in case it stopped between a delivery and its
/// erasure).
fn erase_and_scrub(slot: &DbSlot, erasures: Vec<(Vec<EntryId>, Reply<usize>)>) {
    let db = slot.get();
    let erased = (|| -> Result<(Vec<usize>, bool), StoreError> {
        let txn = begin(&db)?;
        let mut counts = Vec::with_capacity(erasures.len());
        {
            let entry_ids = txn.open_table(ENTRY_IDS).map_err(StoreError::db)?;
            let mut payloads = txn.open_table(PAYLOADS).map_err(StoreError::db)?;
            for (ids, _) in &erasures {
                let mut count = 0;
                for id in ids {
                    let Some(place) = entry_ids.get(id.as_bytes()).map_err(StoreError::db)? else {
                        continue;
                    };
                    let (author, seq) = place.value();
                    if payloads
                        .remove((author, seq))
                        .map_err(StoreError::db)?
                        .is_some()
                    {
                        count += 1;
                    }
                }
                counts.push(count);
            }
        }
        let due = scrub::mark_pending(&txn, counts.iter().any(|&n| n > 0))?;
        txn.commit().map_err(StoreError::db)?;
        Ok((counts, due))
    })();
    let outcome = erased.and_then(|(counts, due)| {
        if due {
            let fresh = scrub::rewrite(&db, slot.path())?;
            slot.replace(fresh);
        }
        Ok(counts)
    });
    drop(db);
    match outcome {
        Ok(counts) => {
            for ((_, reply), count) in erasures.into_iter().zip(counts) {
                let _ = reply.send(Ok(count));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "erasing payloads failed; the scrub is retried at the next erasure or start");
            for (_, reply) in erasures {
                let _ = reply.send(Err(StoreError::Database(format!("erasing payloads: {e}"))));
            }
        }
    }
}

/// Applies one command. A database failure is returned (and aborts the
/// batch); a refusal of the command's content is the command's own answer.
fn apply(
    t: &mut Tables<'_>,
    me: &Keypair,
    command: Command,
    committed: &mut Vec<Committed>,
) -> Result<Finish, StoreError> {
    Ok(match command {
        Command::Ingest {
            author,
            run,
            checked,
            now_ms,
            reply,
        } => {
            let result = ingest(t, &author, run, &checked, now_ms, committed)?;
            finish(reply, Ok(result))
        }
        Command::Publish {
            kind,
            payload,
            timestamp_ms,
            reply,
        } => {
            let result = publish(t, me, kind, payload, timestamp_ms, committed)?;
            finish(reply, result)
        }
        Command::ErasePayloads { reply, .. } => {
            // `apply_batch` takes erasures aside before it gets here.
            finish(
                reply,
                Err(StoreError::Database(
                    "erasure outside its own transaction".into(),
                )),
            )
        }
        Command::SetContact { feed, name, reply } => {
            let existed = t
                .contacts
                .insert(feed.as_bytes(), name.as_str())
                .map_err(StoreError::db)?
                .is_some();
            finish(reply, Ok(existed))
        }
        Command::RemoveContact { feed, reply } => {
            let existed = t
                .contacts
                .remove(feed.as_bytes())
                .map_err(StoreError::db)?
                .is_some();
            finish(reply, Ok(existed))
        }
        Command::Audit { record, reply } => {
            let next = append_audit(t, &record)?;
            finish(reply, Ok(next))
        }
        Command::EngineWrite { write, reply } => {
            let result = super::engine::apply(t, me, write, committed)?;
            finish(reply, result)
        }
    })
}

/// Appends one audit record; returns its sequence number.
pub(super) fn append_audit(t: &mut Tables<'_>, record: &[u8]) -> Result<u64, StoreError> {
    let next = t
        .audit
        .last()
        .map_err(StoreError::db)?
        .map_or(1, |(k, _)| k.value().saturating_add(1));
    t.audit.insert(next, record).map_err(StoreError::db)?;
    Ok(next)
}

pub(super) fn stored_header(
    t: &Tables<'_>,
    author: &FeedId,
    seq: u64,
) -> Result<Option<SignedHeader>, StoreError> {
    let Some(bytes) = t
        .entries
        .get((author.as_bytes(), seq))
        .map_err(StoreError::db)?
    else {
        return Ok(None);
    };
    SignedHeader::decode(bytes.value())
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("entry {author} #{seq}: {e}")))
}

pub(super) fn head_seq(t: &Tables<'_>, author: &FeedId) -> Result<u64, StoreError> {
    Ok(t.heads
        .get(author.as_bytes())
        .map_err(StoreError::db)?
        .map_or(0, |v| v.value()))
}

fn ingest(
    t: &mut Tables<'_>,
    author: &FeedId,
    run: Vec<IncomingEntry>,
    checked: &CheckedSignatures,
    now_ms: u64,
    committed: &mut Vec<Committed>,
) -> Result<IngestOutcome, StoreError> {
    let head = head_seq(t, author)?;
    if let Some(proof) = t.forks.get(author.as_bytes()).map_err(StoreError::db)? {
        let proof = ForkProof::decode(proof.value())
            .ok_or_else(|| StoreError::Corrupt(format!("fork proof of {author}")))?;
        return Ok(IngestOutcome {
            skipped: 0,
            appended: 0,
            stopped_by: Some(EntryError::Fork(Box::new(proof))),
            head_seq: head,
        });
    }

    // Entries we hold already are skipped (peers' ranges overlap); one that
    // differs from ours at the same seq is checked for a fork.
    let mut skip = 0;
    for incoming in &run {
        let seq = incoming.header.header().seq;
        if seq > head {
            break;
        }
        if incoming.header.header().author != *author.as_bytes() {
            return Ok(IngestOutcome {
                skipped: skip,
                appended: 0,
                stopped_by: Some(EntryError::WrongAuthor),
                head_seq: head,
            });
        }
        match stored_header(t, author, seq)? {
            Some(ours) if ours.id() == incoming.header.id() => skip += 1,
            Some(ours) => {
                let outcome = match ForkProof::new(author, ours, incoming.header.clone()) {
                    Some(proof) => {
                        t.forks
                            .insert(author.as_bytes(), proof.encode().as_slice())
                            .map_err(StoreError::db)?;
                        tracing::warn!(feed = %author, seq, "feed forked; not following it past the fork");
                        EntryError::Fork(Box::new(proof))
                    }
                    None => EntryError::BadSignature,
                };
                return Ok(IngestOutcome {
                    skipped: skip,
                    appended: 0,
                    stopped_by: Some(outcome),
                    head_seq: head,
                });
            }
            None => break,
        }
    }

    let mut feed = match stored_header(t, author, head)? {
        Some(h) => Feed::resume(*author, h)
            .map_err(|e| StoreError::Corrupt(format!("head of {author}: {e}")))?,
        None => Feed::new(*author),
    };
    // The run is ours: headers and payloads are moved, not copied, from the
    // check to the tables and the announcements.
    let (headers, payloads): (Vec<SignedHeader>, Vec<Option<Vec<u8>>>) = run
        .into_iter()
        .skip(skip)
        .map(|e| (e.header, e.payload))
        .unzip();
    let pairs: Vec<(SignedHeader, Option<&[u8]>)> = headers
        .into_iter()
        .zip(payloads.iter().map(Option::as_deref))
        .collect();
    let (appended, stopped_by) = feed.append_run_checked(&pairs, now_ms, Some(checked));
    if let Some(EntryError::Fork(proof)) = &stopped_by {
        t.forks
            .insert(author.as_bytes(), proof.encode().as_slice())
            .map_err(StoreError::db)?;
        tracing::warn!(feed = %author, seq = proof.seq(), "feed forked; not following it past the fork");
    }
    let headers: Vec<SignedHeader> = pairs.into_iter().take(appended).map(|(h, _)| h).collect();
    committed.reserve(appended);
    for (header, payload) in headers.into_iter().zip(payloads) {
        insert(t, &header, payload.as_deref())?;
        committed.push(Committed {
            author: *author,
            header,
            payload: payload.map(Arc::new),
        });
    }
    if appended > 0 {
        set_head(t, author, feed.seq())?;
    }
    Ok(IngestOutcome {
        skipped: skip,
        appended,
        stopped_by,
        head_seq: feed.seq(),
    })
}

fn publish(
    t: &mut Tables<'_>,
    me: &Keypair,
    kind: PayloadKind,
    payload: Vec<u8>,
    timestamp_ms: u64,
    committed: &mut Vec<Committed>,
) -> Result<Result<SignedHeader, StoreError>, StoreError> {
    let author = me.feed_id();
    let previous = stored_header(t, &author, head_seq(t, &author)?)?;
    let header = match SignedHeader::sign_next(me, previous.as_ref(), timestamp_ms, kind, &payload)
    {
        Ok(h) => h,
        Err(e) => return Ok(Err(StoreError::Publish(e.to_string()))),
    };
    insert(t, &header, Some(&payload))?;
    set_head(t, &author, header.header().seq)?;
    committed.push(Committed {
        author,
        header: header.clone(),
        payload: Some(Arc::new(payload)),
    });
    Ok(Ok(header))
}

/// Writes one validated entry: header, id index and payload. The feed's
/// head is the caller's to move, once per run ([`set_head`]).
pub(super) fn insert(
    t: &mut Tables<'_>,
    header: &SignedHeader,
    payload: Option<&[u8]>,
) -> Result<(), StoreError> {
    let h = header.header();
    let id = header.id();
    t.entries
        .insert((&h.author, h.seq), header.as_bytes())
        .map_err(StoreError::db)?;
    t.entry_ids
        .insert(id.as_bytes(), (&h.author, h.seq))
        .map_err(StoreError::db)?;
    if let Some(p) = payload {
        t.payloads
            .insert((&h.author, h.seq), p)
            .map_err(StoreError::db)?;
    }
    Ok(())
}

/// Moves a feed's head to `seq`, after [`insert`]ing the entries up to it.
pub(super) fn set_head(t: &mut Tables<'_>, author: &FeedId, seq: u64) -> Result<(), StoreError> {
    t.heads
        .insert(author.as_bytes(), seq)
        .map_err(StoreError::db)?;
    Ok(())
}
