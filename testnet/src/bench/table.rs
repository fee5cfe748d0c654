//! The bench's figures as a table for people.

use super::BenchReport;
use crate::scenario::{Out, shown_ms};

/// Prints `report` as a table on `out`, with the machine it ran on.
pub(super) fn print(out: Out, report: &BenchReport) {
    let mut rows: Vec<[String; 3]> = Vec::new();
    if let Some(idle) = &report.idle_rss {
        rows.push([
            format!("idle daemon RSS ({} daemons)", idle.daemons),
            format!("{} median", mib(idle.median_kib)),
            format!(
                "min {}, max {}, after {} s idle",
                mib(idle.min_kib),
                mib(idle.max_kib),
                idle.settle_ms / 1000
            ),
        ]);
    }
    for c in &report.catchup {
        rows.push([
            format!("catch-up, {} entries", c.entries),
            format!(
                "{} ({:.0} entries/s)",
                shown_ms(c.runs.spread.median_ms),
                c.entries_per_s
            ),
            format!(
                "{}; within {}; seeding {} not counted",
                runs(&c.runs.runs_ms),
                shown_ms(c.precision_ms),
                shown_ms(c.seed_ms)
            ),
        ]);
    }
    for r in &report.recovery {
        rows.push([
            format!(
                "recovery {} of {}, after approvals",
                r.threshold, r.custodians
            ),
            shown_ms(r.after_approval.spread.median_ms),
            format!(
                "{}; {} from sending the approval; owner linked to {}",
                runs(&r.after_approval.runs_ms),
                shown_ms(r.with_approval.spread.median_ms),
                r.owner_links
            ),
        ]);
    }
    if let Some(g) = &report.gossip_50 {
        rows.push([
            format!("propagation, {} nodes", g.nodes),
            format!(
                "90% {}, 99% {}",
                shown_ms(g.reached_90_ms),
                shown_ms(g.reached_99_ms)
            ),
            format!("{} links; {} in all", g.links, mib(g.rss_sum_kib)),
        ]);
        rows.push([
            format!("duplicates, {} nodes", g.nodes),
            g.duplicate_ratio
                .map_or_else(|| "unknown".to_owned(), |r| format!("ratio {r:.2}")),
            format!(
                "{} duplicates / {} unique deliveries: {} dropped by gossipsub, {} held by \
                 the stores",
                g.copies.duplicates(),
                g.copies.unique,
                g.copies.gossipsub_duplicates,
                g.copies.store_held_gossip + g.copies.store_held_sync
            ),
        ]);
    }
    out.line("");
    out.line(&format!("bench on {}", report.machine.summary()));
    let header = ["what".to_owned(), "figure".to_owned(), "detail".to_owned()];
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    for row in std::iter::once(&header).chain(&rows) {
        out.line(&format!("  {:w0$}  {:w1$}  {}", row[0], row[1], row[2]));
    }
    for failed in &report.failed {
        out.line(&format!("  {}: FAILED (see above)", failed.scenario));
    }
    let verdict = if report.ok { "ok" } else { "FAILED" };
    out.line(&format!(
        "{verdict}: bench in {}",
        shown_ms(report.total_ms)
    ));
}

/// `median of 3: 1.0 / 2.0 / 3.0 ms`, or the one run.
fn runs(runs_ms: &[f64]) -> String {
    let shown: Vec<String> = runs_ms.iter().map(|ms| shown_ms(*ms)).collect();
    match shown.len() {
        1 => "1 run".to_owned(),
        n => format!("median of {n}: {}", shown.join(" / ")),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
