//! Audio input on a corpus of valid and malformed files: every file either decodes correctly
//! or is rejected with an error that names it; nothing panics.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::{pcm16, tone, write_wav};
use hound::{SampleFormat, WavSpec};
use slicer::audio::{decode, load};
use slicer::data::{load_clips, ClipAudio, ClipLoad};
use slicer::progress::Silent;

fn spec(channels: u16, rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
    WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Writes the malformed files; returns (path, substring the error must contain).
fn bad_corpus(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut bad = Vec::new();
    let p = dir.join("empty.wav");
    std::fs::write(&p, b"").unwrap();
    bad.push((p, "empty file"));

    let good = dir.join("good_for_truncation.wav");
    write_wav(&good, pcm16(16_000), &tone(440.0, 16_000, 1600));
    let bytes = std::fs::read(&good).unwrap();
    std::fs::remove_file(&good).unwrap();
    let p = dir.join("truncated_header.wav");
    std::fs::write(&p, &bytes[..20]).unwrap();
    bad.push((p, "WAV"));

    let p = dir.join("random_bytes.wav");
    std::fs::write(
        &p,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    bad.push((p, "not a WAV"));

    let p = dir.join("zero_samples.wav");
    write_wav(&p, pcm16(16_000), &[]);
    bad.push((p, "no audio samples"));

    let p = dir.join("nan.wav");
    write_wav(
        &p,
        spec(1, 16_000, 32, SampleFormat::Float),
        &[0.1, f32::NAN, 0.2],
    );
    bad.push((p, "NaN or infinite"));

    let p = dir.join("inf.wav");
    write_wav(
        &p,
        spec(1, 16_000, 32, SampleFormat::Float),
        &[0.1, f32::INFINITY, 0.2],
    );
    bad.push((p, "NaN or infinite"));

    let p = dir.join("mp3_named_wav.wav");
    std::fs::write(&p, b"ID3\x04\x00\x00\x00\x00\x00\x00rest of an mp3").unwrap();
    bad.push((p, "not a WAV"));
    bad
}

#[test]
fn malformed_files_are_rejected_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    for (path, expected) in bad_corpus(dir.path()) {
        let err = decode(&path)
            .expect_err(&format!("{} should be rejected", path.display()))
            .to_string();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.contains(&name), "error does not name the file: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected `{expected}` in `{err}`"
        );
    }
    let missing = decode(&dir.path().join("missing.wav"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("missing.wav") && missing.contains("not found"),
        "{missing}"
    );
}

#[test]
fn truncated_data_chunk_is_decoded_or_rejected_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("truncated_data.wav");
    write_wav(&p, pcm16(16_000), &tone(440.0, 16_000, 1600));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1001]).unwrap();
    match decode(&p) {
        Ok(audio) => assert!(audio.samples.len() < 1600),
        Err(e) => assert!(e.to_string().contains("truncated_data.wav"), "{e}"),
    }
}

#[test]
fn integer_and_float_formats_decode_to_the_same_signal() {
    let dir = tempfile::tempdir().unwrap();
    let signal = tone(440.0, 16_000, 800);
    for (bits, format, tolerance) in [
        (8, SampleFormat::Int, 2e-2),
        (16, SampleFormat::Int, 1e-4),
        (24, SampleFormat::Int, 1e-6),
        (32, SampleFormat::Int, 1e-6),
        (32, SampleFormat::Float, 0.0),
    ] {
        let p = dir.path().join(format!("tone_{bits}_{format:?}.wav"));
        write_wav(&p, spec(1, 16_000, bits, format), &signal);
        let audio = decode(&p).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (16_000, 1));
        let err = common::max_abs_diff(&audio.samples, &signal);
        assert!(err <= tolerance, "{bits}-bit {format:?}: error {err}");
    }
}

#[test]
fn channels_are_averaged() {
    let dir = tempfile::tempdir().unwrap();
    let left = tone(440.0, 16_000, 400);
    for channels in [2u16, 6] {
        // channel k carries left * (k + 1) / channels, so the mean is left * (channels + 1) / (2 channels)
        let interleaved: Vec<f32> = left
            .iter()
            .flat_map(|&s| (0..channels).map(move |k| s * f32::from(k + 1) / f32::from(channels)))
            .collect();
        let p = dir.path().join(format!("ch{channels}.wav"));
        write_wav(
            &p,
            spec(channels, 16_000, 32, SampleFormat::Float),
            &interleaved,
        );
        let audio = decode(&p).unwrap();
        assert_eq!(audio.channels, usize::from(channels));
        let factor = f32::from(channels + 1) / (2.0 * f32::from(channels));
        let expected: Vec<f32> = left.iter().map(|s| s * factor).collect();
        assert!(common::max_abs_diff(&audio.samples, &expected) < 1e-6);
    }
}

#[test]
fn odd_rates_are_resampled_and_one_sample_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [44_100u32, 22_050, 8_000, 48_000, 11_025] {
        let p = dir.path().join(format!("r{rate}.wav"));
        write_wav(&p, pcm16(rate), &tone(300.0, rate, rate as usize));
        let samples = load(&p, 16_000).unwrap();
        assert!(
            (samples.len() as i64 - 16_000).abs() <= 2,
            "{rate} Hz -> {} samples",
            samples.len()
        );
    }
    let p = dir.path().join("one.wav");
    write_wav(&p, pcm16(16_000), &[0.5]);
    assert_eq!(load(&p, 16_000).unwrap().len(), 1);
}

#[test]
fn flac_decodes_including_under_a_wav_name() {
    let stereo = decode(&data_file("tone_22k_stereo.flac")).unwrap();
    assert_eq!(
        (stereo.sample_rate, stereo.channels, stereo.samples.len()),
        (22_050, 2, 11_025)
    );
    let peak = stereo.samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        (peak - 0.5).abs() < 0.02,
        "a -6 dB sine peaks at 0.5, got {peak}"
    );
    let deep = decode(&data_file("tone_16k_24bit.flac")).unwrap();
    assert_eq!(
        (deep.sample_rate, deep.channels, deep.samples.len()),
        (16_000, 1, 4000)
    );
    let dir = tempfile::tempdir().unwrap();
    let disguised = dir.path().join("really_flac.wav");
    std::fs::copy(data_file("tone_16k_24bit.flac"), &disguised).unwrap();
    assert_eq!(decode(&disguised).unwrap(), deep);
    assert_eq!(
        load(&data_file("tone_22k_stereo.flac"), 16_000)
            .unwrap()
            .len(),
        8000
    );
}

#[test]
fn skip_bad_files_skips_and_counts_otherwise_stops() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wav");
    write_wav(&good, pcm16(16_000), &tone(440.0, 16_000, 1600));
    let bad = bad_corpus(dir.path());
    let mut clips = vec![ClipAudio::File {
        path: good,
        origin: None,
    }];
    clips.extend(bad.iter().map(|(p, _)| ClipAudio::File {
        path: p.clone(),
        origin: None,
    }));
    let loaded = load_clips(&clips, 16_000, true, "test", &Silent).unwrap();
    assert_eq!(loaded.loaded.len(), 1);
    assert_eq!(loaded.skipped.len(), bad.len());
    let err = load_clips(&clips, 16_000, false, "test", &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty.wav"),
        "the first bad file is reported: {err}"
    );
}

#[test]
fn chunked_loading_keeps_input_order_and_skips_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let bad = bad_corpus(dir.path());
    // good, bad, good, bad, ... so that chunks of 2 and 3 cut between and inside the pairs.
    let mut clips = Vec::new();
    for (k, (path, _)) in bad.iter().enumerate() {
        let good = dir.path().join(format!("good{k}.wav"));
        write_wav(&good, pcm16(16_000), &tone(440.0, 16_000, 160 * (k + 1)));
        clips.push(ClipAudio::File {
            path: good,
            origin: None,
        });
        clips.push(ClipAudio::File {
            path: path.clone(),
            origin: None,
        });
    }
    let whole = load_clips(&clips, 16_000, true, "test", &Silent).unwrap();
    for chunk in [1, 2, 3, clips.len()] {
        let load = ClipLoad {
            sample_rate: 16_000,
            skip_bad_files: true,
            label: "test",
            progress: &Silent,
        };
        let (mut kept, mut skipped, mut calls) = (Vec::new(), Vec::new(), 0);
        load.in_chunks(
            &clips,
            chunk,
            |i, s: Vec<f32>| (i, s.len()),
            |part| {
                calls += 1;
                assert!(part.loaded.len() + part.skipped.len() <= chunk);
                kept.extend(part.loaded);
                skipped.extend(part.skipped.into_iter().map(|(i, _)| i));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(calls, clips.len().div_ceil(chunk), "chunk {chunk}");
        let expected: Vec<(usize, (usize, usize))> = whole
            .loaded
            .iter()
            .map(|(i, s)| (*i, (*i, s.len())))
            .collect();
        assert_eq!(kept, expected, "chunk {chunk}");
        let expected: Vec<usize> = whole.skipped.iter().map(|(i, _)| *i).collect();
        assert_eq!(skipped, expected, "chunk {chunk}");
    }
    let strict = ClipLoad {
        sample_rate: 16_000,
        skip_bad_files: false,
        label: "test",
        progress: &Silent,
    };
    let err = strict
        .in_chunks(&clips, 3, |_, s| s, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&bad[0].0.display().to_string()), "{err}");
}
