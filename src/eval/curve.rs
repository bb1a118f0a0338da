//! Learning curves of a seeded suite whose runs were evaluated at several pre-training steps
//! (`eval.at_steps`): per member, step and protocol, the mean-over-tasks gain of the
//! pre-trained encoder over `random_init` and over the bag-of-frames floor of the same runs,
//! each paired by seed with its 95 % interval, and the pre-training time the point cost.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::Column;

use super::seeds::{
    members_in_order, paired_differences, Interval, SeedRun, BASELINE_ENCODER, MEAN_TASK,
};
use crate::error::{Error, Result};
use crate::results::{markdown_table, write_table};

/// The floor's encoder name in score tables.
pub const FLOOR_ENCODER: &str = "bag_of_frames";

/// One point of a curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Suite member.
    pub member: String,
    /// The encoder's name in the score tables (`slicer@186`, `slicer`).
    pub encoder: String,
    /// Pre-training steps behind it.
    pub step: u64,
    /// Protocol.
    pub protocol: String,
    /// Runs (pre-training seeds) that scored it.
    pub seeds: usize,
    /// Mean-over-tasks test accuracy minus random init's, paired by seed.
    pub over_random_init: Option<Interval>,
    /// Mean-over-tasks test accuracy minus the floor's, paired by seed.
    pub over_floor: Option<Interval>,
    /// Mean-over-tasks test accuracy minus that of the member's previous evaluated step,
    /// paired by seed (`None` at the first step).
    pub over_previous_step: Option<Interval>,
    /// Pre-training wall-clock hours to this step, mean over the runs that recorded it.
    pub pretrain_hours: Option<f64>,
}

/// The curve of every member of `runs` that was scored at more than one step: its
/// pre-trained encoders (rows with a step above 0) in step order. `pretrain_seconds(member,
/// seed, step)` gives a run's wall-clock seconds to that step, when known.
pub fn curve_points(
    runs: &[SeedRun],
    pretrain_seconds: impl Fn(&str, u64, u64) -> Option<f64>,
) -> Vec<CurvePoint> {
    let mut points = Vec::new();
    for member in members_in_order(runs) {
        let own: Vec<SeedRun> = runs
            .iter()
            .filter(|r| r.member == member)
            .cloned()
            .collect();
        let encoders: BTreeSet<(u64, &str)> = own
            .iter()
            .flat_map(|r| &r.scores)
            .filter_map(|s| Some((s.step.filter(|&k| k > 0)?, s.encoder.as_str())))
            .collect();
        if encoders.len() < 2 {
            continue;
        }
        let mut protocols: Vec<&str> = Vec::new();
        for s in own.iter().flat_map(|r| &r.scores) {
            if !protocols.contains(&s.protocol.as_str()) {
                protocols.push(&s.protocol);
            }
        }
        for protocol in protocols {
            let mut previous: Option<&str> = None;
            for &(step, encoder) in &encoders {
                let mean_over = |baseline: &str| {
                    paired_differences((&own, encoder), (&own, baseline), protocol)
                        .into_iter()
                        .find(|d| d.task == MEAN_TASK)
                };
                let (random, floor) = (mean_over(BASELINE_ENCODER), mean_over(FLOOR_ENCODER));
                let over_previous_step = previous.and_then(mean_over).and_then(|d| d.difference);
                previous = Some(encoder);
                let hours: Vec<f64> = own
                    .iter()
                    .filter_map(|r| pretrain_seconds(member, r.seed, step))
                    .map(|s| s / 3600.0)
                    .collect();
                points.push(CurvePoint {
                    member: member.to_owned(),
                    encoder: encoder.to_owned(),
                    step,
                    protocol: protocol.to_owned(),
                    seeds: random.as_ref().map_or(0, |d| d.seeds),
                    over_random_init: random.and_then(|d| d.difference),
                    over_floor: floor.and_then(|d| d.difference),
                    over_previous_step,
                    pretrain_hours: (!hours.is_empty())
                        .then(|| hours.iter().sum::<f64>() / hours.len() as f64),
                });
            }
        }
    }
    points
}

/// One of a point's intervals.
type IntervalField = fn(&CurvePoint) -> Option<Interval>;

/// A suite's learning curves: [`CurvePoint`]s, written as Markdown and Parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveTable {
    /// The points, by member, protocol, then step.
    pub points: Vec<CurvePoint>,
}

fn interval(i: Option<Interval>) -> String {
    i.map_or("n/a".to_owned(), |g| g.points())
}

impl CurveTable {
    /// Markdown: one row per member, protocol and step.
    pub fn to_markdown(&self) -> String {
        let header = [
            "member",
            "protocol",
            "step",
            "gain over random init",
            "gain over the floor",
            "gain over the previous step",
            "seeds",
            "hours",
        ]
        .map(String::from);
        let rows = self.points.iter().map(|p| {
            vec![
                p.member.clone(),
                p.protocol.clone(),
                p.step.to_string(),
                interval(p.over_random_init),
                interval(p.over_floor),
                p.over_previous_step.map_or(String::new(), |g| g.points()),
                p.seeds.to_string(),
                p.pretrain_hours
                    .map_or("n/a".to_owned(), |h| format!("{h:.2}")),
            ]
        });
        format!(
            "Mean over tasks, test accuracy gain in points, paired by pre-training seed, mean [95 % t interval]; hours: pre-training wall clock to the step (mean over seeds).\n\n{}",
            markdown_table(&header, rows)
        )
    }

    /// Writes `curve_table.parquet` (fractions) and `curve_table.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = &self.points;
        let text = |name: &str, f: fn(&CurvePoint) -> String| {
            Column::new(name.into(), p.iter().map(f).collect::<Vec<_>>())
        };
        let number = |name: &str, f: fn(&CurvePoint) -> Option<f64>| {
            Column::new(name.into(), p.iter().map(f).collect::<Vec<_>>())
        };
        let mut columns = vec![
            text("member", |p| p.member.clone()),
            text("encoder", |p| p.encoder.clone()),
            Column::new("step".into(), p.iter().map(|p| p.step).collect::<Vec<_>>()),
            text("protocol", |p| p.protocol.clone()),
            Column::new(
                "seeds".into(),
                p.iter().map(|p| p.seeds as u64).collect::<Vec<_>>(),
            ),
            number("pretrain_hours", |p| p.pretrain_hours),
        ];
        let intervals: [(&str, IntervalField); 3] = [
            ("over_random_init", |p| p.over_random_init),
            ("over_floor", |p| p.over_floor),
            ("over_previous_step", |p| p.over_previous_step),
        ];
        for (name, field) in intervals {
            let bound = |suffix: &str, f: fn(Interval) -> f64| {
                let values: Vec<Option<f64>> = p.iter().map(|p| field(p).map(f)).collect();
                Column::new(format!("{name}_{suffix}").into(), values)
            };
            columns.push(bound("mean", |g| g.mean));
            columns.push(bound("low", |g| g.low));
            columns.push(bound("high", |g| g.high));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_table(&dir.join("curve_table.parquet"), columns)?;
        crate::atomic::write(&dir.join("curve_table.md"), self.to_markdown().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::TABLE_METRIC;
    use crate::results::ScoreRow;

    fn run(seed: u64, early: f64, late: f64) -> SeedRun {
        let row = |encoder: &str, step, value| ScoreRow {
            step,
            ..ScoreRow::example(encoder, "a", "logistic", TABLE_METRIC, 0, value)
        };
        SeedRun {
            member: "m".into(),
            seed,
            scores: vec![
                row("slicer@10", Some(10), early),
                row("slicer", Some(40), late),
                row(BASELINE_ENCODER, Some(0), 0.5),
                row(FLOOR_ENCODER, None, 0.55),
            ],
        }
    }

    #[test]
    fn each_step_is_paired_with_random_init_and_the_floor_of_its_runs() {
        let runs = [run(1, 0.50, 0.60), run(2, 0.52, 0.64), run(3, 0.54, 0.68)];
        let seconds = |_: &str, seed: u64, step: u64| Some((seed * step) as f64 * 36.0);
        let table = CurveTable {
            points: curve_points(&runs, seconds),
        };
        let steps: Vec<u64> = table.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [10, 40]);
        let late = &table.points[1];
        assert_eq!((late.encoder.as_str(), late.seeds), ("slicer", 3));
        assert!((late.over_random_init.unwrap().mean - 0.14).abs() < 1e-12);
        assert!((late.over_floor.unwrap().mean - 0.09).abs() < 1e-12);
        assert!(
            (late.pretrain_hours.unwrap() - 0.8).abs() < 1e-12,
            "2 x 40 x 36 s"
        );
        let md = table.to_markdown();
        assert!(
            md.contains(
                "| m | logistic | 10 | +2.0 [-3.0, +7.0] | -3.0 [-8.0, +2.0] |  | 3 | 0.20 |"
            ),
            "{md}"
        );
        // Step 40 against step 10 of the same runs: +0.10, +0.12, +0.14.
        let d = late.over_previous_step.unwrap();
        assert!((d.mean - 0.12).abs() < 1e-12 && d.verdict() == "gain");
        // A member scored at one step has no curve.
        let single: Vec<SeedRun> = runs
            .iter()
            .map(|r| SeedRun {
                scores: r.scores[1..].to_vec(),
                ..r.clone()
            })
            .collect();
        assert!(curve_points(&single, seconds).is_empty());
    }
}
