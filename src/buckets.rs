//! Latency buckets: the cumulative `le` counts a Prometheus histogram is made of, derived at
//! snapshot time from the supervisor's HdrHistograms, with the bucket bounds the runtime was
//! built with ([`RuntimeBuilder::latency_buckets`](crate::RuntimeBuilder::latency_buckets)).
//!
//! Unlike quantiles, bucket counts add up across instances and subtract across time, so
//! `histogram_quantile(0.99, sum by (le) (rate(bulkhead_run_seconds_bucket[5m])))` gives a
//! fleet's p99 over the last five minutes.
//!
//! # Precision
//!
//! The workers record into HdrHistogram's layout (3 significant digits), not the bounds:
//! a value counts under a bound when the lowest value of its HdrHistogram bucket is at or
//! below the bound, so only values within 0.1 % above a bound can land one bucket low. The
//! sum is each recorded bucket's midpoint times its count: within 0.05 % of the true sum,
//! and, like the counts, it never decreases. The recorders keep no exact sum (that would be
//! one more store per task on the hot path).
//!
//! A leaf: it imports nothing from the crate.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The default latency bucket bounds: 50 µs to 30 s in a 1-2.5-5 series (18 bounds).
pub const DEFAULT_LATENCY_BUCKETS: [Duration; 18] = [
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// The most bucket bounds a runtime may have.
pub const MAX_LATENCY_BUCKETS: usize = 64;

/// One latency histogram as cumulative buckets, the form of a Prometheus histogram: the
/// tasks at or below each bound, their count and their sum. See docs/METRICS.md.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LatencyBuckets {
    /// `(bound, tasks with a latency at or below it)`, bounds increasing, counts cumulative
    /// (never decreasing along the list). The last, implicit `+Inf` bucket is [`count`](Self::count).
    pub buckets: Vec<(Duration, u64)>,
    /// Every task recorded.
    pub count: u64,
    /// The sum of their latencies (to the histogram's precision: within 0.05 %).
    pub sum: Duration,
}

/// The three latencies of a pool as cumulative buckets, since the runtime started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LatencyHistograms {
    /// From submission to the start of the task.
    pub queue_wait: LatencyBuckets,
    /// From start to end of the task.
    pub run: LatencyBuckets,
    /// From submission to end.
    pub end_to_end: LatencyBuckets,
}

impl LatencyBuckets {
    /// The buckets of `h` (values in nanoseconds) for the increasing `bounds`.
    pub(crate) fn of(h: &Histogram<u64>, bounds: &[Duration]) -> LatencyBuckets {
        let mut per_bound = vec![0u64; bounds.len()];
        let mut sum_nanos: u128 = 0;
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let top = v.value_iterated_to();
            let low = h.lowest_equivalent(top);
            sum_nanos += u128::from(h.median_equivalent(top)) * u128::from(n);
            // The first bound at or above the bucket's lowest value; none: only `+Inf`.
            let i = bounds.partition_point(|b| b.as_nanos() < u128::from(low));
            if let Some(c) = per_bound.get_mut(i) {
                *c += n;
            }
        }
        let mut running = 0;
        let buckets = bounds
            .iter()
            .zip(per_bound)
            .map(|(b, n)| {
                running += n;
                (*b, running)
            })
            .collect();
        let sum_nanos = u64::try_from(sum_nanos).unwrap_or(u64::MAX);
        LatencyBuckets {
            buckets,
            count: h.len(),
            sum: Duration::from_nanos(sum_nanos),
        }
    }
}

/// Why `bounds` cannot be a runtime's latency buckets, if so.
pub(crate) fn check_bounds(bounds: &[Duration]) -> Result<(), String> {
    if bounds.is_empty() {
        return Err("needs at least one bound".to_owned());
    }
    if bounds.len() > MAX_LATENCY_BUCKETS {
        return Err(format!(
            "takes at most {MAX_LATENCY_BUCKETS} bounds, got {}",
            bounds.len()
        ));
    }
    if bounds[0].is_zero() {
        return Err("bounds must be above zero".to_owned());
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bounds must increase strictly, got {:?} then {:?}",
            w[0], w[1]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn counts_are_cumulative_and_end_at_the_total() {
        let us = |n: u64| n * 1000;
        let h = histogram(&[us(10), us(50), us(60), us(900), us(2000), 40_000_000_000]);
        let bounds = [
            Duration::from_micros(50),
            Duration::from_micros(100),
            Duration::from_millis(1),
            Duration::from_secs(1),
        ];
        let b = LatencyBuckets::of(&h, &bounds);
        let counts: Vec<u64> = b.buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [2, 3, 4, 5]);
        assert_eq!(b.count, 6);
        let exact = us(10) + us(50) + us(60) + us(900) + us(2000) + 40_000_000_000;
        let err = (b.sum.as_nanos() as f64 - exact as f64).abs() / exact as f64;
        assert!(err < 0.0005, "sum {:?} vs {exact}", b.sum);
    }

    #[test]
    fn empty_histogram_has_zero_buckets() {
        let b = LatencyBuckets::of(&histogram(&[]), &DEFAULT_LATENCY_BUCKETS);
        assert!(b.buckets.iter().all(|(_, n)| *n == 0));
        assert_eq!((b.count, b.sum), (0, Duration::ZERO));
        assert_eq!(b.buckets.len(), DEFAULT_LATENCY_BUCKETS.len());
    }

    #[test]
    fn bounds_are_checked() {
        assert!(check_bounds(&DEFAULT_LATENCY_BUCKETS).is_ok());
        assert!(check_bounds(&[]).is_err());
        assert!(check_bounds(&[Duration::ZERO]).is_err());
        let ms = Duration::from_millis;
        assert!(check_bounds(&[ms(2), ms(1)])
            .unwrap_err()
            .contains("increase"));
        assert!(check_bounds(&[ms(1), ms(1)]).is_err());
        assert!(check_bounds(&vec![ms(1); 65]).is_err());
    }
}
