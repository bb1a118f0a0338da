//! Result tables as Parquet (polars), written atomically.

use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One pre-training step in `metrics.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Optimiser step (1-based: the step just taken).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss minimised.
    pub loss_total: f32,
    /// Instance loss, direction A.
    pub loss_instance_a: f32,
    /// Instance loss, direction B.
    pub loss_instance_b: f32,
    /// Cluster loss.
    pub loss_cluster: f32,
    /// Entropy term (added with `objective.entropy_weight`).
    pub entropy_term: f32,
    /// Entropy of the batch's mean cluster assignment (log M = uniform use).
    pub cluster_usage_entropy: f32,
    /// Clips per second over this step (wall clock: not reproducible).
    pub clips_per_s: f64,
}

fn table_err(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::Invalid(format!("{}: {e}", path.display()))
}

/// Writes `rows` to `path` atomically.
pub fn write_metrics(path: &Path, rows: &[MetricRow]) -> Result<()> {
    let col_u64 = |name: &str, f: fn(&MetricRow) -> u64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let col_f32 = |name: &str, f: fn(&MetricRow) -> f32| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let col_f64 = |name: &str, f: fn(&MetricRow) -> f64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut df = DataFrame::new_infer_height(vec![
        col_u64("step", |r| r.step),
        col_u64("epoch", |r| r.epoch),
        col_f64("lr", |r| r.lr),
        col_f32("loss_total", |r| r.loss_total),
        col_f32("loss_instance_a", |r| r.loss_instance_a),
        col_f32("loss_instance_b", |r| r.loss_instance_b),
        col_f32("loss_cluster", |r| r.loss_cluster),
        col_f32("entropy_term", |r| r.entropy_term),
        col_f32("cluster_usage_entropy", |r| r.cluster_usage_entropy),
        col_f64("clips_per_s", |r| r.clips_per_s),
    ])
    .map_err(table_err(path))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(table_err(path))?;
    crate::atomic::write(path, &bytes)
}

/// Reads rows written by [`write_metrics`].
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file).finish().map_err(table_err(path))?;
    let err = table_err(path);
    let u64s = |name: &str| -> Result<Vec<u64>> {
        Ok(df
            .column(name)
            .map_err(&err)?
            .u64()
            .map_err(&err)?
            .into_no_null_iter()
            .collect())
    };
    let f32s = |name: &str| -> Result<Vec<f32>> {
        Ok(df
            .column(name)
            .map_err(&err)?
            .f32()
            .map_err(&err)?
            .into_no_null_iter()
            .collect())
    };
    let f64s = |name: &str| -> Result<Vec<f64>> {
        Ok(df
            .column(name)
            .map_err(&err)?
            .f64()
            .map_err(&err)?
            .into_no_null_iter()
            .collect())
    };
    let (step, epoch, lr) = (u64s("step")?, u64s("epoch")?, f64s("lr")?);
    let (total, a, b, cluster, entropy, usage) = (
        f32s("loss_total")?,
        f32s("loss_instance_a")?,
        f32s("loss_instance_b")?,
        f32s("loss_cluster")?,
        f32s("entropy_term")?,
        f32s("cluster_usage_entropy")?,
    );
    let speed = f64s("clips_per_s")?;
    Ok((0..step.len())
        .map(|i| MetricRow {
            step: step[i],
            epoch: epoch[i],
            lr: lr[i],
            loss_total: total[i],
            loss_instance_a: a[i],
            loss_instance_b: b[i],
            loss_cluster: cluster[i],
            entropy_term: entropy[i],
            cluster_usage_entropy: usage[i],
            clips_per_s: speed[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip() {
        let rows: Vec<MetricRow> = (1..4)
            .map(|s| MetricRow {
                step: s,
                epoch: 0,
                lr: 3e-4,
                loss_total: s as f32,
                loss_instance_a: 0.5,
                loss_instance_b: 0.25,
                loss_cluster: 1.0,
                entropy_term: 0.1,
                cluster_usage_entropy: 1.3,
                clips_per_s: 12.5,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
    }
}
