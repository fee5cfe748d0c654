//! How answers are shown: short aligned text for people, or JSON (`--json`)
//! for scripts, always on stdout. Rendering only: nothing here talks to the
//! daemon, and errors are printed by `main.rs`, not here.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use sherd_api::{
    AuditRecord, Backup, BackupCustodian, BackupPolicy, Contact, Event, Grant, HeldShard, Peer,
    RecoveredSecret, Recovery, RecoveryRequest, Reshared, Status,
};

/// Writes answers to `out`, as text or as JSON.
pub(crate) struct Printer<W> {
    out: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, json: bool) -> Self {
        Self { out, json }
    }

    /// True when printing JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    pub(crate) fn id(&mut self, feed_id: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "feed_id": feed_id }));
        }
        writeln!(self.out, "{feed_id}")
    }

    pub(crate) fn status(&mut self, status: &Status) -> io::Result<()> {
        if self.json {
            return self.json_line(status);
        }
        let mut rows: Vec<(&str, String)> = vec![
            ("feed", status.feed_id.clone()),
            ("version", status.version.clone()),
        ];
        if status.listen.is_empty() {
            rows.push(("listen", "-".into()));
        }
        for (i, addr) in status.listen.iter().enumerate() {
            rows.push((if i == 0 { "listen" } else { "" }, addr.clone()));
        }
        rows.push(("peers", status.peers.to_string()));
        let r = &status.received;
        rows.push((
            "received",
            format!(
                "gossip {} copies: {} dropped as duplicates, {} new, {} held; sync {}: {} new, \
                 {} held",
                r.gossip_messages,
                r.gossip_duplicates,
                r.gossip_appended,
                r.gossip_held,
                r.sync_entries,
                r.sync_appended,
                r.sync_held
            ),
        ));
        let feed_width = width(status.feeds.iter().map(|f| f.feed.as_str()));
        let seq_width = width(status.feeds.iter().map(|f| f.seq.to_string()));
        if status.feeds.is_empty() {
            rows.push(("feeds", "-".into()));
        }
        for (i, feed) in status.feeds.iter().enumerate() {
            let name = match &feed.name {
                Some(name) => name.as_str(),
                None if feed.feed == status.feed_id => "(this node)",
                None => "-",
            };
            let line = format!(
                "{:feed_width$}  seq {:>seq_width$}  {name}",
                feed.feed, feed.seq
            );
            rows.push((if i == 0 { "feeds" } else { "" }, line));
        }
        let key_width = width(rows.iter().map(|(key, _)| *key));
        for (key, value) in rows {
            writeln!(self.out, "{key:key_width$}  {value}")?;
        }
        Ok(())
    }

    pub(crate) fn peers(&mut self, peers: &[Peer]) -> io::Result<()> {
        if self.json {
            return self.json_line(&peers);
        }
        for peer in peers {
            writeln!(self.out, "{}", peer.peer_id)?;
        }
        Ok(())
    }

    pub(crate) fn connected(&mut self, addr: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "connected": addr }));
        }
        writeln!(self.out, "connected to {addr}")
    }

    pub(crate) fn contact_added(&mut self, contact: &Contact) -> io::Result<()> {
        if self.json {
            return self.json_line(contact);
        }
        writeln!(
            self.out,
            "added {}  {}{}",
            contact.name,
            contact.feed,
            auto_approve_mark(contact)
        )
    }

    pub(crate) fn contacts(&mut self, contacts: &[Contact]) -> io::Result<()> {
        if self.json {
            return self.json_line(&contacts);
        }
        let name_width = width(contacts.iter().map(|c| c.name.as_str()));
        for contact in contacts {
            writeln!(
                self.out,
                "{:name_width$}  {}{}",
                contact.name,
                contact.feed,
                auto_approve_mark(contact)
            )?;
        }
        Ok(())
    }

    pub(crate) fn auto_approve(&mut self, contact: &Contact) -> io::Result<()> {
        if self.json {
            return self.json_line(contact);
        }
        let what = if contact.auto_approve {
            "approved without asking"
        } else {
            "left for `sherdctl approve` or `deny`"
        };
        writeln!(
            self.out,
            "recovery requests from {} ({}) are {what}",
            contact.name, contact.feed
        )
    }

    /// The answer to `request-recovery`: what was asked of whom, and what to
    /// do next.
    pub(crate) fn recovery_requested(
        &mut self,
        request: &RecoveryRequest,
        names: &Names,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(request);
        }
        let mut rows: Vec<(&str, String)> = vec![
            ("request", request.id.clone()),
            ("kind", request.kind.clone()),
            ("backup", request.backup.clone()),
        ];
        let lost_device = request.kind == "lost_device";
        let emergency = request.kind == "emergency";
        if lost_device || emergency {
            let owner = request.owner_name.as_deref().unwrap_or("-");
            rows.push(("owner", format!("{owner}  {}", request.owner)));
        }
        if lost_device {
            rows.push(("to", request.recipient.clone()));
        }
        let name_width = width(request.custodians.iter().map(|c| names.name(c)));
        if request.custodians.is_empty() {
            rows.push(("asked", "-".into()));
        }
        for (i, custodian) in request.custodians.iter().enumerate() {
            let line = format!("{:name_width$}  {custodian}", names.name(custodian));
            rows.push((if i == 0 { "asked" } else { "" }, line));
        }
        let next = if lost_device {
            let (id, to) = (&request.id, &request.recipient);
            vec![
                if request.released.is_some() {
                    format!("your own shard was forwarded to {to};")
                } else {
                    format!("your own shard is to be forwarded to {to};")
                },
                format!("ask the co-custodians to run `sherdctl approve {id}`"),
                format!("(or `sherdctl forward {id} --to {to}`, which checks the new identity);"),
                format!(
                    "the owner, on the new identity, runs `sherdctl recover {}`",
                    request.backup
                ),
            ]
        } else if emergency {
            // The window each custodian keeps starts when the request reaches
            // it; the requester's copy dates it from its own clock, close
            // enough to tell the user how long to expect.
            let window = request
                .release_at_ms
                .map(|at| (at.saturating_sub(request.received_ms) + 500) / 1000);
            vec![
                format!(
                    "emergency request sent to {} and the owner;",
                    plural(request.custodians.len(), "custodian")
                ),
                match window {
                    Some(0) => "the backup has no veto window;".to_owned(),
                    Some(secs) => format!("the owner has {} to veto;", in_words(secs)),
                    None => "the owner may veto during the backup's veto window;".to_owned(),
                },
                format!("then run `sherdctl recover {}`", request.backup),
            ]
        } else {
            vec![format!(
                "run `sherdctl recover {}` to wait for the shards",
                request.backup
            )]
        };
        for (i, line) in next.into_iter().enumerate() {
            rows.push((if i == 0 { "next" } else { "" }, line));
        }
        let key_width = width(rows.iter().map(|(key, _)| *key));
        for (key, value) in rows {
            writeln!(self.out, "{key:key_width$}  {value}")?;
        }
        Ok(())
    }

    /// Recovery requests as a table, with a header; `now_ms` dates the
    /// expiries.
    pub(crate) fn requests(&mut self, requests: &[RecoveryRequest], now_ms: u64) -> io::Result<()> {
        if self.json {
            return self.json_line(&requests);
        }
        if requests.is_empty() {
            return Ok(());
        }
        let mut table = vec![
            [
                "id",
                "kind",
                "role",
                "backup",
                "requester",
                "state",
                "expires",
            ]
            .map(String::from),
        ];
        for r in requests {
            table.push([
                r.id.clone(),
                r.kind.clone(),
                r.role.clone(),
                short(&r.backup).to_owned(),
                r.requester_name
                    .clone()
                    .unwrap_or_else(|| r.requester.clone()),
                request_state(r, now_ms),
                relative(r.expires_ms, now_ms),
            ]);
        }
        self.table(&table)?;
        // The owner's one chance to refuse: said in words, under the table.
        let asking: Vec<&RecoveryRequest> = requests
            .iter()
            .filter(|r| r.role == "owner" && r.state == "waiting")
            .collect();
        match asking.as_slice() {
            [] => Ok(()),
            [one] => writeln!(
                self.out,
                "a trustee asks for your backup: `sherdctl deny {id}` to veto, \
                 `sherdctl approve {id}` to release early",
                id = one.id
            ),
            _ => writeln!(
                self.out,
                "trustees ask for your backups: `sherdctl deny ID` to veto, \
                 `sherdctl approve ID` to release early"
            ),
        }
    }

    /// The backups this node may ask for as a trustee, as a table with a
    /// header, and how to ask.
    pub(crate) fn grants(&mut self, grants: &[Grant]) -> io::Result<()> {
        if self.json {
            return self.json_line(&grants);
        }
        if grants.is_empty() {
            return Ok(());
        }
        let mut table = vec![
            [
                "backup",
                "owner",
                "recovery",
                "veto window",
                "release",
                "label",
            ]
            .map(String::from),
        ];
        for g in grants {
            let mut release = match g.policy.release.as_str() {
                "approve" => "custodians approve".to_owned(),
                "auto" => "automatic".to_owned(),
                other => format!("{other:?}"),
            };
            if g.policy.one_time {
                release.push_str(match g.redeemed_ms {
                    Some(_) => ", one-time (used)",
                    None => ", one-time",
                });
            }
            table.push([
                // Whole: `request-recovery` takes nothing shorter.
                g.backup.clone(),
                g.owner_name.clone().unwrap_or_else(|| g.owner.clone()),
                format!("{} of {}", g.threshold, g.custodians.len()),
                match g.policy.veto_delay_secs {
                    0 => "none".to_owned(),
                    secs => in_words(secs.into()),
                },
                release,
                g.label.as_deref().map_or_else(|| "-".to_owned(), clean),
            ]);
        }
        self.table(&table)?;
        let backup = match grants {
            [one] => one.backup.as_str(),
            _ => "BACKUP",
        };
        writeln!(
            self.out,
            "ask with `sherdctl request-recovery {backup}`; the owner is told, and may veto"
        )
    }

    /// Rows of cells, each column as wide as its widest cell, two spaces
    /// apart, no space at the end of a line.
    fn table<const N: usize>(&mut self, rows: &[[String; N]]) -> io::Result<()> {
        let widths: Vec<usize> = (0..N)
            .map(|column| width(rows.iter().map(|row| row[column].as_str())))
            .collect();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:w$}"))
                .collect();
            writeln!(self.out, "{}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }

    /// The answer to `approve`, `forward` or `deny`.
    pub(crate) fn decided(
        &mut self,
        decision: Decision,
        request: &RecoveryRequest,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(request);
        }
        let id = &request.id;
        // The owner answering a trustee's emergency request: no shard of
        // ours moves, the custodians are told what to do with theirs.
        if request.role == "owner" {
            let (backup, trustee) = (&request.backup, who(request, &request.requester));
            match (decision, request.state.as_str()) {
                (Decision::Denied, "vetoed") => {
                    return writeln!(
                        self.out,
                        "vetoed {id}: your custodians will not release backup {backup} to {trustee}"
                    );
                }
                (Decision::Approved, "approved") => {
                    return writeln!(
                        self.out,
                        "approved {id}: your custodians no longer wait for your veto to \
                         release backup {backup} to {trustee}"
                    );
                }
                _ => {}
            }
        }
        match decision {
            Decision::Approved | Decision::Forwarded => {
                let verb = if decision == Decision::Approved {
                    "approved"
                } else {
                    "forwarded"
                };
                if request.released.is_some() {
                    writeln!(
                        self.out,
                        "{verb} {id}: our shard of backup {} went to {}",
                        request.backup,
                        who(request, &request.recipient)
                    )
                } else {
                    writeln!(self.out, "{verb} {id}: {}", request.state)
                }
            }
            Decision::Denied => {
                write!(
                    self.out,
                    "denied {id} from {}",
                    who(request, &request.requester)
                )?;
                match &request.reason {
                    Some(reason) => writeln!(self.out, ": {}", clean(reason)),
                    None => writeln!(self.out),
                }
            }
        }
    }

    /// The recovered secret on stdout: its raw bytes, or with `--json` the
    /// wire form (`backup`, `label`, `secret` in base64).
    pub(crate) fn secret(&mut self, secret: &RecoveredSecret, bytes: &[u8]) -> io::Result<()> {
        if self.json {
            self.json_line(secret)?;
        } else {
            self.out.write_all(bytes)?;
        }
        self.out.flush()
    }

    /// The note that the secret was written to `path`.
    pub(crate) fn secret_written(
        &mut self,
        secret: &RecoveredSecret,
        path: &Path,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({
                "backup": secret.backup,
                "label": secret.label,
                "output": path.display().to_string(),
            }));
        }
        writeln!(
            self.out,
            "wrote the secret {:?} of backup {} to {} (mode 0600); the daemon has forgotten it",
            secret.label,
            secret.backup,
            path.display()
        )
    }

    pub(crate) fn contact_removed(&mut self, feed: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "removed": feed }));
        }
        writeln!(self.out, "removed {feed}")
    }

    pub(crate) fn audit(&mut self, records: &[AuditRecord]) -> io::Result<()> {
        if self.json {
            return self.json_line(&records);
        }
        let seq_width = width(records.iter().map(|r| r.seq.to_string()));
        for record in records {
            writeln!(self.out, "{:>seq_width$}  {}", record.seq, record.record)?;
        }
        Ok(())
    }

    /// A re-share: the new backup in full, then what became of the old one.
    pub(crate) fn reshared(&mut self, reshared: &Reshared, now_ms: u64) -> io::Result<()> {
        if self.json {
            return self.json_line(reshared);
        }
        self.backup(&reshared.new, now_ms)?;
        writeln!(
            self.out,
            "\nreplaces  {} (revoked: its {} custodians erase their shards; \
             `sherdctl backup show {}` lists who has)",
            reshared.old.id,
            reshared.old.custodians.len(),
            reshared.old.id
        )
    }

    /// A backup and each custodian's state; `now_ms` dates the health checks.
    pub(crate) fn backup(&mut self, backup: &Backup, now_ms: u64) -> io::Result<()> {
        if self.json {
            return self.json_line(backup);
        }
        let acked = backup.custodians.iter().filter(|c| c.acked).count();
        writeln!(self.out, "backup    {}", backup.id)?;
        writeln!(self.out, "label     {}", backup.label)?;
        writeln!(
            self.out,
            "recovery  any {} of {} custodians; {acked} of {} acknowledged",
            backup.threshold,
            backup.custodians.len(),
            backup.custodians.len()
        )?;
        let name_width = width(
            backup
                .custodians
                .iter()
                .map(|c| c.name.as_deref().unwrap_or("-")),
        );
        if backup.revoked {
            let erased = backup.custodians.iter().filter(|c| c.erased).count();
            writeln!(
                self.out,
                "revoked   {erased} of {} custodians erased their shard",
                backup.custodians.len()
            )?;
        }
        if let Some(r) = &backup.redeemed {
            writeln!(
                self.out,
                "redeemed  by {}: one-time access used; the custodians erase their shards",
                clean(r.name.as_deref().unwrap_or(&r.by))
            )?;
        }
        for c in &backup.custodians {
            let mut state = match (backup.revoked, c.erased, c.acked) {
                (true, true, _) => "erased",
                (true, false, _) => "revoked, not yet erased",
                (false, _, true) => "acknowledged",
                (false, _, false) => "waiting for ack",
            }
            .to_owned();
            if !backup.revoked {
                state.push_str(&health(c, backup.created_ms, now_ms));
            }
            writeln!(
                self.out,
                "  {:name_width$}  {}  {state}",
                c.name.as_deref().unwrap_or("-"),
                c.feed
            )?;
        }
        for line in emergency_access(backup) {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    pub(crate) fn backups(&mut self, backups: &[Backup]) -> io::Result<()> {
        if self.json {
            return self.json_line(&backups);
        }
        for b in backups {
            let acked = b.custodians.iter().filter(|c| c.acked).count();
            writeln!(
                self.out,
                "{}  {} of {}  acks {acked}/{}  {}",
                b.id,
                b.threshold,
                b.custodians.len(),
                b.custodians.len(),
                b.label
            )?;
        }
        Ok(())
    }

    pub(crate) fn shards(&mut self, shards: &[HeldShard]) -> io::Result<()> {
        if self.json {
            return self.json_line(&shards);
        }
        for s in shards {
            writeln!(
                self.out,
                "{}  owner {} {}",
                s.backup,
                s.owner_name.as_deref().unwrap_or("-"),
                s.owner
            )?;
        }
        Ok(())
    }

    /// One event, on one line, flushed at once (the stream is read live).
    pub(crate) fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.json {
            self.json_line(event)?;
        } else {
            // The wire form is the one place that knows each event's name and
            // fields, so the text is derived from it: `name  key=value ...`,
            // the fields in the order the type declares them (what matters
            // first), then what to do about it, for the few that ask.
            let wire = serde_json::to_string(event).map_err(io::Error::other)?;
            let Fields(mut fields) = serde_json::from_str(&wire).map_err(io::Error::other)?;
            let name = match fields.iter().position(|(key, _)| key == "event") {
                Some(at) => match fields.remove(at).1 {
                    serde_json::Value::String(name) => name,
                    _ => "event".to_owned(),
                },
                None => "event".to_owned(),
            };
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(s) => format!("{key}={}", clean(s)),
                    other => format!("{key}={other}"),
                })
                .collect();
            writeln!(
                self.out,
                "{name:17}  {}{}",
                fields.join(" "),
                event_hint(event)
            )?;
        }
        self.out.flush()
    }

    /// The note that events were missed: a JSON line for scripts; nothing in
    /// text mode, where the caller says it on stderr.
    pub(crate) fn lagged(&mut self, missed: u64) -> io::Result<()> {
        if self.json {
            self.json_line(&serde_json::json!({ "event": "lagged", "missed": missed }))?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn json_line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::other)?;
        writeln!(self.out)
    }
}

/// A JSON object's fields in the order they were written (`serde_json::Map`
/// would sort them by name).
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// Which decision `decided` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approved,
    Forwarded,
    Denied,
}

/// Contact names by feed id.
#[derive(Debug, Default)]
pub(crate) struct Names(pub(crate) HashMap<String, String>);

impl Names {
    /// The contact name of `feed`, or `-`.
    fn name(&self, feed: &str) -> &str {
        self.0.get(feed).map_or("-", String::as_str)
    }

    /// The contact name of `feed`, or the feed itself.
    fn or_feed<'a>(&'a self, feed: &'a str) -> &'a str {
        self.0.get(feed).map_or(feed, String::as_str)
    }
}

/// What `recover` has told so far about a recovery, so that it tells only
/// what changes: the count of shards, each refused shard, each denial.
#[derive(Debug, Default)]
pub(crate) struct RecoveryProgress {
    current: String,
    rejected: HashSet<(String, String)>,
    denied: HashSet<String>,
}

impl RecoveryProgress {
    /// The lines to print for `recovery`, given what was printed before.
    pub(crate) fn news(&mut self, recovery: &Recovery, names: &Names) -> Vec<String> {
        let mut news = Vec::new();
        for shard in &recovery.rejected {
            if self
                .rejected
                .insert((shard.custodian.clone(), shard.entry.clone()))
            {
                news.push(format!(
                    "refused a shard from {}: {}",
                    names.or_feed(&shard.custodian),
                    clean(&shard.reason)
                ));
            }
        }
        for denial in &recovery.denied {
            if self.denied.insert(denial.custodian.clone()) {
                news.push(denied_line(denial, names));
            }
        }
        if recovery.state == "collecting" {
            let line = shards_line(recovery);
            if line != self.current {
                self.current.clone_from(&line);
                news.push(line);
            }
        }
        news
    }

    /// The last count of shards told, for a message that gives up waiting.
    pub(crate) fn current(&self) -> &str {
        if self.current.is_empty() {
            "no shard counted yet"
        } else {
            &self.current
        }
    }

    /// Why a `failed` recovery failed, as far as the recovery tells: the
    /// denials and refused shards, and where to read more.
    pub(crate) fn failure(&self, recovery: &Recovery, names: &Names) -> String {
        let mut parts: Vec<String> = recovery.reason.iter().map(|r| clean(r)).collect();
        parts.push(match recovery.threshold {
            Some(threshold) => format!("{} of {threshold} shards in", recovery.shards),
            None => format!("{} in", plural(recovery.shards, "shard")),
        });
        parts.extend(recovery.denied.iter().map(|d| denied_line(d, names)));
        parts.extend(recovery.rejected.iter().map(|shard| {
            format!(
                "refused a shard from {}: {}",
                names.or_feed(&shard.custodian),
                clean(&shard.reason)
            )
        }));
        format!(
            "the recovery of {} failed ({}); `sherdctl audit` has the details",
            recovery.backup,
            parts.join("; ")
        )
    }
}

fn shards_line(recovery: &Recovery) -> String {
    match recovery.threshold {
        Some(threshold) => format!("waiting for shards: {} of {threshold}", recovery.shards),
        None => format!(
            "{} in, threshold not known yet",
            plural(recovery.shards, "shard")
        ),
    }
}

fn denied_line(denial: &sherd_api::Denial, names: &Names) -> String {
    let who = names.or_feed(&denial.custodian);
    match &denial.reason {
        Some(reason) => format!("{who} denied the request: {}", clean(reason)),
        None => format!("{who} denied the request (no reason given)"),
    }
}

/// `n thing` or `n things`.
fn plural<N: fmt::Display + PartialEq + From<u8>>(n: N, thing: &str) -> String {
    if n == N::from(1) {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A duration in words, in the largest unit that holds it whole: `90
/// seconds`, `30 minutes`, `72 hours`, `7 days`. Days only past 72 hours, so
/// that the default veto window reads as it is documented, and as people
/// say it.
fn in_words(secs: u64) -> String {
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;
    let (count, unit) = if secs > 3 * DAY && secs.is_multiple_of(DAY) {
        (secs / DAY, "day")
    } else if secs > 0 && secs.is_multiple_of(HOUR) {
        (secs / HOUR, "hour")
    } else if secs > 0 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    plural(count, unit)
}

/// A backup's emergency access in sentences for its owner: who may ask,
/// how long the owner has to veto, who releases then, and what one-time
/// means.
fn emergency_access(backup: &Backup) -> Vec<String> {
    if backup.trustees.is_empty() {
        return vec!["Emergency access: none (no trustees).".to_owned()];
    }
    let trustees: Vec<String> = backup
        .trustees
        .iter()
        .map(|t| match &t.name {
            Some(name) => format!("{name} ({})", t.feed),
            None => t.feed.clone(),
        })
        .collect();
    let who = format!(
        "Emergency access: {} may ask for the secret",
        and_list(&trustees)
    );
    let Some(policy) = &backup.policy else {
        return vec![format!("{who}; the daemon did not say on what terms.")];
    };
    let release = release_words(policy);
    let mut lines = vec![format!("{who}.")];
    lines.push(match policy.veto_delay_secs {
        0 => format!("There is no veto window: when a trustee asks, {release}."),
        secs => format!(
            "Your custodians then wait {} for your veto (`sherdctl deny REQUEST`); \
             after that, {release}.",
            in_words(secs.into())
        ),
    });
    if policy.one_time {
        lines.push(
            "One-time: after a trustee has seen the secret, every copy is erased.".to_owned(),
        );
    }
    lines
}

/// A custodian's health checks, after its state: when it last proved its
/// shard, or how long it has been silent. Nothing before its first answer.
fn health(c: &BackupCustodian, created_ms: u64, now_ms: u64) -> String {
    match (c.silent_since_ms, c.last_proof_ms) {
        (Some(_), last) => format!(
            "; SILENT: no proof of its shard for {}",
            span(now_ms.saturating_sub(last.unwrap_or(created_ms)))
        ),
        (None, Some(at)) => format!("; proved its shard {}", relative(at, now_ms)),
        (None, None) => String::new(),
    }
}

/// Who releases a shard to a trustee once the veto window has passed.
fn release_words(policy: &BackupPolicy) -> String {
    match policy.release.as_str() {
        "approve" => "each custodian releases when its user approves".to_owned(),
        "auto" => "each custodian's node releases on its own".to_owned(),
        other => {
            format!("each custodian releases as {other:?} says (this sherdctl does not know it)")
        }
    }
}

/// A request's state for the table: a veto window with the time it has left.
fn request_state(request: &RecoveryRequest, now_ms: u64) -> String {
    match (request.state.as_str(), request.release_at_ms) {
        ("waiting", Some(at)) if at > now_ms => {
            format!("waiting (veto window: {} left)", span(at - now_ms))
        }
        ("waiting", Some(_)) => "waiting (veto window over)".to_owned(),
        _ => request.state.clone(),
    }
}

/// What to do about an event that asks something of the user, after its
/// fields; empty for the others.
fn event_hint(event: &Event) -> String {
    match event {
        Event::GrantReceived { .. } => {
            "  (you may ask for it in an emergency: `sherdctl grants`)".to_owned()
        }
        Event::ReleaseDue { request, .. } => {
            format!("  (the owner did not veto: `sherdctl approve {request}` releases our shard)")
        }
        _ => String::new(),
    }
}

fn auto_approve_mark(contact: &Contact) -> &'static str {
    if contact.auto_approve {
        "  auto-approve"
    } else {
        ""
    }
}

/// The contact name a request carries for `feed` (its owner's or its
/// requester's), or the feed itself.
fn who<'a>(request: &'a RecoveryRequest, feed: &'a str) -> &'a str {
    let name = if feed == request.owner {
        request.owner_name.as_deref()
    } else if feed == request.requester {
        request.requester_name.as_deref()
    } else {
        None
    };
    name.unwrap_or(feed)
}

/// The first 12 characters of an id, enough to tell backups apart in a table.
fn short(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

/// A span of `ms`, short, in its two largest units: `4d 3h`, `71h 59m`,
/// `5m`, `40s`. Hours up to three days, as [`in_words`] counts them, so that
/// a veto window of "72 hours" counts down from `72h 0m`.
fn span(ms: u64) -> String {
    let s = ms / 1000;
    let minutes = s / 60 % 60;
    if s > 3 * 86_400 {
        format!("{}d {}h", s / 86_400, s / 3600 % 24)
    } else if s >= 3600 {
        format!("{}h {minutes}m", s / 3600)
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{s}s")
    }
}

/// `at_ms` from `now_ms`, as `in 2d 3h` or `5m ago`.
fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms >= now_ms {
        format!("in {}", span(at_ms - now_ms))
    } else {
        format!("{} ago", span(now_ms - at_ms))
    }
}

/// Text that came from another node, with control characters escaped so
/// that it cannot move the cursor or recolour the terminal.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The widest of `items`, in characters.
fn width<S: AsRef<str>>(items: impl Iterator<Item = S>) -> usize {
    items.map(|s| s.as_ref().chars().count()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use sherd_api::{FeedStatus, Received};

    use super::*;

    fn render(
        json: bool,
        print: impl FnOnce(&mut Printer<&mut Vec<u8>>) -> io::Result<()>,
    ) -> String {
        let mut out = Vec::new();
        print(&mut Printer::new(&mut out, json)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn status() -> Status {
        Status {
            feed_id: "12D3KooWOwn".into(),
            version: "0.1.0".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/4001".into(), "/ip6/::1/tcp/4001".into()],
            peers: 2,
            feeds: vec![
                FeedStatus {
                    feed: "12D3KooWOwn".into(),
                    name: None,
                    seq: 7,
                },
                FeedStatus {
                    feed: "12D3KooWAliceFeed".into(),
                    name: Some("alice".into()),
                    seq: 1234,
                },
            ],
            received: Received {
                gossip_messages: 40,
                gossip_duplicates: 30,
                gossip_entries: 10,
                gossip_appended: 9,
                gossip_held: 1,
                sync_entries: 1200,
                sync_appended: 1199,
                sync_held: 1,
            },
        }
    }

    #[test]
    fn status_as_text() {
        assert_eq!(
            render(false, |p| p.status(&status())),
            "\
feed      12D3KooWOwn
version   0.1.0
listen    /ip4/127.0.0.1/tcp/4001
          /ip6/::1/tcp/4001
peers     2
received  gossip 40 copies: 30 dropped as duplicates, 9 new, 1 held; sync 1200: 1199 new, 1 held
feeds     12D3KooWOwn        seq    7  (this node)
          12D3KooWAliceFeed  seq 1234  alice
"
        );
    }

    #[test]
    fn status_as_json_is_the_wire_form() {
        let text = render(true, |p| p.status(&status()));
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status());
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn contacts_align_on_the_longest_name() {
        let contacts = [
            Contact {
                feed: "12D3KooWA".into(),
                name: "al".into(),
                auto_approve: false,
            },
            Contact {
                feed: "12D3KooWB".into(),
                name: "bérénice".into(),
                auto_approve: true,
            },
        ];
        assert_eq!(
            render(false, |p| p.contacts(&contacts)),
            "al        12D3KooWA\nbérénice  12D3KooWB  auto-approve\n"
        );
        assert_eq!(render(false, |p| p.contacts(&[])), "");
        assert_eq!(render(true, |p| p.contacts(&[])), "[]\n");
    }

    #[test]
    fn events_as_text_and_json() {
        let event = Event::EntryStored {
            feed: "12D3KooWA".into(),
            seq: 3,
        };
        assert_eq!(
            render(false, |p| p.event(&event)),
            "entry_stored       feed=12D3KooWA seq=3\n"
        );
        assert_eq!(
            render(true, |p| p.event(&event)),
            "{\"event\":\"entry_stored\",\"feed\":\"12D3KooWA\",\"seq\":3}\n"
        );
        assert_eq!(render(false, |p| p.lagged(4)), "");
        assert_eq!(
            render(true, |p| p.lagged(4)),
            "{\"event\":\"lagged\",\"missed\":4}\n"
        );
    }

    #[test]
    fn audit_records_one_per_line() {
        let records = [
            AuditRecord {
                seq: 9,
                record: serde_json::json!({ "result": "refused" }),
            },
            AuditRecord {
                seq: 10,
                record: serde_json::json!({ "result": "ok" }),
            },
        ];
        assert_eq!(
            render(false, |p| p.audit(&records)),
            " 9  {\"result\":\"refused\"}\n10  {\"result\":\"ok\"}\n"
        );
    }

    const OWN: &str = "12D3KooWOwn";
    const NEW: &str = "12D3KooWNew";

    fn request(kind: &str, role: &str) -> RecoveryRequest {
        RecoveryRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
            kind: kind.into(),
            role: role.into(),
            backup: "ab".repeat(32),
            owner: OWN.into(),
            owner_name: None,
            requester: OWN.into(),
            requester_name: None,
            recipient: OWN.into(),
            custodians: vec!["12D3KooWA".into(), "12D3KooWB".into()],
            received_ms: 1_000,
            expires_ms: 1_000 + 7 * 86_400_000,
            release_at_ms: None,
            state: "open".into(),
            released: None,
            reason: None,
        }
    }

    fn names() -> Names {
        Names(HashMap::from([
            ("12D3KooWA".to_owned(), "alice".to_owned()),
            (OWN.to_owned(), "olga".to_owned()),
        ]))
    }

    #[test]
    fn an_owner_request_says_to_run_recover() {
        let backup = "ab".repeat(32);
        assert_eq!(
            render(false, |p| p
                .recovery_requested(&request("owner", "requester"), &names())),
            format!(
                "\
request  0123456789abcdef0123456789abcdef
kind     owner
backup   {backup}
asked    alice  12D3KooWA
         -      12D3KooWB
next     run `sherdctl recover {backup}` to wait for the shards
"
            )
        );
        let json = render(true, |p| {
            p.recovery_requested(&request("owner", "requester"), &names())
        });
        let back: RecoveryRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request("owner", "requester"));
    }

    #[test]
    fn a_lost_device_request_says_who_does_what_next() {
        let backup = "ab".repeat(32);
        let mut lost = request("lost_device", "requester");
        lost.owner_name = Some("olga".into());
        lost.requester = "12D3KooWA".into();
        lost.recipient = NEW.into();
        lost.released = Some("e".into());
        let id = &lost.id;
        assert_eq!(
            render(false, |p| p.recovery_requested(&lost, &names())),
            format!(
                "\
request  {id}
kind     lost_device
backup   {backup}
owner    olga  12D3KooWOwn
to       12D3KooWNew
asked    alice  12D3KooWA
         -      12D3KooWB
next     your own shard was forwarded to 12D3KooWNew;
         ask the co-custodians to run `sherdctl approve {id}`
         (or `sherdctl forward {id} --to 12D3KooWNew`, which checks the new identity);
         the owner, on the new identity, runs `sherdctl recover {backup}`
"
            )
        );
    }

    #[test]
    fn requests_as_a_table() {
        let mut asked = request("lost_device", "custodian");
        asked.requester = "12D3KooWA".into();
        asked.requester_name = Some("alice".into());
        asked.state = "pending".into();
        let mut mine = request("owner", "requester");
        mine.expires_ms = 1_000;
        let now = 1_000 + 3_600_000 + 60_000;
        assert_eq!(
            render(false, |p| p.requests(&[asked.clone(), mine.clone()], now)),
            "\
id                                kind         role       backup        requester    state    expires
0123456789abcdef0123456789abcdef  lost_device  custodian  abababababab  alice        pending  in 6d 22h
0123456789abcdef0123456789abcdef  owner        requester  abababababab  12D3KooWOwn  open     1h 1m ago
"
        );
        assert_eq!(render(false, |p| p.requests(&[], now)), "");
        assert_eq!(render(true, |p| p.requests(&[], now)), "[]\n");
    }

    #[test]
    fn decisions() {
        let mut released = request("lost_device", "custodian");
        released.recipient = NEW.into();
        released.released = Some("e".into());
        released.state = "released".into();
        let backup = "ab".repeat(32);
        let id = &released.id;
        assert_eq!(
            render(false, |p| p.decided(Decision::Forwarded, &released)),
            format!("forwarded {id}: our shard of backup {backup} went to 12D3KooWNew\n")
        );
        let mut owner = request("owner", "custodian");
        owner.owner_name = Some("olga".into());
        owner.released = Some("e".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &owner)),
            format!("approved {id}: our shard of backup {backup} went to olga\n")
        );
        owner.released = None;
        owner.state = "pending".into();
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &owner)),
            format!("approved {id}: pending\n")
        );
        owner.state = "denied".into();
        owner.requester_name = Some("olga".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Denied, &owner)),
            format!("denied {id} from olga\n")
        );
        owner.reason = Some("call me\x1b[2J".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Denied, &owner)),
            format!("denied {id} from olga: call me\\u{{1b}}[2J\n")
        );
        let json = render(true, |p| p.decided(Decision::Denied, &owner));
        assert_eq!(
            serde_json::from_str::<RecoveryRequest>(&json).unwrap(),
            owner
        );
    }

    #[test]
    fn auto_approve_answers() {
        let mut contact = Contact {
            feed: "12D3KooWA".into(),
            name: "alice".into(),
            auto_approve: true,
        };
        assert_eq!(
            render(false, |p| p.auto_approve(&contact)),
            "recovery requests from alice (12D3KooWA) are approved without asking\n"
        );
        assert_eq!(
            render(false, |p| p.contact_added(&contact)),
            "added alice  12D3KooWA  auto-approve\n"
        );
        contact.auto_approve = false;
        assert_eq!(
            render(false, |p| p.auto_approve(&contact)),
            "recovery requests from alice (12D3KooWA) are left for `sherdctl approve` or `deny`\n"
        );
        assert_eq!(
            render(true, |p| p.auto_approve(&contact)),
            "{\"feed\":\"12D3KooWA\",\"name\":\"alice\",\"auto_approve\":false}\n"
        );
    }

    fn secret() -> RecoveredSecret {
        RecoveredSecret {
            backup: "b1".into(),
            label: "wallet seed".into(),
            secret: zeroize::Zeroizing::new("bXkgc2VlZA==".into()),
        }
    }

    #[test]
    fn the_secret_raw_or_as_json() {
        let mut out = Vec::new();
        Printer::new(&mut out, false)
            .secret(&secret(), b"my seed")
            .unwrap();
        assert_eq!(out, b"my seed");
        assert_eq!(
            render(true, |p| p.secret(&secret(), b"my seed")),
            "{\"backup\":\"b1\",\"label\":\"wallet seed\",\"secret\":\"bXkgc2VlZA==\"}\n"
        );
        let path = Path::new("/tmp/s");
        assert_eq!(
            render(false, |p| p.secret_written(&secret(), path)),
            "wrote the secret \"wallet seed\" of backup b1 to /tmp/s (mode 0600); \
             the daemon has forgotten it\n"
        );
        assert_eq!(
            render(true, |p| p.secret_written(&secret(), path)),
            "{\"backup\":\"b1\",\"label\":\"wallet seed\",\"output\":\"/tmp/s\"}\n"
        );
    }

    fn collecting(shards: usize, threshold: Option<u8>) -> Recovery {
        Recovery {
            backup: "b1".into(),
            owner: OWN.into(),
            kind: "lost_device".into(),
            shards,
            threshold,
            state: "collecting".into(),
            requests: vec!["r".into()],
            rejected: vec![],
            denied: vec![],
            reason: None,
        }
    }

    #[test]
    fn recovery_progress_tells_only_what_changes() {
        let names = names();
        let mut progress = RecoveryProgress::default();
        assert_eq!(progress.current(), "no shard counted yet");
        let mut r = collecting(0, None);
        assert_eq!(
            progress.news(&r, &names),
            ["0 shards in, threshold not known yet"]
        );
        assert!(progress.news(&r, &names).is_empty());
        r = collecting(1, None);
        assert_eq!(
            progress.news(&r, &names),
            ["1 shard in, threshold not known yet"]
        );
        r = collecting(1, Some(3));
        r.rejected.push(sherd_api::RejectedShard {
            custodian: "12D3KooWA".into(),
            entry: "e1".into(),
            reason: "bad signature".into(),
        });
        r.denied.push(sherd_api::Denial {
            custodian: "12D3KooWB".into(),
            reason: None,
        });
        assert_eq!(
            progress.news(&r, &names),
            [
                "refused a shard from alice: bad signature",
                "12D3KooWB denied the request (no reason given)",
                "waiting for shards: 1 of 3",
            ]
        );
        assert!(progress.news(&r, &names).is_empty());
        assert_eq!(progress.current(), "waiting for shards: 1 of 3");
        r.shards = 2;
        r.denied.push(sherd_api::Denial {
            custodian: OWN.into(),
            reason: Some("not now".into()),
        });
        assert_eq!(
            progress.news(&r, &names),
            [
                "olga denied the request: not now",
                "waiting for shards: 2 of 3"
            ]
        );
        // Once complete, the count is not repeated: the secret is next.
        r.state = "complete".into();
        r.shards = 3;
        assert!(progress.news(&r, &names).is_empty());
        r.state = "failed".into();
        assert_eq!(
            progress.failure(&r, &names),
            "the recovery of b1 failed (3 of 3 shards in; \
             12D3KooWB denied the request (no reason given); \
             olga denied the request: not now; \
             refused a shard from alice: bad signature); `sherdctl audit` has the details"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(short(&"ab".repeat(32)), "abababababab");
        assert_eq!(short("abc"), "abc");
        assert_eq!(relative(61_000, 1_000), "in 1m");
        assert_eq!(relative(1_000, 1_000), "in 0s");
        assert_eq!(relative(0, 59_999), "59s ago");
        assert_eq!(relative(2 * 86_400_000 + 3_600_000, 0), "in 49h 0m");
        assert_eq!(relative(3 * 86_400_000, 0), "in 72h 0m");
        assert_eq!(relative(3 * 86_400_000 + 1000, 0), "in 3d 0h");
        assert_eq!(relative(4 * 86_400_000 + 3_600_000, 0), "in 4d 1h");
        assert_eq!(span(72 * 3_600_000 - 60_000), "71h 59m");
        assert_eq!(span(3_600_000), "1h 0m");
        assert_eq!(span(3_599_999), "59m");
        for (secs, words) in [
            (0, "0 seconds"),
            (1, "1 second"),
            (90, "90 seconds"),
            (120, "2 minutes"),
            (1800, "30 minutes"),
            (5400, "90 minutes"),
            (3600, "1 hour"),
            (259_200, "72 hours"),
            (259_260, "4321 minutes"),
            (345_600, "4 days"),
            (604_800, "7 days"),
            (31_536_000, "365 days"),
            (100_001, "100001 seconds"),
        ] {
            assert_eq!(in_words(secs), words, "{secs}");
        }
        let items = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        assert_eq!(and_list(&items(0)), "");
        assert_eq!(and_list(&items(1)), "t0");
        assert_eq!(and_list(&items(2)), "t0 and t1");
        assert_eq!(and_list(&items(3)), "t0, t1 and t2");
        assert_eq!(clean("a\tb\u{7}é"), "a\\tb\\u{7}é");
        assert_eq!(plural(1, "shard"), "1 shard");
        assert_eq!(plural(2, "shard"), "2 shards");
    }

    #[test]
    fn small_answers() {
        assert_eq!(render(false, |p| p.id("12D3KooWA")), "12D3KooWA\n");
        assert_eq!(
            render(true, |p| p.id("12D3KooWA")),
            "{\"feed_id\":\"12D3KooWA\"}\n"
        );
        assert_eq!(
            render(false, |p| p.connected("/ip4/1.2.3.4/tcp/1")),
            "connected to /ip4/1.2.3.4/tcp/1\n"
        );
        assert_eq!(
            render(true, |p| p.contact_removed("12D3KooWA")),
            "{\"removed\":\"12D3KooWA\"}\n"
        );
    }

    /// The time the rendering tests print at.
    const NOW_MS: u64 = 1_000 + 40 * 86_400_000;

    fn backup(trustees: &[(&str, Option<&str>)], policy: Option<BackupPolicy>) -> Backup {
        Backup {
            id: "ab".repeat(32),
            label: "wallet seed".into(),
            threshold: 2,
            created_ms: 1_000,
            custodians: vec![
                sherd_api::BackupCustodian {
                    feed: "12D3KooWA".into(),
                    name: Some("alice".into()),
                    shard: "e1".into(),
                    acked: true,
                    erased: false,
                    last_proof_ms: None,
                    silent_since_ms: None,
                },
                sherd_api::BackupCustodian {
                    feed: "12D3KooWB".into(),
                    name: None,
                    shard: "e2".into(),
                    acked: false,
                    erased: false,
                    last_proof_ms: None,
                    silent_since_ms: None,
                },
            ],
            trustees: trustees
                .iter()
                .map(|(feed, name)| sherd_api::BackupTrustee {
                    feed: (*feed).into(),
                    name: name.map(Into::into),
                })
                .collect(),
            policy,
            revoked: false,
            redeemed: None,
        }
    }

    fn policy(veto_delay_secs: u32, one_time: bool, release: &str) -> BackupPolicy {
        BackupPolicy {
            veto_delay_secs,
            one_time,
            release: release.into(),
        }
    }

    #[test]
    fn a_backup_shows_who_proved_its_shard_and_who_went_silent() {
        let mut b = backup(&[], Some(policy(259_200, false, "approve")));
        b.custodians[0].last_proof_ms = Some(NOW_MS - 2 * 3_600_000);
        b.custodians[1].acked = true;
        b.custodians[1].last_proof_ms = Some(NOW_MS - 35 * 86_400_000);
        b.custodians[1].silent_since_ms = Some(NOW_MS - 86_400_000);
        let shown = render(false, |p| p.backup(&b, NOW_MS));
        assert!(
            shown.contains("  alice  12D3KooWA  acknowledged; proved its shard 2h 0m ago\n"),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  -      12D3KooWB  acknowledged; SILENT: no proof of its shard for 35d 0h\n"
            ),
            "{shown}"
        );
        // Revoked, health does not matter any more.
        b.revoked = true;
        assert!(!render(false, |p| p.backup(&b, NOW_MS)).contains("SILENT"));
    }

    #[test]
    fn a_backup_without_trustees_says_so() {
        let backup_id = "ab".repeat(32);
        let plain = backup(&[], Some(policy(259_200, false, "approve")));
        assert_eq!(
            render(false, |p| p.backup(&plain, NOW_MS)),
            format!(
                "\
backup    {backup_id}
label     wallet seed
recovery  any 2 of 2 custodians; 1 of 2 acknowledged
  alice  12D3KooWA  acknowledged
  -      12D3KooWB  waiting for ack
Emergency access: none (no trustees).
"
            )
        );
        // An older daemon sends neither field.
        let mut older = serde_json::to_value(&plain).unwrap();
        older.as_object_mut().unwrap().remove("trustees");
        older.as_object_mut().unwrap().remove("policy");
        let older: Backup = serde_json::from_value(older).unwrap();
        assert!(
            render(false, |p| p.backup(&older, NOW_MS))
                .ends_with("\nEmergency access: none (no trustees).\n")
        );
    }

    #[test]
    fn a_backup_states_its_emergency_policy_in_words() {
        let emergency = |backup: &Backup| {
            let text = render(false, |p| p.backup(backup, NOW_MS));
            let at = text.find("Emergency access").unwrap();
            text[at..].to_owned()
        };
        let bob = [("12D3KooWT", Some("bob"))];
        assert_eq!(
            emergency(&backup(&bob, Some(policy(259_200, false, "approve")))),
            "\
Emergency access: bob (12D3KooWT) may ask for the secret.
Your custodians then wait 72 hours for your veto (`sherdctl deny REQUEST`); after that, each custodian releases when its user approves.
"
        );
        let two = [("12D3KooWT", Some("bob")), ("12D3KooWU", None)];
        assert_eq!(
            emergency(&backup(&two, Some(policy(7 * 86_400, true, "auto")))),
            "\
Emergency access: bob (12D3KooWT) and 12D3KooWU may ask for the secret.
Your custodians then wait 7 days for your veto (`sherdctl deny REQUEST`); after that, each custodian's node releases on its own.
One-time: after a trustee has seen the secret, every copy is erased.
"
        );
        let three = [
            ("12D3KooWT", Some("bob")),
            ("12D3KooWU", Some("carol")),
            ("12D3KooWV", Some("dan")),
        ];
        assert_eq!(
            emergency(&backup(&three, Some(policy(90, false, "approve")))),
            "\
Emergency access: bob (12D3KooWT), carol (12D3KooWU) and dan (12D3KooWV) may ask for the secret.
Your custodians then wait 90 seconds for your veto (`sherdctl deny REQUEST`); after that, each custodian releases when its user approves.
"
        );
        assert_eq!(
            emergency(&backup(&bob, Some(policy(0, false, "auto")))),
            "\
Emergency access: bob (12D3KooWT) may ask for the secret.
There is no veto window: when a trustee asks, each custodian's node releases on its own.
"
        );
        assert_eq!(
            emergency(&backup(&bob, Some(policy(1800, false, "later\n")))),
            "\
Emergency access: bob (12D3KooWT) may ask for the secret.
Your custodians then wait 30 minutes for your veto (`sherdctl deny REQUEST`); after that, each custodian releases as \"later\\n\" says (this sherdctl does not know it).
"
        );
        assert_eq!(
            emergency(&backup(&bob, None)),
            "Emergency access: bob (12D3KooWT) may ask for the secret; \
             the daemon did not say on what terms.\n"
        );
        let full = backup(&two, Some(policy(259_200, true, "approve")));
        let json = render(true, |p| p.backup(&full, NOW_MS));
        assert_eq!(serde_json::from_str::<Backup>(&json).unwrap(), full);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["policy"],
            serde_json::json!({ "veto_delay_secs": 259_200, "one_time": true, "release": "approve" })
        );
        assert_eq!(
            value["trustees"],
            serde_json::json!([
                { "feed": "12D3KooWT", "name": "bob" },
                { "feed": "12D3KooWU", "name": null },
            ])
        );
    }

    fn grant(backup: &str, owner_name: Option<&str>, label: Option<&str>) -> Grant {
        Grant {
            backup: backup.into(),
            owner: OWN.into(),
            owner_name: owner_name.map(Into::into),
            label: label.map(Into::into),
            custodians: vec!["12D3KooWA".into(), "12D3KooWB".into(), "12D3KooWC".into()],
            threshold: 2,
            policy: policy(259_200, false, "approve"),
            received_ms: 1_000,
            redeemed_ms: None,
        }
    }

    #[test]
    fn grants_as_a_table_with_how_to_ask() {
        let (b1, b2) = ("ab".repeat(32), "cd".repeat(32));
        let one = grant(&b1, Some("olga"), Some("wallet seed"));
        let mut other = grant(&b2, None, None);
        other.threshold = 1;
        other.custodians.truncate(1);
        other.policy = policy(7 * 86_400, true, "auto");
        let mut odd = grant(&b2, None, Some("tab\there"));
        odd.policy = policy(0, false, "never");
        assert_eq!(
            render(false, |p| p.grants(&[one.clone(), other.clone(), odd.clone()])),
            format!(
                "\
backup                                                            owner        recovery  veto window  release              label
{b1}  olga         2 of 3    72 hours     custodians approve   wallet seed
{b2}  12D3KooWOwn  1 of 1    7 days       automatic, one-time  -
{b2}  12D3KooWOwn  2 of 3    none         \"never\"              tab\\there
ask with `sherdctl request-recovery BACKUP`; the owner is told, and may veto
"
            )
        );
        assert_eq!(
            render(false, |p| p.grants(std::slice::from_ref(&one))),
            format!(
                "\
backup                                                            owner  recovery  veto window  release             label
{b1}  olga   2 of 3    72 hours     custodians approve  wallet seed
ask with `sherdctl request-recovery {b1}`; the owner is told, and may veto
"
            )
        );
        assert_eq!(render(false, |p| p.grants(&[])), "");
        assert_eq!(render(true, |p| p.grants(&[])), "[]\n");
        let json = render(true, |p| p.grants(std::slice::from_ref(&one)));
        assert_eq!(serde_json::from_str::<Vec<Grant>>(&json).unwrap(), [one]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            serde_json::json!([{
                "backup": b1,
                "owner": OWN,
                "owner_name": "olga",
                "label": "wallet seed",
                "custodians": ["12D3KooWA", "12D3KooWB", "12D3KooWC"],
                "threshold": 2,
                "policy": { "veto_delay_secs": 259_200, "one_time": false, "release": "approve" },
                "received_ms": 1_000,
                "redeemed_ms": null,
            }])
        );
    }

    /// An emergency request from trustee bob (12D3KooWT) for olga's backup.
    fn emergency(role: &str, state: &str) -> RecoveryRequest {
        let mut r = request("emergency", role);
        r.requester = "12D3KooWT".into();
        r.requester_name = Some("bob".into());
        r.recipient = "12D3KooWT".into();
        r.owner_name = Some("olga".into());
        r.state = state.into();
        r.release_at_ms = Some(r.received_ms + 259_200_000);
        r
    }

    #[test]
    fn requests_show_the_veto_window_and_tell_the_owner_what_to_do() {
        let waiting = emergency("custodian", "waiting");
        let mut mine = emergency("owner", "waiting");
        mine.id = "fedcba9876543210fedcba9876543210".into();
        let vetoed = emergency("custodian", "vetoed");
        let mut approved = emergency("owner", "approved");
        approved.id = "11112222333344445555666677778888".into();
        let now = 1_000 + 60_000;
        assert_eq!(
            render(false, |p| p.requests(
                &[waiting.clone(), mine.clone(), vetoed.clone(), approved.clone()],
                now
            )),
            "\
id                                kind       role       backup        requester  state                                expires
0123456789abcdef0123456789abcdef  emergency  custodian  abababababab  bob        waiting (veto window: 71h 59m left)  in 6d 23h
fedcba9876543210fedcba9876543210  emergency  owner      abababababab  bob        waiting (veto window: 71h 59m left)  in 6d 23h
0123456789abcdef0123456789abcdef  emergency  custodian  abababababab  bob        vetoed                               in 6d 23h
11112222333344445555666677778888  emergency  owner      abababababab  bob        approved                             in 6d 23h
a trustee asks for your backup: `sherdctl deny fedcba9876543210fedcba9876543210` to veto, `sherdctl approve fedcba9876543210fedcba9876543210` to release early
"
        );
        // Several owner requests waiting: one line with placeholders.
        let later = 1_000 + 259_200_000 + 5_000;
        assert_eq!(
            render(false, |p| p.requests(&[mine.clone(), mine.clone()], later)),
            "\
id                                kind       role   backup        requester  state                       expires
fedcba9876543210fedcba9876543210  emergency  owner  abababababab  bob        waiting (veto window over)  in 3d 23h
fedcba9876543210fedcba9876543210  emergency  owner  abababababab  bob        waiting (veto window over)  in 3d 23h
trustees ask for your backups: `sherdctl deny ID` to veto, `sherdctl approve ID` to release early
"
        );
        // A custodian's waiting request asks nothing of its user yet; and
        // without its deadline, the state is shown bare.
        let mut undated = waiting.clone();
        undated.release_at_ms = None;
        assert_eq!(
            render(false, |p| p.requests(&[undated], now)),
            "\
id                                kind       role       backup        requester  state    expires
0123456789abcdef0123456789abcdef  emergency  custodian  abababababab  bob        waiting  in 6d 23h
"
        );
        let json = render(true, |p| p.requests(std::slice::from_ref(&waiting), now));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value[0]["release_at_ms"], 259_201_000);
        assert_eq!(value[0]["state"], "waiting");
        assert_eq!(
            serde_json::from_str::<Vec<RecoveryRequest>>(&json).unwrap(),
            [waiting]
        );
    }

    #[test]
    fn an_emergency_request_says_how_long_the_owner_has() {
        let backup = "ab".repeat(32);
        let mut asked = emergency("requester", "waiting");
        asked.requester = OWN.into();
        let id = &asked.id.clone();
        assert_eq!(
            render(false, |p| p.recovery_requested(&asked, &names())),
            format!(
                "\
request  {id}
kind     emergency
backup   {backup}
owner    olga  12D3KooWOwn
asked    alice  12D3KooWA
         -      12D3KooWB
next     emergency request sent to 2 custodians and the owner;
         the owner has 72 hours to veto;
         then run `sherdctl recover {backup}`
"
            )
        );
        let next = |request: &RecoveryRequest| {
            let text = render(false, |p| p.recovery_requested(request, &names()));
            text[text.find("next").unwrap()..].to_owned()
        };
        asked.custodians.truncate(1);
        // A few ms between the two clock readings do not show.
        asked.release_at_ms = Some(asked.received_ms + 90_000 + 3);
        assert_eq!(
            next(&asked),
            format!(
                "\
next     emergency request sent to 1 custodian and the owner;
         the owner has 90 seconds to veto;
         then run `sherdctl recover {backup}`
"
            )
        );
        asked.release_at_ms = Some(asked.received_ms);
        assert!(next(&asked).contains("\n         the backup has no veto window;\n"));
        asked.release_at_ms = None;
        assert!(
            next(&asked)
                .contains("\n         the owner may veto during the backup's veto window;\n")
        );
        let json = render(true, |p| p.recovery_requested(&asked, &names()));
        assert_eq!(
            serde_json::from_str::<RecoveryRequest>(&json).unwrap(),
            asked
        );
    }

    #[test]
    fn the_owner_vetoes_or_approves_early() {
        let backup = "ab".repeat(32);
        let mut vetoed = emergency("owner", "vetoed");
        vetoed.reason = Some("I am fine".into());
        let id = &vetoed.id.clone();
        assert_eq!(
            render(false, |p| p.decided(Decision::Denied, &vetoed)),
            format!("vetoed {id}: your custodians will not release backup {backup} to bob\n")
        );
        let approved = emergency("owner", "approved");
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &approved)),
            format!(
                "approved {id}: your custodians no longer wait for your veto to release \
                 backup {backup} to bob\n"
            )
        );
        // A state this sherdctl does not expect is shown as it is.
        let odd = emergency("owner", "waiting");
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &odd)),
            format!("approved {id}: waiting\n")
        );
        let json = render(true, |p| p.decided(Decision::Denied, &vetoed));
        assert_eq!(
            serde_json::from_str::<RecoveryRequest>(&json).unwrap(),
            vetoed
        );
    }

    #[test]
    fn every_event_has_a_line() {
        let (b, r) = ("b1", "r1");
        let s = String::from;
        let cases = [
            (
                Event::PeerConnected { peer: s("P") },
                "peer_connected     peer=P",
                r#"{"event":"peer_connected","peer":"P"}"#,
            ),
            (
                Event::PeerDisconnected { peer: s("P") },
                "peer_disconnected  peer=P",
                r#"{"event":"peer_disconnected","peer":"P"}"#,
            ),
            (
                Event::PeerBlocked {
                    peer: s("P"),
                    duration_secs: 600,
                },
                "peer_blocked       peer=P duration_secs=600",
                r#"{"event":"peer_blocked","peer":"P","duration_secs":600}"#,
            ),
            (
                Event::EntryStored {
                    feed: s("F"),
                    seq: 3,
                },
                "entry_stored       feed=F seq=3",
                r#"{"event":"entry_stored","feed":"F","seq":3}"#,
            ),
            (
                Event::ContactAdded {
                    feed: s("F"),
                    name: s("alice"),
                },
                "contact_added      feed=F name=alice",
                r#"{"event":"contact_added","feed":"F","name":"alice"}"#,
            ),
            (
                Event::ContactRemoved { feed: s("F") },
                "contact_removed    feed=F",
                r#"{"event":"contact_removed","feed":"F"}"#,
            ),
            (
                Event::BackupCreated {
                    backup: s(b),
                    custodians: 3,
                },
                "backup_created     backup=b1 custodians=3",
                r#"{"event":"backup_created","backup":"b1","custodians":3}"#,
            ),
            (
                Event::AckReceived {
                    backup: s(b),
                    custodian: s("C"),
                    acks: 1,
                    custodians: 3,
                },
                "ack_received       backup=b1 custodian=C acks=1 custodians=3",
                r#"{"event":"ack_received","backup":"b1","custodian":"C","acks":1,"custodians":3}"#,
            ),
            (
                Event::ShardHeld {
                    backup: s(b),
                    owner: s("O"),
                },
                "shard_held         backup=b1 owner=O",
                r#"{"event":"shard_held","backup":"b1","owner":"O"}"#,
            ),
            (
                Event::Refused {
                    what: s("shard"),
                    peer: s("P"),
                    entry: s("e"),
                    reason: s("bad"),
                },
                "refused            what=shard peer=P entry=e reason=bad",
                r#"{"event":"refused","what":"shard","peer":"P","entry":"e","reason":"bad"}"#,
            ),
            (
                Event::RequestReceived {
                    request: s(r),
                    kind: s("emergency"),
                    backup: s(b),
                    requester: s("T"),
                    recipient: s("T"),
                },
                "request_received   request=r1 kind=emergency backup=b1 requester=T recipient=T",
                r#"{"event":"request_received","request":"r1","kind":"emergency","backup":"b1","requester":"T","recipient":"T"}"#,
            ),
            (
                Event::GrantReceived {
                    backup: s(b),
                    owner: s("O"),
                },
                "grant_received     backup=b1 owner=O  \
                 (you may ask for it in an emergency: `sherdctl grants`)",
                r#"{"event":"grant_received","backup":"b1","owner":"O"}"#,
            ),
            (
                Event::ReleaseDue {
                    request: s(r),
                    backup: s(b),
                },
                "release_due        request=r1 backup=b1  \
                 (the owner did not veto: `sherdctl approve r1` releases our shard)",
                r#"{"event":"release_due","request":"r1","backup":"b1"}"#,
            ),
            (
                Event::ShardReleased {
                    request: s(r),
                    backup: s(b),
                    recipient: s("T"),
                },
                "shard_released     request=r1 backup=b1 recipient=T",
                r#"{"event":"shard_released","request":"r1","backup":"b1","recipient":"T"}"#,
            ),
            (
                Event::RequestDenied {
                    request: s(r),
                    backup: s(b),
                    by: s("O"),
                },
                "request_denied     request=r1 backup=b1 by=O",
                r#"{"event":"request_denied","request":"r1","backup":"b1","by":"O"}"#,
            ),
            (
                Event::RecoveryProgress {
                    backup: s(b),
                    shards: 1,
                    threshold: 2,
                },
                "recovery_progress  backup=b1 shards=1 threshold=2",
                r#"{"event":"recovery_progress","backup":"b1","shards":1,"threshold":2}"#,
            ),
            (
                Event::RecoveryComplete { backup: s(b) },
                "recovery_complete  backup=b1",
                r#"{"event":"recovery_complete","backup":"b1"}"#,
            ),
            (
                Event::RecoveryFailed {
                    backup: s(b),
                    reason: s("vetoed"),
                },
                "recovery_failed    backup=b1 reason=vetoed",
                r#"{"event":"recovery_failed","backup":"b1","reason":"vetoed"}"#,
            ),
        ];
        for (event, text, json) in cases {
            assert_eq!(render(false, |p| p.event(&event)), format!("{text}\n"));
            assert_eq!(render(true, |p| p.event(&event)), format!("{json}\n"));
        }
    }
}
