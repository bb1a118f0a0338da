//! Pre-training speed from a run's metrics: clips per second and how much of the time the
//! model waited for the data thread (the check that augmentation on the host keeps the
//! device busy).

use crate::results::MetricRow;

/// Speed of a pre-training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Median over steps of clips per second (wall clock, data wait included).
    pub median_clips_per_s: f64,
    /// Seconds waited for batches over the run's wall seconds: 0 when the data thread was
    /// always ahead, near 1 when the device mostly waited for augmentation.
    pub data_wait_share: f64,
}

/// The speed of the steps in `metrics` (of `batch_size` clips each); `None` without steps
/// or when the wait was not recorded (runs written before `data_wait_s` existed).
pub fn throughput(metrics: &[MetricRow], batch_size: usize) -> Option<Throughput> {
    let mut rates: Vec<f64> = metrics.iter().map(|m| m.clips_per_s).collect();
    if rates.is_empty() || metrics.iter().any(|m| !m.data_wait_s.is_finite()) {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let wall: f64 = metrics
        .iter()
        .map(|m| batch_size as f64 / m.clips_per_s)
        .sum();
    let waited: f64 = metrics.iter().map(|m| m.data_wait_s).sum();
    Some(Throughput {
        median_clips_per_s: rates[rates.len() / 2],
        data_wait_share: waited / wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(clips_per_s: f64, data_wait_s: f64) -> MetricRow {
        MetricRow {
            step: 1,
            epoch: 0,
            lr: 0.1,
            loss_total: 1.0,
            losses: vec![
                ("loss_direction_a".into(), 0.5),
                ("loss_direction_b".into(), 0.5),
            ],
            cluster_usage_entropy: f32::NAN,
            clips_per_s,
            data_wait_s,
        }
    }

    #[test]
    fn wait_share_is_waited_over_wall_seconds() {
        // Batches of 8: steps of 1 s, 2 s and 1 s (8, 4, 8 clips/s), 1 s waited in all.
        let t = throughput(&[row(8.0, 0.5), row(4.0, 0.5), row(8.0, 0.0)], 8).unwrap();
        assert_eq!(t.median_clips_per_s, 8.0);
        assert_eq!(t.data_wait_share, 0.25);
        assert_eq!(throughput(&[], 8), None);
        assert_eq!(throughput(&[row(8.0, f64::NAN)], 8), None);
    }
}
