//! Comparisons over pre-training seeds. Each run gives one score per encoder, protocol and
//! task (the mean over its probe seeds); across the runs of a member (one per pre-training
//! seed) they are reported as mean ± std, and every encoder is compared with `random_init`
//! of the same run (same seed, same evaluation) by the paired difference, with a 95 %
//! Student-t interval over the seeds. A difference whose interval holds 0 is reported as no
//! difference.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::Column;

use super::summary::TABLE_METRIC;
use crate::error::{Error, Result};
use crate::results::{markdown_table, write_table, ScoreRow};

/// The encoder every other is compared with.
pub const BASELINE_ENCODER: &str = "random_init";

/// The name of the task-averaged column.
pub const MEAN_TASK: &str = "mean";

/// The scores of one pre-training run of a suite member.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// The member's name.
    pub member: String,
    /// The run's pre-training seed.
    pub seed: u64,
    /// Every score of the run.
    pub scores: Vec<ScoreRow>,
}

/// A mean with its two-sided 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Mean over seeds.
    pub mean: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// The Student-t interval of the mean of `values` (at least two of them).
    pub fn student_t(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n < 2 {
            return None;
        }
        let (mean, sd) = sample_mean_sd(values);
        let half = t_975(n - 1) * sd / (n as f64).sqrt();
        Some(Self {
            mean,
            low: mean - half,
            high: mean + half,
        })
    }

    /// In percentage points with its verdict: `+12.0 [+7.0, +17.0] gain`, `-1.0 [-3.0, +1.0]`
    /// (no difference), `... loss`.
    pub fn points(&self) -> String {
        let verdict = match self.verdict() {
            "gain" => " gain",
            "loss" => " loss",
            _ => "",
        };
        format!(
            "{} [{}, {}]{verdict}",
            signed(self.mean),
            signed(self.low),
            signed(self.high)
        )
    }

    /// `gain`, `loss`, or `no difference` when the interval holds 0.
    pub fn verdict(&self) -> &'static str {
        if self.low > 0.0 {
            "gain"
        } else if self.high < 0.0 {
            "loss"
        } else {
            "no difference"
        }
    }
}

/// Mean and sample standard deviation (n - 1; 0 for one value).
pub fn sample_mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let ss = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    (mean, (ss / (n - 1.0).max(1.0)).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (tabulated to 30, then
/// the normal's 1.96).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
}

/// One row: a member's encoder under a protocol on a task (or [`MEAN_TASK`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRow {
    /// Suite member.
    pub member: String,
    /// Encoder.
    pub encoder: String,
    /// Pre-training steps behind the encoder ([`ScoreRow::step`]; the largest over the
    /// member's runs).
    pub step: Option<u64>,
    /// Protocol.
    pub protocol: String,
    /// Task, or [`MEAN_TASK`] for the mean over tasks.
    pub task: String,
    /// Pre-training seeds that scored it.
    pub seeds: usize,
    /// Test accuracy: mean and sample std over seeds.
    pub test: (f64, f64),
    /// Validation accuracy: mean and sample std over seeds.
    pub valid: (f64, f64),
    /// Paired test-accuracy difference against [`BASELINE_ENCODER`] of the same runs.
    pub gain: Option<Interval>,
}

type Key = (String, String, String); // encoder, protocol, task

/// Per encoder, protocol and task of one run: (test, valid), each the mean over probe
/// seeds; plus the mean over the run's tasks.
fn run_scores(scores: &[ScoreRow]) -> BTreeMap<Key, (f64, f64)> {
    let mut sums: BTreeMap<Key, [(f64, usize); 2]> = BTreeMap::new();
    for s in scores {
        let slot = match s.metric.as_str() {
            TABLE_METRIC => 0,
            "valid_accuracy" => 1,
            _ => continue,
        };
        let entry = sums
            .entry((s.encoder.clone(), s.protocol.clone(), s.task.clone()))
            .or_default();
        entry[slot].0 += s.value;
        entry[slot].1 += 1;
    }
    let mut out: BTreeMap<Key, (f64, f64)> = sums
        .into_iter()
        .map(|(k, [t, v])| {
            let mean = |(sum, n): (f64, usize)| if n == 0 { f64::NAN } else { sum / n as f64 };
            (k, (mean(t), mean(v)))
        })
        .collect();
    let tasks = out
        .keys()
        .map(|k| &k.2)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut means: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for ((encoder, protocol, _), v) in &out {
        means
            .entry((encoder.clone(), protocol.clone()))
            .or_default()
            .push(*v);
    }
    for ((encoder, protocol), values) in means {
        if values.len() == tasks {
            let n = values.len() as f64;
            let test = values.iter().map(|v| v.0).sum::<f64>() / n;
            let valid = values.iter().map(|v| v.1).sum::<f64>() / n;
            out.insert((encoder, protocol, MEAN_TASK.to_owned()), (test, valid));
        }
    }
    out
}

/// The members of `runs`, in the order they first appear.
pub(super) fn members_in_order(runs: &[SeedRun]) -> Vec<&str> {
    let mut members: Vec<&str> = Vec::new();
    for r in runs {
        if !members.contains(&r.member.as_str()) {
            members.push(&r.member);
        }
    }
    members
}

/// The rows of every member of `runs`, in the order members first appear; tasks in the
/// order the runs' scores list them, then [`MEAN_TASK`].
pub fn seed_rows(runs: &[SeedRun]) -> Vec<SeedRow> {
    let mut rows = Vec::new();
    for member in members_in_order(runs) {
        let per_run: Vec<BTreeMap<Key, (f64, f64)>> = runs
            .iter()
            .filter(|r| r.member == member)
            .map(|r| run_scores(&r.scores))
            .collect();
        let mut keys: Vec<Key> = Vec::new();
        for run in &per_run {
            for k in run.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        for key in keys {
            let (encoder, protocol, task) = key.clone();
            let values: Vec<(f64, f64)> = per_run
                .iter()
                .filter_map(|r| r.get(&key).copied())
                .collect();
            let differences: Vec<f64> = per_run
                .iter()
                .filter_map(|r| {
                    let baseline =
                        r.get(&(BASELINE_ENCODER.to_owned(), protocol.clone(), task.clone()))?;
                    Some(r.get(&key)?.0 - baseline.0)
                })
                .collect();
            let test: Vec<f64> = values.iter().map(|v| v.0).collect();
            let valid: Vec<f64> = values.iter().map(|v| v.1).collect();
            let step = runs
                .iter()
                .filter(|r| r.member == member)
                .flat_map(|r| &r.scores)
                .filter(|s| s.encoder == encoder)
                .filter_map(|s| s.step)
                .max();
            rows.push(SeedRow {
                member: member.to_owned(),
                step,
                gain: (encoder != BASELINE_ENCODER)
                    .then(|| Interval::student_t(&differences))
                    .flatten(),
                encoder,
                protocol,
                task,
                seeds: values.len(),
                test: sample_mean_sd(&test),
                valid: sample_mean_sd(&valid),
            });
        }
    }
    let mut tasks: Vec<String> = Vec::new();
    for s in runs.iter().flat_map(|r| &r.scores) {
        if !tasks.contains(&s.task) {
            tasks.push(s.task.clone());
        }
    }
    tasks.push(MEAN_TASK.to_owned());
    order_tasks(rows, &tasks)
}

/// One task's comparison of two suite members' encoders over the seeds both ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDifference {
    /// Task, or [`MEAN_TASK`].
    pub task: String,
    /// Seeds both members scored the task with.
    pub seeds: usize,
    /// Test accuracy of `a` minus that of `b`, paired by seed, with its 95 % interval
    /// (`None` under two seeds).
    pub difference: Option<Interval>,
}

/// `encoder_a` of the runs `a` against `encoder_b` of the runs `b` under `protocol`, paired
/// by pre-training seed (runs of the same seed share the initial encoder and, on the demo
/// corpus, the clips), per task and for the mean over tasks. Seeds that only one side ran
/// are left out. This is how two methods of different suites are compared: the spread is
/// over pre-training seeds, not probe seeds.
pub fn paired_differences(
    (a, encoder_a): (&[SeedRun], &str),
    (b, encoder_b): (&[SeedRun], &str),
    protocol: &str,
) -> Vec<PairedDifference> {
    let by_seed = |runs: &[SeedRun]| -> BTreeMap<u64, BTreeMap<Key, (f64, f64)>> {
        runs.iter()
            .map(|r| (r.seed, run_scores(&r.scores)))
            .collect()
    };
    // Tasks in the order the runs' scores list them, as in the seed table.
    let mut tasks: Vec<String> = Vec::new();
    for s in a.iter().flat_map(|r| &r.scores) {
        if s.encoder == encoder_a && s.protocol == protocol && !tasks.contains(&s.task) {
            tasks.push(s.task.clone());
        }
    }
    tasks.push(MEAN_TASK.to_owned());
    let (a, b) = (by_seed(a), by_seed(b));
    tasks
        .into_iter()
        .filter_map(|task| {
            let key = |encoder: &str| (encoder.to_owned(), protocol.to_owned(), task.clone());
            let differences: Vec<f64> = a
                .iter()
                .filter_map(|(seed, scores)| {
                    let x = scores.get(&key(encoder_a))?.0;
                    let y = b.get(seed)?.get(&key(encoder_b))?.0;
                    Some(x - y)
                })
                .collect();
            (!differences.is_empty()).then(|| PairedDifference {
                seeds: differences.len(),
                difference: Interval::student_t(&differences),
                task,
            })
        })
        .collect()
}

/// Keeps each (member, encoder, protocol) together, tasks in `tasks` order.
fn order_tasks(rows: Vec<SeedRow>, tasks: &[String]) -> Vec<SeedRow> {
    let mut groups: Vec<(String, String, String)> = Vec::new();
    for r in &rows {
        let g = (r.member.clone(), r.encoder.clone(), r.protocol.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (m, e, p) in groups {
        for t in tasks {
            if let Some(r) = rows
                .iter()
                .find(|r| r.member == m && r.encoder == e && r.protocol == p && &r.task == t)
            {
                out.push(r.clone());
            }
        }
    }
    out
}

/// The seed table of a suite: [`SeedRow`]s, written as Markdown and Parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedTable {
    /// The rows.
    pub rows: Vec<SeedRow>,
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

fn signed(v: f64) -> String {
    format!("{:+.1}", 100.0 * v)
}

impl SeedTable {
    /// The rows of `runs`.
    pub fn new(runs: &[SeedRun]) -> Self {
        Self {
            rows: seed_rows(runs),
        }
    }

    /// Task columns in order, the mean last.
    pub fn tasks(&self) -> Vec<String> {
        let mut tasks: Vec<String> = Vec::new();
        for r in &self.rows {
            if !tasks.contains(&r.task) {
                tasks.push(r.task.clone());
            }
        }
        tasks.sort_by_key(|t| t == MEAN_TASK);
        tasks
    }

    /// Whether some member was evaluated at several pre-training steps (`eval.at_steps`):
    /// then the Markdown tables have a step column.
    pub fn has_steps(&self) -> bool {
        self.rows.iter().any(|a| {
            self.rows.iter().any(|b| {
                a.member == b.member
                    && a.step.is_some_and(|s| s > 0)
                    && b.step.is_some_and(|s| s > 0)
                    && a.step != b.step
            })
        })
    }

    /// Markdown: per protocol, test accuracy (mean ± std over pre-training seeds, %) and
    /// the paired gain over `random_init` with its 95 % interval (percentage points); a
    /// step column when [`SeedTable::has_steps`].
    pub fn to_markdown(&self) -> String {
        let tasks = self.tasks();
        let steps = self.has_steps();
        let mut protocols: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !protocols.contains(&r.protocol.as_str()) {
                protocols.push(&r.protocol);
            }
        }
        let header = |last: Option<&str>| -> Vec<String> {
            let mut h: Vec<String> = vec!["member".into(), "encoder".into()];
            if steps {
                h.push("step".into());
            }
            h.extend(tasks.iter().cloned());
            h.extend(last.map(String::from));
            h
        };
        let mut out = String::new();
        for protocol in protocols {
            let rows: Vec<&SeedRow> = self
                .rows
                .iter()
                .filter(|r| r.protocol == protocol)
                .collect();
            let mut groups: Vec<(&str, &str)> = Vec::new();
            for r in &rows {
                if !groups.contains(&(r.member.as_str(), r.encoder.as_str())) {
                    groups.push((&r.member, &r.encoder));
                }
            }
            let cell = |m: &str, e: &str, t: &str| {
                rows.iter()
                    .find(|r| r.member == m && r.encoder == e && r.task == t)
            };
            // Member, encoder and (when shown) step, then `cells`.
            let line = |m: &str, e: &str, cells: Vec<String>| -> Vec<String> {
                let mut l = vec![m.to_owned(), e.to_owned()];
                if steps {
                    let step = rows.iter().find(|r| r.member == m && r.encoder == e);
                    l.push(
                        step.and_then(|r| r.step)
                            .map_or(String::new(), |s| s.to_string()),
                    );
                }
                l.extend(cells);
                l
            };
            let scores = groups.iter().map(|&(m, e)| {
                let mut cells: Vec<String> = tasks
                    .iter()
                    .map(|t| {
                        cell(m, e, t).map_or(String::new(), |r| {
                            format!("{} ± {}", pct(r.test.0), pct(r.test.1))
                        })
                    })
                    .collect();
                let seeds = tasks
                    .iter()
                    .filter_map(|t| cell(m, e, t))
                    .map(|r| r.seeds)
                    .min()
                    .unwrap_or(0);
                cells.push(seeds.to_string());
                line(m, e, cells)
            });
            out += &format!(
                "### {protocol}: test accuracy, mean ± std over pre-training seeds (%)\n\n{}",
                markdown_table(&header(Some("seeds")), scores)
            );
            let gains = groups
                .iter()
                .filter(|&&(_, e)| e != BASELINE_ENCODER)
                .map(|&(m, e)| {
                    let cells = tasks
                        .iter()
                        .map(|t| {
                            cell(m, e, t)
                                .and_then(|r| r.gain)
                                .map_or("n/a".into(), |g| g.points())
                        })
                        .collect();
                    line(m, e, cells)
                });
            out += &format!(
                "\n### {protocol}: gain over {BASELINE_ENCODER} of the same run, mean [95 % t interval] over pre-training seeds (points)\n\n{}\n",
                markdown_table(&header(None), gains)
            );
        }
        out
    }

    /// Writes `seed_table.parquet` (long format, fractions) and `seed_table.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = |name: &str, f: fn(&SeedRow) -> &String| {
            Column::new(
                name.into(),
                self.rows.iter().map(f).cloned().collect::<Vec<_>>(),
            )
        };
        let number = |name: &str, f: fn(&SeedRow) -> Option<f64>| {
            Column::new(name.into(), self.rows.iter().map(f).collect::<Vec<_>>())
        };
        let columns = vec![
            text("member", |r| &r.member),
            text("encoder", |r| &r.encoder),
            Column::new(
                "step".into(),
                self.rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            ),
            text("protocol", |r| &r.protocol),
            text("task", |r| &r.task),
            Column::new(
                "seeds".into(),
                self.rows.iter().map(|r| r.seeds as u64).collect::<Vec<_>>(),
            ),
            number("test_mean", |r| Some(r.test.0)),
            number("test_std", |r| Some(r.test.1)),
            number("valid_mean", |r| Some(r.valid.0)),
            number("valid_std", |r| Some(r.valid.1)),
            number("gain_mean", |r| r.gain.map(|g| g.mean)),
            number("gain_low", |r| r.gain.map(|g| g.low)),
            number("gain_high", |r| r.gain.map(|g| g.high)),
        ];
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_table(&dir.join("seed_table.parquet"), columns)?;
        crate::atomic::write(&dir.join("seed_table.md"), self.to_markdown().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(encoder: &str, task: &str, metric: &str, probe_seed: u64, value: f64) -> ScoreRow {
        ScoreRow::example(encoder, task, "logistic", metric, probe_seed, value)
    }

    fn run(seed: u64, slicer: [f64; 2], random: [f64; 2]) -> SeedRun {
        let mut scores = Vec::new();
        for (task, k) in [("b", 1), ("a", 0)] {
            scores.push(row("slicer", task, TABLE_METRIC, 0, slicer[k]));
            scores.push(row("slicer", task, "valid_accuracy", 0, slicer[k] - 0.1));
            scores.push(row("random_init", task, TABLE_METRIC, 0, random[k]));
            scores.push(row("random_init", task, "valid_accuracy", 0, random[k]));
        }
        SeedRun {
            member: "m".into(),
            seed,
            scores,
        }
    }

    #[test]
    fn paired_differences_pair_by_seed_and_skip_unmatched_seeds() {
        // Member a's SLICER is 0.1 above member b's on task a and 0.2 below on task b, for
        // every seed both ran; seed 4 ran only in a.
        let a: Vec<SeedRun> = [(1, 0.5), (2, 0.6), (3, 0.7), (4, 0.9)]
            .map(|(seed, x)| run(seed, [x, x], [0.0, 0.0]))
            .into();
        let b: Vec<SeedRun> = [(3, 0.7), (2, 0.6), (1, 0.5)]
            .map(|(seed, x)| run(seed, [x - 0.1, x + 0.2], [0.0, 0.0]))
            .into();
        let rows = paired_differences((&a, "slicer"), (&b, "slicer"), "logistic");
        let tasks: Vec<&str> = rows.iter().map(|r| r.task.as_str()).collect();
        assert_eq!(tasks, ["b", "a", MEAN_TASK], "the scores' order");
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        for (row, expected) in rows.iter().zip([-0.2, 0.1, -0.05]) {
            assert_eq!(row.seeds, 3);
            let d = row.difference.unwrap();
            assert!(close(d.mean, expected), "{row:?}");
            // Identical differences over seeds: a zero-width interval.
            assert!(close(d.low, d.high), "{row:?}");
        }
        // Against random init of the same runs: the gain, as in the seed table.
        let gain = paired_differences((&a, "slicer"), (&a, "random_init"), "logistic");
        assert_eq!(gain[1].seeds, 4);
        assert!(close(gain[1].difference.unwrap().mean, 0.675));
        assert!(paired_differences((&a, "slicer"), (&b, "slicer"), "linear").is_empty());
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t_975(2), 4.303);
        assert_eq!(t_975(100), 1.96);
    }

    #[test]
    fn paired_gains_have_t_intervals_over_seeds() {
        let runs = [
            run(1, [0.60, 0.50], [0.50, 0.50]),
            run(2, [0.62, 0.40], [0.50, 0.45]),
            run(3, [0.64, 0.45], [0.50, 0.40]),
        ];
        let table = SeedTable::new(&runs);
        assert_eq!(
            table.tasks(),
            ["b", "a", "mean"],
            "the runs' order, not sorted"
        );
        let find = |e: &str, t: &str| {
            table
                .rows
                .iter()
                .find(|r| r.encoder == e && r.task == t)
                .unwrap()
        };
        let a = find("slicer", "a");
        assert_eq!(a.seeds, 3);
        assert!((a.test.0 - 0.62).abs() < 1e-12 && (a.test.1 - 0.02).abs() < 1e-12);
        // Differences 0.10, 0.12, 0.14: mean 0.12, sd 0.02, half width 4.303 * 0.02 / sqrt 3.
        let g = a.gain.unwrap();
        let half = 4.303 * 0.02 / 3f64.sqrt();
        assert!((g.mean - 0.12).abs() < 1e-12 && (g.low - (0.12 - half)).abs() < 1e-12);
        assert_eq!(g.verdict(), "gain");
        // Task b: differences 0, -0.05, +0.05: no difference.
        assert_eq!(find("slicer", "b").gain.unwrap().verdict(), "no difference");
        // The mean over tasks is paired per seed: (0.05, 0.035, 0.095).
        let m = find("slicer", "mean").gain.unwrap();
        assert!((m.mean - 0.06).abs() < 1e-12);
        assert!(find("random_init", "a").gain.is_none());
        let md = table.to_markdown();
        assert!(
            md.contains("| m | slicer | 45.0 ± 5.0 | 62.0 ± 2.0 |"),
            "{md}"
        );
        assert!(md.contains("+12.0 [+7.0, +17.0] gain"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        table.write(dir.path()).unwrap();
        assert!(dir.path().join("seed_table.parquet").is_file());
    }

    #[test]
    fn steps_get_a_column_when_a_member_has_several() {
        let at = |encoder: &str, step, value| ScoreRow {
            step: Some(step),
            ..row(encoder, "a", TABLE_METRIC, 0, value)
        };
        let runs: Vec<SeedRun> = [1, 2]
            .map(|seed| SeedRun {
                member: "m".into(),
                seed,
                scores: vec![
                    at("slicer@3", 3, 0.5),
                    at("slicer", 9, 0.6),
                    at("random_init", 0, 0.4),
                ],
            })
            .into();
        let table = SeedTable::new(&runs);
        assert!(table.has_steps());
        let md = table.to_markdown();
        assert!(
            md.contains("| member | encoder | step | a | mean | seeds |"),
            "{md}"
        );
        assert!(md.contains("| m | slicer@3 | 3 | 50.0 ± 0.0 |"), "{md}");
        assert!(
            md.contains("| m | slicer | 9 | +20.0 [+20.0, +20.0] gain |"),
            "{md}"
        );
        // One step per encoder (an ordinary run): the tables as before.
        let plain = SeedTable::new(&[run(1, [0.6, 0.5], [0.5, 0.5])]);
        assert!(!plain.has_steps());
        assert!(!plain.to_markdown().contains("step"));
    }
}
