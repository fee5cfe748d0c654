//! The moves every story of sherd is made of, as plain async functions over a
//! [`Testnet`]: start nodes, make them contacts, back a secret up and wait
//! for the acks, ask for it back, approve, take the secret. The demo and the
//! scenarios are built from them.
//!
//! Each wait polls the control API every [`POLL`] until a deadline the caller
//! gives (its step's), never sleeping a fixed time. Each failure is a
//! [`Failure`] that names the node whose log may say why. Nothing here
//! prints.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use sherd_api::{
    AuditQuery, AuditRecord, Backup, Client, CreateBackup, DecideRequest, Recovery,
    RecoveryRequest, StartRecovery,
};
use sherd_testnet::{HarnessError, Testnet, shell_quote};
use tokio::time::Instant;

/// How long one step may take.
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(60);
/// How often a waiting step asks again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Why a step failed, and which node's log may say more.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) node: Option<String>,
    pub(crate) error: anyhow::Error,
}

impl Failure {
    /// A failure blamed on `node`, saying `why`.
    pub(crate) fn on(node: &str, why: impl std::fmt::Display) -> Self {
        Self {
            node: Some(node.to_owned()),
            error: anyhow::anyhow!("{why}"),
        }
    }
}

impl From<HarnessError> for Failure {
    fn from(error: HarnessError) -> Self {
        let node = match &error {
            HarnessError::Api { name, .. }
            | HarnessError::Start { name, .. }
            | HarnessError::NotRunning(name) => Some(name.clone()),
            _ => None,
        };
        Self {
            node,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self { node: None, error }
    }
}

/// Blames a failure on a node.
pub(crate) trait On<T> {
    fn on(self, node: &str) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> On<T> for Result<T, E> {
    fn on(self, node: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            node: Some(node.to_owned()),
            error: e.into(),
        })
    }
}

/// Polls `probe` every [`POLL`] until it gives a value (`Ok(Ok(v))`); an
/// `Ok(Err(seen))` says what it sees meanwhile, for the error if `until`
/// passes first.
pub(crate) async fn poll<T, F, Fut>(
    until: Instant,
    name: &str,
    what: &str,
    mut probe: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, Failure>>,
{
    loop {
        match probe().await? {
            Ok(value) => return Ok(value),
            Err(seen) if Instant::now() >= until => {
                return Err(Failure::on(
                    name,
                    format!(
                        "{name} waited {} s for {what}: {seen}",
                        STEP_LIMIT.as_secs()
                    ),
                ));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The seq of `feed`'s head that the node of `client` stores (0 if none;
/// only its own feed and its contacts' are shown).
pub(crate) async fn height(client: &Client, feed: &str) -> Result<u64, sherd_api::ClientError> {
    let status = client.status().await?;
    Ok(status
        .feeds
        .iter()
        .find(|f| f.feed == feed)
        .map_or(0, |f| f.seq))
}

/// Lowercase hex, for showing a secret or comparing two.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` random bytes from the OS: a secret made for the occasion (shown on
/// screen by the demo, so not worth zeroizing).
pub(crate) fn random_secret(len: usize) -> Result<Vec<u8>, Failure> {
    let mut secret = vec![0; len];
    getrandom::fill(&mut secret)
        .map_err(|e| anyhow::anyhow!("no random bytes from the OS: {e}"))?;
    Ok(secret)
}

/// The feed ids of `names`, in order.
pub(crate) fn feeds(net: &Testnet, names: &[&str]) -> Result<Vec<String>, Failure> {
    Ok(names
        .iter()
        .map(|n| net.node(n).map(|d| d.feed_id().to_owned()))
        .collect::<Result<_, _>>()?)
}

/// Each of `custodians` dials `owner`, and the two become contacts.
pub(crate) async fn befriend_owner(
    net: &Testnet,
    owner: &str,
    custodians: &[&str],
) -> Result<(), Failure> {
    for c in custodians {
        net.connect(c, owner).await?;
        net.befriend(owner, c).await?;
    }
    Ok(())
}

/// `owner` backs `secret` up, `threshold` of `custodians` (feed ids).
pub(crate) async fn create_backup(
    net: &Testnet,
    owner: &str,
    label: &str,
    threshold: u8,
    custodians: &[String],
    secret: &[u8],
) -> Result<Backup, Failure> {
    // A plain backup: no trustees, the default policy.
    let request = CreateBackup {
        label: label.to_owned(),
        threshold,
        custodians: custodians.to_vec(),
        secret: base64::engine::general_purpose::STANDARD
            .encode(secret)
            .into(),
        ..CreateBackup::default()
    };
    net.node(owner)?
        .client()
        .create_backup(&request)
        .await
        .on(owner)
}

/// How many custodians of `backup` acknowledged their shard.
pub(crate) fn acked(backup: &Backup) -> usize {
    backup.custodians.iter().filter(|c| c.acked).count()
}

/// Waits until at least `want` custodians of `owner`'s backup `id` acked;
/// returns the backup as then shown.
pub(crate) async fn wait_for_acks(
    net: &Testnet,
    until: Instant,
    owner: &str,
    id: &str,
    want: usize,
) -> Result<Backup, Failure> {
    let client = net.node(owner)?.client();
    poll(until, owner, "the custodians' acks", || async {
        let shown = client.backup(id).await.on(owner)?;
        let (acks, of) = (acked(&shown), shown.custodians.len());
        Ok(if acks >= want {
            Ok(shown)
        } else if want < of {
            Err(format!("{acks} of {of} acks, {want} wanted"))
        } else {
            Err(format!("{acks} of {of} acks"))
        })
    })
    .await
}

/// `owner` asks every custodian of its backup for its shard.
pub(crate) async fn request_recovery(
    net: &Testnet,
    owner: &str,
    backup: &str,
) -> Result<RecoveryRequest, Failure> {
    net.node(owner)?
        .client()
        .start_recovery(&StartRecovery {
            backup: Some(backup.to_owned()),
            ..StartRecovery::default()
        })
        .await
        .on(owner)
}

/// The request `id` as the custodian `name` sees it.
pub(crate) async fn as_custodian(
    client: &Client,
    name: &str,
    id: &str,
) -> Result<Option<RecoveryRequest>, Failure> {
    let requests = client.requests().await.on(name)?;
    Ok(requests
        .into_iter()
        .find(|r| r.id == id && r.role == "custodian"))
}

/// Waits until the custodian `name` was asked request `id` and waits for a
/// decision.
pub(crate) async fn wait_for_pending(
    net: &Testnet,
    until: Instant,
    name: &str,
    id: &str,
) -> Result<(), Failure> {
    let client = net.node(name)?.client();
    poll(until, name, "the request", || async {
        let seen = as_custodian(client, name, id).await?;
        Ok(match seen {
            Some(r) if r.state == "pending" => Ok(()),
            Some(r) => Err(format!("the request is {}", r.state)),
            None => Err("it has not arrived".into()),
        })
    })
    .await
}

/// The custodian `name` approves request `id` (only toward `to`, if given);
/// its shard must then be released.
pub(crate) async fn approve(
    net: &Testnet,
    name: &str,
    id: &str,
    to: Option<&str>,
) -> Result<RecoveryRequest, Failure> {
    let decision = DecideRequest {
        to: to.map(str::to_owned),
        ..DecideRequest::default()
    };
    let answer = net
        .node(name)?
        .client()
        .approve(id, &decision)
        .await
        .on(name)?;
    if answer.state != "released" {
        return Err(Failure::on(
            name,
            format!(
                "after approval, the request is {}, not released",
                answer.state
            ),
        ));
    }
    Ok(answer)
}

/// Waits until `name`'s recovery of `backup` satisfies `done`; `what` names
/// what is waited for.
pub(crate) async fn wait_for_recovery(
    net: &Testnet,
    until: Instant,
    name: &str,
    backup: &str,
    what: &str,
    done: impl Fn(&Recovery) -> bool,
) -> Result<Recovery, Failure> {
    let client = net.node(name)?.client();
    poll(until, name, what, || async {
        let r = client.recovery(backup).await.on(name)?;
        Ok(if done(&r) {
            Ok(r)
        } else {
            Err(format!(
                "the recovery is {}, with {} shards, {} refused",
                r.state,
                r.shards,
                r.rejected.len()
            ))
        })
    })
    .await
}

/// Takes the recovered secret of `backup` from `name` (once), decoded.
pub(crate) async fn take_secret(
    net: &Testnet,
    name: &str,
    backup: &str,
) -> Result<Vec<u8>, Failure> {
    let taken = net
        .node(name)?
        .client()
        .take_secret(backup)
        .await
        .on(name)?;
    base64::engine::general_purpose::STANDARD
        .decode(taken.secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("the secret is not base64: {e}"))
        .on(name)
}

/// Fails unless `recovered` (on `name`) is `original`, byte for byte.
pub(crate) fn same_secret(name: &str, original: &[u8], recovered: &[u8]) -> Result<(), Failure> {
    if recovered == original {
        return Ok(());
    }
    Err(Failure::on(
        name,
        format!(
            "the recovered secret differs from the original:\n  original   {}\n  recovered  {}",
            hex(original),
            hex(recovered)
        ),
    ))
}

/// The node's whole audit log, page by page.
pub(crate) async fn audit_log(net: &Testnet, name: &str) -> Result<Vec<AuditRecord>, Failure> {
    let client = net.node(name)?.client();
    let mut all: Vec<AuditRecord> = Vec::new();
    loop {
        let from = all.last().map(|r| r.seq + 1);
        let page = client
            .audit(AuditQuery {
                from,
                limit: Some(sherd_api::AUDIT_LIMIT_MAX),
            })
            .await
            .on(name)?;
        let more = page.len() == sherd_api::AUDIT_LIMIT_MAX;
        all.extend(page);
        if !more {
            return Ok(all);
        }
    }
}

/// How many audit lines of `event` each value of `field` has (lines
/// without the field are not counted).
pub(crate) fn audit_count(
    log: &[AuditRecord],
    event: &str,
    field: &str,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.iter().filter(|a| a.record["event"] == event) {
        if let Some(value) = line.record[field].as_str() {
            *counts.entry(value.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Runs `sherdctl --socket SOCKET ARGS` against the node `name`, as a
/// person would, and returns the command line as they would type it.
pub(crate) async fn sherdctl(net: &Testnet, name: &str, args: &[&str]) -> Result<String, Failure> {
    let socket = net.node(name)?.socket();
    let line = std::iter::once(net.node(name)?.sherdctl_line())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let binary = net.sherdctl();
    let mut command = tokio::process::Command::new(&binary);
    // As in the harness: nothing from the caller's environment may steer it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHERD_") {
            command.env_remove(&key);
        }
    }
    let out = command
        .arg("--socket")
        .arg(&socket)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {} ({e}); build it first: `cargo build --bins`",
                binary.display()
            )
        })
        .on(name)?;
    if !out.status.success() {
        return Err(Failure::on(
            name,
            format!(
                "`{line}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(line)
}
