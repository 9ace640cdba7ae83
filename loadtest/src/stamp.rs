//! What each message of a load test says about itself.
//!
//! The content carries a global sequence number, the sender and the send
//! time, so every receiver measures latency and notices loss, duplicates
//! and reordering on its own, without asking the server anything. Each run
//! has its own id in every content, so a room shared with other traffic (or
//! an earlier run) does not disturb the count.

use rand::{Rng, distributions::Alphanumeric};

/// One run's markers: the content prefixes its messages start with.
#[derive(Debug, Clone)]
pub struct Run {
    id: String,
    measured: String,
    probe: String,
    warmup: String,
}

/// A counted message, as its receiver reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Unique across the run: the receivers' sets of what arrived are keyed by it.
    pub seq: u64,
    pub sender: usize,
    /// Microseconds since the run's epoch, on the load tester's monotonic clock.
    pub sent_us: u64,
}

/// What a frame carried, if it was one of this run's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Measured(Stamp),
    /// Sent until every subscriber got one: the protocol does not say when a
    /// subscription is live.
    Probe,
    /// Sent before the clock starts, so servers settle; not counted.
    Warmup,
}

impl Run {
    /// A run with a fresh random id.
    pub fn new() -> Self {
        let id: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(6)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        Self::with_id(id)
    }

    fn with_id(id: String) -> Self {
        Self {
            measured: format!("ltm:{id}:"),
            probe: format!("ltp:{id}:"),
            warmup: format!("ltw:{id}:"),
            id,
        }
    }

    /// The run's id, also used in the names of the users it registers.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The content of a counted message; `pad` characters make it longer.
    pub fn measured(&self, stamp: Stamp, pad: usize) -> String {
        format!(
            "{}{}:{}:{}:{}",
            self.measured,
            stamp.seq,
            stamp.sender,
            stamp.sent_us,
            "x".repeat(pad)
        )
    }

    pub fn probe(&self, attempt: u64) -> String {
        format!("{}{attempt}", self.probe)
    }

    pub fn warmup(&self, sender: usize, pad: usize) -> String {
        format!("{}{sender}:{}", self.warmup, "x".repeat(pad))
    }

    /// Finds this run's marker in a raw frame. A substring search, not a JSON
    /// parse: at tens of thousands of frames a second, parsing each would make
    /// the load tester, not the server, the bottleneck on a shared machine.
    pub fn read(&self, frame: &str) -> Option<Seen> {
        if let Some(at) = frame.find(&self.measured) {
            return parse_measured(&frame[at + self.measured.len()..]).map(Seen::Measured);
        }
        if frame.contains(&self.probe) {
            return Some(Seen::Probe);
        }
        frame.contains(&self.warmup).then_some(Seen::Warmup)
    }
}

impl Default for Run {
    fn default() -> Self {
        Self::new()
    }
}

/// `seq:sender:sent_us:` at the start of `rest`.
fn parse_measured(rest: &str) -> Option<Stamp> {
    let mut fields = rest.splitn(4, ':');
    let seq = fields.next()?.parse().ok()?;
    let sender = fields.next()?.parse().ok()?;
    let sent_us = fields.next()?.parse().ok()?;
    fields.next()?;
    Some(Stamp {
        seq,
        sender,
        sent_us,
    })
}

/// Which sequence numbers were seen: a bit each, since a connection at a
/// thousand messages a second for a minute holds 60 000 of them.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`; false when it was there already.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = Self::place(seq);
        if self.words.len() <= word {
            self.words.resize(word + 1 + word / 2, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }

    /// Merges another set into this one.
    pub fn extend(&mut self, other: &SeqSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word |= theirs;
        }
    }

    /// How many of this set's numbers `other` has too.
    pub fn common(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    fn place(seq: u64) -> (usize, u64) {
        ((seq / 64) as usize, 1 << (seq % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(content: &str) -> String {
        serde_json::json!({"id": "1", "type": "next",
            "payload": {"data": {"messages": {"content": content}}}})
        .to_string()
    }

    #[test]
    fn a_counted_message_reads_back_as_written_inside_a_frame() {
        let run = Run::with_id("abc123".into());
        let stamp = Stamp {
            seq: 42,
            sender: 3,
            sent_us: 1_234_567,
        };
        let content = run.measured(stamp, 10);
        assert_eq!(run.read(&frame(&content)), Some(Seen::Measured(stamp)));
    }

    #[test]
    fn probes_and_warmups_are_told_apart_from_counted_messages() {
        let run = Run::with_id("abc123".into());
        assert_eq!(run.read(&frame(&run.probe(7))), Some(Seen::Probe));
        assert_eq!(run.read(&frame(&run.warmup(1, 0))), Some(Seen::Warmup));
    }

    #[test]
    fn another_runs_messages_are_not_ours() {
        let ours = Run::with_id("abc123".into());
        let theirs = Run::with_id("zzz999".into());
        let stamp = Stamp {
            seq: 1,
            sender: 0,
            sent_us: 5,
        };
        assert_eq!(ours.read(&frame(&theirs.measured(stamp, 0))), None);
        assert_eq!(ours.read(&frame(&theirs.probe(0))), None);
    }

    #[test]
    fn a_damaged_stamp_is_not_counted() {
        let run = Run::with_id("abc123".into());
        assert_eq!(run.read(&frame("ltm:abc123:12:x:5:")), None);
        assert_eq!(run.read(&frame("ltm:abc123:12:3")), None);
        assert_eq!(
            run.read(&frame("ltm:abc123:99999999999999999999:3:5:")),
            None
        );
    }

    #[test]
    fn a_sequence_number_is_new_once() {
        let mut set = SeqSet::default();
        assert!(set.insert(70));
        assert!(!set.insert(70));
        assert!(set.insert(3));
    }

    #[test]
    fn common_counts_what_both_sets_hold() {
        let mut sent = SeqSet::default();
        let mut received = SeqSet::default();
        for seq in [1, 2, 200] {
            sent.insert(seq);
        }
        for seq in [2, 200, 500] {
            received.insert(seq);
        }
        assert_eq!(received.common(&sent), 2);
    }
}
