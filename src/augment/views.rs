//! The two-view chain (docs/method.md §3.0): each view independently goes Mixup -> RRC -> k-mix (the
//! toolkit order), or k-mix -> RRC (the research order, where k-mix replaces Mixup).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::kmix::{Kmix, KmixConfig};
use super::mixup::{mixup, MemoryBank, MixupConfig};
use super::rrc::{random_resize_crop, RrcConfig};

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

    fn view(&mut self, x: &[f32], rng: &mut impl Rng) -> Vec<f32> {
        let mut v = x.to_vec();
        let replaces = self.cfg.kmix_placement == KmixPlacement::ReplacesMixup;
        if replaces {
            if let Some(k) = self.kmix.as_mut() {
                v = k.apply(&v, rng);
            }
        } else if let Some(m) = &self.cfg.mixup {
            v = mixup(&v, &mut self.mixup_bank, m.ratio, rng);
        }
        if let Some(r) = &self.cfg.rrc {
            v = random_resize_crop(&v, self.rows, self.cols, r, rng);
        }
        if !replaces {
            if let Some(k) = self.kmix.as_mut() {
                v = k.apply(&v, rng);
            }
        }
        v
    }

    /// Two independently augmented views of one normalised spectrogram.
    pub fn views(&mut self, x: &[f32], rng: &mut impl Rng) -> (Vec<f32>, Vec<f32>) {
        let a = self.view(x, rng);
        let b = self.view(x, rng);
        (a, b)
    }
}
