//! The engine task: one loop over commands, store announcements and a flush
//! timer, and the per-feed cursors that make processing exactly-once.
//!
//! Cursors: `cursors[feed]` is the last entry of `feed` processed. An entry
//! with an effect (a record, an audit line, a published entry) commits its
//! effect and the cursor past it in one transaction. An entry with no effect
//! (not for us, public) only moves the cursor in memory (`pending`); those
//! moves are persisted with the next effect, after a short quiet time, or
//! every `FLUSH_EVERY` entries. So after a crash the engine may open a few
//! entries again that had no effect (harmless), but never one that had.
//!
//! What this task never does: wait on the network (a `follow` is a queued
//! command), or decrypt a large batch on the async threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sherd_protocol::content::Content;
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::recovery::Recovery;
use sherd_protocol::{BackupId, FeedId, Keypair, X25519SecretKey};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::audit::{AuditLine, Outcome};
use super::open::{self, Item, Opened};
use super::{
    EngineCommand, EngineError, EngineEvent, EngineOptions, custodian, emergency, health, owner,
    records, recover, redeem, requests, revoke,
};
use crate::clock;
use crate::net::NetworkHandle;
use crate::store::{Committed, EngineUpdate, EngineWrite, Store, StoreError};

/// Entries read and opened per blocking batch while scanning a feed.
const SCAN_BATCH: usize = 256;
/// Quiet time after which cursor moves without effect are persisted.
const FLUSH_AFTER: Duration = Duration::from_millis(250);
/// Cursor moves without effect persisted at least this often.
const FLUSH_EVERY: usize = 1024;

pub(super) struct Engine {
    pub(super) key: Arc<Keypair>,
    pub(super) me: FeedId,
    pub(super) secret: Arc<X25519SecretKey>,
    pub(super) store: Store,
    pub(super) options: EngineOptions,
    /// Recoveries collecting or holding their secret, in memory only (the
    /// records say what to rebuild them from).
    pub(super) recoveries: HashMap<BackupId, Recovery>,
    net: NetworkHandle,
    events: broadcast::Sender<EngineEvent>,
    /// Per feed, the last entry processed (persisted or pending).
    cursors: HashMap<FeedId, u64>,
    /// Cursors moved past entries without effect, not yet persisted.
    pending: HashMap<FeedId, u64>,
    /// How many entries moved `pending` since the last persist.
    unflushed: usize,
    /// When to persist `pending` if nothing else does first.
    flush_at: Option<Instant>,
    /// The earliest veto window still open (ms since the epoch), if any.
    deadline: Option<u64>,
    /// A step changed the veto windows: `deadline` is to be found again.
    deadlines_dirty: bool,
}

impl Engine {
    pub(super) fn new(
        key: Arc<Keypair>,
        store: Store,
        net: NetworkHandle,
        events: broadcast::Sender<EngineEvent>,
        options: EngineOptions,
    ) -> Self {
        Self {
            me: key.feed_id(),
            secret: Arc::new(key.x25519_secret()),
            key,
            store,
            options,
            recoveries: HashMap::new(),
            net,
            events,
            cursors: HashMap::new(),
            pending: HashMap::new(),
            unflushed: 0,
            flush_at: None,
            deadline: None,
            deadlines_dirty: true,
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<EngineCommand>,
        mut announced: broadcast::Receiver<Committed>,
    ) {
        if let Err(e) = self.start().await {
            // Without its cursors it would act on every entry again: better
            // to stop (callers get `Closed`) than to guess.
            tracing::error!(error = %e, "engine: cannot load its state; not running");
            return;
        }
        loop {
            if self.deadlines_dirty {
                self.deadlines_dirty = false;
                self.deadline = match self.next_deadline() {
                    Ok(deadline) => deadline,
                    Err(e) => {
                        tracing::error!(error = %e, "engine: cannot read the deadlines; retrying in a second");
                        Some(clock::now_ms().saturating_add(1000))
                    }
                };
            }
            let deadline_at = self.deadline.map(|at| {
                Instant::now() + Duration::from_millis(at.saturating_sub(clock::now_ms()))
            });
            let flush_at = self.flush_at;
            tokio::select! {
                // Commands first: a user waiting on a backup goes before
                // entries that can wait.
                biased;
                command = commands.recv() => match command {
                    Some(EngineCommand::Shutdown(reply)) => {
                        self.flush().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.flush().await;
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                },
                committed = announced.recv() => match committed {
                    Ok(committed) => self.on_committed(&committed).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "engine: missed store announcements; scanning from the cursors");
                        self.emit(EngineEvent::Lagged { missed });
                        self.catch_up_all().await;
                    }
                    Err(RecvError::Closed) => {
                        tracing::debug!("engine: the store is closed; stopping");
                        return;
                    }
                },
                () = sleep_until(flush_at), if flush_at.is_some() => self.flush().await,
                () = sleep_until(deadline_at), if deadline_at.is_some() => {
                    let result = match emergency::on_deadlines(&mut self).await {
                        Ok(()) => health::on_deadlines(&mut self).await,
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(()) => self.deadlines_dirty = true,
                        Err(e) => {
                            // Not at once again (that would spin): in a second.
                            tracing::error!(error = %e, "engine: a deadline's work failed; retrying in a second");
                            self.deadline = Some(clock::now_ms().saturating_add(1000));
                        }
                    }
                }
            }
            if self.unflushed >= FLUSH_EVERY {
                self.flush().await;
            }
        }
    }

    /// Loads the cursors, follows what the records say to follow, and
    /// processes whatever was committed while the engine was not running.
    async fn start(&mut self) -> Result<(), EngineError> {
        self.cursors = self.store.engine_cursors()?.into_iter().collect();
        let mut follows = Vec::new();
        for (_, held) in records::held_shards(&self.store)? {
            follows.extend(held.follows);
        }
        for (_, backup) in records::backups(&self.store)? {
            follows.extend(backup.custodians.into_iter().map(|c| c.feed));
        }
        follows.extend(recover::follows_on_start(self)?);
        self.follow(follows).await;
        // A crash between handing a secret over and erasing its shards.
        let delivered = recover::delivered_shards(self)?;
        recover::erase_shards(self, &delivered).await;
        // And between a revocation's acknowledgement, or a redemption, and
        // the erasure.
        let mut erased = revoke::revoked_shards(self)?;
        erased.extend(redeem::redeemed_entries(self)?);
        erased.extend(revoke::ended_backup_shards(self)?);
        revoke::erase(self, &erased).await;
        self.catch_up_all().await;
        Ok(())
    }

    async fn on_command(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::CreateBackup {
                spec,
                replaces,
                #[cfg(test)]
                tamper,
                reply,
            } => {
                let result = owner::create_backup(
                    self,
                    *spec,
                    replaces,
                    #[cfg(test)]
                    tamper,
                )
                .await;
                let _ = reply.send(result);
            }
            EngineCommand::StartOwner { backup, reply } => {
                // One of ours (the owner asks), or one we were granted (a
                // trustee asks, in an emergency).
                let result = match records::grant(&self.store, &backup) {
                    Ok(Some(grant))
                        if records::backup(&self.store, &backup)
                            .ok()
                            .flatten()
                            .is_none() =>
                    {
                        emergency::start(self, backup, grant).await
                    }
                    Ok(_) => requests::start_owner(self, backup).await,
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(result);
            }
            EngineCommand::StartLostDevice {
                owner,
                to,
                backup,
                reply,
            } => {
                let _ = reply.send(requests::start_lost_device(self, owner, to, backup).await);
            }
            EngineCommand::Decide {
                id,
                from,
                decision,
                reply,
            } => {
                let _ = reply.send(requests::decide(self, id, from, decision).await);
            }
            EngineCommand::ReleaseFollows(feeds) => self.release_follows(feeds).await,
            EngineCommand::Revoke { backup, reply } => {
                let _ = reply.send(revoke::revoke(self, backup).await);
            }
            EngineCommand::TakeSecret { backup, reply } => {
                let _ = reply.send(recover::take_secret(self, backup).await);
            }
            EngineCommand::CaughtUp(reply) => {
                self.catch_up_all().await;
                self.flush().await;
                let _ = reply.send(Ok(()));
            }
            // Handled by the loop.
            EngineCommand::Shutdown(reply) => {
                let _ = reply.send(());
            }
            #[cfg(test)]
            EngineCommand::Hold { held, release } => {
                let _ = held.send(());
                let _ = release.await;
            }
        }
    }

    fn cursor(&self, feed: &FeedId) -> u64 {
        self.cursors.get(feed).copied().unwrap_or(0)
    }

    async fn on_committed(&mut self, committed: &Committed) {
        let h = committed.header.header();
        let feed = committed.author;
        let done = self.cursor(&feed);
        if h.seq <= done {
            return;
        }
        if h.seq == done.saturating_add(1) {
            // One entry: cheap enough to open here.
            let payload = committed.payload.as_deref().map(Vec::as_slice);
            let item = open::open(&self.secret, feed, &committed.header, payload);
            if let Err(e) = self.process(item).await {
                tracing::error!(%feed, seq = h.seq, error = %e, "engine: step failed; will retry from the cursor");
            }
        } else {
            // Entries before it were not announced to us (committed before we
            // subscribed, or a failed step): take them from the store, in order.
            self.catch_up(feed).await;
        }
    }

    /// Processes every feed from its cursor to its head.
    pub(super) async fn catch_up_all(&mut self) {
        let feeds = match self.store.feeds() {
            Ok(feeds) => feeds,
            Err(e) => {
                tracing::error!(error = %e, "engine: cannot list feeds");
                return;
            }
        };
        for (feed, head) in feeds {
            if head > self.cursor(&feed) {
                self.catch_up(feed).await;
            }
        }
    }

    /// Processes `feed` from its cursor to its head, in batches opened on a
    /// blocking thread. Stops at the first failed step (to retry later
    /// from there, never past it).
    async fn catch_up(&mut self, feed: FeedId) {
        loop {
            let from = self.cursor(&feed).saturating_add(1);
            let store = self.store.clone();
            let secret = self.secret.clone();
            let batch = tokio::task::spawn_blocking(move || {
                store.entries(&feed, from, SCAN_BATCH).map(|entries| {
                    entries
                        .iter()
                        .map(|e| open::open(&secret, feed, &e.header, e.payload.as_deref()))
                        .collect::<Vec<_>>()
                })
            })
            .await;
            let items = match batch {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    tracing::error!(%feed, error = %e, "engine: cannot read entries");
                    return;
                }
                Err(e) => {
                    tracing::error!(%feed, error = %e, "engine: opening task failed");
                    return;
                }
            };
            if items.is_empty() {
                return;
            }
            for item in items {
                let seq = item.seq;
                if let Err(e) = self.process(item).await {
                    tracing::error!(%feed, seq, error = %e, "engine: step failed; will retry from the cursor");
                    return;
                }
            }
            // A long scan persists its progress as it goes.
            if self.unflushed >= FLUSH_EVERY {
                self.flush().await;
            }
        }
    }

    /// Acts on one entry, which must be the one after the feed's cursor.
    async fn process(&mut self, item: Item) -> Result<(), EngineError> {
        let now = clock::now_ms();
        match item.opened {
            Opened::Nothing => {
                self.advance(item.feed, item.seq);
                Ok(())
            }
            Opened::BadEnvelope(ref e) => {
                let line = AuditLine::new(now, "envelope_malformed", Outcome::Refused)
                    .peer(item.feed)
                    .entry(item.id)
                    .reason(e.to_string());
                self.commit_audit(&item, line).await
            }
            Opened::BadContent(ref reason) => {
                let line = AuditLine::new(now, "content_malformed", Outcome::Refused)
                    .peer(item.feed)
                    .entry(item.id)
                    .reason(reason.clone());
                self.commit_audit(&item, line).await
            }
            Opened::Content(ref content) => match content.as_ref() {
                Content::Shard(shard) if item.feed != self.me => {
                    custodian::on_shard(self, &item, shard).await
                }
                Content::Ack(ack) if item.feed != self.me => owner::on_ack(self, &item, ack).await,
                Content::Request(request) if item.feed != self.me => {
                    requests::on_request(self, &item, request).await
                }
                Content::Reply(reply) if item.feed != self.me => {
                    recover::on_reply(self, &item, reply).await
                }
                Content::Forward(forward) if item.feed != self.me => {
                    recover::on_forward(self, &item, forward).await
                }
                Content::Revoke(r) if item.feed != self.me => {
                    revoke::on_revoke(self, &item, r).await
                }
                Content::Grant(grant) if item.feed != self.me => {
                    emergency::on_grant(self, &item, grant).await
                }
                Content::Deny(deny) if item.feed != self.me => {
                    recover::on_deny(self, &item, deny).await
                }
                Content::Redeemed(r) if item.feed != self.me => {
                    redeem::on_redeemed(self, &item, r).await
                }
                Content::Challenge(c) if item.feed != self.me => {
                    health::on_challenge(self, &item, c).await
                }
                Content::Proof(p) if item.feed != self.me => health::on_proof(self, &item, p).await,
                // Our own record of a backup: the `backups` table has it.
                Content::Root(_) if item.feed == self.me => {
                    self.advance(item.feed, item.seq);
                    Ok(())
                }
                other => {
                    let line = AuditLine::new(now, "content_not_handled", Outcome::Ignored)
                        .peer(item.feed)
                        .entry(item.id)
                        .reason(format!(
                            "`{}` from this feed is not acted on by this version",
                            other.type_name()
                        ));
                    self.commit_audit(&item, line).await
                }
            },
        }
    }

    /// A step opened, closed or moved a veto window.
    /// Counts a refusal against the author of the refused entry at the
    /// network level (see [`NetworkHandle::misbehaved`]); a node shutting
    /// down has no one to tell.
    pub(super) async fn misbehaved(&self, author: &FeedId, reason: &'static str) {
        if *author != self.me {
            let _ = self.net.misbehaved(author, reason).await;
        }
    }

    /// The earliest persisted deadline: a veto window's end or a health check round.
    fn next_deadline(&self) -> Result<Option<u64>, EngineError> {
        let windows = emergency::next_deadline(self)?;
        let rounds = health::next_deadline(self)?;
        Ok(windows.into_iter().chain(rounds).min())
    }

    pub(super) fn deadlines_changed(&mut self) {
        self.deadlines_dirty = true;
    }

    /// Moves a feed's cursor past an entry that had no effect.
    pub(super) fn advance(&mut self, feed: FeedId, seq: u64) {
        self.cursors.insert(feed, seq);
        self.pending.insert(feed, seq);
        self.unflushed += 1;
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + FLUSH_AFTER);
        }
    }

    /// Commits one step: `publish` appended to our feed, the updates
    /// `updates` builds from their headers, the cursor past `at` (the entry
    /// the step was about, if any) and every pending cursor, in one
    /// transaction. The cursor moves in memory only once that has committed.
    pub(super) async fn commit(
        &mut self,
        at: Option<&Item>,
        publish: Vec<(PayloadKind, Vec<u8>)>,
        updates: impl FnOnce(&[SignedHeader]) -> Vec<EngineUpdate> + Send + 'static,
    ) -> Result<Vec<SignedHeader>, StoreError> {
        let at = at.map(|item| (item.feed, item.seq));
        let cursors: Vec<EngineUpdate> = self
            .pending
            .iter()
            .map(|(feed, seq)| (*feed, *seq))
            .chain(at)
            .map(|(feed, seq)| EngineUpdate::Cursor { feed, seq })
            .collect();
        let write = EngineWrite::publishing(publish, clock::now_ms(), move |published| {
            let mut all = updates(published);
            all.extend(cursors);
            all
        });
        let published = self.store.engine_write(write).await?;
        self.pending.clear();
        self.unflushed = 0;
        self.flush_at = None;
        if let Some((feed, seq)) = at {
            self.cursors.insert(feed, seq);
        }
        Ok(published)
    }

    /// Commits a step whose only effect is one audit line.
    pub(super) async fn commit_audit(
        &mut self,
        item: &Item,
        line: AuditLine,
    ) -> Result<(), EngineError> {
        let record = line.to_json();
        self.commit(Some(item), Vec::new(), move |_| {
            vec![EngineUpdate::Audit(record)]
        })
        .await?;
        Ok(())
    }

    /// Persists the pending cursors.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            self.flush_at = None;
            return;
        }
        if let Err(e) = self.commit(None, Vec::new(), |_| Vec::new()).await {
            // They stay pending: the worst outcome is opening those entries
            // again after a restart, and they had no effect.
            tracing::warn!(error = %e, "engine: cannot persist cursors");
            self.flush_at = Some(Instant::now() + FLUSH_AFTER);
        }
    }

    /// Every feed this node must replicate now: its contacts, and the feeds
    /// its live flows need (held shards, backups, recoveries collecting).
    pub(super) fn needed_feeds(&self) -> Result<std::collections::BTreeSet<FeedId>, EngineError> {
        let mut needed: std::collections::BTreeSet<FeedId> = self
            .store
            .contacts()?
            .into_iter()
            .map(|(feed, _)| feed)
            .collect();
        for (_, held) in records::held_shards(&self.store)? {
            needed.extend(held.follows);
        }
        for (_, backup) in records::backups(&self.store)? {
            needed.extend(backup.custodians.into_iter().map(|c| c.feed));
        }
        needed.extend(recover::follows_on_start(self)?);
        Ok(needed)
    }

    /// Stops replicating those of `feeds` that nothing needs any more (a
    /// flow ended, a contact was removed).
    pub(super) async fn release_follows(&self, feeds: impl IntoIterator<Item = FeedId>) {
        let needed = match self.needed_feeds() {
            Ok(needed) => needed,
            Err(e) => {
                // Following too much is harmless; dropping a needed feed is not.
                tracing::warn!(error = %e, "engine: cannot tell which feeds are needed; keeping them all");
                return;
            }
        };
        for feed in feeds {
            if feed == self.me || needed.contains(&feed) {
                continue;
            }
            if let Err(e) = self.net.unfollow(feed).await {
                tracing::warn!(%feed, error = %e, "engine: cannot unfollow");
            }
        }
    }

    /// Starts replicating `feeds` (ourselves excluded).
    pub(super) async fn follow(&self, feeds: impl IntoIterator<Item = FeedId>) {
        for feed in feeds {
            if feed == self.me {
                continue;
            }
            if let Err(e) = self.net.follow(feed).await {
                tracing::warn!(%feed, error = %e, "engine: cannot follow");
            }
        }
    }

    pub(super) fn emit(&self, event: EngineEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
