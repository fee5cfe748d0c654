//! The steps most scenarios share: an owner and five custodians, made
//! contacts; a 3-of-5 backup of a fresh secret; the owner's request; the
//! approvals; the owner's recovery of the exact secret, handed over once.
//! Each is one numbered step, built from [`crate::flow`].

use sherd_api::{Recovery, RecoveryRequest, RejectedShard};
use sherd_testnet::Testnet;

use super::Steps;
use crate::flow::{self, Failure, On as _};

pub(super) const OWNER: &str = "owner";
pub(super) const CUSTODIANS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];
/// Shards needed to recover.
pub(super) const THRESHOLD: u8 = 3;
/// Bytes of each scenario's secret.
pub(super) const SECRET_LEN: usize = 32;

/// Steps: start the owner and c1..c5 (`flags` gives extra `sherdd`
/// arguments to some of them); each custodian dials the owner and the two
/// become contacts. Returns the custodians' feed ids, in order.
pub(super) async fn start_circle(
    net: &mut Testnet,
    s: &mut Steps,
    flags: &[(&str, &[&str])],
) -> Result<Vec<String>, Failure> {
    let every_custodian = flags.len() == CUSTODIANS.len()
        && CUSTODIANS.iter().all(|c| flags.iter().any(|(n, _)| n == c))
        && flags.windows(2).all(|w| w[0].1 == w[1].1);
    let flagged: Vec<String> = match flags.first() {
        Some((_, args)) if every_custodian => vec![format!(", each with {}", args.join(" "))],
        _ => flags
            .iter()
            .map(|(name, args)| format!(", {name} with {}", args.join(" ")))
            .collect(),
    };
    let title = format!(
        "start the owner's node and {} custodians' nodes, c1..c5{}",
        CUSTODIANS.len(),
        flagged.concat()
    );
    s.step(title, async |_| {
        for name in std::iter::once(OWNER).chain(CUSTODIANS) {
            let args = flags
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, args)| *args);
            net.start_with(name, args).await?;
        }
        Ok(())
    })
    .await?;
    s.set("daemons", CUSTODIANS.len() + 1);
    s.step(
        "each custodian dials the owner and they become contacts",
        async |_| {
            flow::befriend_owner(net, OWNER, &CUSTODIANS).await?;
            flow::feeds(net, &CUSTODIANS)
        },
    )
    .await
}

/// Steps: start the owner and `custodians` (each with `custodian_args`,
/// the owner with `owner_args`); each custodian dials the owner and the two
/// become contacts. Returns the custodians' feed ids, in order.
pub(super) async fn start_few(
    net: &mut Testnet,
    s: &mut Steps,
    custodians: &[&str],
    owner_args: &[&str],
    custodian_args: &[&str],
) -> Result<Vec<String>, Failure> {
    let shown = |args: &[&str]| {
        if args.is_empty() {
            String::new()
        } else {
            format!(" with {}", args.join(" "))
        }
    };
    let title = format!(
        "start the owner's node{} and {} custodians' nodes, {}{}",
        shown(owner_args),
        custodians.len(),
        and_list(custodians),
        shown(custodian_args),
    );
    s.step(title, async |_| {
        net.start_with(OWNER, owner_args).await?;
        for c in custodians {
            net.start_with(c, custodian_args).await?;
        }
        Ok(())
    })
    .await?;
    s.set("daemons", custodians.len() + 1);
    s.step(
        "each custodian dials the owner and they become contacts",
        async |_| {
            flow::befriend_owner(net, OWNER, custodians).await?;
            flow::feeds(net, custodians)
        },
    )
    .await
}

/// Step: the owner backs a fresh secret up `threshold`-of-`feeds`, and
/// every custodian acks. Counts the custodians, acks, threshold and size.
pub(super) async fn back_up_with(
    net: &Testnet,
    s: &mut Steps,
    feeds: &[String],
    threshold: u8,
    title: &str,
) -> Result<Made, Failure> {
    let made = back_up_acked(net, s, feeds, threshold, feeds.len(), title).await?;
    s.set("acks", feeds.len());
    Ok(made)
}

/// A refusal by the node `name` with HTTP status 409 (`conflict`) whose
/// message contains `words`: anything else (success included) is a
/// failure, saying what came instead. Returns the message.
pub(super) fn conflict<T: std::fmt::Debug>(
    name: &str,
    what: &str,
    answer: Result<T, sherd_api::ClientError>,
    words: &str,
) -> Result<String, Failure> {
    match answer {
        Err(sherd_api::ClientError::Api {
            status: 409,
            message,
            ..
        }) if message.contains(words) => Ok(message),
        Err(e) => Err(Failure::on(
            name,
            format!("{what}: refused with `{e:?}`, not a 409 saying `{words}`"),
        )),
        Ok(answer) => Err(Failure::on(
            name,
            format!("{what}: accepted ({answer:?}), not refused with a 409 saying `{words}`"),
        )),
    }
}

/// What a backup step made.
#[derive(Debug)]
pub(super) struct Made {
    /// The backup id.
    pub(super) id: String,
    /// The secret backed up.
    pub(super) secret: Vec<u8>,
}

/// Step: the owner backs a fresh secret up 3-of-5 with `feeds` and waits
/// for `acks` of them to acknowledge (and, if fewer than all, checks that
/// no more came).
pub(super) async fn back_up(
    net: &Testnet,
    s: &mut Steps,
    feeds: &[String],
    acks: usize,
    title: &str,
) -> Result<Made, Failure> {
    back_up_acked(net, s, feeds, THRESHOLD, acks, title).await
}

/// Step: the owner backs a fresh secret up `threshold`-of-`feeds` and waits
/// for exactly `acks` acknowledgements. Counts the custodians, threshold
/// and size.
async fn back_up_acked(
    net: &Testnet,
    s: &mut Steps,
    feeds: &[String],
    threshold: u8,
    acks: usize,
    title: &str,
) -> Result<Made, Failure> {
    let made = s
        .step(title, async |until| {
            let secret = flow::random_secret(SECRET_LEN)?;
            let made =
                flow::create_backup(net, OWNER, "scenario secret", threshold, feeds, &secret)
                    .await?;
            let shown = flow::wait_for_acks(net, until, OWNER, &made.id, acks).await?;
            if flow::acked(&shown) != acks {
                return Err(Failure::on(
                    OWNER,
                    format!("{} acks, {acks} expected", flow::acked(&shown)),
                ));
            }
            Ok(Made {
                id: made.id,
                secret,
            })
        })
        .await?;
    s.set("custodians", feeds.len());
    s.set("threshold", threshold);
    s.set("secret_bytes", SECRET_LEN);
    Ok(made)
}

/// Step: asking for the revoked backup `backup` again is refused (409,
/// "revoked").
pub(super) async fn asking_again_is_refused(
    net: &Testnet,
    s: &mut Steps,
    backup: &str,
    title: &str,
) -> Result<(), Failure> {
    s.step(title, async |_| {
        let again = net
            .node(OWNER)?
            .client()
            .start_recovery(&sherd_api::StartRecovery {
                backup: Some(backup.to_owned()),
                ..sherd_api::StartRecovery::default()
            })
            .await;
        conflict(OWNER, "asking again", again, "revoked").map(|_| ())
    })
    .await
}

/// Step: the owner asks for its backup back; the request reaches each of
/// `custodians` and waits for their decision; nothing is released yet, so
/// the owner has no secret to take.
pub(super) async fn owner_asks(
    net: &Testnet,
    s: &mut Steps,
    backup: &str,
    custodians: &[&str],
) -> Result<RecoveryRequest, Failure> {
    let title = format!(
        "the owner asks for its secret back; the request waits at {}",
        custodians.join(", ")
    );
    let request = s
        .step(title, async |until| {
            let request = flow::request_recovery(net, OWNER, backup).await?;
            if (request.kind.as_str(), request.role.as_str()) != ("owner", "requester") {
                return Err(Failure::on(
                    OWNER,
                    format!(
                        "the request is {}/{}, not owner/requester",
                        request.kind, request.role
                    ),
                ));
            }
            for c in custodians {
                flow::wait_for_pending(net, until, c, &request.id).await?;
            }
            let early = net.node(OWNER)?.client().take_secret(backup).await;
            match early {
                Err(e) if e.to_string().contains("not recovered yet") => Ok(request),
                Err(e) => Err(Failure::on(
                    OWNER,
                    format!("taking the secret before any approval: {e}, not `not recovered yet`"),
                )),
                Ok(_) => Err(Failure::on(
                    OWNER,
                    "the owner took a secret before any custodian approved",
                )),
            }
        })
        .await?;
    s.set("pending", custodians.len());
    Ok(request)
}

/// Step: each of `names` approves `request` in turn (waiting for it to
/// arrive first); each one's shard is released.
pub(super) async fn approvals(
    net: &Testnet,
    s: &mut Steps,
    request: &str,
    names: &[&str],
) -> Result<(), Failure> {
    let title = format!(
        "{} approve{}",
        and_list(names),
        if names.len() == 1 { "s" } else { "" }
    );
    s.step(title, async |until| {
        for name in names {
            flow::wait_for_pending(net, until, name, request).await?;
            flow::approve(net, name, request, None).await?;
        }
        Ok(())
    })
    .await?;
    s.add("approvals", names.len() as u64);
    Ok(())
}

/// Steps: `name`'s recovery of `owner`'s `backup` completes with
/// [`THRESHOLD`] shards; the secret it hands over is `secret`, byte for
/// byte; a second take is refused. `refusals` checks the shards the
/// recovery refused (see [`no_refusals`]). Returns the recovery as it was
/// when complete.
pub(super) async fn recovers(
    net: &Testnet,
    s: &mut Steps,
    name: &str,
    owner: &str,
    backup: &str,
    secret: &[u8],
    refusals: impl Fn(&[RejectedShard]) -> Result<(), String>,
) -> Result<Recovery, Failure> {
    recovers_with(net, s, name, owner, backup, THRESHOLD, secret, refusals).await
}

/// [`recovers`], for a backup of `threshold` shards.
#[expect(clippy::too_many_arguments, reason = "the steps' inputs, each named")]
pub(super) async fn recovers_with(
    net: &Testnet,
    s: &mut Steps,
    name: &str,
    owner: &str,
    backup: &str,
    threshold: u8,
    secret: &[u8],
    refusals: impl Fn(&[RejectedShard]) -> Result<(), String>,
) -> Result<Recovery, Failure> {
    let who = match name {
        OWNER => "the owner",
        "new" => "the new identity",
        other => other,
    };
    let title = format!("{who} gathers {threshold} shards and takes the exact secret");
    let done = s
        .step(title, async |until| {
            // An unexpected refusal ends the wait at once: the recovery may
            // never complete without that shard.
            let done = flow::wait_for_recovery(
                net,
                until,
                name,
                backup,
                "the recovery to complete",
                |r| r.state == "complete" || r.state == "failed" || refusals(&r.rejected).is_err(),
            )
            .await?;
            refusals(&done.rejected).map_err(|why| Failure::on(name, why))?;
            if done.state != "complete" {
                return Err(Failure::on(
                    name,
                    format!(
                        "the recovery failed: {}",
                        done.reason.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
            if done.owner != owner {
                return Err(Failure::on(
                    name,
                    format!(
                        "the recovery names {} as the owner, not {owner}",
                        done.owner
                    ),
                ));
            }
            if (done.shards, done.threshold) != (usize::from(threshold), Some(threshold)) {
                return Err(Failure::on(
                    name,
                    format!(
                        "complete with {} shards of threshold {:?}, not {threshold} of {threshold}",
                        done.shards, done.threshold
                    ),
                ));
            }
            let recovered = flow::take_secret(net, name, backup).await?;
            flow::same_secret(name, secret, &recovered)?;
            Ok(done)
        })
        .await?;
    s.set("shards", done.shards);
    s.set("rejected_shards", done.rejected.len());
    s.step(
        "a second take of the secret is refused: it was handed over already",
        async |_| {
            match net.node(name)?.client().take_secret(backup).await {
                Err(e) if e.to_string().contains("handed over already") => {}
                Err(e) => {
                    return Err(Failure::on(
                        name,
                        format!("the second take failed with `{e}`, not `handed over already`"),
                    ));
                }
                Ok(_) => return Err(Failure::on(name, "the secret was handed over twice")),
            }
            let after = net.node(name)?.client().recovery(backup).await.on(name)?;
            if after.state == "delivered" {
                Ok(())
            } else {
                Err(Failure::on(
                    name,
                    format!(
                        "after the take, the recovery is {}, not delivered",
                        after.state
                    ),
                ))
            }
        },
    )
    .await?;
    Ok(done)
}

/// Step: no custodian released its shard twice for one request (from each
/// one's audit log); counts the shards released in all.
pub(super) async fn released_once(net: &Testnet, s: &mut Steps) -> Result<(), Failure> {
    let released = s
        .step(
            "each custodian's audit log: at most one shard released per request",
            async |_| {
                let mut released = 0;
                for c in CUSTODIANS {
                    let log = flow::audit_log(net, c).await?;
                    for (request, n) in flow::audit_count(&log, "shard_released", "request") {
                        if n > 1 {
                            return Err(Failure::on(
                                c,
                                format!("{c} released its shard {n} times for request {request}"),
                            ));
                        }
                        released += n;
                    }
                }
                Ok(released)
            },
        )
        .await?;
    s.set("shards_released", released);
    Ok(())
}

/// For [`recovers`]: no shard was refused.
pub(super) fn no_refusals(rejected: &[RejectedShard]) -> Result<(), String> {
    match rejected {
        [] => Ok(()),
        [first, ..] => Err(format!(
            "{} shards refused, none expected; the first from {}: {}",
            rejected.len(),
            first.custodian,
            first.reason
        )),
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(super) fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::and_list;

    #[test]
    fn names_read_as_a_list() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&["c1"]), "c1");
        assert_eq!(and_list(&["c1", "c2"]), "c1 and c2");
        assert_eq!(and_list(&["c1", "c2", "c3"]), "c1, c2 and c3");
    }
}
