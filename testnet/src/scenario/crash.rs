//! `crash`: custodian c1 is killed with SIGKILL at the worst moments and
//! restarted from its data dir each time.
//!
//! (b) In the middle of catching up: c1 is stopped, the owner makes more
//! backups, c1 restarts and dials the owner and is killed a few ms later,
//! several times, then restarts and catches up for good: every backup is
//! acked by all five, and c1 holds each shard once.
//!
//! (a) Right after it is told to approve: the owner asks again and again;
//! each time the approval is fired at c1 and c1 is killed a few ms later,
//! without waiting for the answer, over delays from 0 ms (killed before the
//! commit) up to one that lands after it. After the restart, approving
//! again either releases the shard (the kill came first) or is refused with
//! a 409 saying it is released (the commit came first).
//!
//! Checked throughout: after every restart, no feed c1 stores is lower than
//! the last height its API reported before the kill (no committed entry is
//! lost); an approval that was answered is still released after the crash;
//! c1's audit log has at most one `shard_released` line per request (no
//! shard released twice). At the end the owner recovers the exact secret.

use std::collections::BTreeMap;
use std::time::Duration;

use sherd_api::{ClientError, DecideRequest};
use sherd_testnet::Testnet;
use tokio::time::Instant;

use super::common::{self, CUSTODIANS, OWNER};
use super::{Scenario, ScenarioFuture, Steps};
use crate::flow::{self, Failure, On as _};

/// The custodian that crashes.
const VICTIM: &str = "c1";
/// Backups the owner makes while c1 is away.
const WHILE_AWAY: usize = 3;
/// When c1 is killed while catching up, after it dials the owner again.
const CATCH_UP_KILLS: [CatchUpKill; 3] = [
    CatchUpKill::After(2),
    CatchUpKill::OnReplication,
    CatchUpKill::OnShard,
];
/// How long after the approval is fired c1 is killed (ms).
const APPROVE_KILLS: [u64; 6] = [0, 1, 3, 8, 20, 50];
/// If no kill of [`APPROVE_KILLS`] came after the commit, the delay doubles
/// from the last one up to this (ms): the approval takes longer than that
/// only if something is wrong.
const APPROVE_KILL_MAX: u64 = 3_200;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "crash",
    about: "c1 is killed (SIGKILL) while catching up and right after it is told to approve, \
            and restarted each time: no committed entry lost, no shard released twice, \
            the exact secret recovered",
    run,
};

fn run<'a>(net: &'a mut Testnet, s: &'a mut Steps) -> ScenarioFuture<'a> {
    Box::pin(scenario(net, s))
}

/// Each feed c1 stores, and its height.
type Heights = BTreeMap<String, u64>;

/// When to kill c1 while it catches up.
#[derive(Debug, Clone, Copy)]
enum CatchUpKill {
    /// This many ms after it dialed the owner.
    After(u64),
    /// As soon as its API shows more of the owner's feed than before.
    OnReplication,
    /// As soon as its API shows one more shard held than at its restart.
    OnShard,
}

impl CatchUpKill {
    fn when(self) -> String {
        match self {
            Self::After(ms) => format!("{ms} ms after"),
            Self::OnReplication => "as soon as it stores some of the owner's new entries".into(),
            Self::OnShard => "as soon as it holds one more shard than at its restart".into(),
        }
    }
}

/// What the crashes did, for the report.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    restarts: u64,
    height_checks: u64,
    catch_up_kills_mid_way: u64,
    before_commit: u64,
    after_commit_unanswered: u64,
    after_answer: u64,
}

impl Tally {
    fn report(&self, s: &mut Steps) {
        s.set("kills", self.kills);
        s.set("restarts", self.restarts);
        s.set("height_checks", self.height_checks);
        s.set("catch_up_kills_mid_way", self.catch_up_kills_mid_way);
        s.set("killed_before_commit", self.before_commit);
        s.set("killed_after_commit", self.after_commit());
        s.set("killed_after_answer", self.after_answer);
    }

    fn after_commit(&self) -> u64 {
        self.after_commit_unanswered + self.after_answer
    }
}

async fn scenario(net: &mut Testnet, s: &mut Steps) -> Result<(), Failure> {
    // The owner asks again after every kill: more requests for one backup
    // than a custodian takes in a day by default (3). The custodians of
    // this scenario take more; the limit itself is not what it tests.
    let config = net.root().join("many-requests.toml");
    std::fs::write(&config, "requests_per_day = 1000\n")
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config.display()))?;
    let config = config.to_string_lossy().into_owned();
    let args: [&str; 2] = ["--config", &config];
    let flags: Vec<(&str, &[&str])> = CUSTODIANS.iter().map(|c| (*c, &args[..])).collect();
    let feeds = common::start_circle(net, s, &flags).await?;
    let made = common::back_up(
        net,
        s,
        &feeds,
        CUSTODIANS.len(),
        "the owner backs a 32-byte secret up 3-of-5 with c1..c5; all five ack",
    )
    .await?;
    s.set("acks", CUSTODIANS.len());
    let owner_feed = net.node(OWNER)?.feed_id().to_owned();
    let mut tally = Tally::default();

    // (b) Killed while catching up.
    let title = format!(
        "c1 stops (SIGTERM); the owner makes {WHILE_AWAY} more backups, acked by the 4 others"
    );
    let (away, mut last, owner_height) = s
        .step(title, async |until| {
            let last = heights(net, VICTIM).await?;
            net.stop(VICTIM).await?;
            let mut away = Vec::new();
            for _ in 0..WHILE_AWAY {
                let secret = flow::random_secret(common::SECRET_LEN)?;
                let label = "made while c1 is away";
                let made =
                    flow::create_backup(net, OWNER, label, common::THRESHOLD, &feeds, &secret)
                        .await?;
                away.push(made.id);
            }
            for id in &away {
                flow::wait_for_acks(net, until, OWNER, id, CUSTODIANS.len() - 1).await?;
            }
            // How far c1 has to catch up on the owner's feed.
            let owner_height = heights(net, OWNER)
                .await?
                .get(&owner_feed)
                .copied()
                .ok_or_else(|| Failure::on(OWNER, "the owner's status lists no own feed"))?;
            Ok((away, last, owner_height))
        })
        .await?;
    s.set("backups", 1 + away.len());

    for kill in CATCH_UP_KILLS {
        let title = format!(
            "c1 restarts, dials the owner, and is killed {} (catching up); no feed lower \
             after the restart",
            kill.when()
        );
        let note;
        (last, note) = s
            .step(title, async |until| {
                let now = restart(net, &mut tally, &last).await?;
                let start_replicated = now.get(&owner_feed).copied().unwrap_or(0);
                let start_held = net.node(VICTIM)?.client().shards().await.on(VICTIM)?.len();
                let start = Instant::now();
                let (seen, held) = watch(net, |heights, held| {
                    let replicated = heights.get(&owner_feed).copied().unwrap_or(0);
                    let caught_up = replicated >= owner_height && held > away.len();
                    caught_up
                        || Instant::now() >= until
                        || match kill {
                            CatchUpKill::After(ms) => start.elapsed() >= Duration::from_millis(ms),
                            CatchUpKill::OnReplication => replicated > start_replicated,
                            CatchUpKill::OnShard => held > start_held,
                        }
                })
                .await?;
                net.kill(VICTIM).await?;
                tally.kills += 1;
                let replicated = seen.get(&owner_feed).copied().unwrap_or(0);
                if replicated < owner_height || held <= away.len() {
                    tally.catch_up_kills_mid_way += 1;
                }
                let note = format!(
                    "killed after {:.1} ms, holding {held} of {} shards, with the owner's feed \
                     at {replicated} of {owner_height}",
                    start.elapsed().as_secs_f64() * 1000.0,
                    away.len() + 1
                );
                Ok((seen, note))
            })
            .await?;
        s.note(note);
        tally.report(s);
    }
    let title = format!(
        "c1 restarts and catches up: all {} backups acked by all five, each shard held once",
        1 + away.len()
    );
    last = s
        .step(title, async |until| {
            let now = restart(net, &mut tally, &last).await?;
            for id in &away {
                flow::wait_for_acks(net, until, OWNER, id, CUSTODIANS.len()).await?;
            }
            let held = net.node(VICTIM)?.client().shards().await.on(VICTIM)?;
            let mut ids: Vec<&str> = held.iter().map(|h| h.backup.as_str()).collect();
            ids.sort_unstable();
            let mut want: Vec<&str> = std::iter::once(made.id.as_str())
                .chain(away.iter().map(String::as_str))
                .collect();
            want.sort_unstable();
            if ids != want {
                return Err(Failure::on(
                    VICTIM,
                    format!("c1 holds shards of {ids:?}, not one of each of {want:?}"),
                ));
            }
            let log = flow::audit_log(net, VICTIM).await?;
            if let Some((backup, n)) = flow::audit_count(&log, "shard_held", "backup")
                .into_iter()
                .find(|(_, n)| *n > 1)
            {
                return Err(Failure::on(
                    VICTIM,
                    format!("c1's audit log has {n} `shard_held` lines for backup {backup}"),
                ));
            }
            Ok(now)
        })
        .await?;
    tally.report(s);

    // (a) Killed right after it is told to approve.
    let mut requests = Vec::new();
    let mut delays: Vec<u64> = APPROVE_KILLS.to_vec();
    let mut k = 0;
    while k < delays.len() {
        let delay = delays[k];
        k += 1;
        let title = format!(
            "the owner asks (request {k}); c1 is killed {delay} ms after it is told to approve, \
             restarts, and approving again releases at most once"
        );
        let (request, now, note) = s
            .step(title, async |until| {
                approve_and_crash(net, until, &mut tally, &made.id, &last, delay).await
            })
            .await?;
        s.note(note);
        last = now;
        requests.push(request);
        tally.report(s);
        if k == delays.len() && tally.after_commit() == 0 && delay < APPROVE_KILL_MAX {
            delays.push((delay * 2).min(APPROVE_KILL_MAX));
        }
    }
    s.step(
        "both kinds of crash happened: before the approval's commit and after it",
        async |_| {
            if tally.before_commit > 0 && tally.after_commit() > 0 {
                Ok(())
            } else {
                Err(Failure::on(
                    VICTIM,
                    format!(
                        "{} kills before the commit, {} after it; each needs one",
                        tally.before_commit,
                        tally.after_commit()
                    ),
                ))
            }
        },
    )
    .await?;
    s.set("approve_kills", requests.len());

    let released = s
        .step(
            "c1's audit log, across every restart: exactly one shard released per request",
            async |_| {
                let log = flow::audit_log(net, VICTIM).await?;
                let released = flow::audit_count(&log, "shard_released", "request");
                for id in &requests {
                    match released.get(id).copied().unwrap_or(0) {
                        1 => {}
                        n => {
                            return Err(Failure::on(
                                VICTIM,
                                format!(
                                    "c1's audit log has {n} `shard_released` lines for request {id}"
                                ),
                            ));
                        }
                    }
                }
                Ok(released.values().sum::<usize>())
            },
        )
        .await?;
    s.set("shards_released_by_c1", released);

    let Some(last_request) = requests.last() else {
        return Err(Failure::on(VICTIM, "no request was made"));
    };
    common::approvals(net, s, last_request, &["c2", "c3"]).await?;
    // c1 released once per request: the owner's recovery took its first
    // shard and ignores the later ones (a duplicate is not a refusal).
    common::recovers(
        net,
        s,
        OWNER,
        &owner_feed,
        &made.id,
        &made.secret,
        common::no_refusals,
    )
    .await?;
    common::released_once(net, s).await
}

/// One crash of (a): the owner asks; once the request waits at c1, the
/// approval is fired and c1 killed `delay` ms later; c1 restarts; approving
/// again must release the shard if and only if the first approval was not
/// committed. Returns the request id, c1's heights after it all, and what
/// happened, in words.
async fn approve_and_crash(
    net: &mut Testnet,
    until: Instant,
    tally: &mut Tally,
    backup: &str,
    last: &Heights,
    delay: u64,
) -> Result<(String, Heights, String), Failure> {
    let request = flow::request_recovery(net, OWNER, backup).await?;
    let id = request.id;
    flow::wait_for_pending(net, until, VICTIM, &id).await?;
    let victim = net.node(VICTIM)?;
    let victim_feed = victim.feed_id().to_owned();
    let before = heights(net, VICTIM).await?;
    not_lower(last, &before)?;
    let own_before = before.get(&victim_feed).copied().unwrap_or(0);

    let client = victim.client().clone();
    let fired = id.clone();
    let approval =
        tokio::spawn(async move { client.approve(&fired, &DecideRequest::default()).await });
    let fired_at = Instant::now();
    let span = Duration::from_millis(delay);
    let (seen, _) = if delay == 0 {
        (before, 0)
    } else {
        watch(net, |_, _| fired_at.elapsed() >= span).await?
    };
    net.kill(VICTIM).await?;
    tally.kills += 1;
    let answer = approval
        .await
        .map_err(|e| anyhow::anyhow!("the approval task failed: {e}"))?;
    let answered = match answer {
        Ok(r) if r.state == "released" => true,
        Ok(r) => {
            return Err(Failure::on(
                VICTIM,
                format!("the approval answered `{}`, not released", r.state),
            ));
        }
        // Killed before it answered: the connection broke, or never opened.
        Err(ClientError::Unreachable { .. } | ClientError::Protocol(_)) => false,
        Err(e) => {
            return Err(Failure::on(
                VICTIM,
                format!("the approval, before the kill, failed: {e}"),
            ));
        }
    };

    let now = restart(net, tally, &seen).await?;
    let own_now = now.get(&victim_feed).copied().unwrap_or(0);
    let client = net.node(VICTIM)?.client();
    let state = flow::as_custodian(client, VICTIM, &id)
        .await?
        .map(|r| r.state)
        .unwrap_or_else(|| "gone".into());
    if answered && (state != "released" || own_now <= own_before) {
        return Err(Failure::on(
            VICTIM,
            format!(
                "the approval was answered `released` before the kill, but after the restart \
                 the request is {state} and c1's feed is at {own_now} (was {own_before})"
            ),
        ));
    }
    let again = client.approve(&id, &DecideRequest::default()).await;
    let note = match (state.as_str(), again) {
        ("pending", Ok(r)) if r.state == "released" => {
            tally.before_commit += 1;
            "killed before the commit: pending after the restart; approving again released it"
        }
        (
            "released",
            Err(ClientError::Api {
                status: 409,
                message,
                ..
            }),
        ) if message.contains("released") => {
            if answered {
                tally.after_answer += 1;
                "killed after the answer: released after the restart; approving again: 409"
            } else {
                tally.after_commit_unanswered += 1;
                "killed after the commit, before the answer: released after the restart; \
                 approving again: 409"
            }
        }
        (state, again) => {
            return Err(Failure::on(
                VICTIM,
                format!(
                    "after the restart the request was {state}, and approving again gave \
                     {again:?}; expected a release if pending, a 409 `released` if released"
                ),
            ));
        }
    };
    Ok((id, now, note.to_owned()))
}

/// Restarts c1 from its data dir, checks that no feed it stores is lower
/// than in `last` (what its API last reported), and has it dial the owner.
/// Returns its heights after the restart.
async fn restart(net: &mut Testnet, tally: &mut Tally, last: &Heights) -> Result<Heights, Failure> {
    net.restart(VICTIM).await?;
    tally.restarts += 1;
    let now = heights(net, VICTIM).await?;
    not_lower(last, &now)?;
    tally.height_checks += 1;
    net.connect(VICTIM, OWNER).await?;
    Ok(now)
}

/// Asks c1 for its heights and the number of shards it holds, again and
/// again, until `enough` says so (it is asked after each answer); returns
/// the last answers.
async fn watch(
    net: &Testnet,
    enough: impl Fn(&Heights, usize) -> bool,
) -> Result<(Heights, usize), Failure> {
    let client = net.node(VICTIM)?.client();
    loop {
        let heights = to_heights(client.status().await.on(VICTIM)?);
        let held = client.shards().await.on(VICTIM)?.len();
        if enough(&heights, held) {
            return Ok((heights, held));
        }
    }
}

async fn heights(net: &Testnet, name: &str) -> Result<Heights, Failure> {
    let status = net.node(name)?.client().status().await.on(name)?;
    Ok(to_heights(status))
}

fn to_heights(status: sherd_api::Status) -> Heights {
    status.feeds.into_iter().map(|f| (f.feed, f.seq)).collect()
}

/// Fails if a feed of `before` is lower in `after`, or gone from it.
fn not_lower(before: &Heights, after: &Heights) -> Result<(), Failure> {
    for (feed, was) in before {
        let now = after.get(feed).copied();
        if now.is_none_or(|now| now < *was) {
            return Err(Failure::on(
                VICTIM,
                format!(
                    "after the restart c1 stores feed {feed} up to {}, but its API reported {was} \
                     before the kill: a committed entry was lost",
                    now.map_or("nothing".into(), |n| n.to_string())
                ),
            ));
        }
    }
    Ok(())
}
