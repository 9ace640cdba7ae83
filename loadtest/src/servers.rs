//! The servers' memory and CPU over a run, when they run on this machine
//! (`--server-pid`, once for each): each one's own and, with several,
//! their sum.

use std::time::Duration;

use super::{
    process,
    report::{ServerFigures, round},
};

/// What was read of the servers, in the order of their pids.
pub struct Servers {
    pids: Vec<u32>,
    /// Resident memory before any subscriber connected, KiB.
    rss_before: Vec<Option<u64>>,
    /// Resident memory with every subscriber live, KiB.
    rss_connected: Vec<Option<u64>>,
    /// Resident memory once the sends are drained, the sockets still
    /// open, KiB: what the run's traffic left behind, such as what the
    /// server holds for subscribers that stopped reading (`--silent`).
    rss_drained: Vec<Option<u64>>,
    /// CPU seconds at the start of the measured time.
    cpu_start: Vec<Option<f64>>,
}

impl Servers {
    /// Reads the servers' memory before any subscriber connects.
    pub fn before(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            rss_before: rss(pids),
            rss_connected: vec![None; pids.len()],
            rss_drained: vec![None; pids.len()],
            cpu_start: vec![None; pids.len()],
        }
    }

    /// Reads their memory with every subscriber live.
    pub fn connected(&mut self) {
        self.rss_connected = rss(&self.pids);
    }

    /// Reads their memory once the sends are drained.
    pub fn drained(&mut self) {
        self.rss_drained = rss(&self.pids);
    }

    /// Reads their CPU times as the measured time starts.
    pub fn start_clock(&mut self) {
        self.cpu_start = self.pids.iter().map(|&pid| cpu_seconds(pid)).collect();
    }

    /// The figures of the servers `wall` after the clock started: with one
    /// pid its own; with several their sum (without a pid, its memory per
    /// connection over all `subscribed`) and each one's own, in order.
    /// `held[i]` is how many subscribers server `i` held, when known.
    pub fn figures(
        &self,
        held: &[Option<usize>],
        subscribed: usize,
        wall: Duration,
    ) -> (Option<ServerFigures>, Vec<ServerFigures>) {
        let mut each: Vec<ServerFigures> = self
            .pids
            .iter()
            .enumerate()
            .map(|(i, &pid)| ServerFigures {
                pid: Some(pid),
                rss_kib_before: self.rss_before[i],
                rss_kib_connected: self.rss_connected[i],
                rss_kib_drained: self.rss_drained[i],
                kib_per_connection: per_connection(
                    self.rss_before[i],
                    self.rss_connected[i],
                    held.get(i).copied().flatten(),
                ),
                cpu_pct: self.cpu_start[i].and_then(|before| {
                    let now = cpu_seconds(pid)?;
                    Some(process::percent_of_a_core(now - before, wall))
                }),
            })
            .collect();
        if each.len() < 2 {
            return (each.pop(), Vec::new());
        }
        // A sum with a server missing would pass for the whole: none then.
        let rss_before = each.iter().map(|s| s.rss_kib_before).sum::<Option<u64>>();
        let rss_connected = each
            .iter()
            .map(|s| s.rss_kib_connected)
            .sum::<Option<u64>>();
        let all = ServerFigures {
            pid: None,
            rss_kib_before: rss_before,
            rss_kib_connected: rss_connected,
            rss_kib_drained: each.iter().map(|s| s.rss_kib_drained).sum::<Option<u64>>(),
            kib_per_connection: per_connection(rss_before, rss_connected, Some(subscribed)),
            cpu_pct: each
                .iter()
                .map(|s| s.cpu_pct)
                .sum::<Option<f64>>()
                .map(|pct| round(pct, 1)),
        };
        (Some(all), each)
    }
}

fn rss(pids: &[u32]) -> Vec<Option<u64>> {
    pids.iter().map(|&pid| process::rss_kib(pid)).collect()
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    process::cpu_seconds(&pid.to_string())
}

/// The growth of resident memory over the connections held, KiB each.
fn per_connection(before: Option<u64>, after: Option<u64>, held: Option<usize>) -> Option<f64> {
    let (before, after, held) = (before?, after?, held.filter(|&held| held > 0)?);
    Some(round((after as f64 - before as f64) / held as f64, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(before: &[Option<u64>], connected: &[Option<u64>]) -> Servers {
        Servers {
            pids: (1..=before.len() as u32).collect(),
            rss_before: before.to_vec(),
            rss_connected: connected.to_vec(),
            rss_drained: connected.to_vec(),
            cpu_start: vec![None; before.len()],
        }
    }

    #[test]
    fn one_server_is_reported_alone_with_its_growth_over_every_subscriber() {
        let one = servers(&[Some(1000)], &[Some(3000)]);
        let (all, each) = one.figures(&[Some(100)], 100, Duration::from_secs(1));
        let all = all.expect("the server's figures");
        assert_eq!(all.pid, Some(1));
        assert_eq!(all.kib_per_connection, Some(20.0));
        assert!(each.is_empty());
    }

    #[test]
    fn several_servers_are_summed_and_each_keeps_its_own_figures() {
        let two = servers(&[Some(1000), Some(2000)], &[Some(2000), Some(6000)]);
        let (all, each) = two.figures(&[Some(50), None], 100, Duration::from_secs(1));
        let all = all.expect("the sum");
        assert_eq!(all.pid, None);
        assert_eq!(all.rss_kib_connected, Some(8000));
        assert_eq!(all.rss_kib_drained, Some(8000));
        assert_eq!(all.kib_per_connection, Some(50.0));
        assert_eq!(each.len(), 2);
        assert_eq!(each[0].kib_per_connection, Some(20.0));
        assert_eq!(each[1].kib_per_connection, None, "its connections unknown");
    }

    #[test]
    fn a_sum_missing_a_server_is_unknown_not_short() {
        let two = servers(&[Some(1000), None], &[Some(2000), Some(6000)]);
        let (all, _) = two.figures(&[None, None], 100, Duration::from_secs(1));
        let all = all.expect("the sum");
        assert_eq!(all.rss_kib_before, None);
        assert_eq!(all.kib_per_connection, None);
    }
}
