//! Tasks out, in the HEAR benchmark's task layout, so that the field's harnesses (hear-eval-kit's
//! `heareval`, and the runners built on it) score encoders on our tasks and on the datasets our
//! loaders read:
//!
//! ```text
//! OUT/<name>-v1/task_metadata.json   task_name, embedding_type, prediction_type, split_mode, ...
//! OUT/<name>-v1/labelvocabulary.csv  idx,label
//! OUT/<name>-v1/{train,valid,test}.json  {"file.wav": ["label"]}, or events in milliseconds
//! OUT/<name>-v1/<rate>/{train,valid,test}/*.wav  16-bit PCM, mono
//! ```
//!
//! A scene task's clips are cut or padded to the task window, centred, exactly as our own
//! evaluation sees them, so HEAR's scores and ours come from the same audio. The folder is
//! written beside its final place and renamed into it, so a failure leaves no partial task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::synthetic::{event_classes, render_event_clip, EVENT_CLIP_SECONDS, SAMPLE_RATE};
use super::{Split, Task};
use crate::audio::{fixed_window, WindowMode};
use crate::error::{Error, Result};

/// What a written task holds.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenTask {
    /// The task folder, `OUT/<name>-v1`.
    pub dir: PathBuf,
    /// Clips per split, in [`Split::ALL`] order.
    pub clips: [usize; 3],
}

/// Writes `task` as a HEAR scene task (multiclass, train/valid/test) at `sample_rate` Hz.
pub fn write_scene_task(task: &Task, sample_rate: u32, out: &Path) -> Result<WrittenTask> {
    let window = (task.window_seconds * f64::from(sample_rate)).round() as usize;
    let metadata = metadata(
        &task.name,
        "scene",
        "multiclass",
        task.window_seconds,
        &["top1_acc", "mAP"],
    );
    write_task(
        out,
        &task.name,
        metadata,
        &task.classes,
        sample_rate,
        |split, sink| {
            for (i, clip) in task.split(split).enumerate() {
                let samples = clip.audio.load(sample_rate)?;
                let audio = fixed_window::<ChaCha8Rng>(&samples, window, WindowMode::Centre);
                sink(
                    format!("{i:06}.wav"),
                    &audio,
                    json!([task.classes[clip.label]]),
                )?;
            }
            Ok(())
        },
    )
}

/// Writes the built-in event task ([`render_event_clip`]: the demo's instrument notes on its
/// environment scenes, 4-s clips) as a HEAR event task with `clips` clips per split (train,
/// valid, test), drawn from `seed`. Events are multilabel, with onsets and offsets in
/// milliseconds.
pub fn write_event_task(
    name: &str,
    clips: [usize; 3],
    seed: u64,
    out: &Path,
) -> Result<WrittenTask> {
    let classes = event_classes();
    let rate = SAMPLE_RATE as u32;
    let metadata = metadata(
        name,
        "event",
        "multilabel",
        EVENT_CLIP_SECONDS,
        &["event_onset_200ms_fms", "segment_1s_er"],
    );
    write_task(out, name, metadata, &classes, rate, |split, sink| {
        let count = clips[Split::ALL
            .iter()
            .position(|s| *s == split)
            .expect("a split")];
        for index in 0..count as u64 {
            let (audio, events) = render_event_clip(split, seed, index);
            let labels: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "label": classes[e.class],
                        "start": 1000.0 * e.start_s,
                        "end": 1000.0 * e.end_s,
                    })
                })
                .collect();
            sink(format!("{index:06}.wav"), &audio, Value::Array(labels))?;
        }
        Ok(())
    })
}

/// `task_metadata.json` for a train/valid/test task.
fn metadata(name: &str, embedding: &str, prediction: &str, seconds: f64, scores: &[&str]) -> Value {
    json!({
        "task_name": name,
        "version": "v1",
        "embedding_type": embedding,
        "prediction_type": prediction,
        "split_mode": "trainvaltest",
        "sample_duration": seconds,
        "evaluation": scores,
        "splits": ["train", "valid", "test"],
        "written_by": format!("slicer {}", env!("CARGO_PKG_VERSION")),
    })
}

/// A callback that writes one clip: its file name, samples and HEAR labels.
type Sink<'a> = dyn FnMut(String, &[f32], Value) -> Result<()> + 'a;

/// Writes the task folder `out/<name>-v1` from `clips`, which hands each split's clips to
/// the sink, into a temporary folder beside it that is renamed into place at the end.
fn write_task(
    out: &Path,
    name: &str,
    metadata: Value,
    classes: &[String],
    rate: u32,
    mut clips: impl FnMut(Split, &mut Sink<'_>) -> Result<()>,
) -> Result<WrittenTask> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let dir = out.join(format!("{name}-v1"));
    if dir.exists() {
        return Err(Error::Invalid(format!(
            "{} exists already: remove it or write elsewhere",
            dir.display()
        )));
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-v1-"))
        .tempdir_in(out)
        .map_err(|e| Error::io(out, e))?;
    let root = staging.path();
    let write_json = |file: &str, value: &Value| -> Result<()> {
        let path = root.join(file);
        let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    };
    write_json("task_metadata.json", &metadata)?;
    let vocabulary: String = std::iter::once("idx,label".to_owned())
        .chain(classes.iter().enumerate().map(|(i, c)| format!("{i},{c}")))
        .collect::<Vec<_>>()
        .join("\n");
    let path = root.join("labelvocabulary.csv");
    std::fs::write(&path, vocabulary + "\n").map_err(|e| Error::io(&path, e))?;
    let mut counts = [0; 3];
    for (k, split) in Split::ALL.into_iter().enumerate() {
        let folder = root.join(rate.to_string()).join(split.to_string());
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        let mut labels: BTreeMap<String, Value> = BTreeMap::new();
        let mut sink = |file: String, audio: &[f32], label: Value| -> Result<()> {
            write_wav(&folder.join(&file), audio, rate)?;
            labels.insert(file, label);
            Ok(())
        };
        clips(split, &mut sink)?;
        counts[k] = labels.len();
        write_json(&format!("{split}.json"), &json!(labels))?;
    }
    let root = staging.keep();
    std::fs::rename(&root, &dir).map_err(|e| Error::io(&dir, e))?;
    Ok(WrittenTask { dir, clips: counts })
}

/// 16-bit PCM mono WAV, samples clipped to [-1, 1].
fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| Error::audio(path, format!("writing: {e}"));
    let mut writer = hound::WavWriter::create(path, spec).map_err(err)?;
    for x in samples {
        writer
            .write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(err)?;
    }
    writer.finalize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TaskConfig;

    fn read_json(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_scene_task_in_hears_layout_with_every_clip_at_the_task_window() {
        let cfg: TaskConfig = yaml_serde::from_str(
            "name: vowels\nsource: {type: synthetic, generator: vowels, per_class: {train: 2, valid: 1, test: 1}}\nwindow_seconds: 1.5\n",
        )
        .unwrap();
        let task = Task::from_config(&cfg, 5).unwrap();
        let out = tempfile::tempdir().unwrap();
        let written = write_scene_task(&task, 16_000, out.path()).unwrap();
        assert_eq!(written.dir, out.path().join("vowels-v1"));
        assert_eq!(written.clips, [20, 10, 10]);
        let meta = read_json(&written.dir.join("task_metadata.json"));
        assert_eq!(meta["embedding_type"], "scene");
        assert_eq!(meta["sample_duration"], 1.5);
        let train = read_json(&written.dir.join("train.json"));
        assert_eq!(train.as_object().unwrap().len(), 20);
        assert_eq!(train["000000.wav"][0], task.classes[0]);
        let vocabulary = std::fs::read_to_string(written.dir.join("labelvocabulary.csv")).unwrap();
        assert!(vocabulary.starts_with("idx,label\n0,"));
        let wav = hound::WavReader::open(written.dir.join("16000/test/000003.wav")).unwrap();
        assert_eq!((wav.spec().sample_rate, wav.len()), (16_000, 24_000));
        // An existing task folder is not overwritten, and no staging folder is left.
        assert!(write_scene_task(&task, 16_000, out.path()).is_err());
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_event_task_with_onsets_in_milliseconds() {
        let out = tempfile::tempdir().unwrap();
        let written = write_event_task("events", [3, 1, 2], 9, out.path()).unwrap();
        assert_eq!(written.clips, [3, 1, 2]);
        let meta = read_json(&written.dir.join("task_metadata.json"));
        assert_eq!(
            (
                meta["embedding_type"].as_str(),
                meta["prediction_type"].as_str()
            ),
            (Some("event"), Some("multilabel"))
        );
        let test = read_json(&written.dir.join("test.json"));
        for events in test.as_object().unwrap().values() {
            for e in events.as_array().unwrap() {
                let (start, end) = (e["start"].as_f64().unwrap(), e["end"].as_f64().unwrap());
                assert!(0.0 <= start && start < end && end <= 4000.0);
                assert!(event_classes().contains(&e["label"].as_str().unwrap().to_owned()));
            }
        }
    }
}
