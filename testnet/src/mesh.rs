//! Sparse meshes of daemons on loopback: who dials whom, so that gossip has
//! to be relayed and no node has more links than gossipsub tolerates from
//! one IP address.
//!
//! gossipsub's default peer scoring penalises every peer by -5 times the
//! square of the number of peers past 10 that share its IP address, and on
//! the testnet every peer is 127.0.0.1: from 12 links a node scores all its
//! peers below the gossip threshold (-10), from 15 below the graylist
//! threshold (-80), where it ignores every message they send and waits for
//! the 30 s resync (seen: with up to 15 links, one node took 25 s). Keeping
//! every node at [`MAX_PEERS`] links or fewer measures gossip as it runs
//! between nodes on distinct addresses.

use sherd_testnet::Testnet;
use tokio::time::Instant;

use crate::flow::{self, Failure, On as _};

/// Links a node may have at most.
pub(crate) const MAX_PEERS: usize = 8;
/// Nodes each node dials, at most (among those started before it).
pub(crate) const DIALS: usize = 3;

/// Who dials whom among `nodes` nodes, node 0 being the hub (a publisher,
/// an owner): `dials[i]` lists the nodes node `i` dials, all started before
/// it. Each node dials up to [`DIALS`] of the earlier nodes that have fewer
/// than [`MAX_PEERS`] links yet, drawn by a fixed linear congruential
/// sequence (the same mesh every run); only nodes 1..=`hub_dialers` may
/// dial the hub. Every node is reachable, since each one links to earlier
/// ones.
pub(crate) fn sparse(nodes: usize, hub_dialers: usize) -> Vec<Vec<usize>> {
    let mut links = vec![0; nodes];
    let mut dials = vec![Vec::new(); nodes];
    let mut x: u64 = 0x5eed;
    for i in 1..nodes {
        let candidates: Vec<usize> = (0..i)
            .filter(|j| (*j > 0 || i <= hub_dialers) && links[*j] < MAX_PEERS)
            .collect();
        let mut picked = Vec::new();
        while picked.len() < DIALS.min(candidates.len()) {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = candidates[usize::try_from(x >> 33).unwrap_or(0) % candidates.len()];
            if !picked.contains(&j) {
                picked.push(j);
            }
        }
        picked.sort_unstable();
        for j in &picked {
            links[*j] += 1;
            links[i] += 1;
        }
        dials[i] = picked;
    }
    dials
}

/// How many links node `i` has in `dials` (those it dials and those that
/// dial it).
pub(crate) fn degree(dials: &[Vec<usize>], i: usize) -> usize {
    dials.get(i).map_or(0, Vec::len) + dials.iter().filter(|d| d.contains(&i)).count()
}

/// Makes every link of `dials` between the nodes `names` (in the same
/// order), then waits until each node has its links up, so that nothing is
/// published before the mesh stands. Returns the number of links.
pub(crate) async fn connect(
    net: &Testnet,
    names: &[String],
    dials: &[Vec<usize>],
    until: Instant,
) -> Result<usize, Failure> {
    let name = |i: usize| {
        names
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| Failure::from(anyhow::anyhow!("the mesh has no node {i}")))
    };
    let mut links = 0;
    for (i, to) in dials.iter().enumerate() {
        for j in to {
            net.connect(name(i)?, name(*j)?).await?;
            links += 1;
        }
    }
    for (i, me) in names.iter().enumerate() {
        let want = degree(dials, i);
        let client = net.node(me)?.client();
        flow::poll(until, me, &format!("{want} peers"), || async {
            let peers = client.peers().await.on(me)?.len();
            Ok(if peers >= want {
                Ok(())
            } else {
                Err(format!("{peers} peers"))
            })
        })
        .await?;
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::{DIALS, MAX_PEERS, degree, sparse};

    #[test]
    fn meshes_are_sparse_bounded_and_connected() {
        for (nodes, hub_dialers) in [(50, 3), (21, MAX_PEERS), (6, MAX_PEERS), (2, 1)] {
            let dials = sparse(nodes, hub_dialers);
            assert_eq!(dials.len(), nodes);
            assert!(dials[0].is_empty());
            let mut reached = vec![false; nodes];
            reached[0] = true;
            for i in 1..nodes {
                let d = &dials[i];
                assert!(!d.is_empty() && d.len() <= DIALS, "{i} dials {d:?}");
                assert!(d.iter().all(|j| *j < i), "{i} dials {d:?}");
                assert!(i <= hub_dialers || !d.contains(&0), "{i} dials the hub");
                assert!(d.iter().any(|j| reached[*j]), "{i}");
                reached[i] = true;
            }
            assert!(
                (0..nodes).all(|i| degree(&dials, i) <= MAX_PEERS),
                "{nodes}: {dials:?}"
            );
            assert!(degree(&dials, 0) <= hub_dialers);
        }
        // The gossip-50 mesh: n2..n4 all dial n1, and every later node
        // makes its three links.
        let dials = sparse(50, 3);
        assert_eq!(degree(&dials, 0), 3);
        assert!(dials[4..].iter().all(|d| d.len() == DIALS));
    }

    #[test]
    fn the_mesh_is_the_same_every_run() {
        assert_eq!(sparse(50, 3), sparse(50, 3));
    }
}
