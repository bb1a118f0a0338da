//! Result tables as Parquet (polars), written atomically.

use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One pre-training step in `metrics.parquet`: the fixed columns below, and one column per
/// loss term under the name its method gives it (`losses`; SLICER: `loss_instance_a`,
/// `loss_instance_b`, `loss_cluster`, `entropy_term`; BYOL-A: `loss_direction_a`,
/// `loss_direction_b`; DeLoRes-S: `loss_barlow_twins`; DeLoRes-M: `loss_info_nce`,
/// `loss_barlow_twins`). Runs written before the terms were named hold SLICER's four
/// columns whatever their method. `cluster_usage_entropy` is NaN without a cluster head.
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
    /// The method's loss terms, named (their columns), in the method's order.
    pub losses: Vec<(String, f32)>,
    /// Entropy of the batch's mean cluster assignment (log M = uniform use).
    pub cluster_usage_entropy: f32,
    /// Clips per second over this step (wall clock: not reproducible).
    pub clips_per_s: f64,
    /// Seconds the step waited for its batch from the data thread's prefetch queue (0 when
    /// augmentation keeps ahead of the model; NaN in runs written before it was recorded).
    pub data_wait_s: f64,
}

/// One score in `scores.parquet` (long format: one row per run, encoder, task, protocol,
/// seed and metric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// Run id.
    pub run: String,
    /// Spec name.
    pub spec: String,
    /// First 8 hex digits of the spec hash.
    pub spec_hash: String,
    /// Encoder or method (`slicer`, `random_init`, `bag_of_frames`, ...).
    pub encoder: String,
    /// Task name.
    pub task: String,
    /// Evaluation protocol (`linear`, `linear_lape`, `finetune`).
    pub protocol: String,
    /// Probe seed.
    pub seed: u64,
    /// Metric name (`test_accuracy`, `valid_accuracy`, `train_accuracy`).
    pub metric: String,
    /// Metric value.
    pub value: f64,
    /// Training clips.
    pub n_train: u64,
    /// Validation clips.
    pub n_valid: u64,
    /// Test clips.
    pub n_test: u64,
    /// The epoch (1-based) the value was taken at.
    pub best_epoch: u64,
    /// Wall-clock seconds of this probe (not reproducible).
    pub wall_s: f64,
    /// Pre-training steps behind the encoder scored: its checkpoint's step, 0 for the
    /// seeded initial weights; `None` for the floor, weights or embeddings from elsewhere,
    /// and files written before the column.
    pub step: Option<u64>,
}

#[cfg(test)]
impl ScoreRow {
    /// A `test_accuracy`-style row for unit tests: run `r`, spec `s`, one example per split.
    pub(crate) fn example(
        encoder: &str,
        task: &str,
        protocol: &str,
        metric: &str,
        seed: u64,
        value: f64,
    ) -> Self {
        ScoreRow {
            run: "r".into(),
            spec: "s".into(),
            spec_hash: "h".into(),
            encoder: encoder.into(),
            task: task.into(),
            protocol: protocol.into(),
            seed,
            metric: metric.into(),
            value,
            n_train: 1,
            n_valid: 1,
            n_test: 1,
            best_epoch: 0,
            wall_s: 0.0,
            step: None,
        }
    }
}

/// A column of `rows` built by `f`.
fn column<R, T>(rows: &[R], name: &str, f: impl Fn(&R) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
}

/// A Markdown table: the header row, the rule, then one line per row (`| a | b |`). Every
/// table the library publishes (run, suite, seed and curve tables) is written by it.
pub fn markdown_table<R>(header: &[String], rows: impl IntoIterator<Item = R>) -> String
where
    R: AsRef<[String]>,
{
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = line(header);
    out += &format!("|{}\n", "---|".repeat(header.len()));
    for row in rows {
        out += &line(row.as_ref());
    }
    out
}

/// Writes `columns` to `path` as Parquet, atomically.
pub(crate) fn write_table(path: &Path, columns: Vec<Column>) -> Result<()> {
    let mut df = DataFrame::new_infer_height(columns).map_err(Error::table(path, "write"))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(Error::table(path, "write"))?;
    crate::atomic::write(path, &bytes)
}

/// A Parquet file read back, with typed column access that names the file on error.
struct Table<'a> {
    path: &'a Path,
    df: DataFrame,
}

impl<'a> Table<'a> {
    fn read(path: &'a Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let df = ParquetReader::new(file)
            .finish()
            .map_err(Error::table(path, "read"))?;
        Ok(Self { path, df })
    }

    fn height(&self) -> usize {
        self.df.height()
    }

    fn column(&self, name: &str) -> Result<&Column> {
        self.df
            .column(name)
            .map_err(Error::table(self.path, "read"))
    }

    fn u64s(&self, name: &str) -> Result<Vec<u64>> {
        let c = self
            .column(name)?
            .u64()
            .map_err(Error::table(self.path, "read"))?;
        Ok(c.into_no_null_iter().collect())
    }

    /// A nullable column; all `None` when the file has no such column.
    fn optional_u64s(&self, name: &str) -> Result<Vec<Option<u64>>> {
        let Ok(c) = self.df.column(name) else {
            return Ok(vec![None; self.height()]);
        };
        let c = c.u64().map_err(Error::table(self.path, "read"))?;
        Ok(c.iter().collect())
    }

    fn f32s(&self, name: &str) -> Result<Vec<f32>> {
        let c = self
            .column(name)?
            .f32()
            .map_err(Error::table(self.path, "read"))?;
        Ok(c.into_no_null_iter().collect())
    }

    fn f64s(&self, name: &str) -> Result<Vec<f64>> {
        let c = self
            .column(name)?
            .f64()
            .map_err(Error::table(self.path, "read"))?;
        Ok(c.into_no_null_iter().collect())
    }

    fn strings(&self, name: &str) -> Result<Vec<String>> {
        let c = self
            .column(name)?
            .str()
            .map_err(Error::table(self.path, "read"))?;
        c.iter()
            .map(|v| {
                v.map(str::to_owned).ok_or_else(|| {
                    Error::Invalid(format!("{}: `{name}` has a null", self.path.display()))
                })
            })
            .collect()
    }
}

impl MetricRow {
    /// The loss term called `name` (a column of `metrics.parquet`), if the method has it.
    pub fn loss(&self, name: &str) -> Option<f32> {
        self.losses.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// The fixed columns of `metrics.parquet`, in order: the loss terms go after `loss_total`.
const METRIC_COLUMNS: [&str; 7] = [
    "step",
    "epoch",
    "lr",
    "loss_total",
    "cluster_usage_entropy",
    "clips_per_s",
    "data_wait_s",
];

/// Writes `rows` (all with the same loss terms) to `path` atomically.
pub fn write_metrics(path: &Path, rows: &[MetricRow]) -> Result<()> {
    let names: Vec<&str> = rows.first().map_or(Vec::new(), |r| {
        r.losses.iter().map(|(n, _)| n.as_str()).collect()
    });
    if let Some(bad) = rows.iter().find(|r| {
        r.losses.len() != names.len() || r.losses.iter().zip(&names).any(|((n, _), m)| n != m)
    }) {
        return Err(Error::Invalid(format!(
            "{}: step {} has the loss terms {:?}, the first step {names:?}",
            path.display(),
            bad.step,
            bad.losses.iter().map(|(n, _)| n).collect::<Vec<_>>()
        )));
    }
    let [step, epoch, lr, total, usage, speed, wait] = METRIC_COLUMNS;
    let mut columns = vec![
        column(rows, step, |r| r.step),
        column(rows, epoch, |r| r.epoch),
        column(rows, lr, |r| r.lr),
        column(rows, total, |r| r.loss_total),
    ];
    for (k, name) in names.iter().enumerate() {
        columns.push(column(rows, name, |r| r.losses[k].1));
    }
    columns.extend([
        column(rows, usage, |r| r.cluster_usage_entropy),
        column(rows, speed, |r| r.clips_per_s),
        column(rows, wait, |r| r.data_wait_s),
    ]);
    write_table(path, columns)
}

/// Reads rows written by [`write_metrics`]: every column besides the fixed ones is a loss
/// term, in file order.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>> {
    let t = Table::read(path)?;
    let [step, epoch, lr, total, usage, speed, wait] = METRIC_COLUMNS;
    let (steps, epochs, lrs) = (t.u64s(step)?, t.u64s(epoch)?, t.f64s(lr)?);
    let (totals, usages, speeds) = (t.f32s(total)?, t.f32s(usage)?, t.f64s(speed)?);
    let waits = match t.df.column(wait) {
        Ok(_) => t.f64s(wait)?,
        Err(_) => vec![f64::NAN; t.height()],
    };
    let names: Vec<String> =
        t.df.get_column_names()
            .into_iter()
            .map(|n| n.to_string())
            .filter(|n| !METRIC_COLUMNS.contains(&n.as_str()))
            .collect();
    let terms = names
        .iter()
        .map(|n| t.f32s(n))
        .collect::<Result<Vec<_>>>()?;
    Ok((0..t.height())
        .map(|i| MetricRow {
            step: steps[i],
            epoch: epochs[i],
            lr: lrs[i],
            loss_total: totals[i],
            losses: names
                .iter()
                .zip(&terms)
                .map(|(n, values)| (n.clone(), values[i]))
                .collect(),
            cluster_usage_entropy: usages[i],
            clips_per_s: speeds[i],
            data_wait_s: waits[i],
        })
        .collect())
}

/// One embedded window of a file, for `experiment embed`'s Parquet output.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingRow {
    /// The audio file.
    pub path: String,
    /// Window start, seconds.
    pub start_s: f64,
    /// End of the audio the window covers, seconds.
    pub end_s: f64,
    /// Pooled embedding.
    pub embedding: Vec<f32>,
    /// Frame embeddings `[T', d]` flattened, when asked for.
    pub frames: Option<Vec<f32>>,
    /// The time of each frame in milliseconds, with `frames`.
    pub timestamps_ms: Option<Vec<f64>>,
}

/// Writes embeddings to `path` atomically: `path, start_s, end_s, embedding` (a fixed-size
/// list of `d` f32), plus `frames` (a list of `T' * d` f32, frame-major), `n_frames` and
/// `timestamps_ms` (a list of `T'` f64) when the rows have them.
pub fn write_embeddings(path: &Path, rows: &[EmbeddingRow]) -> Result<()> {
    let [path_col, start, end, embedding_col, frames_col, n_frames, times_col] = EMBEDDING_COLUMNS;
    let err = Error::table(path, "write");
    let d = rows.first().map_or(0, |r| r.embedding.len());
    if rows.iter().any(|r| r.embedding.len() != d) {
        return Err(Error::Invalid(format!(
            "{}: embeddings of different sizes",
            path.display()
        )));
    }
    let list = |name: &str, values: Vec<Series>| -> Result<Column> {
        let dtype = DataType::List(Box::new(DataType::Float32));
        let series = Series::new(name.into(), values)
            .cast(&dtype)
            .map_err(&err)?;
        Ok(series.into())
    };
    let embedding: Vec<Series> = rows
        .iter()
        .map(|r| Series::new("".into(), r.embedding.as_slice()))
        .collect();
    let embedding = list(embedding_col, embedding)?
        .cast(&DataType::Array(Box::new(DataType::Float32), d))
        .map_err(&err)?;
    let mut columns = vec![
        column(rows, path_col, |r| r.path.clone()),
        column(rows, start, |r| r.start_s),
        column(rows, end, |r| r.end_s),
        embedding,
    ];
    if rows.iter().all(|r| r.frames.is_some()) && !rows.is_empty() {
        let frames: Vec<Series> = rows
            .iter()
            .map(|r| Series::new("".into(), r.frames.as_deref().unwrap_or_default()))
            .collect();
        columns.push(list(frames_col, frames)?);
        columns.push(column(rows, n_frames, |r| {
            (r.frames.as_ref().map_or(0, Vec::len) / d.max(1)) as u64
        }));
        let times: Vec<Series> = rows
            .iter()
            .map(|r| Series::new("".into(), r.timestamps_ms.as_deref().unwrap_or_default()))
            .collect();
        columns.push(
            Series::new(times_col.into(), times)
                .cast(&DataType::List(Box::new(DataType::Float64)))
                .map_err(&err)?
                .into(),
        );
    }
    write_table(path, columns)
}

/// The columns of an embeddings table, in order; the last three only when the rows have frames.
const EMBEDDING_COLUMNS: [&str; 7] = [
    "path",
    "start_s",
    "end_s",
    "embedding",
    "frames",
    "n_frames",
    "timestamps_ms",
];

/// Reads the `path, start_s, end_s, embedding` columns written by [`write_embeddings`].
pub fn read_embeddings(path: &Path) -> Result<Vec<EmbeddingRow>> {
    let [path_col, start, end, embedding_col, ..] = EMBEDDING_COLUMNS;
    let t = Table::read(path)?;
    let err = Error::table(path, "read");
    let (paths, starts, ends) = (t.strings(path_col)?, t.f64s(start)?, t.f64s(end)?);
    let embeddings = t.column(embedding_col)?.array().map_err(&err)?;
    let mut rows = Vec::with_capacity(t.height());
    for (i, e) in embeddings.series_iter().enumerate() {
        let e = e.ok_or_else(|| Error::Invalid(format!("{}: null embedding", path.display())))?;
        let values: Vec<f32> = e.f32().map_err(&err)?.into_no_null_iter().collect();
        rows.push(EmbeddingRow {
            path: paths[i].clone(),
            start_s: starts[i],
            end_s: ends[i],
            embedding: values,
            frames: None,
            timestamps_ms: None,
        });
    }
    Ok(rows)
}

/// Reads a table of embeddings made by any tool: a `file` column (str) and an `embedding`
/// column (a list or fixed-size list of floats, read as f32), one row per clip.
pub fn read_file_embeddings(path: &Path) -> Result<Vec<(String, Vec<f32>)>> {
    let t = Table::read(path)?;
    let err = Error::table(path, "read");
    let files = t.strings("file")?;
    let lists = t
        .column("embedding")?
        .cast(&DataType::List(Box::new(DataType::Float32)))
        .map_err(&err)?;
    let lists = lists.list().map_err(&err)?;
    files
        .into_iter()
        .zip(lists.series_iter())
        .map(|(file, e)| {
            let e = e.ok_or_else(|| {
                Error::Invalid(format!("{}: no embedding for {file}", path.display()))
            })?;
            let values = e.f32().map_err(&err)?.into_no_null_iter().collect();
            Ok((file, values))
        })
        .collect()
}

/// The columns of `scores.parquet`, in order (the fields of [`ScoreRow`]).
const SCORE_COLUMNS: [&str; 15] = [
    "run",
    "spec",
    "spec_hash",
    "encoder",
    "task",
    "protocol",
    "seed",
    "metric",
    "value",
    "n_train",
    "n_valid",
    "n_test",
    "best_epoch",
    "wall_s",
    "step",
];

/// Writes `rows` to `path` atomically.
pub fn write_scores(path: &Path, rows: &[ScoreRow]) -> Result<()> {
    let [run, spec, hash, encoder, task, protocol, seed, metric, value, n_train, n_valid, n_test, epoch, wall, step] =
        SCORE_COLUMNS;
    write_table(
        path,
        vec![
            column(rows, run, |r| r.run.clone()),
            column(rows, spec, |r| r.spec.clone()),
            column(rows, hash, |r| r.spec_hash.clone()),
            column(rows, encoder, |r| r.encoder.clone()),
            column(rows, task, |r| r.task.clone()),
            column(rows, protocol, |r| r.protocol.clone()),
            column(rows, seed, |r| r.seed),
            column(rows, metric, |r| r.metric.clone()),
            column(rows, value, |r| r.value),
            column(rows, n_train, |r| r.n_train),
            column(rows, n_valid, |r| r.n_valid),
            column(rows, n_test, |r| r.n_test),
            column(rows, epoch, |r| r.best_epoch),
            column(rows, wall, |r| r.wall_s),
            column(rows, step, |r| r.step),
        ],
    )
}

/// Reads rows written by [`write_scores`].
pub fn read_scores(path: &Path) -> Result<Vec<ScoreRow>> {
    let t = Table::read(path)?;
    let [run, spec, hash, encoder, task, protocol, seed, metric, value, n_train, n_valid, n_test, epoch, wall, step] =
        SCORE_COLUMNS;
    let (run, spec, hash, encoder, task, protocol, metric) = (
        t.strings(run)?,
        t.strings(spec)?,
        t.strings(hash)?,
        t.strings(encoder)?,
        t.strings(task)?,
        t.strings(protocol)?,
        t.strings(metric)?,
    );
    let (seed, n_train, n_valid, n_test, epoch) = (
        t.u64s(seed)?,
        t.u64s(n_train)?,
        t.u64s(n_valid)?,
        t.u64s(n_test)?,
        t.u64s(epoch)?,
    );
    let (value, wall) = (t.f64s(value)?, t.f64s(wall)?);
    let steps = t.optional_u64s(step)?;
    Ok((0..t.height())
        .map(|i| ScoreRow {
            run: run[i].clone(),
            spec: spec[i].clone(),
            spec_hash: hash[i].clone(),
            encoder: encoder[i].clone(),
            task: task[i].clone(),
            protocol: protocol[i].clone(),
            seed: seed[i],
            metric: metric[i].clone(),
            value: value[i],
            n_train: n_train[i],
            n_valid: n_valid[i],
            n_test: n_test[i],
            best_epoch: epoch[i],
            wall_s: wall[i],
            step: steps[i],
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
                losses: vec![
                    ("loss_instance_a".into(), 0.5),
                    ("loss_instance_b".into(), 0.25),
                    ("loss_cluster".into(), 1.0),
                    ("entropy_term".into(), 0.1),
                ],
                cluster_usage_entropy: 1.3,
                clips_per_s: 12.5,
                data_wait_s: 0.01,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
    }

    #[test]
    fn embeddings_round_trip_as_fixed_size_lists() {
        let rows: Vec<EmbeddingRow> = (0..3)
            .map(|i| EmbeddingRow {
                path: format!("clip{i}.wav"),
                start_s: i as f64,
                end_s: i as f64 + 1.0,
                embedding: vec![i as f32, 0.5, -1.0],
                frames: Some(vec![0.25; 6]),
                timestamps_ms: Some(vec![35.0, 115.0]),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        write_embeddings(&path, &rows).unwrap();
        let back = read_embeddings(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].embedding, rows[2].embedding);
        assert_eq!((back[1].path.as_str(), back[1].end_s), ("clip1.wav", 2.0));
        let df = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(
            df.column("embedding").unwrap().dtype(),
            &DataType::Array(Box::new(DataType::Float32), 3)
        );
        assert_eq!(
            df.column("n_frames").unwrap().u64().unwrap().get(0),
            Some(2)
        );
        let times = df
            .column("timestamps_ms")
            .unwrap()
            .list()
            .unwrap()
            .get_as_series(1);
        assert_eq!(
            times
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>(),
            vec![35.0, 115.0]
        );
    }

    #[test]
    fn scores_round_trip() {
        let rows: Vec<ScoreRow> = (0..3)
            .map(|seed| ScoreRow {
                run: "20261124-000000-demo-abcdef12".into(),
                spec: "demo".into(),
                spec_hash: "abcdef12".into(),
                encoder: "slicer".into(),
                task: "vowels".into(),
                protocol: "linear".into(),
                seed,
                metric: "test_accuracy".into(),
                value: 0.5 + seed as f64 / 10.0,
                n_train: 40,
                n_valid: 10,
                n_test: 20,
                best_epoch: 7,
                wall_s: 0.25,
                step: None,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.parquet");
        write_scores(&path, &rows).unwrap();
        assert_eq!(read_scores(&path).unwrap(), rows);
    }
}
