//! Starts N real UDP nodes on loopback in this process, joined into one ring:
//! for tests, benchmarks and the demo.

use crate::config::Config;
use crate::error::Result;
use crate::id::Id;
use crate::node::Node;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Testnet {
    pub nodes: Vec<Node>,
}

/// The client credential (`client_key`) of a [`Testnet`]'s nodes, unless
/// the config passed in names another: UDP client handles need one.
pub const TEST_CLIENT_KEY: &[u8] = b"chordsip-testnet-client-key";

impl Testnet {
    /// Starts `n` nodes on 127.0.0.1 with `cfg` (its listen address is ignored;
    /// without transactions, the SIP registrar's serve client handles)
    /// and joins each through the first, then waits until every node's successor
    /// and predecessor are the true ones, or `settle` passes.
    pub fn new(n: usize, cfg: &Config, settle: Duration) -> Result<Testnet> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut c = cfg.clone();
            c.listen = "127.0.0.1:0".parse().expect("valid");
            // Client handles' REGISTERs run on the nodes, as with the C API.
            c.transactions
                .get_or_insert_with(crate::sip::remote::transactions);
            c.client_key.get_or_insert_with(|| TEST_CLIENT_KEY.to_vec());
            let node = Node::start(c)?;
            if i == 0 {
                node.join(&[])?;
            } else {
                let boot: Vec<SocketAddr> = nodes.iter().take(3).map(|x: &Node| x.addr()).collect();
                node.join(&boot)?;
            }
            nodes.push(node);
        }
        let net = Testnet { nodes };
        net.wait_converged(settle);
        Ok(net)
    }

    /// A UDP client handle to node `i`, with the testnet's client key.
    pub fn client(&self, i: usize) -> Result<crate::client::Client> {
        let key = self.nodes[i].config().client_key.clone();
        crate::client::Client::connect(self.nodes[i].addr(), "chordsip", key.as_deref())
    }

    pub fn bootstrap(&self) -> Vec<SocketAddr> {
        self.nodes.iter().take(3).map(|n| n.addr()).collect()
    }

    /// Whether every listed node's successor is the true one, and its
    /// predecessor list names the true predecessors as far back as its
    /// replicas reach (a replica takes copies only from a primary it lists).
    pub fn converged(&self) -> bool {
        let mut ids: Vec<_> = self.nodes.iter().map(|n| n.id()).collect();
        ids.sort();
        let n = ids.len();
        self.nodes.iter().all(|node| {
            let Ok(r) = node.ring() else { return false };
            let pos = ids.binary_search(&node.id()).expect("present");
            if n == 1 {
                return r.successors.is_empty();
            }
            let depth = node.config().replicas.clamp(1, n - 1);
            r.successors.first().map(|s| s.id) == Some(ids[(pos + 1) % n])
                && (0..depth).all(|j| {
                    r.predecessors.get(j).map(|p| p.id) == Some(ids[(pos + n - 1 - j) % n])
                })
        })
    }

    pub fn wait_converged(&self, max: Duration) -> bool {
        wait_until(max, || self.converged())
    }

    /// The fewest copies any of `keys` has on the listed nodes.
    pub fn min_copies(&self, keys: &[Id]) -> usize {
        let held: Vec<HashSet<Id>> = self
            .nodes
            .iter()
            .map(|n| n.stored_keys().unwrap_or_default().into_iter().collect())
            .collect();
        keys.iter()
            .map(|k| held.iter().filter(|h| h.contains(k)).count())
            .min()
            .unwrap_or(0)
    }

    /// Waits until every one of `keys` has at least `copies` copies, or `max` passes.
    pub fn wait_copies(&self, keys: &[Id], copies: usize, max: Duration) -> bool {
        wait_until(max, || self.min_copies(keys) >= copies)
    }
}

/// Polls `cond` every 50 ms until it holds (true) or `max` passes (false).
pub fn wait_until(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + max;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
