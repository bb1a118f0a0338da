//! The scale corpus and task of the memory measurements: hours of generated speech-, music-
//! and scene-like audio, and a 20 000-clip labelled task of 8-second clips, as 16-bit WAV
//! files written where `SLICER_SCALE_DIR` points. docs/findings/streaming-memory.md and
//! docs/findings/bounded-evaluation.md give the commands that measure on them.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;
use slicer::data::synthetic::Generator;
use slicer::data::Split;

fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Writes `hours` of 8-12 s clips (the demo generator's, seed 1) as 16 kHz 16-bit WAV files
/// `clip00000.wav`, ... into `dir`; returns the clips written.
fn write_corpus(dir: &Path, hours: f64) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let (mut seconds, mut clips) = (0.0, 0usize);
    while seconds < hours * 3600.0 {
        let samples = slicer::data::synthetic::render_pretrain(1, clips as u64, (8.0, 12.0));
        write_wav(&dir.join(format!("clip{clips:05}.wav")), &samples);
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

/// Writes a labelled task of `clips` 8-second clips into `dir`: each clip is eight 1-second
/// notes of one instrument family (the built-in generator's, seed 2, its pitch ranges held
/// out per split as in the demo task), 70/15/15 % train/valid/test, as
/// `dir/<split>/<class>/clipNNNNN.wav` with `dir/labels.csv` (`path,label,split`).
fn write_task(dir: &Path, clips: usize) {
    let generator = Generator::Instruments;
    let classes = generator.classes();
    let split_of = |i: usize| match i * 20 / clips {
        0..=13 => Split::Train,
        14..=16 => Split::Valid,
        _ => Split::Test,
    };
    let rows: Vec<String> = (0..clips)
        .into_par_iter()
        .map(|i| {
            let (class, split) = (i % classes.len(), split_of(i));
            let samples: Vec<f32> = (0..8)
                .flat_map(|k| generator.render(class, split, 2, (8 * i + k) as u64))
                .collect();
            let relative = format!("{split}/{}/clip{i:05}.wav", classes[class]);
            let path = dir.join(&relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_wav(&path, &samples);
            format!("{relative},{},{split}", classes[class])
        })
        .collect();
    let mut csv = std::fs::File::create(dir.join("labels.csv")).unwrap();
    writeln!(csv, "path,label,split").unwrap();
    for row in rows {
        writeln!(csv, "{row}").unwrap();
    }
}

/// `SLICER_SCALE_DIR=DIR cargo test --release -- --ignored writes_the_scale_task`: a task of
/// 20 000 8-second clips in `DIR/task_20k`. Skipped (and says so) without the variable.
#[test]
#[ignore = "slow tier: writes gigabytes when SLICER_SCALE_DIR is set"]
fn writes_the_scale_task() {
    let Some(dir) = std::env::var_os("SLICER_SCALE_DIR") else {
        eprintln!("skipped: set SLICER_SCALE_DIR to write the scale task");
        return;
    };
    let dir = Path::new(&dir).join("task_20k");
    write_task(&dir, 20_000);
    let manifest = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 20_001);
}
