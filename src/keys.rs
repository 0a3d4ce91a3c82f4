//! Keyed submissions: a pool's per-key in-flight caps, its fair order across keys, and its
//! per-key counts with bounded cardinality.
//!
//! # How a keyed task is queued
//!
//! A keyed task ([`Pool::key`](crate::Pool::key)) is queued in two parts: its job waits in
//! its key's own queue here, and a *turn* (`Work::Keyed`, which carries nothing) goes into
//! the pool's channel like any other job. A worker that dequeues a turn takes the next keyed
//! job in this pool's order ([`Keys::next`]), whichever key it belongs to. Turns and keyed
//! jobs are one to one (a job and its turn are queued under this module's lock, and a turn
//! that cannot be sent takes its own job back out), so the channel's length, the workers'
//! wake-ups, the shutdown protocol and the slot accounting are exactly those of unkeyed
//! tasks, and every keyed job is handled exactly once. An unkeyed task never touches this
//! module: it pays nothing.
//!
//! # Order
//!
//! [`KeyOrder::Fair`] is deficit round robin (Shreedhar and Varghese, 1995) with every task
//! costing one: the keys that have queued tasks take turns in a ring; the key at the front
//! is served up to its weight in tasks (its quantum), then goes to the back. A key whose
//! queue empties leaves the ring and loses what is left of its quantum. So a key that floods
//! the pool gets `weight / (sum of the waiting keys' weights)` of the turns and no more
//! while others wait, and a key that sends one task waits for at most one round, not behind
//! the flood. Tasks of one key keep their submission order. The order decides who waits,
//! not who gets a queue place: keyed tasks share the pool's slots, so without a per-key cap
//! a flooding key still fills the queue and the others are refused as full. The cap is what
//! keeps room for them. [`KeyOrder::Fifo`] serves keyed
//! tasks in arrival order (the per-key caps still apply): the baseline to compare with.
//!
//! # Counts
//!
//! A key with tasks in flight has a slot of its own (bounded by the pool's channel: every
//! live key has a turn there, or a task running), found by name once per keyed submission;
//! the turn hands its slot to the worker ([`KeyRef`]), so dequeuing and ending a keyed task
//! look nothing up by name. The slot keeps the key's counts while it is live; when its last
//! task ends they join the tally, which keeps counts for at most `4 x top` keys (at least
//! 32), after the Space-Saving heavy-hitters scheme: a key not yet counted replaces the
//! counted key with the least estimated load (submissions), whose counts move into the
//! "other keys" row, and inherits that estimate, so a key that keeps coming back outranks
//! keys seen once. Totals stay exact (the named keys plus the other row add up to every
//! keyed submission); a key that sends more than `1 / (4 x top)` of all keyed submissions
//! stays in the table, and the snapshot names the `top` keys of highest estimate (a named
//! key's counts are exact since it entered the table). Key names are hashed with the
//! standard library's keyed SipHash, so a tenant cannot choose names that collide (hash
//! flooding).
//!
//! A task the deadline timer expired while queued frees its pool slot at once, and one
//! cancelled through its handle keeps it until a worker passes it, as for any task; both keep
//! their key's place under the cap, and are counted for their key, until a worker or a drain
//! passes them: the job must stay in its key's queue to keep turns and jobs one to one.
//!
//! This module imports only leaves and the stats types.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::RefusalReason;
use crate::job::{Job, Outcome, Work};
use crate::stats::KeyStats;
use crate::sync::{Arc, Mutex};

/// The order in which a pool serves keyed tasks; see
/// [`PoolBuilder::key_order`](crate::PoolBuilder::key_order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyOrder {
    /// Weighted deficit round robin across keys: a flooding key gets its share of the
    /// workers and no more while other keys wait (the default).
    #[default]
    Fair,
    /// Arrival order, as an unkeyed pool serves: only the per-key caps protect other keys.
    Fifo,
}

impl KeyOrder {
    /// The name used in configuration: `fair` or `fifo`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrder::Fair => "fair",
            KeyOrder::Fifo => "fifo",
        }
    }
}

impl fmt::Display for KeyOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool's keyed state: the settings, and everything else behind one pool-local lock that
/// only keyed submissions and keyed turns take.
pub(crate) struct Keys {
    /// The most tasks one key may have in flight (queued or running).
    cap: Option<usize>,
    order: KeyOrder,
    /// How many keys the snapshot names; the rest are summed.
    top: usize,
    inner: Mutex<Inner>,
}

/// A live key's place in the pool's key table, handed from a dequeued turn to the worker
/// that ends the task: valid while the key has a task in flight (that task's), so ending a
/// keyed task needs no look-up by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyRef(usize);

struct Inner {
    /// The slot in `slots` of every key with tasks in flight. A key leaves (its slot is
    /// freed and its counts go to the tally) when its last task ends.
    live: HashMap<Arc<str>, usize>,
    slots: Vec<Option<Live>>,
    /// Slots free for reuse.
    free: Vec<usize>,
    /// Fair order: the slots of the keys with queued tasks, front first (being served).
    ring: VecDeque<usize>,
    /// FIFO order: the slot of every queued keyed task's key, in arrival order.
    arrivals: VecDeque<usize>,
    /// Weights other than 1, as set by the builder or `Pool::set_key_weight`.
    weights: HashMap<Arc<str>, u32>,
    /// Counts of keys that have been live, up to when they last left.
    tally: Tally,
}

/// A key with tasks in flight.
struct Live {
    key: Arc<str>,
    queue: VecDeque<Job>,
    /// Queued plus running.
    in_flight: usize,
    weight: u32,
    /// Tasks left of this key's quantum in the current round (fair order).
    credit: u32,
    /// Counts since the key became live, added to the tally when it leaves.
    counts: Counts,
}

impl Inner {
    fn slot(&mut self, i: usize) -> &mut Live {
        match self.slots.get_mut(i).and_then(Option::as_mut) {
            Some(live) => live,
            None => unreachable!("a key's slot is held while it has tasks in flight"),
        }
    }

    /// Makes `key` live, in a free slot.
    fn enter(&mut self, key: &str) -> usize {
        let key: Arc<str> = Arc::from(key);
        let live = Live {
            weight: self.weights.get(&key).copied().unwrap_or(1),
            key: key.clone(),
            queue: VecDeque::new(),
            in_flight: 0,
            credit: 0,
            counts: Counts::default(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(live);
                i
            }
            None => {
                self.slots.push(Some(live));
                self.slots.len() - 1
            }
        };
        self.live.insert(key, i);
        i
    }

    /// The key in slot `i` has no task left: frees the slot and adds its counts to the
    /// tally.
    fn leave(&mut self, i: usize) {
        if let Some(live) = self.slots[i].take() {
            self.free.push(i);
            self.live.remove(&live.key);
            self.tally.entry(&live.key).add(&live.counts);
        }
    }
}

/// Counts of one key (or of the other keys together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    accepted: u64,
    refused_cap: u64,
    refused_other: u64,
    completed: u64,
    panicked: u64,
    expired: u64,
    shed: u64,
    cancelled: u64,
    /// Queue wait of the tasks that were dequeued, summed, in nanoseconds.
    wait_nanos: u64,
    dequeued: u64,
}

impl Counts {
    fn load(&self) -> u64 {
        self.accepted + self.refused_cap + self.refused_other
    }

    fn add(&mut self, o: &Counts) {
        self.accepted += o.accepted;
        self.refused_cap += o.refused_cap;
        self.refused_other += o.refused_other;
        self.completed += o.completed;
        self.panicked += o.panicked;
        self.expired += o.expired;
        self.shed += o.shed;
        self.cancelled += o.cancelled;
        self.wait_nanos = self.wait_nanos.saturating_add(o.wait_nanos);
        self.dequeued += o.dequeued;
    }

    fn ended(&mut self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Completed => &mut self.completed,
            Outcome::Panicked => &mut self.panicked,
            // The deadline timer expired it while queued.
            Outcome::Expired | Outcome::Settled => &mut self.expired,
            Outcome::Shed => &mut self.shed,
            Outcome::Cancelled => &mut self.cancelled,
        };
        *c += 1;
    }
}

/// Counts per key, for at most `track` keys (Space-Saving), plus the rest summed.
struct Tally {
    track: usize,
    keys: HashMap<Arc<str>, Counted>,
    other: Counts,
}

/// A counted key: its exact counts since it entered the table, and the estimated load it
/// inherited from the key it replaced (Space-Saving's over-estimate), used only to rank.
struct Counted {
    counts: Counts,
    base: u64,
}

impl Counted {
    /// The estimated load: what Space-Saving ranks and evicts by.
    fn estimate(&self) -> u64 {
        self.base + self.counts.load()
    }
}

impl Tally {
    /// The counts of `key`, making room for it if it is new: the counted key with the least
    /// estimated load moves its counts into `other`, and the new key inherits that estimate
    /// (so a key that keeps coming back outranks keys seen once, as Space-Saving requires).
    fn entry(&mut self, key: &Arc<str>) -> &mut Counts {
        if !self.keys.contains_key(key) {
            let mut base = 0;
            if self.keys.len() >= self.track {
                let least = self
                    .keys
                    .iter()
                    .min_by_key(|(_, c)| c.estimate())
                    .map(|(k, _)| k.clone());
                if let Some(c) = least.and_then(|least| self.keys.remove(&least)) {
                    self.other.add(&c.counts);
                    base = c.estimate();
                }
            }
            self.keys.insert(
                key.clone(),
                Counted {
                    counts: Counts::default(),
                    base,
                },
            );
        }
        match self.keys.get_mut(key) {
            Some(c) => &mut c.counts,
            None => unreachable!("the key was just inserted"),
        }
    }
}

/// A turn: what goes into the pool's channel for each keyed job.
fn turn() -> Job {
    Job {
        enqueued: 0,
        work: Work::Keyed,
    }
}

impl Keys {
    pub(crate) fn new(
        cap: Option<usize>,
        order: KeyOrder,
        top: usize,
        weights: &[(String, u32)],
    ) -> Keys {
        Keys {
            cap,
            order,
            top,
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                slots: Vec::new(),
                free: Vec::new(),
                ring: VecDeque::new(),
                arrivals: VecDeque::new(),
                weights: weights
                    .iter()
                    .map(|(k, w)| (Arc::from(k.as_str()), *w))
                    .collect(),
                tally: Tally {
                    track: (top * 4).max(32),
                    keys: HashMap::new(),
                    other: Counts::default(),
                },
            }),
        }
    }

    pub(crate) fn cap(&self) -> Option<usize> {
        self.cap
    }

    pub(crate) fn order(&self) -> KeyOrder {
        self.order
    }

    /// Admits `job` under `key`: refuses it if the key is at its cap, else takes a pool slot
    /// with `reserve` (refused as full if there is none), queues the job in its key's queue
    /// and sends its turn with `send_turn`. If the turn cannot be sent, the job is taken back
    /// out and the slot given back with `release_slot`, after the key lock is released (it
    /// may wake async submitters: executor code). On refusal the job comes back with the
    /// reason; a cap refusal is counted for the key here, any other by the caller
    /// (`count_refused`).
    pub(crate) fn admit(
        &self,
        key: &str,
        job: Job,
        reserve: impl FnOnce() -> bool,
        send_turn: impl FnOnce(Job) -> Result<(), (Job, RefusalReason)>,
        release_slot: impl FnOnce(),
    ) -> Result<(), (Job, RefusalReason)> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let found = inner.live.get(key).copied();
        if let (Some(i), Some(cap)) = (found, self.cap) {
            let live = inner.slot(i);
            if live.in_flight >= cap {
                live.counts.refused_cap += 1;
                return Err((job, RefusalReason::KeyCap));
            }
        }
        if !reserve() {
            // Counted by the caller, which may still wait for a slot.
            return Err((job, RefusalReason::Full));
        }
        let i = match found {
            Some(i) => i,
            None => inner.enter(key),
        };
        let live = inner.slot(i);
        live.queue.push_back(job);
        live.in_flight += 1;
        let first_queued = live.queue.len() == 1;
        let joined_ring = match self.order {
            KeyOrder::Fair if first_queued => {
                inner.ring.push_back(i);
                true
            }
            KeyOrder::Fair => false,
            KeyOrder::Fifo => {
                inner.arrivals.push_back(i);
                false
            }
        };
        match send_turn(turn()) {
            Ok(()) => {
                inner.slot(i).counts.accepted += 1;
                Ok(())
            }
            Err((_turn, reason)) => {
                // Under the lock no turn was taken since: the job is still the last of its
                // key's queue, and its ring or arrival entry the last one.
                let live = inner.slot(i);
                let job = match live.queue.pop_back() {
                    Some(job) => job,
                    None => unreachable!("the job was just queued"),
                };
                live.in_flight -= 1;
                let idle = live.in_flight == 0;
                if joined_ring {
                    inner.ring.pop_back();
                }
                if self.order == KeyOrder::Fifo {
                    inner.arrivals.pop_back();
                }
                if idle {
                    inner.leave(i);
                }
                drop(guard);
                release_slot();
                Err((job, reason))
            }
        }
    }

    /// True if `key` is at its cap now; the refusal is then counted for the key. For a
    /// submission that would otherwise wait for room (async admission): a key at its cap is
    /// refused at once, not left waiting.
    pub(crate) fn refuse_if_capped(&self, key: &str) -> bool {
        let Some(cap) = self.cap else {
            return false;
        };
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        match inner.live.get(key).copied() {
            Some(i) if inner.slot(i).in_flight >= cap => {
                inner.slot(i).counts.refused_cap += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts a submission of `key` the pool refused for a reason other than the key's cap
    /// (full, timed out, shutting down, deadline).
    #[cold]
    pub(crate) fn count_refused(&self, key: &str) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        match inner.live.get(key).copied() {
            Some(i) => inner.slot(i).counts.refused_other += 1,
            None => inner.tally.entry(&Arc::from(key)).refused_other += 1,
        }
    }

    /// Takes the next keyed job in the pool's order, for a turn just dequeued, with its
    /// key's place. `None` only if turns and jobs went out of step, which the queueing
    /// protocol rules out.
    pub(crate) fn next(&self) -> Option<(Job, KeyRef)> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        match self.order {
            KeyOrder::Fifo => {
                let i = inner.arrivals.pop_front()?;
                let job = inner.slots.get_mut(i)?.as_mut()?.queue.pop_front()?;
                Some((job, KeyRef(i)))
            }
            KeyOrder::Fair => {
                let i = *inner.ring.front()?;
                let live = inner.slots.get_mut(i)?.as_mut()?;
                if live.credit == 0 {
                    live.credit = live.weight;
                }
                let job = live.queue.pop_front()?;
                live.credit -= 1;
                if live.queue.is_empty() {
                    live.credit = 0;
                    inner.ring.pop_front();
                } else if live.credit == 0 && inner.ring.len() > 1 {
                    inner.ring.rotate_left(1);
                }
                Some((job, KeyRef(i)))
            }
        }
    }

    /// A keyed task ended (or was resolved without running): frees its place under the
    /// key's cap and counts its outcome. `waited` is its queue wait if it was dequeued.
    pub(crate) fn release(&self, key: KeyRef, outcome: Outcome, waited: Option<Duration>) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let live = inner.slot(key.0);
        debug_assert!(live.in_flight > 0, "a keyed task released twice");
        live.in_flight = live.in_flight.saturating_sub(1);
        live.counts.ended(outcome);
        if let Some(w) = waited {
            live.counts.dequeued += 1;
            live.counts.wait_nanos = live
                .counts
                .wait_nanos
                .saturating_add(u64::try_from(w.as_nanos()).unwrap_or(u64::MAX));
        }
        if live.in_flight == 0 && live.queue.is_empty() {
            inner.leave(key.0);
        }
    }

    /// Sets the weight of `key` in the fair order, from its next round on.
    pub(crate) fn set_weight(&self, key: &str, weight: NonZeroU32) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let w = weight.get();
        if let Some(i) = inner.live.get(key).copied() {
            inner.slot(i).weight = w;
        }
        if w == 1 {
            inner.weights.remove(key);
        } else {
            inner.weights.insert(Arc::from(key), w);
        }
    }

    /// The weight of `key`.
    pub(crate) fn weight(&self, key: &str) -> u32 {
        self.inner.lock().weights.get(key).copied().unwrap_or(1)
    }

    /// Tasks of `key` in flight (queued or running).
    pub(crate) fn in_flight(&self, key: &str) -> usize {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        match inner.live.get(key).copied() {
            Some(i) => inner.slot(i).in_flight,
            None => 0,
        }
    }

    /// The `top` keys by load, heaviest first, and the other keys summed (`None` if there
    /// are none), each with its in-flight and queued tasks now.
    pub(crate) fn snapshot(&self) -> (Vec<KeyStats>, Option<KeyStats>) {
        let inner = self.inner.lock();
        // Every counted key: its tally plus, while live, its counts since it became live;
        // ranked by estimated load (Space-Saving's: exact counts plus what it inherited).
        let mut rows: Vec<(&str, Counts, u64, usize, usize)> = inner
            .tally
            .keys
            .iter()
            .map(|(k, c)| (&**k, c.counts, c.base, 0, 0))
            .collect();
        let index: HashMap<&str, usize> = rows.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
        for live in inner.slots.iter().flatten() {
            match index.get(&*live.key) {
                Some(&r) => {
                    let row = &mut rows[r];
                    row.1.add(&live.counts);
                    row.3 = live.in_flight;
                    row.4 = live.queue.len();
                }
                None => rows.push((&live.key, live.counts, 0, live.in_flight, live.queue.len())),
            }
        }
        let rank = |r: &(&str, Counts, u64, usize, usize)| r.2 + r.1.load();
        rows.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| a.0.cmp(b.0)));
        let rest = rows.split_off(rows.len().min(self.top));
        let top = rows
            .iter()
            .map(|(k, c, _, in_flight, queued)| key_stats(Some(k), c, *in_flight, *queued))
            .collect();
        let mut other = inner.tally.other;
        let (mut in_flight, mut queued) = (0, 0);
        for (_, c, _, f, q) in &rest {
            other.add(c);
            in_flight += f;
            queued += q;
        }
        let other = (other != Counts::default() || in_flight > 0)
            .then(|| key_stats(None, &other, in_flight, queued));
        (top, other)
    }

    /// The key in a live slot (tests).
    #[cfg(test)]
    fn name(&self, key: KeyRef) -> String {
        self.inner.lock().slot(key.0).key.to_string()
    }
}

fn key_stats(key: Option<&str>, c: &Counts, in_flight: usize, queued: usize) -> KeyStats {
    KeyStats {
        key: key.map(str::to_owned),
        accepted: c.accepted,
        refused_key_cap: c.refused_cap,
        refused_other: c.refused_other,
        completed: c.completed,
        panicked: c.panicked,
        expired: c.expired,
        shed: c.shed,
        cancelled: c.cancelled,
        in_flight,
        queued,
        queue_wait_total: Duration::from_nanos(c.wait_nanos),
        dequeued: c.dequeued,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;

    fn job() -> Job {
        Job {
            enqueued: 0,
            work: Work::Boxed(Box::new(|| {})),
        }
    }

    /// Admits one job of `key` with a free slot; the turn is dropped.
    fn admit(keys: &Keys, key: &str) -> Result<(), RefusalReason> {
        keys.admit(key, job(), || true, |_| Ok(()), || {})
            .map_err(|(_, r)| r)
    }

    fn order(keys: &Keys, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match keys.next() {
                Some((_, k)) => keys.name(k),
                None => "-".to_owned(),
            })
            .collect()
    }

    #[test]
    fn fair_order_round_robins_a_flood_with_quiet_keys() {
        let keys = Keys::new(None, KeyOrder::Fair, 10, &[]);
        for _ in 0..6 {
            admit(&keys, "flood").unwrap();
        }
        admit(&keys, "a").unwrap();
        admit(&keys, "b").unwrap();
        admit(&keys, "a").unwrap();
        assert_eq!(
            order(&keys, 10),
            ["flood", "a", "b", "flood", "a", "flood", "flood", "flood", "flood", "-"]
        );
    }

    #[test]
    fn weights_are_quanta_per_round() {
        let keys = Keys::new(None, KeyOrder::Fair, 10, &[("gold".to_owned(), 3)]);
        for _ in 0..5 {
            admit(&keys, "gold").unwrap();
            admit(&keys, "free").unwrap();
        }
        assert_eq!(
            order(&keys, 10),
            ["gold", "gold", "gold", "free", "gold", "gold", "free", "free", "free", "free"]
        );
    }

    #[test]
    fn fifo_order_is_arrival_order() {
        let keys = Keys::new(None, KeyOrder::Fifo, 10, &[]);
        for k in ["x", "x", "y", "x", "z"] {
            admit(&keys, k).unwrap();
        }
        assert_eq!(order(&keys, 6), ["x", "x", "y", "x", "z", "-"]);
    }

    #[test]
    fn cap_counts_queued_and_running_until_release() {
        let keys = Keys::new(Some(2), KeyOrder::Fair, 10, &[]);
        admit(&keys, "t").unwrap();
        admit(&keys, "t").unwrap();
        assert_eq!(admit(&keys, "t"), Err(RefusalReason::KeyCap));
        // Another key is not affected.
        admit(&keys, "u").unwrap();
        // Dequeued (running) still counts against the cap.
        let (_, k) = keys.next().unwrap();
        assert_eq!(keys.name(k), "t");
        assert_eq!(admit(&keys, "t"), Err(RefusalReason::KeyCap));
        keys.release(k, Outcome::Completed, Some(Duration::ZERO));
        admit(&keys, "t").unwrap();
        assert_eq!(keys.in_flight("t"), 2);
        let (top, other) = keys.snapshot();
        let t = top.iter().find(|s| s.key.as_deref() == Some("t")).unwrap();
        assert_eq!((t.accepted, t.refused_key_cap, t.completed), (3, 2, 1));
        assert_eq!((t.in_flight, t.queued), (2, 2));
        assert!(other.is_none());
    }

    #[test]
    fn a_failed_turn_takes_its_own_job_back() {
        let keys = Keys::new(None, KeyOrder::Fair, 10, &[]);
        admit(&keys, "a").unwrap();
        admit(&keys, "b").unwrap();
        let mut released = false;
        let refused = keys.admit(
            "b",
            job(),
            || true,
            |t| Err((t, RefusalReason::Full)),
            || released = true,
        );
        assert!(matches!(refused, Err((_, RefusalReason::Full))));
        assert!(released, "the slot is given back");
        assert_eq!(keys.in_flight("b"), 1);
        assert_eq!(order(&keys, 3), ["a", "b", "-"]);
        // A refused reservation queues nothing.
        let refused = keys.admit("c", job(), || false, |_| Ok(()), || unreachable!());
        assert!(matches!(refused, Err((_, RefusalReason::Full))));
        assert_eq!(keys.in_flight("c"), 0);
    }

    #[test]
    fn counts_are_bounded_and_totals_exact() {
        let keys = Keys::new(None, KeyOrder::Fair, 2, &[]);
        // One heavy key, then 1,000 distinct light ones.
        for _ in 0..500 {
            admit(&keys, "heavy").unwrap();
        }
        for i in 0..1000 {
            admit(&keys, &format!("light-{i}")).unwrap();
        }
        // Every light key is still live (queued): the tally has not counted them yet.
        let (top, other) = keys.snapshot();
        assert_eq!(top[0].key.as_deref(), Some("heavy"));
        let total: u64 = top.iter().map(|s| s.accepted).sum::<u64>() + other.unwrap().accepted;
        assert_eq!(total, 1500);
        // Once they have run, each has left and been counted, in at most 32 named rows.
        while let Some((_, k)) = keys.next() {
            keys.release(k, Outcome::Completed, Some(Duration::ZERO));
        }
        assert!(keys.inner.lock().tally.keys.len() <= 32);
        assert!(keys.inner.lock().slots.iter().all(Option::is_none));
        let (top, other) = keys.snapshot();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].key.as_deref(), Some("heavy"));
        assert_eq!(top[0].accepted, 500);
        let other = other.unwrap();
        let total: u64 = top.iter().map(|s| s.accepted).sum::<u64>() + other.accepted;
        assert_eq!(total, 1500);
        let completed: u64 = top.iter().map(|s| s.completed).sum::<u64>() + other.completed;
        assert_eq!(completed, 1500);
        assert_eq!(
            other.queued + top.iter().map(|s| s.queued).sum::<usize>(),
            0
        );
    }

    /// Runs one task of `key` through admission, dequeue and end.
    fn one(keys: &Keys, key: &str) {
        admit(keys, key).unwrap();
        let (_, k) = keys.next().unwrap();
        keys.release(k, Outcome::Completed, Some(Duration::ZERO));
    }

    #[test]
    fn a_heavy_key_that_comes_and_goes_among_one_off_keys_stays_named() {
        // 32 counted keys: 31 steady ones fill the table, then "heavy" alternates with 2,000
        // keys seen once. Heavy is 28 % of all submissions and must be named; a table that
        // let newcomers start from zero evicted it every other task.
        let keys = Keys::new(None, KeyOrder::Fair, 8, &[]);
        for s in 0..31 {
            for _ in 0..100 {
                one(&keys, &format!("steady-{s}"));
            }
        }
        for i in 0..2000 {
            one(&keys, "heavy");
            one(&keys, &format!("once-{i}"));
        }
        let (top, other) = keys.snapshot();
        assert_eq!(top.len(), 8);
        assert_eq!(top[0].key.as_deref(), Some("heavy"), "{top:?}");
        let total: u64 = top.iter().map(|s| s.completed).sum::<u64>() + other.unwrap().completed;
        assert_eq!(total, 31 * 100 + 4000);
    }
}
