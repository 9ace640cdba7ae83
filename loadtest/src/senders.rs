//! S senders calling `sendMessage`, each with one request in flight: open
//! loop at a total rate, or closed loop (the next as soon as one is answered).
//! With several instances' endpoints they take turns over them.
//! With a mix, a share of the changes edit or react to the sender's last
//! message instead.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use super::{
    client::{ADD_REACTION, EDIT_MESSAGE, Failure, GraphQl, REMOVE_REACTION, SEND_MESSAGE},
    stamp::{Run, SeqSet, Stamp},
    subscribers::{latency_histogram, micros},
};

/// When and how fast the senders send.
#[derive(Clone)]
pub struct Schedule {
    pub senders: usize,
    /// Messages a second in total; 0 for closed loop.
    pub rate: f64,
    /// Until then messages are warm-up, sent the same way but not counted.
    pub warm_until: Instant,
    pub until: Instant,
    pub pad: usize,
    /// The share of measured changes that are edits and reactions.
    pub mix: f64,
}

/// Where the senders send, and the numbering they share with the receivers.
#[derive(Clone)]
pub struct Target {
    /// Sender `i` sends to `urls[i % len]`, so that with several instances
    /// messages come in on every one of them, not only where setup ran.
    pub urls: Vec<Url>,
    pub request_timeout: Duration,
    pub tokens: Vec<String>,
    pub room: String,
    pub run: Arc<Run>,
    pub epoch: Instant,
    pub issued: Arc<AtomicU64>,
}

/// What the senders did.
pub struct Sent {
    /// Sequence numbers whose `sendMessage` succeeded: the only ones receivers owe.
    pub ok: SeqSet,
    pub ok_count: u64,
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    /// Round trips of successful `sendMessage` calls, microseconds.
    pub latency: Histogram<u64>,
    /// Sends that started more than one interval late: the open loop turned
    /// partly closed because answers came slower than the schedule.
    pub behind_schedule: u64,
    pub first_send_us: Option<u64>,
    pub last_answer_us: u64,
    /// Of `ok_count`, edits.
    pub edits_ok: u64,
    /// Reactions added or taken back.
    pub reactions_ok: u64,
}

impl Sent {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: SeqSet::default(),
            ok_count: 0,
            errors: BTreeMap::new(),
            first_error: None,
            latency: latency_histogram()?,
            behind_schedule: 0,
            first_send_us: None,
            last_answer_us: 0,
            edits_ok: 0,
            reactions_ok: 0,
        })
    }

    fn merge(&mut self, other: Sent) -> anyhow::Result<()> {
        self.ok.extend(&other.ok);
        self.ok_count += other.ok_count;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.add(&other.latency)?;
        self.behind_schedule += other.behind_schedule;
        self.first_send_us = match (self.first_send_us, other.first_send_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_answer_us = self.last_answer_us.max(other.last_answer_us);
        self.edits_ok += other.edits_ok;
        self.reactions_ok += other.reactions_ok;
        Ok(())
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn failed(&mut self, failure: &Failure) {
        *self.errors.entry(failure.code()).or_default() += 1;
        self.first_error.get_or_insert_with(|| failure.to_string());
    }
}

/// Runs every sender to the end of the schedule; what they did together.
pub async fn send(target: Target, schedule: Schedule) -> anyhow::Result<Sent> {
    let senders = schedule.senders.max(1);
    let tasks: Vec<_> = (0..senders)
        .map(|index| {
            let target = target.clone();
            let schedule = schedule.clone();
            tokio::spawn(async move { sender(index, target, schedule).await })
        })
        .collect();
    let mut all = Sent::new()?;
    for task in tasks {
        all.merge(task.await??)?;
    }
    Ok(all)
}

async fn sender(index: usize, target: Target, schedule: Schedule) -> anyhow::Result<Sent> {
    let mut sent = Sent::new()?;
    let url = target
        .urls
        .get(index % target.urls.len().max(1))
        .ok_or_else(|| anyhow::anyhow!("no GraphQL URL to send to"))?;
    // Each sender its own client: its own keep-alive connection.
    let api = GraphQl::new(url.clone(), target.request_timeout)?;
    let token = &target.tokens[index % target.tokens.len()];
    let senders = schedule.senders.max(1) as f64;
    let interval = (schedule.rate > 0.0).then(|| Duration::from_secs_f64(senders / schedule.rate));
    // The mix's state: credit towards the next change that is not a new
    // message, how many there were, the last message sent, and whether
    // this sender's reaction is on it.
    let (mut mixed, mut others) = (0.0_f64, 0_u64);
    let mut last_message: Option<String> = None;
    let mut reacting = false;
    // Senders start spread over one interval, not all at once.
    let mut next = Instant::now()
        + interval.map_or(Duration::ZERO, |_| {
            Duration::from_secs_f64(index as f64 / schedule.rate)
        });
    loop {
        let now = Instant::now();
        if now >= schedule.until {
            break;
        }
        if let Some(interval) = interval {
            if next >= schedule.until {
                break;
            }
            if next > now {
                tokio::time::sleep_until(next).await;
            } else if now - next > interval && now >= schedule.warm_until {
                sent.behind_schedule += 1;
            }
            next += interval;
        }
        if Instant::now() < schedule.warm_until {
            let content = target.run.warmup(index, schedule.pad);
            // Warm-up answers are not counted, failed or not.
            let _ = api
                .call(
                    Some(token),
                    SEND_MESSAGE,
                    json!({ "room": target.room, "content": content }),
                )
                .await;
            continue;
        }
        // With a mix, some changes are not new messages: they go to the
        // sender's last message, edits and reactions taking turns.
        mixed += schedule.mix;
        let other = match (&last_message, mixed >= 1.0) {
            (Some(message), true) => {
                mixed -= 1.0;
                others += 1;
                Some((message.clone(), others % 2 == 1))
            }
            _ => None,
        };
        if let Some((message, false)) = other {
            let reacted = !reacting;
            let mutation = if reacted {
                ADD_REACTION
            } else {
                REMOVE_REACTION
            };
            let started = Instant::now();
            let answer = api
                .call(Some(token), mutation, json!({ "m": message }))
                .await;
            sent.last_answer_us = micros(target.epoch.elapsed());
            match answer {
                Ok(_) => {
                    reacting = reacted;
                    sent.reactions_ok += 1;
                    sent.latency
                        .saturating_record(micros(started.elapsed()).max(1));
                }
                Err(failure) => sent.failed(&failure),
            }
            continue;
        }
        let seq = target.issued.fetch_add(1, Relaxed);
        let sent_us = micros(target.epoch.elapsed());
        sent.first_send_us.get_or_insert(sent_us);
        let stamp = Stamp {
            seq,
            sender: index,
            sent_us,
        };
        let content = target.run.measured(stamp, schedule.pad);
        let started = Instant::now();
        let (mutation, variables, answered) = match &other {
            Some((message, true)) => (
                EDIT_MESSAGE,
                json!({ "m": message, "content": content }),
                "/editMessage/identity",
            ),
            _ => (
                SEND_MESSAGE,
                json!({ "room": target.room, "content": content }),
                "/sendMessage/identity",
            ),
        };
        let answer = api.call(Some(token), mutation, variables).await;
        let took = micros(started.elapsed());
        sent.last_answer_us = micros(target.epoch.elapsed());
        match answer {
            Ok(data) if data.pointer(answered).is_some() => {
                sent.ok.insert(seq);
                sent.ok_count += 1;
                sent.latency.saturating_record(took.max(1));
                if other.is_some() {
                    sent.edits_ok += 1;
                } else if let Some(identity) = data.pointer(answered).and_then(|v| v.as_str()) {
                    last_message = Some(identity.to_owned());
                    reacting = false;
                }
            }
            Ok(data) => sent.failed(&Failure::Http {
                status: 200,
                body: data.to_string(),
            }),
            Err(failure) => {
                sent.failed(&failure);
                if let Failure::Transport(_) = failure {
                    // A server that refuses connections would otherwise be hammered in a tight loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    Ok(sent)
}
