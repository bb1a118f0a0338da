//! The `logistic_few_shot` protocol: the `logistic` probe trained on a label budget. For each
//! budget of `k` labelled clips per class and each of `draws` seeded draws, `k` clips per
//! class are drawn from the train split and `k` from the validation split (the penalty is
//! chosen on those only: a label budget covers model selection too), and the fit is scored
//! on the whole test split. Rows are named `logistic_{k}_shot`, one row set per draw (the
//! draw is the row's `seed`), so tables average over draws as over probe seeds.
//!
//! The draws depend on the run's seed, the task and the draw index only, never on the
//! encoder: every encoder of a run is scored on the same clips, and runs of different
//! members with the same seed are paired on them too.

use std::time::Instant;

use super::logistic::logistic_probe;
use super::probe::{FewShotConfig, ProbeSet, Protocol};
use super::scoring::{logistic_rows, ProbeInputs, ScoreContext};
use crate::error::Result;
use crate::results::ScoreRow;
use rand::seq::index::sample;
use rayon::prelude::*;

/// Up to `k` examples of each class of `set` (`dim` values each), drawn without replacement
/// from `rng`, in their order in `set`.
pub fn per_class_subset(
    set: ProbeSet<'_>,
    dim: usize,
    classes: usize,
    k: usize,
    rng: &mut impl rand::Rng,
) -> (Vec<f32>, Vec<usize>) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &c) in set.y.iter().enumerate() {
        by_class[c].push(i);
    }
    let mut chosen: Vec<usize> = by_class
        .iter()
        .flat_map(|members| {
            let n = members.len();
            sample(rng, n, k.min(n))
                .into_iter()
                .map(|j| members[j])
                .collect::<Vec<_>>()
        })
        .collect();
    chosen.sort_unstable();
    let x = chosen
        .iter()
        .flat_map(|&i| &set.x[i * dim..(i + 1) * dim])
        .copied()
        .collect();
    (x, chosen.iter().map(|&i| set.y[i]).collect())
}

/// The `logistic_few_shot` rows (when `protocols` has it): per budget and draw, test, valid
/// and train accuracy and the chosen `l2_penalty`.
pub fn few_shot_scores(
    protocols: &[Protocol],
    cfg: Option<&FewShotConfig>,
    ctx: &ScoreContext,
    inputs: ProbeInputs<'_>,
) -> Result<Vec<ScoreRow>> {
    let Some(cfg) = cfg.filter(|_| protocols.contains(&Protocol::LogisticFewShot)) else {
        return Ok(Vec::new());
    };
    let [train, valid, test] = inputs.sets;
    // Every (budget, draw) fit is independent: they run side by side, rows in their order.
    let fits: Vec<(usize, u64)> = cfg
        .per_class
        .iter()
        .flat_map(|&k| (0..cfg.draws as u64).map(move |draw| (k, draw)))
        .collect();
    let rows: Vec<Vec<ScoreRow>> = fits
        .par_iter()
        .map(|&(k, draw)| {
            let started = Instant::now();
            let mut rng = crate::rng::stream_indexed(
                ctx.seed,
                &format!("few_shot/{}/{k}", inputs.task),
                draw,
            );
            let (xtr, ytr) = per_class_subset(train, inputs.dim, inputs.classes, k, &mut rng);
            let (xva, yva) = per_class_subset(valid, inputs.dim, inputs.classes, k, &mut rng);
            let sets = [
                ProbeSet { x: &xtr, y: &ytr },
                ProbeSet { x: &xva, y: &yva },
                test,
            ];
            let fit = logistic_probe(inputs.dim, inputs.classes, sets[0], sets[1], sets[2])?;
            let wall = started.elapsed().as_secs_f64();
            let subset = ProbeInputs { sets, ..inputs };
            let mut draw_rows = logistic_rows(ctx, &subset, draw, &fit, wall);
            for row in &mut draw_rows {
                row.protocol = FewShotConfig::protocol_name(k);
            }
            Ok(draw_rows)
        })
        .collect::<Result<_>>()?;
    Ok(rows.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: &[usize]) -> (Vec<f32>, Vec<usize>) {
        let x = labels
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| [i as f32, c as f32])
            .collect();
        (x, labels.to_vec())
    }

    #[test]
    fn the_subset_keeps_k_per_class_with_their_own_vectors_and_repeats_under_its_seed() {
        let labels: Vec<usize> = (0..40).map(|i| i % 3).chain([3]).collect();
        let (x, y) = set(&labels);
        let draw = |index| {
            let mut rng = crate::rng::stream_indexed(1, "few_shot/t/4", index);
            per_class_subset(ProbeSet { x: &x, y: &y }, 2, 4, 4, &mut rng)
        };
        let (xs, ys) = draw(0);
        for c in 0..3 {
            assert_eq!(ys.iter().filter(|&&l| l == c).count(), 4, "class {c}");
        }
        assert_eq!(
            ys.iter().filter(|&&l| l == 3).count(),
            1,
            "a class with fewer clips than the budget keeps all of them"
        );
        for (row, &label) in xs.chunks(2).zip(&ys) {
            assert_eq!(row[1] as usize, label, "each vector stays with its label");
            assert_eq!(y[row[0] as usize], label);
        }
        assert_eq!(draw(0), (xs, ys.clone()), "same seed and draw, same clips");
        assert_ne!(draw(1).1.len(), 0);
        assert_ne!(draw(1).0, draw(0).0, "another draw, other clips");
    }
}
