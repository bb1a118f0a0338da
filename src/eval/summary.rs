//! The LAPE table: test accuracy per encoder and protocol (rows) and task (columns), as mean
//! ± std over probe seeds, from the `scores.parquet` of every run under a results root. For
//! each spec (name and hash) the newest run with scores is used, so re-running a spec
//! replaces its rows instead of mixing runs.

use std::path::Path;

use polars::prelude::Column;

use super::scoring::mean_std;
use crate::error::{Error, Result};
use crate::results::{markdown_table, write_table, ScoreRow};

/// The metric the table reports.
pub const TABLE_METRIC: &str = "test_accuracy";

/// Mean and std of one task's score over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Mean over seeds.
    pub mean: f64,
    /// Population standard deviation over seeds.
    pub std: f64,
    /// Number of seeds.
    pub seeds: usize,
}

/// One row: an encoder under a protocol, from one run.
#[derive(Debug, Clone, PartialEq)]
pub struct LapeRow {
    /// Spec name.
    pub spec: String,
    /// Short spec hash.
    pub spec_hash: String,
    /// Run id.
    pub run: String,
    /// Encoder or method.
    pub encoder: String,
    /// Protocol.
    pub protocol: String,
    /// One cell per table task (`None` where this run did not score the task).
    pub cells: Vec<Option<Cell>>,
}

impl LapeRow {
    /// Mean of the task means over the tasks this row has.
    pub fn average(&self) -> Option<f64> {
        let means: Vec<f64> = self.cells.iter().flatten().map(|c| c.mean).collect();
        (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
    }

    /// The fewest seeds of any cell.
    pub fn seeds(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .map(|c| c.seeds)
            .min()
            .unwrap_or(0)
    }
}

/// The table.
#[derive(Debug, Clone, PartialEq)]
pub struct LapeTable {
    /// Column order.
    pub tasks: Vec<String>,
    /// Rows in the order their runs first list them.
    pub rows: Vec<LapeRow>,
}

/// Builds the table from scores (only [`TABLE_METRIC`] rows count).
pub fn lape_table(scores: &[ScoreRow]) -> LapeTable {
    let scores: Vec<&ScoreRow> = scores.iter().filter(|s| s.metric == TABLE_METRIC).collect();
    let mut tasks: Vec<String> = Vec::new();
    let mut keys: Vec<(String, String, String, String, String)> = Vec::new();
    for s in &scores {
        if !tasks.contains(&s.task) {
            tasks.push(s.task.clone());
        }
        let key = (
            s.spec.clone(),
            s.spec_hash.clone(),
            s.run.clone(),
            s.encoder.clone(),
            s.protocol.clone(),
        );
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let rows = keys
        .into_iter()
        .map(|(spec, spec_hash, run, encoder, protocol)| {
            let cells = tasks
                .iter()
                .map(|task| {
                    let values: Vec<f64> = scores
                        .iter()
                        .filter(|s| {
                            s.run == run
                                && s.encoder == encoder
                                && s.protocol == protocol
                                && &s.task == task
                        })
                        .map(|s| s.value)
                        .collect();
                    (!values.is_empty()).then(|| {
                        let (mean, std) = mean_std(values.iter().copied());
                        Cell {
                            mean,
                            std,
                            seeds: values.len(),
                        }
                    })
                })
                .collect();
            LapeRow {
                spec,
                spec_hash,
                run,
                encoder,
                protocol,
                cells,
            }
        })
        .collect();
    LapeTable { tasks, rows }
}

impl LapeTable {
    /// A Markdown table (accuracy in %, mean ± std).
    pub fn to_markdown(&self) -> String {
        let mut header: Vec<String> = ["encoder", "spec", "protocol"].map(String::from).into();
        header.extend(self.tasks.iter().cloned());
        header.extend(["avg", "seeds"].map(String::from));
        let rows = self.rows.iter().map(|row| {
            let protocol = if row.protocol == "linear_lape" {
                "linear_lape (max test over epochs: selects on test)".to_owned()
            } else {
                row.protocol.clone()
            };
            let mut cells = vec![
                row.encoder.clone(),
                format!("{} ({})", row.spec, row.spec_hash),
                protocol,
            ];
            cells.extend(row.cells.iter().map(|c| match c {
                Some(c) => format!("{:.1} ± {:.1}", 100.0 * c.mean, 100.0 * c.std),
                None => String::new(),
            }));
            cells.push(
                row.average()
                    .map_or_else(String::new, |a| format!("{:.1}", 100.0 * a)),
            );
            cells.push(row.seeds().to_string());
            cells
        });
        markdown_table(&header, rows)
    }

    /// Writes `lape_table.parquet` (one column per task and one `<task>_std`, fractions) and
    /// `lape_table.md` under `results_root`, atomically.
    pub fn write(&self, results_root: &Path) -> Result<()> {
        let text = |name: &str, f: fn(&LapeRow) -> &String| {
            Column::new(
                name.into(),
                self.rows.iter().map(f).cloned().collect::<Vec<_>>(),
            )
        };
        let mut columns = vec![
            text("encoder", |r| &r.encoder),
            text("spec", |r| &r.spec),
            text("spec_hash", |r| &r.spec_hash),
            text("run", |r| &r.run),
            text("protocol", |r| &r.protocol),
        ];
        for (i, task) in self.tasks.iter().enumerate() {
            let cell = |f: fn(&Cell) -> f64| {
                self.rows
                    .iter()
                    .map(|r| r.cells[i].as_ref().map(f))
                    .collect::<Vec<_>>()
            };
            columns.push(Column::new(task.as_str().into(), cell(|c| c.mean)));
            columns.push(Column::new(format!("{task}_std").into(), cell(|c| c.std)));
        }
        columns.push(Column::new(
            "average".into(),
            self.rows.iter().map(LapeRow::average).collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            "seeds".into(),
            self.rows
                .iter()
                .map(|r| r.seeds() as u64)
                .collect::<Vec<_>>(),
        ));
        std::fs::create_dir_all(results_root).map_err(|e| Error::io(results_root, e))?;
        write_table(&results_root.join("lape_table.parquet"), columns)?;
        crate::atomic::write(
            &results_root.join("lape_table.md"),
            self.to_markdown().as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::write_scores;

    fn score(run: &str, encoder: &str, task: &str, seed: u64, value: f64) -> ScoreRow {
        ScoreRow {
            run: run.into(),
            spec: "demo".into(),
            spec_hash: "abcd1234".into(),
            encoder: encoder.into(),
            task: task.into(),
            protocol: "linear".into(),
            seed,
            metric: TABLE_METRIC.into(),
            value,
            n_train: 4,
            n_valid: 2,
            n_test: 2,
            best_epoch: 1,
            wall_s: 0.0,
            step: None,
        }
    }

    #[test]
    fn table_has_mean_std_average_and_the_newest_run_wins() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for (run, offset) in [
            ("20260101-000000-demo-abcd1234", 0.0),
            ("20260102-000000-demo-abcd1234", 0.1),
        ] {
            std::fs::create_dir_all(runs.join(run)).unwrap();
            let mut rows = vec![
                score(run, "slicer", "a", 0, 0.5 + offset),
                score(run, "slicer", "a", 1, 0.7 + offset),
                score(run, "slicer", "b", 0, 0.2 + offset),
                score(run, "random_init", "a", 0, 0.1),
            ];
            rows.push(ScoreRow {
                metric: "valid_accuracy".into(),
                ..score(run, "slicer", "a", 0, 0.99)
            });
            write_scores(&runs.join(run).join("scores.parquet"), &rows).unwrap();
        }
        let table = lape_table(&crate::run::latest_scores(dir.path()).unwrap());
        assert_eq!(table.tasks, ["a", "b"]);
        assert_eq!(table.rows.len(), 2);
        let slicer = &table.rows[0];
        assert_eq!(slicer.run, "20260102-000000-demo-abcd1234");
        let a = slicer.cells[0].unwrap();
        assert!((a.mean - 0.7).abs() < 1e-12 && (a.std - 0.1).abs() < 1e-12);
        assert_eq!(slicer.seeds(), 1);
        assert!((slicer.average().unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(table.rows[1].cells[1], None);
        table.write(dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("lape_table.md")).unwrap();
        assert!(
            md.contains(
                "| slicer | demo (abcd1234) | linear | 70.0 ± 10.0 | 30.0 ± 0.0 | 50.0 | 1 |"
            ),
            "{md}"
        );
        assert!(dir.path().join("lape_table.parquet").is_file());
    }
}
