//! The scale corpus of issue 18's measurements: hours of generated speech-, music- and
//! scene-like audio as 16-bit WAV files, written where `SLICER_SCALE_DIR` points. The README
//! section "Streaming the pre-training corpus" gives the commands that measure on it.

use std::path::Path;

/// Writes `hours` of 8-12 s clips (the demo generator's, seed 1) as 16 kHz 16-bit WAV files
/// `clip00000.wav`, ... into `dir`; returns the clips written.
fn write_corpus(dir: &Path, hours: f64) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let (mut seconds, mut clips) = (0.0, 0usize);
    while seconds < hours * 3600.0 {
        let samples = slicer::data::synthetic::render_pretrain(1, clips as u64, (8.0, 12.0));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let path = dir.join(format!("clip{clips:05}.wav"));
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in &samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
        seconds += samples.len() as f64 / 16_000.0;
        clips += 1;
    }
    clips
}

/// `SLICER_SCALE_DIR=DIR cargo test --release -- --ignored writes_the_scale_corpus`: a 20-hour
/// corpus in `DIR/corpus_20h` and a 20-minute one in `DIR/corpus_20min`. Skipped (and says
/// so) without the variable.
#[test]
#[ignore = "slow tier: writes gigabytes when SLICER_SCALE_DIR is set"]
fn writes_the_scale_corpus() {
    let Some(dir) = std::env::var_os("SLICER_SCALE_DIR") else {
        eprintln!("skipped: set SLICER_SCALE_DIR to write the scale corpus");
        return;
    };
    let dir = Path::new(&dir);
    for (name, hours) in [("corpus_20min", 1.0 / 3.0), ("corpus_20h", 20.0)] {
        let clips = write_corpus(&dir.join(name), hours);
        eprintln!("{name}: {clips} clips");
        assert!(clips > 0);
    }
}
