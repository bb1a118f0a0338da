//! PyTorch checkpoints (BYOL-A `.pth`, LAPE `.ckpt`) give the fixture embeddings; the
//! exported folder round-trips from disk and through a Hub cache in the Hub's own layout.

use std::path::Path;

use crate::common::{fixtures_dir, read_f32};
use candle_core::{Device, Tensor};
use slicer::embedder::{EmbedOptions, Embedder};
use slicer::eval::{Pooling, Weights};
use slicer::features::{FrontendConfig, LogMelFrontend, NormStats};
use slicer::hub::HubSettings;
use slicer::model::Dropout;
use slicer::pretrained::PretrainedEncoder;

/// The fixture input: `lms.ref` normalised by `norm_stats`, `[1, 1, 64, 101]`.
fn input() -> Tensor {
    let f = fixtures_dir();
    let (shape, lms) = read_f32(&f.join("frontend.safetensors"), "lms.ref");
    let (_, stats) = read_f32(&f.join("pth_embed.safetensors"), "norm_stats");
    let x: Vec<f32> = lms.iter().map(|v| (v - stats[0]) / stats[1]).collect();
    Tensor::from_vec(x, (1, 1, shape[0], shape[1]), &Device::Cpu).unwrap()
}

fn embedding(model: &PretrainedEncoder) -> Vec<f32> {
    let frames = model
        .encoder
        .forward(&input(), false, &mut Dropout::Off)
        .unwrap();
    Pooling::MaxMean
        .apply(&frames)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(ours: &[f32], expected: &[f32], what: &str) {
    assert_eq!(ours.len(), expected.len(), "{what}");
    for (a, b) in ours.iter().zip(expected) {
        assert!((a - b).abs() <= 1e-4 + 1e-3 * b.abs(), "{what}: {a} vs {b}");
    }
}

/// BYOL-A's own pipeline (`byola_pipeline.safetensors`): the `.pth` loads with BYOL-A's
/// front end, and the embedding API on the wave gives BYOL-A's log-mel and embedding.
#[test]
fn a_byola_checkpoint_embeds_as_byola_s_own_code_does() {
    let f = fixtures_dir();
    let expected = f.join("byola_pipeline.safetensors");
    let model =
        PretrainedEncoder::from_pytorch(&f.join("byola_format_d64.pth"), Weights::Student).unwrap();
    assert_eq!(model.config.frontend, FrontendConfig::byol_a(64));
    let wave = slicer::audio::load(&f.join("chirp_1s.wav"), 16_000).unwrap();
    let lms = LogMelFrontend::new(&model.config.frontend).compute(&wave);
    assert_close(&lms.data, &read_f32(&expected, "lms").1, "BYOL-A log-mel");
    let (_, stats) = read_f32(&expected, "norm_stats");
    let norm = NormStats {
        mean: stats[0],
        std: stats[1],
        n_clips: 0,
    };
    let embedder = Embedder::new(model, Some(norm), EmbedOptions::default()).unwrap();
    let segments = embedder.embed_file(&f.join("chirp_1s.wav")).unwrap();
    assert_eq!(segments.len(), 1);
    assert_close(
        &segments[0].embedding,
        &read_f32(&expected, "embedding").1,
        "BYOL-A embedding",
    );
    // A LAPE checkpoint keeps LAPE's (librosa) front end.
    let lape =
        PretrainedEncoder::from_pytorch(&f.join("lape_format_d64.ckpt"), Weights::Student).unwrap();
    assert_eq!(lape.config.frontend, FrontendConfig::lape(64));
    assert!(lape.with_frontend(FrontendConfig::byol_a(32)).is_err());
}

#[test]
fn byola_pth_and_lape_ckpt_give_the_fixture_embeddings() {
    let f = fixtures_dir();
    let expected = f.join("pth_embed.safetensors");
    let byola =
        PretrainedEncoder::from_pytorch(&f.join("byola_format_d64.pth"), Weights::Student).unwrap();
    assert_eq!((byola.config.d, byola.config.frontend.n_mels), (64, 64));
    assert_close(
        &embedding(&byola),
        &read_f32(&expected, "byola_format.embedding").1,
        "BYOL-A",
    );
    let lape =
        PretrainedEncoder::from_pytorch(&f.join("lape_format_d64.ckpt"), Weights::Student).unwrap();
    assert_close(
        &embedding(&lape),
        &read_f32(&expected, "lape_format.student_embedding").1,
        "LAPE",
    );
    let teacher =
        PretrainedEncoder::from_pytorch(&f.join("lape_format_d64.ckpt"), Weights::Teacher).unwrap();
    assert_ne!(
        embedding(&teacher),
        embedding(&lape),
        "the teacher is a different network"
    );
    let err = PretrainedEncoder::from_pytorch(&f.join("frontend.safetensors"), Weights::Student)
        .unwrap_err()
        .to_string();
    assert!(err.contains("frontend.safetensors"), "{err}");
}

/// A Hub cache holding `files` for `org/exported` at one commit, `refs/main` without newline.
fn hub_cache(root: &Path, source: &Path) {
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = root.join("models--org--exported");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    for (i, file) in ["config.json", "model.safetensors"].iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{i}"));
        std::fs::copy(source.join(file), &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(file)).unwrap();
    }
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
}

#[test]
fn exported_folder_round_trips_from_disk_and_through_the_hub_cache() {
    let f = fixtures_dir();
    let model =
        PretrainedEncoder::from_pytorch(&f.join("lape_format_d64.ckpt"), Weights::Student).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    model.save(&out).unwrap();
    let again = PretrainedEncoder::from_dir(&out).unwrap();
    assert_eq!(again.config, model.config);
    assert_eq!(embedding(&again), embedding(&model));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["architecture"], "AudioNTT2020Task6");
    assert_eq!(meta["d"], "64");

    let cache = dir.path().join("hub");
    hub_cache(&cache, &out);
    let settings = HubSettings {
        cache: cache.clone(),
        offline: true,
        endpoint: None,
    };
    let hub = PretrainedEncoder::from_hub(&settings, "org/exported", "main").unwrap();
    assert_eq!(embedding(&hub), embedding(&model));
    let err = PretrainedEncoder::from_hub(&settings, "org/missing", "main")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("org/missing@main: config.json") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}
