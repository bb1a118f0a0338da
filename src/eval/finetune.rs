//! Fine-tuning (docs/method.md §9.2, the LAPE toolkit's Protocol B): the whole encoder plus a linear
//! head trained with cross-entropy, Adam (lr 1e-3, no weight decay), batch 32, BatchNorm and
//! dropout in train mode. Inputs are normalised with train-split statistics (docs/method.md §9.3 adds
//! this; the toolkit normalises nothing) and use the same fixed centre windows as the
//! linear probe, where the toolkit draws a random window per epoch. The epoch is chosen on
//! the validation split; the toolkit's max-over-epochs test accuracy is also kept.

use candle_core::{DType, Tensor, Var, D};
use rand::seq::SliceRandom;

use super::embed::Pooling;
use super::probe::{EpochSelection, ProbeConfig, ProbeOutcome};
use crate::error::{Error, Result};
use crate::features::{batches, LogMelSpectrogram, NormStats, SpectrogramSet};
use crate::model::{Dropout, Encoder, Linear};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::progress::Progress;

/// A task's spectrograms and labels per split, and how to feed them.
#[derive(Clone, Copy)]
pub struct FinetuneData<'a> {
    /// Train, valid, test spectrograms (read a batch at a time).
    pub spectrograms: [&'a dyn SpectrogramSet; 3],
    /// Train, valid, test labels.
    pub labels: [&'a [usize]; 3],
    /// Number of classes.
    pub classes: usize,
    /// Input normalisation.
    pub norm: NormStats,
    /// Frame pooling before the head.
    pub pooling: Pooling,
}

fn tensor_err(e: candle_core::Error) -> Error {
    Error::tensor("fine-tuning")(e)
}

/// Fine-tunes a copy of `start` (which is left unchanged) with probe seed `seed`.
pub fn finetune(
    cfg: &ProbeConfig,
    start: &Encoder,
    n_mels: usize,
    data: FinetuneData<'_>,
    seed: u64,
    progress: &dyn Progress,
) -> Result<ProbeOutcome> {
    let device = start.fc0.weight.device().clone();
    let d = start.fc3.weight.dim(0).map_err(tensor_err)?;
    let mut rng = crate::rng::stream(seed, "finetune");
    let encoder = Encoder::new(n_mels, d, start.dropout, &mut rng, &device).map_err(tensor_err)?;
    let state = start.state("").map_err(tensor_err)?.into_iter().collect();
    encoder.load_state("", &state).map_err(tensor_err)?;
    let head = Linear::new(d, data.classes, &mut rng, &device).map_err(tensor_err)?;
    let mut params: Vec<Var> = encoder
        .named_params("")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    params.extend(head.named_params("head").into_iter().map(|(_, v)| v));
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(cfg.lr), params.len());
    let logits = |batch: &[&LogMelSpectrogram], dropout: Option<&mut rand_chacha::ChaCha8Rng>| {
        let x: Vec<f32> = batch.iter().flat_map(|s| s.data.iter().copied()).collect();
        let mut x = x;
        data.norm.apply(&mut x);
        let first = batch[0];
        let x = Tensor::from_vec(x, (batch.len(), 1, first.n_mels, first.n_frames), &device)?;
        let frames = match dropout {
            Some(rng) => encoder.forward(&x, true, &mut Dropout::Sample(rng))?,
            None => encoder.forward(&x, false, &mut Dropout::Off)?,
        };
        head.forward(&data.pooling.apply(&frames)?)
    };
    let accuracy = |split: usize| -> Result<f64> {
        let (specs, labels) = (data.spectrograms[split], data.labels[split]);
        let mut correct = 0usize;
        for (chunk, truth) in batches(specs, 64).zip(labels.chunks(64)) {
            let chunk = chunk?;
            let refs: Vec<&LogMelSpectrogram> = chunk.iter().collect();
            let predicted: Vec<u32> = logits(&refs, None)
                .and_then(|l| l.argmax(D::Minus1)?.to_vec1::<u32>())
                .map_err(tensor_err)?;
            correct += predicted
                .iter()
                .zip(truth)
                .filter(|(p, t)| **p as usize == **t)
                .count();
        }
        Ok(correct as f64 / labels.len().max(1) as f64)
    };
    let train = (data.spectrograms[0], data.labels[0]);
    let mut order: Vec<usize> = (0..train.1.len()).collect();
    let mut dropout_rng = crate::rng::stream(seed, "finetune/dropout");
    let mut selection = EpochSelection::new(seed);
    progress.start("fine-tune", cfg.finetune_epochs as u64, "epochs");
    for epoch in 1..=cfg.finetune_epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(cfg.batch_size) {
            // A batch of one has no BatchNorm variance; PyTorch refuses it too.
            if batch.len() < 2 {
                continue;
            }
            let read = train.0.read(batch)?;
            let specs: Vec<&LogMelSpectrogram> = read.iter().collect();
            let targets: Vec<u32> = batch.iter().map(|&i| train.1[i] as u32).collect();
            let mut step = || -> candle_core::Result<_> {
                let out = logits(&specs, Some(&mut dropout_rng))?;
                let targets = Tensor::new(targets.as_slice(), &device)?;
                let loss = candle_nn::loss::cross_entropy(&out, &targets)?;
                let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                Ok((value, loss.backward()?))
            };
            let (loss, grads) = step().map_err(tensor_err)?;
            if !loss.is_finite() {
                return Err(Error::Invalid(format!(
                    "fine-tuning: non-finite loss at epoch {epoch}; lower probe.lr"
                )));
            }
            optimizer
                .step(&params, &grads, cfg.lr)
                .map_err(tensor_err)?;
        }
        let acc_va = accuracy(1)?;
        selection.record(epoch, accuracy(0)?, acc_va, accuracy(2)?);
        progress.message(&format!("epoch {epoch}: valid {acc_va:.3}"));
        progress.advance(1);
    }
    progress.finish();
    selection
        .finish()
        .ok_or_else(|| Error::Invalid("fine-tuning: no epoch ran".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{encoder_hash, Protocol};
    use crate::progress::Silent;
    use candle_core::Device;
    use rand::Rng;

    /// Class 0 has its energy in the low bands, class 1 in the high ones.
    fn clips(n: usize, seed: u64) -> (Vec<LogMelSpectrogram>, Vec<usize>) {
        let mut rng = crate::rng::stream(seed, "clips");
        (0..n)
            .map(|i| {
                let label = i % 2;
                let data = (0..16 * 16)
                    .map(|k| {
                        let band = k / 16;
                        let loud = (band < 8) == (label == 0);
                        f32::from(u8::from(loud)) * 2.0 + rng.random_range(-0.5..0.5)
                    })
                    .collect();
                let spec = LogMelSpectrogram {
                    n_mels: 16,
                    n_frames: 16,
                    data,
                };
                (spec, label)
            })
            .unzip()
    }

    #[test]
    fn learns_a_separable_task_and_leaves_the_start_encoder_alone() {
        let start =
            Encoder::new(16, 8, 0.1, &mut crate::rng::stream(3, "init"), &Device::Cpu).unwrap();
        let before = encoder_hash(&start).unwrap();
        let (train, valid, test) = (clips(24, 1), clips(8, 2), clips(8, 3));
        let data = FinetuneData {
            spectrograms: [&train.0, &valid.0, &test.0],
            labels: [&train.1, &valid.1, &test.1],
            classes: 2,
            norm: NormStats::from_spectrograms(&train.0).unwrap(),
            pooling: Pooling::MaxMean,
        };
        let cfg = ProbeConfig {
            batch_size: 8,
            finetune_epochs: 5,
            protocols: vec![Protocol::Finetune],
            ..ProbeConfig::default()
        };
        let outcome = finetune(&cfg, &start, 16, data, 5, &Silent).unwrap();
        assert!(outcome.test_accuracy >= 0.9, "{outcome:?}");
        assert!(outcome.max_test_accuracy >= outcome.test_accuracy);
        assert_eq!(encoder_hash(&start).unwrap(), before);
        assert_eq!(
            outcome,
            finetune(&cfg, &start, 16, data, 5, &Silent).unwrap()
        );
    }
}
