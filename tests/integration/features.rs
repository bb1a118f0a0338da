//! The front end against the PyTorch/librosa fixtures (tests/fixtures/frontend.safetensors).

use crate::common::{fixtures_dir, max_abs_diff, read_f32};
use slicer::features::{FrontendConfig, LogMelFrontend, MelNorm, MelScale};

fn chirp() -> Vec<f32> {
    let audio = slicer::audio::decode(&fixtures_dir().join("chirp_1s.wav")).unwrap();
    assert_eq!(
        (audio.sample_rate, audio.channels, audio.samples.len()),
        (16_000, 1, 16_000)
    );
    audio.samples
}

#[test]
fn filterbank_matches_librosa() {
    let (shape, expected) = read_f32(&fixtures_dir().join("frontend.safetensors"), "mel_fb");
    assert_eq!(shape, vec![64, 513]);
    let fb = LogMelFrontend::new(&FrontendConfig::default())
        .filterbank()
        .to_dense();
    let diff = max_abs_diff(&fb, &expected);
    assert!(diff <= 1e-7, "filterbank differs by {diff}");
}

#[test]
fn log_mel_of_the_chirp_matches_the_reference_and_librosa() {
    let fixtures = fixtures_dir().join("frontend.safetensors");
    let lms = LogMelFrontend::new(&FrontendConfig::default()).compute(&chirp());
    assert_eq!((lms.n_mels, lms.n_frames), (64, 101));
    for name in ["lms.ref", "lms.librosa_reflect"] {
        let (shape, expected) = read_f32(&fixtures, name);
        assert_eq!(shape, vec![64, 101]);
        let diff = max_abs_diff(&lms.data, &expected);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
    }
}

#[test]
fn htk_unnormalised_variant_matches_torchaudio_defaults() {
    let cfg = FrontendConfig {
        mel_scale: MelScale::Htk,
        mel_norm: MelNorm::None,
        ..FrontendConfig::default()
    };
    let lms = LogMelFrontend::new(&cfg).compute(&chirp());
    let (_, expected) = read_f32(
        &fixtures_dir().join("frontend.safetensors"),
        "lms.torchaudio_default",
    );
    let diff = max_abs_diff(&lms.data, &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn constant_padding_differs_only_at_the_edges() {
    let reflect = LogMelFrontend::new(&FrontendConfig::default()).compute(&chirp());
    let cfg = FrontendConfig {
        pad_mode: slicer::features::PadMode::Constant,
        ..FrontendConfig::default()
    };
    let constant = LogMelFrontend::new(&cfg).compute(&chirp());
    for m in 0..64 {
        for t in 4..97 {
            assert!(
                (reflect.at(m, t) - constant.at(m, t)).abs() < 1e-5,
                "interior frame {t} changed"
            );
        }
    }
    let edge = (0..64)
        .map(|m| (reflect.at(m, 0) - constant.at(m, 0)).abs())
        .fold(0.0, f32::max);
    assert!(
        edge > 0.1,
        "the first frame should depend on the padding mode"
    );
}
