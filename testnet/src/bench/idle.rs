//! `idle-rss`: the resident memory of idle daemons, each connected to and
//! befriended with all the others (as `sherd-testnet up` leaves them), read
//! after they have had [`SETTLE`] to finish starting up.

use std::time::Duration;

use serde::Serialize;
use sherd_testnet::Testnet;

use super::median_count;
use crate::flow::Failure;
use crate::scenario::Steps;

/// How long the daemons idle before their memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// Idle daemons' resident memory (`VmRSS`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdleRss {
    /// Daemons read.
    pub(crate) daemons: usize,
    /// How long they idled first, in milliseconds.
    pub(crate) settle_ms: u64,
    /// The least of them.
    pub(crate) min_kib: u64,
    /// The median (of an even number, the lower middle one).
    pub(crate) median_kib: u64,
    /// The most of them.
    pub(crate) max_kib: u64,
    /// Each daemon's, in start order.
    pub(crate) each_kib: Vec<u64>,
}

/// Starts `daemons` daemons, wires them, lets them idle, reads their memory.
pub(super) async fn measure(
    net: &mut Testnet,
    s: &mut Steps,
    daemons: usize,
) -> Result<IdleRss, Failure> {
    let names: Vec<String> = (1..=daemons).map(|i| format!("idle{i}")).collect();
    s.step(
        format!("start {daemons} daemons; connect and befriend every pair"),
        async |_| Ok(crate::wire(net, &names).await?),
    )
    .await?;
    s.set("daemons", daemons);
    let each_kib = s
        .step(
            format!(
                "let them idle {} s, then read each one's VmRSS",
                SETTLE.as_secs()
            ),
            async |_| {
                tokio::time::sleep(SETTLE).await;
                let mut each = Vec::with_capacity(names.len());
                for name in &names {
                    each.push(net.node(name)?.rss_kib()?);
                }
                Ok(each)
            },
        )
        .await?;
    let figure = IdleRss {
        daemons,
        settle_ms: u64::try_from(SETTLE.as_millis()).unwrap_or(u64::MAX),
        min_kib: each_kib.iter().copied().min().unwrap_or(0),
        median_kib: median_count(&each_kib),
        max_kib: each_kib.iter().copied().max().unwrap_or(0),
        each_kib,
    };
    s.note(format!(
        "min {} KiB, median {} KiB, max {} KiB",
        figure.min_kib, figure.median_kib, figure.max_kib
    ));
    Ok(figure)
}
