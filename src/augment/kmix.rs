//! k-mix (docs/method.md §3.3): mixup whose partner comes from an acoustic cluster chosen relative to
//! the anchor's, with centroids from our own seeded spherical k-means.

use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kmix_bank::KmixBank;
use super::mixup::log_mixup_exp;

/// Which cluster the partner is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerPolicy {
    /// The official code: the farthest occupied cluster first, the anchor's own last.
    FarthestFirst,
    /// The anchor's own cluster first, then the nearest others.
    SameCluster,
    /// The nearest other occupied cluster, the anchor's own last.
    NearestOther,
}

/// k-mix parameters (docs/method.md §3.3, 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KmixConfig {
    /// The mixing weight is `ratio * U[0, 1)`.
    pub ratio: f64,
    /// Memory bank size.
    pub bank_size: usize,
    /// Number of k-means clusters (official 4; the research artifact has 128).
    pub clusters: usize,
    /// k-means iterations.
    pub iterations: usize,
    /// Fraction of pre-training clips whose descriptors train the centroids.
    pub sample_fraction: f64,
    /// Candidates kept from the chosen cluster (the oldest members, as coded).
    pub top_k: usize,
    /// Below this many bank entries the partner is a uniformly random entry.
    pub warmup: usize,
    /// Cluster choice for the partner.
    pub partner: PartnerPolicy,
}

impl Default for KmixConfig {
    fn default() -> Self {
        Self {
            ratio: 0.4,
            bank_size: 2048,
            clusters: 4,
            iterations: 20,
            sample_fraction: 0.05,
            top_k: 128,
            warmup: 128,
            partner: PartnerPolicy::FarthestFirst,
        }
    }
}

/// Time-mean of a `[n_mels, frames]` spectrogram: its k-mix descriptor.
pub fn descriptor(x: &[f32], n_mels: usize) -> Vec<f32> {
    let frames = x.len() / n_mels;
    (0..n_mels)
        .map(|m| x[m * frames..(m + 1) * frames].iter().sum::<f32>() / frames as f32)
        .collect()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|a| a / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Spherical k-means (assignment by inner product, centroids re-normalised every iteration)
/// on L2-normalised `points`. Initial centroids are distinct points drawn from `rng`; an
/// emptied cluster is re-seeded with a random point. Returns unit-norm centroids.
pub fn spherical_kmeans(
    points: &[Vec<f32>],
    k: usize,
    iterations: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<f32>> {
    assert!(
        points.len() >= k && k > 0,
        "k-means needs at least k = {k} points, got {}",
        points.len()
    );
    let points: Vec<Vec<f32>> = points.iter().map(|p| unit(p)).collect();
    let mut centroids: Vec<Vec<f32>> = rand::seq::index::sample(rng, points.len(), k)
        .into_iter()
        .map(|i| points[i].clone())
        .collect();
    for _ in 0..iterations {
        let mut sums = vec![vec![0f32; points[0].len()]; k];
        let mut counts = vec![0usize; k];
        for p in &points {
            let best = nearest(&centroids, p);
            counts[best] += 1;
            sums[best].iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        for c in 0..k {
            centroids[c] = if counts[c] == 0 {
                points[rng.random_range(0..points.len())].clone()
            } else {
                unit(&sums[c])
            };
        }
    }
    centroids
}

/// Index of the centroid with the largest inner product with `v`.
fn nearest(centroids: &[Vec<f32>], v: &[f32]) -> usize {
    centroids
        .iter()
        .enumerate()
        .map(|(i, c)| (i, dot(c, v)))
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, s)| if s > b.1 { (i, s) } else { b },
        )
        .0
}

/// The k-mix augmentation: centroids plus its own memory bank.
#[derive(Debug, Clone)]
pub struct Kmix {
    cfg: KmixConfig,
    centroids: Vec<Vec<f32>>,
    n_mels: usize,
    bank: KmixBank,
}

impl Kmix {
    /// k-mix with unit-norm `centroids` over `n_mels`-dim descriptors.
    pub fn new(cfg: KmixConfig, centroids: Vec<Vec<f32>>, n_mels: usize) -> Self {
        let orders = (0..centroids.len())
            .map(|anchor| walk(&centroids, anchor, cfg.partner))
            .collect();
        let bank = KmixBank::new(cfg.bank_size, cfg.warmup, orders);
        Self {
            cfg,
            centroids,
            n_mels,
            bank,
        }
    }

    /// The centroids.
    pub fn centroids(&self) -> &[Vec<f32>] {
        &self.centroids
    }

    /// Mixes `x` with a partner chosen per the policy, then pushes `x` (shared, not copied).
    pub fn apply(&mut self, x: Arc<[f32]>, rng: &mut impl Rng) -> Vec<f32> {
        let alpha = (self.cfg.ratio * rng.random::<f64>()) as f32;
        let d = descriptor(&x, self.n_mels);
        let anchor_cluster = nearest(&self.centroids, &d);
        let out = match self.partner(anchor_cluster, rng) {
            Some(z) => log_mixup_exp(&x, self.bank.values(z), alpha),
            None => x.to_vec(),
        };
        let cluster = nearest(&self.centroids, &unit(&d));
        self.bank.push(x, cluster);
        out
    }

    fn partner(&self, anchor: usize, rng: &mut impl Rng) -> Option<usize> {
        if self.bank.is_empty() {
            return None;
        }
        if self.bank.len() < self.cfg.warmup {
            return Some(rng.random_range(0..self.bank.len()));
        }
        self.bank.order(anchor).iter().find_map(|&cluster| {
            let members: Vec<usize> = self.bank.members(cluster).take(self.cfg.top_k).collect();
            (!members.is_empty()).then(|| members[rng.random_range(0..members.len())])
        })
    }
}

/// The clusters in the order the partner rule walks them for anchor cluster `anchor`.
fn walk(centroids: &[Vec<f32>], anchor: usize, policy: PartnerPolicy) -> Vec<usize> {
    let distance = |c: usize| {
        centroids[c]
            .iter()
            .zip(&centroids[anchor])
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
    };
    let mut order: Vec<usize> = (0..centroids.len()).collect();
    match policy {
        PartnerPolicy::FarthestFirst => order.sort_by(|&a, &b| distance(b).total_cmp(&distance(a))),
        PartnerPolicy::SameCluster => order.sort_by(|&a, &b| distance(a).total_cmp(&distance(b))),
        PartnerPolicy::NearestOther => {
            order.retain(|&c| c != anchor);
            order.sort_by(|&a, &b| distance(a).total_cmp(&distance(b)));
            order.push(anchor);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_separates_two_directions() {
        let mut rng = crate::rng::stream(2, "kmeans");
        let points: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    vec![1.0, 0.05 * i as f32]
                } else {
                    vec![0.05 * i as f32, -1.0]
                }
            })
            .collect();
        let c = spherical_kmeans(&points, 2, 20, &mut rng);
        let a = nearest(&c, &unit(&points[0]));
        let b = nearest(&c, &unit(&points[1]));
        assert_ne!(a, b);
        assert!(c.iter().all(|v| (dot(v, v) - 1.0).abs() < 1e-5));
    }

    #[test]
    fn farthest_first_picks_the_other_cluster() {
        let centroids = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let cfg = KmixConfig {
            warmup: 2,
            ..KmixConfig::default()
        };
        let mut kmix = Kmix::new(cfg, centroids, 2);
        let mut rng = crate::rng::stream(4, "kmix");
        // 1-frame spectrograms: descriptor = the values.
        let low: Arc<[f32]> = Arc::from(vec![5.0, 0.0]);
        let high: Arc<[f32]> = Arc::from(vec![0.0, 5.0]);
        kmix.apply(Arc::clone(&low), &mut rng);
        kmix.apply(low, &mut rng);
        kmix.apply(high, &mut rng);
        assert_eq!(
            kmix.partner(0, &mut rng),
            Some(2),
            "a cluster-0 anchor is mixed with the cluster-1 entry"
        );
    }

    /// Three centroids on a half circle: 0 and 2 are each other's farthest, and 1 (as far
    /// from both) walks to 0 first, ties kept in index order.
    fn half_circle() -> Vec<Vec<f32>> {
        vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]]
    }

    #[test]
    fn each_policy_walks_the_clusters_in_its_order() {
        let c = half_circle();
        assert_eq!(walk(&c, 0, PartnerPolicy::FarthestFirst), [2, 1, 0]);
        assert_eq!(walk(&c, 1, PartnerPolicy::FarthestFirst), [0, 2, 1]);
        assert_eq!(walk(&c, 0, PartnerPolicy::SameCluster), [0, 1, 2]);
        assert_eq!(walk(&c, 1, PartnerPolicy::NearestOther), [0, 2, 1]);
    }

    /// Entries of cluster 1 are let go once clusters 0 and 2 both hold newer ones, since
    /// every walk then stops before cluster 1; the draws never touch a released entry (that
    /// would panic), over thousands of calls with evictions and clusters that come and go.
    #[test]
    fn the_bank_lets_go_only_of_entries_no_walk_reaches() {
        let cfg = KmixConfig {
            bank_size: 64,
            warmup: 8,
            top_k: 4,
            ..KmixConfig::default()
        };
        let mut kmix = Kmix::new(cfg, half_circle(), 2);
        let mut rng = crate::rng::stream(5, "kmix-release");
        let point = [[5.0f32, 0.0], [0.0, 5.0], [-5.0, 0.0]];
        for i in 0..4000 {
            // Phases in which cluster 2, then cluster 0, is absent, so walks fall through.
            let cluster = match (i / 500) % 4 {
                0 => [0, 1][rng.random_range(0..2)],
                2 => [1, 2][rng.random_range(0..2)],
                _ => rng.random_range(0..3),
            };
            kmix.apply(Arc::from(point[cluster].to_vec()), &mut rng);
        }
        assert!(
            kmix.bank.held() < kmix.bank.len(),
            "some entries were let go"
        );
        // Fill with cluster 1, then one entry each of 0 and 2: all cluster-1 entries go.
        for _ in 0..64 {
            kmix.apply(Arc::from(point[1].to_vec()), &mut rng);
        }
        assert_eq!(kmix.bank.held(), 64);
        kmix.apply(Arc::from(point[0].to_vec()), &mut rng);
        assert_eq!(kmix.bank.held(), 64, "cluster 2 still walks to cluster 1");
        kmix.apply(Arc::from(point[2].to_vec()), &mut rng);
        assert_eq!(
            kmix.bank.held(),
            2,
            "only the entries of clusters 0 and 2 stay"
        );
    }

    /// Under the same-cluster policy each cluster is the first walked by its own anchors, so
    /// nothing is let go.
    #[test]
    fn the_same_cluster_policy_keeps_every_entry() {
        let cfg = KmixConfig {
            bank_size: 32,
            warmup: 4,
            partner: PartnerPolicy::SameCluster,
            ..KmixConfig::default()
        };
        let mut kmix = Kmix::new(cfg, half_circle(), 2);
        let mut rng = crate::rng::stream(6, "kmix-same");
        for i in 0..100 {
            let x = [[5.0f32, 0.0], [0.0, 5.0], [-5.0, 0.0]][i % 3];
            kmix.apply(Arc::from(x.to_vec()), &mut rng);
        }
        assert_eq!(kmix.bank.held(), 32);
    }
}
