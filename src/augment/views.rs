//! The two-view chain (docs/method.md §3.0): each view independently goes Mixup -> RRC -> k-mix (the
//! toolkit order), or k-mix -> RRC (the research order, where k-mix replaces Mixup).

use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kmix::{Kmix, KmixConfig};
use super::mixup::{mixup, MemoryBank, MixupConfig};
use super::rrc::{random_resize_crop, RrcConfig};
use crate::problems::Problem;

/// Where k-mix sits in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KmixPlacement {
    /// Mixup -> RRC -> k-mix (LAPE toolkit HEAD; default).
    AfterRrc,
    /// k-mix -> RRC, with no random Mixup (the research code).
    ReplacesMixup,
}

/// Augmentation settings; a `null` component is switched off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Random-partner Mixup.
    pub mixup: Option<MixupConfig>,
    /// Random resize crop.
    pub rrc: Option<RrcConfig>,
    /// k-mix.
    pub kmix: Option<KmixConfig>,
    /// Position of k-mix.
    pub kmix_placement: KmixPlacement,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            mixup: Some(MixupConfig::default()),
            rrc: Some(RrcConfig::default()),
            kmix: Some(KmixConfig::default()),
            kmix_placement: KmixPlacement::AfterRrc,
        }
    }
}

impl AugmentConfig {
    /// Bad values, with keys relative to `augment`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let ratio = |key: &str, ratio: f64| {
            (!(0.0..=1.0).contains(&ratio)).then(|| {
                Problem::new(
                    key,
                    format!("{ratio} is not a mixing ratio in [0, 1]"),
                    "docs/method.md §3 uses 0.4",
                )
            })
        };
        if let Some(m) = &self.mixup {
            problems.extend(ratio("mixup.ratio", m.ratio));
            problems.extend(
                Problem::zero_counts(&[("bank_size", m.bank_size as u64, "e.g. 2048")])
                    .into_iter()
                    .map(|p| p.under("mixup")),
            );
        }
        if let Some(r) = &self.rrc {
            problems.extend(r.problems().into_iter().map(|p| p.under("rrc")));
        }
        if let Some(k) = &self.kmix {
            problems.extend(ratio("kmix.ratio", k.ratio));
            problems.extend(
                Problem::zero_counts(&[
                    ("bank_size", k.bank_size as u64, "e.g. 2048"),
                    ("clusters", k.clusters as u64, "the official code uses 4"),
                    ("iterations", k.iterations as u64, "e.g. 20"),
                    ("top_k", k.top_k as u64, "e.g. 128"),
                ])
                .into_iter()
                .map(|p| p.under("kmix")),
            );
            if !(k.sample_fraction > 0.0 && k.sample_fraction <= 1.0) {
                problems.push(Problem::new(
                    "kmix.sample_fraction",
                    format!(
                        "{} is not a fraction of the corpus in (0, 1]",
                        k.sample_fraction
                    ),
                    "docs/method.md §3.3 uses 0.05",
                ));
            }
        }
        problems
    }
}

/// Stateful two-view augmenter (memory banks live here).
#[derive(Debug, Clone)]
pub struct TwoViews {
    cfg: AugmentConfig,
    mixup_bank: MemoryBank,
    kmix: Option<Kmix>,
    rows: usize,
    cols: usize,
}

impl TwoViews {
    /// An augmenter for `[rows, cols]` spectrograms; `kmix` must be given when configured.
    pub fn new(cfg: AugmentConfig, kmix: Option<Kmix>, rows: usize, cols: usize) -> Self {
        let bank = MemoryBank::new(cfg.mixup.as_ref().map_or(0, |m| m.bank_size));
        Self {
            cfg,
            mixup_bank: bank,
            kmix,
            rows,
            cols,
        }
    }

    /// One view of `x`; a bank that keeps the un-augmented input shares `x` with the other
    /// view's entry instead of copying it.
    fn view(&mut self, x: &Arc<[f32]>, rng: &mut impl Rng) -> Vec<f32> {
        let replaces = self.cfg.kmix_placement == KmixPlacement::ReplacesMixup;
        let mut v = match (&self.cfg.mixup, self.kmix.as_mut()) {
            (_, Some(k)) if replaces => k.apply(Arc::clone(x), rng),
            (Some(m), _) if !replaces => mixup(x, &mut self.mixup_bank, m.ratio, rng),
            _ => x.to_vec(),
        };
        if let Some(r) = &self.cfg.rrc {
            v = random_resize_crop(&v, self.rows, self.cols, r, rng);
        }
        if !replaces {
            if let Some(k) = self.kmix.as_mut() {
                v = k.apply(Arc::from(v), rng);
            }
        }
        v
    }

    /// Two independently augmented views of one normalised spectrogram.
    pub fn views(&mut self, x: &[f32], rng: &mut impl Rng) -> (Vec<f32>, Vec<f32>) {
        let shared: Arc<[f32]> = Arc::from(x);
        let a = self.view(&shared, rng);
        let b = self.view(&shared, rng);
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both views push the same input into the Mixup bank (BYOL-A's module is called twice
    /// per clip); the bank keeps one array for the pair, and each view mixes as before.
    #[test]
    fn the_two_views_share_one_mixup_bank_entry() {
        let cfg = AugmentConfig {
            rrc: None,
            kmix: None,
            ..AugmentConfig::default()
        };
        let mut views = TwoViews::new(cfg, None, 2, 3);
        let mut rng = crate::rng::stream(3, "views");
        let first = [0.5f32; 6];
        let (a, b) = views.views(&first, &mut rng);
        assert_eq!(
            a,
            first.to_vec(),
            "an empty bank leaves the first view as is"
        );
        assert_eq!(b.len(), first.len());
        views.views(&[1.5f32; 6], &mut rng);
        let entries = views.mixup_bank.entries();
        assert_eq!(entries.len(), 4, "two entries per clip");
        assert!(Arc::ptr_eq(&entries[0], &entries[1]) && Arc::ptr_eq(&entries[2], &entries[3]));
        assert!(!Arc::ptr_eq(&entries[1], &entries[2]));
        assert_eq!(&*entries[3], &[1.5f32; 6]);
    }
}
