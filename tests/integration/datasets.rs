//! Each registered dataset loader on a tiny folder in the dataset's real layout, written by
//! the test; and the errors for a missing or malformed root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use slicer::data::{dataset, DatasetRow, Split, Task, TaskConfig, TaskSource};

/// A short 16 kHz mono WAV (or `seconds` long at `rate`).
fn wav_at(path: &Path, seconds: f64, rate: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (seconds * f64::from(rate)) as usize;
    for i in 0..n {
        w.write_sample(((i * 7919) % 2000) as i16 - 1000).unwrap();
    }
    w.finalize().unwrap();
}

fn wav(path: &Path) {
    wav_at(path, 0.05, 16_000);
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn load(name: &str, root: &Path) -> slicer::Result<Vec<DatasetRow>> {
    (dataset(name).unwrap().load)(root)
}

/// label -> split -> count.
fn counts(rows: &[DatasetRow]) -> BTreeMap<String, BTreeMap<Split, usize>> {
    let mut out: BTreeMap<String, BTreeMap<Split, usize>> = BTreeMap::new();
    for r in rows {
        *out.entry(r.label.clone())
            .or_default()
            .entry(r.split)
            .or_default() += 1;
    }
    out
}

fn split_of(rows: &[DatasetRow], file: &str) -> Split {
    rows.iter()
        .find(|r| r.audio.id().ends_with(file))
        .unwrap_or_else(|| panic!("{file} not listed"))
        .split
}

fn empty_root_error(name: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let err = load(name, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains(expected),
        "{name}: {err}"
    );
}

fn speech_commands_root(root: &Path, words: &[&str]) {
    for word in words {
        for i in 0..10 {
            wav(&root.join(word).join(format!("spk{i}_nohash_0.wav")));
        }
    }
    let list = |k: usize| {
        words
            .iter()
            .map(|w| format!("{w}/spk{k}_nohash_0.wav\n"))
            .collect::<String>()
    };
    write(&root.join("validation_list.txt"), &list(8));
    write(&root.join("testing_list.txt"), &list(9));
    wav_at(&root.join("_background_noise_/white_noise.wav"), 12.0, 1000);
    wav_at(&root.join("_background_noise_/short.wav"), 3.0, 1000);
}

#[test]
fn speech_commands_12_way_builds_unknown_and_silence_per_split() {
    let dir = tempfile::tempdir().unwrap();
    speech_commands_root(dir.path(), &["yes", "no", "cat", "bed", "tree"]);
    let rows = load("speech_commands_v2_12", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        ["_silence_", "_unknown_", "no", "yes"]
    );
    assert_eq!(c["yes"][&Split::Train], 8);
    assert_eq!(c["yes"][&Split::Valid], 1);
    assert_eq!(split_of(&rows, "yes/spk9_nohash_0.wav"), Split::Test);
    // 10% of the keyword clips of the split, rounded up: train 16 -> 2, valid 2 -> 1.
    for (label, split, n) in [
        ("_unknown_", Split::Train, 2),
        ("_unknown_", Split::Valid, 1),
        ("_silence_", Split::Train, 2),
        ("_silence_", Split::Test, 1),
    ] {
        assert_eq!(c[label][&split], n, "{label} {split}");
    }
    assert_eq!(rows, load("speech_commands_v2_12", dir.path()).unwrap());
    // A silence clip is a 1 s excerpt of the (long enough) noise file, inside its split's part.
    let silence: Vec<_> = rows.iter().filter(|r| r.label == "_silence_").collect();
    for r in &silence {
        let id = r.audio.id();
        assert!(id.contains("white_noise.wav@"), "{id}");
        let samples = r.audio.load(16_000).unwrap();
        assert_eq!(samples.len(), 16_000);
    }
    let test = TaskConfig {
        name: "kws".into(),
        source: TaskSource::Dataset {
            name: "speech_commands_v2_12".into(),
            root: dir.path().to_owned(),
        },
        window_seconds: None,
    };
    let task = Task::from_config(&test, 1).unwrap();
    assert_eq!(task.classes.len(), 4);
    assert_eq!(task.window_seconds, 1.0);
}

#[test]
fn speech_commands_35_way_needs_the_35_words_and_errors_name_the_lists() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..35).map(|i| format!("w{i:02}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    speech_commands_root(dir.path(), &refs);
    let rows = load("speech_commands_v2_35", dir.path()).unwrap();
    assert_eq!(counts(&rows).len(), 35);
    assert!(rows.iter().all(|r| !r.label.starts_with('_')));

    let few = tempfile::tempdir().unwrap();
    speech_commands_root(few.path(), &["yes", "no"]);
    let err = load("speech_commands_v2_35", few.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("35 word folders"), "{err}");
    write(&few.path().join("testing_list.txt"), "yes/missing.wav\n");
    let err = load("speech_commands_v1_12", few.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("testing_list.txt:1") && err.contains("missing.wav"),
        "{err}"
    );
    empty_root_error("speech_commands_v1_12", "validation_list.txt");
}

#[test]
fn voxceleb1_reads_iden_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::new();
    for (k, speaker) in ["id10001", "id10002"].iter().enumerate() {
        for (set, utt) in [(1, 1), (1, 2), (2, 3), (3, 4)] {
            let entry = format!("{speaker}/vid{k}/{utt:05}.wav");
            wav(&dir.path().join("wav").join(&entry));
            list += &format!("{set} {entry}\n");
        }
    }
    write(&dir.path().join("iden_split.txt"), &list);
    let rows = load("voxceleb1", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(c["id10001"][&Split::Train], 2);
    assert_eq!(c["id10002"][&Split::Test], 1);
    write(
        &dir.path().join("iden_split.txt"),
        &(list + "4 id10001/x/1.wav\n"),
    );
    let err = load("voxceleb1", dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("iden_split.txt:9") && err.contains("set `4`"),
        "{err}"
    );
    empty_root_error("voxceleb1", "iden_split.txt");
}

#[test]
fn librispeech_labels_speakers_and_splits_within_each() {
    let dir = tempfile::tempdir().unwrap();
    let flac = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tone_16k_24bit.flac");
    let base = dir.path().join("LibriSpeech/train-clean-100");
    for speaker in ["19", "26"] {
        for utt in 0..40 {
            let path = base.join(format!("{speaker}/198/{speaker}-198-{utt:04}.flac"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::copy(&flac, &path).unwrap();
        }
    }
    let rows = load("librispeech_100", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(c.keys().collect::<Vec<_>>(), ["19", "26"]);
    for speaker in c.values() {
        assert_eq!(
            speaker.len(),
            3,
            "every speaker is in every split: {speaker:?}"
        );
        assert_eq!(speaker.values().sum::<usize>(), 40);
    }
    assert_eq!(rows.len(), load("librispeech_100", &base).unwrap().len());
    empty_root_error("librispeech_100", "train-clean-100");
}

#[test]
fn iemocap_merges_excitement_drops_other_labels_and_splits_by_session() {
    let dir = tempfile::tempdir().unwrap();
    for session in 1..=5 {
        let dialog = format!("Ses0{session}F_impro01");
        let mut text = String::from("% header\n\n");
        for (i, code) in ["neu", "ang", "sad", "hap", "exc", "fru", "xxx"]
            .iter()
            .enumerate()
        {
            let utt = format!("{dialog}_F{i:03}");
            wav(&dir
                .path()
                .join(format!("Session{session}/sentences/wav/{dialog}/{utt}.wav")));
            text += &format!("[1.0 - 2.0]\t{utt}\t{code}\t[2.5, 2.5, 2.5]\n");
            text += &format!("C-E1:\t{code};\t()\n");
        }
        write(
            &dir.path().join(format!(
                "Session{session}/dialog/EmoEvaluation/{dialog}.txt"
            )),
            &text,
        );
    }
    let rows = load("iemocap_4", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        ["anger", "happiness", "neutral", "sadness"]
    );
    assert_eq!(c["happiness"][&Split::Train], 6, "hap + exc, sessions 1-3");
    assert_eq!(c["anger"][&Split::Valid], 1);
    assert_eq!(c["anger"][&Split::Test], 1);
    assert_eq!(split_of(&rows, "Ses05F_impro01_F000.wav"), Split::Test);
    empty_root_error("iemocap_4", "Session1/dialog/EmoEvaluation");
}

#[test]
fn voxforge_splits_are_speaker_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    for (k, lang) in ["de", "en", "es", "fr", "it", "russian"].iter().enumerate() {
        for user in 0..12 {
            for take in 0..2 {
                wav(&dir.path().join(format!(
                    "{lang}/user{k}x{user}-20100101-t{take}/wav/a0{take}.wav"
                )));
            }
        }
        wav(&dir
            .path()
            .join(format!("{lang}/anonymous-20100101-{k}/wav/b.wav")));
    }
    let rows = load("voxforge_6", dir.path()).unwrap();
    assert_eq!(counts(&rows).len(), 6);
    assert!(counts(&rows).contains_key("russian") && counts(&rows).contains_key("german"));
    let mut speaker_splits: BTreeMap<String, BTreeSet<Split>> = BTreeMap::new();
    for r in &rows {
        let id = r.audio.id();
        let user = id
            .split('/')
            .rev()
            .nth(2)
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .to_owned();
        speaker_splits.entry(user).or_default().insert(r.split);
    }
    assert!(speaker_splits.values().all(|s| s.len() == 1));
    let all: BTreeSet<Split> = rows.iter().map(|r| r.split).collect();
    assert_eq!(all.len(), 3);
    empty_root_error("voxforge_6", "de/");
}

#[test]
fn nsynth_uses_the_official_folders() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["nsynth-train", "nsynth-valid", "nsynth-test"] {
        let mut json = serde_json::Map::new();
        for (note, family) in [
            ("guitar_acoustic_000-060-075", "guitar"),
            ("brass_electronic_001-070-100", "brass"),
        ] {
            wav(&dir.path().join(format!("{folder}/audio/{note}.wav")));
            json.insert(
                note.into(),
                serde_json::json!({"instrument_family_str": family, "pitch": 60}),
            );
        }
        write(
            &dir.path().join(format!("{folder}/examples.json")),
            &serde_json::Value::Object(json).to_string(),
        );
    }
    let rows = load("nsynth_instrument", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(c["guitar"].len(), 3);
    write(&dir.path().join("nsynth-test/examples.json"), "{\"x\": 1}");
    let err = load("nsynth_instrument", dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nsynth-test/examples.json"), "{err}");
    empty_root_error("nsynth_instrument", "nsynth-train/examples.json");
}

#[test]
fn tut_urban_holds_out_locations_for_valid_and_uses_evaluate_as_test() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = String::from("filename\tscene_label\tidentifier\tsource_label\n");
    let (mut train, mut evaluate) = (String::new(), String::new());
    for scene in ["airport", "park"] {
        for place in 0..20 {
            for segment in 0..2 {
                let file = format!("audio/{scene}-city-{place}-{segment}-a.wav");
                wav(&dir.path().join(&file));
                meta += &format!("{file}\t{scene}\tcity-{place}\ta\n");
                if place < 15 {
                    train += &format!("{file}\t{scene}\n");
                } else {
                    evaluate += &format!("{file}\t{scene}\n");
                }
            }
        }
    }
    write(&dir.path().join("meta.csv"), &meta);
    write(&dir.path().join("evaluation_setup/fold1_train.txt"), &train);
    write(
        &dir.path().join("evaluation_setup/fold1_evaluate.txt"),
        &evaluate,
    );
    let rows = load("tut_urban_2018", dir.path()).unwrap();
    let c = counts(&rows);
    assert_eq!(c["park"][&Split::Test], 10);
    assert!(
        c["park"].get(&Split::Valid).copied().unwrap_or(0)
            + c["airport"].get(&Split::Valid).copied().unwrap_or(0)
            > 0
    );
    let mut place_splits: BTreeMap<String, BTreeSet<Split>> = BTreeMap::new();
    for r in &rows {
        let id = r.audio.id();
        let place = id.split('-').nth(2).unwrap().to_owned();
        place_splits.entry(place).or_default().insert(r.split);
    }
    assert!(
        place_splits.values().all(|s| s.len() == 1),
        "{place_splits:?}"
    );
    empty_root_error("tut_urban_2018", "meta.csv");
}

#[test]
fn bird_audio_combines_both_sets() {
    let dir = tempfile::tempdir().unwrap();
    for (part, csv) in [
        ("ff1010bird", "ff1010bird_metadata_2018.csv"),
        ("warblrb10k_public", "warblrb10k_public_metadata_2018.csv"),
    ] {
        let mut text = String::from("itemid,datasetid,hasbird\n");
        for i in 0..30 {
            wav(&dir.path().join(format!("{part}/wav/{part}{i}.wav")));
            text += &format!("{part}{i},{part},{}\n", i % 2);
        }
        write(&dir.path().join(part).join(csv), &text);
    }
    let rows = load("bird_audio_detection", dir.path()).unwrap();
    assert_eq!(rows.len(), 60);
    assert_eq!(
        counts(&rows).keys().collect::<Vec<_>>(),
        ["bird", "no_bird"]
    );
    write(
        &dir.path().join("ff1010bird/ff1010bird_metadata_2018.csv"),
        "itemid,datasetid,hasbird\nff1010bird0,ff,yes\n",
    );
    let err = load("bird_audio_detection", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metadata_2018.csv:2") && err.contains("hasbird `yes`"),
        "{err}"
    );
    empty_root_error("bird_audio_detection", "ff1010bird/");
}

#[test]
fn unknown_dataset_names_and_missing_roots_are_spec_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.yaml");
    let text = |name: &str, root: &str| {
        format!(
            "data:\n  pretrain: {{type: synthetic}}\n  tasks:\n    - name: t\n      source: {{type: dataset, name: {name}, root: {root}}}\n"
        )
    };
    std::fs::write(&spec, text("speech_commands_v3", "/nowhere")).unwrap();
    let err = slicer::spec::LoadedSpec::load(&spec, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("speech_commands_v3") && err.contains("voxceleb1"),
        "{err}"
    );
    std::fs::write(&spec, text("voxceleb1", "/nowhere/vox")).unwrap();
    let loaded = slicer::spec::LoadedSpec::load(&spec, &[]).unwrap();
    let err = loaded.check_paths().unwrap_err().to_string();
    assert!(
        err.contains("/nowhere/vox") && err.contains("iden_split.txt"),
        "{err}"
    );
}
