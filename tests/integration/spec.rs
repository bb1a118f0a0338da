//! Experiment specs: every file in experiments/ parses; bad specs fail with file, line, key
//! path and a hint; overrides are strict; the hash names the resolved spec.

use std::path::{Path, PathBuf};

use slicer::methods::MethodConfig;
use slicer::spec::{LoadedSpec, SpecError};

/// The YAML files of `experiments/` and `experiments/methods/`.
fn experiments() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<PathBuf> = [root.clone(), root.join("methods")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn load(text: &str, overrides: &[&str]) -> Result<LoadedSpec, SpecError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    LoadedSpec::from_text(Path::new("test.yaml"), text.to_owned(), &overrides)
}

const MINIMAL: &str = "data:\n  pretrain:\n    type: synthetic\n    clips: 4\n";

#[test]
fn every_experiment_spec_parses_and_validates() {
    let files = experiments();
    assert!(
        files.len() >= 3,
        "expected the experiment specs, found {files:?}"
    );
    for file in files {
        if slicer::experiment::suite::is_suite(&file) {
            let suite = slicer::experiment::suite::Suite::load(&file, &[])
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!suite.members.is_empty(), "{}", file.display());
            for member in &suite.members {
                let name = format!("{}-{}", suite.name, member.name);
                assert_eq!(member.spec.spec.name, name);
            }
            continue;
        }
        let loaded = LoadedSpec::load(&file, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.spec.name,
            file.file_stem().unwrap().to_string_lossy(),
            "{} names itself",
            file.display()
        );
        let again = LoadedSpec::from_text(&file, loaded.resolved_yaml(), &[]).unwrap();
        assert_eq!(
            again.spec,
            loaded.spec,
            "{}: the resolved spec reloads to itself",
            file.display()
        );
    }
}

#[test]
fn defaults_are_the_spec_13_recommendations() {
    let spec = load(MINIMAL, &[]).unwrap().spec;
    let f = &spec.frontend;
    assert_eq!(
        (f.sample_rate, f.n_fft, f.win_length, f.hop_length, f.n_mels),
        (16_000, 1024, 1024, 160, 64)
    );
    assert_eq!(
        (f.f_min, f.f_max, f.log_offset),
        (60.0, 7800.0, f32::EPSILON)
    );
    assert_eq!(spec.data.window_seconds, 0.95);
    assert_eq!(
        (spec.probe.epochs, spec.probe.lr, spec.probe.batch_size),
        (30, 1e-3, 32)
    );
    assert_eq!(spec.name, "test");
}

#[test]
fn unknown_key_names_line_and_path() {
    let err = load(
        "data:\n  pretrain:\n    type: synthetic\nfrontend:\n  n_mel: 64\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.line, Some(5), "{err}");
    assert_eq!(err.key, "frontend.n_mel");
    assert!(err.message.contains("unknown field `n_mel`"), "{err}");
    assert!(err.to_string().starts_with("test.yaml:5"), "{err}");
    assert!(!err.hint.is_empty());
}

#[test]
fn unknown_variant_and_wrong_type_are_located() {
    let err = load("data:\n  pretrain:\n    type: synthetik\n", &[]).unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("synthetik"), "{err}");
    let err = load(&format!("seed: twelve\n{MINIMAL}"), &[]).unwrap_err();
    assert_eq!((err.line, err.key.as_str()), (Some(1), "seed"), "{err}");
    // Inside a tagged variant serde buffers the mapping, so the error points at the variant's block.
    let err = load(
        "data:\n  pretrain:\n    type: synthetic\n    clips: -3\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        (err.line, err.key.as_str()),
        (Some(2), "data.pretrain"),
        "{err}"
    );
    assert!(err.message.contains("-3"), "{err}");
}

#[test]
fn bad_values_are_located_with_a_hint() {
    let err = load(&format!("{MINIMAL}frontend:\n  f_max: 9000\n"), &[]).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_str()),
        (Some(6), "frontend.f_max"),
        "{err}"
    );
    assert!(err.message.contains("Nyquist"), "{err}");
    let text = "data:\n  pretrain: {type: synthetic}\n  tasks:\n    - name: a\n      source: {type: synthetic, generator: vowels}\n    - name: a\n      source: {type: synthetic, generator: vowels}\n      window_seconds: 0.0\n";
    let err = load(text, &[]).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_str()),
        (Some(6), "data.tasks.1.name"),
        "{err}"
    );
}

#[test]
fn missing_files_are_reported_before_any_work() {
    let text = "data:\n  pretrain: {type: synthetic}\n  tasks:\n    - name: kws\n      source:\n        type: make_tasks\n        root: /nonexistent/tasks\n        task: kws\n";
    let loaded = load(text, &[]).unwrap();
    let err = loaded.check_paths().unwrap_err();
    assert_eq!(
        (err.line, err.key.as_str()),
        (Some(7), "data.tasks.0.source.root"),
        "{err}"
    );
    assert!(err.hint.contains("make_tasks.sh"), "{err}");
}

#[test]
fn invalid_yaml_is_located() {
    let err = load("data:\n  pretrain: [unclosed\n", &[]).unwrap_err();
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn overrides_replace_add_delete_and_reject_typos() {
    let spec = load(
        MINIMAL,
        &["frontend.n_mels=128", "data.pretrain.clips=9", "seed=5"],
    )
    .unwrap()
    .spec;
    assert_eq!((spec.frontend.n_mels, spec.seed), (128, 5));
    assert!(matches!(
        spec.data.pretrain,
        slicer::data::PretrainSource::Synthetic { clips: 9, .. }
    ));
    let err = load(MINIMAL, &["frontend.n_mel=128"]).unwrap_err();
    assert!(
        err.message.contains("no key `frontend.n_mel`") && err.message.contains("+frontend.n_mel"),
        "{err}"
    );
    let err = load(MINIMAL, &["+frontend.bogus=1"]).unwrap_err();
    assert!(
        err.message.contains("bogus"),
        "an added unknown key still fails the schema: {err}"
    );
    let err = load(MINIMAL, &["frontend.n_mels=many"]).unwrap_err();
    assert_eq!(err.key, "frontend.n_mels", "{err}");
    let switched = load(
        MINIMAL,
        &[
            "~data.pretrain.clips",
            "~data.pretrain.min_seconds",
            "~data.pretrain.max_seconds",
            "data.pretrain.type=folder",
            "+data.pretrain.path=/x",
        ],
    )
    .unwrap();
    assert!(matches!(
        switched.spec.data.pretrain,
        slicer::data::PretrainSource::Folder { .. }
    ));
    let err = load(MINIMAL, &["probe.lr=0"]).unwrap_err();
    assert_eq!(
        err.key, "probe.lr",
        "validation runs after overrides: {err}"
    );
}

#[test]
fn hash_follows_the_resolved_values() {
    let a = load(MINIMAL, &[]).unwrap().spec;
    let b = load(&format!("{MINIMAL}frontend:\n  n_mels: 64\n"), &[])
        .unwrap()
        .spec;
    let c = load(MINIMAL, &["frontend.n_mels=80"]).unwrap().spec;
    assert_eq!(
        a.hash(),
        b.hash(),
        "writing a default explicitly does not change the run"
    );
    assert_ne!(a.hash(), c.hash());
    let d = load(MINIMAL, &["output.root=/elsewhere"]).unwrap().spec;
    assert_eq!(a.hash(), d.hash(), "where results go does not change them");
    // One augmentation worker is every run made before the key existed; more change the
    // augmentations, so they change the hash.
    let one = load(MINIMAL, &["+train.workers=1"]).unwrap().spec;
    let four = load(MINIMAL, &["+train.workers=4"]).unwrap().spec;
    assert_eq!(a.hash(), one.hash());
    assert_ne!(a.hash(), four.hash());
    let e = load(MINIMAL, &["+train.workers=0"]).unwrap_err();
    assert_eq!(e.key, "train.workers", "{e}");
}

#[test]
fn device_and_precision_are_checked_before_any_work() {
    let e = load(MINIMAL, &["+precision=bf16"]).unwrap_err();
    assert!(e.key == "precision" && e.message.contains("CUDA"), "{e}");
    let e = load(MINIMAL, &["+device=tpu:0"]).unwrap_err();
    assert!(e.message.contains("not a device"), "{e}");
    let cuda = load(MINIMAL, &["+device=cuda:1"]);
    if cfg!(feature = "cuda") {
        assert_eq!(
            cuda.unwrap().spec.device,
            slicer::device::DeviceSpec::Cuda(1)
        );
    } else {
        let e = cuda.unwrap_err();
        assert!(
            e.key == "device" && e.message.contains("--features cuda"),
            "{e}"
        );
    }
    // At their defaults they stay out of the resolved spec (and its hash).
    let resolved = load(MINIMAL, &[]).unwrap().resolved_yaml();
    assert!(!resolved.contains("device:") && !resolved.contains("precision:"));
}

#[test]
fn the_method_block_holds_its_methods_settings_only() {
    let byol_a = load(
        &format!("{MINIMAL}method: {{type: byol_a, ema_schedule: cosine}}\n"),
        &[],
    )
    .unwrap()
    .spec;
    let MethodConfig::ByolA(cfg) = &byol_a.method else {
        panic!("{:?}", byol_a.method)
    };
    assert_eq!(cfg.ema_schedule, slicer::methods::EmaSchedule::Cosine);
    let err = load(
        &format!("{MINIMAL}method: {{type: byol_a, queue_size: 16}}\n"),
        &[],
    )
    .unwrap_err();
    assert!(
        err.key.starts_with("method") && err.message.contains("queue_size"),
        "BYOL-A has no queue: {err}"
    );
    let err = load(
        &format!("{MINIMAL}method: {{type: slicer, queue_size: 100}}\n"),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.key, "method.queue_size", "{err}");
    let err = load(MINIMAL, &["objective.queue_size=16"]).unwrap_err();
    assert!(
        err.message.contains("--set method.queue_size"),
        "an override of the old layout says where the key went: {err}"
    );
    let shorthand = load(MINIMAL, &["method=delores_s"]).unwrap().spec;
    assert_eq!(shorthand.method, MethodConfig::DeloresS(Default::default()));
}

/// The layout before the `method:` block is read into it, keeping what the method read and
/// dropping the sections it ignored, so an old spec and its rewrite are the same run.
#[test]
fn the_old_layout_is_the_same_spec_as_its_method_block() {
    let old = load(
        &format!("{MINIMAL}method: delores_m\nobjective: {{queue_size: 1024, cluster_weight: 0.5}}\ndelores: {{lambda: 0.1}}\n"),
        &[],
    )
    .unwrap()
    .spec;
    let new = load(
        &format!(
            "{MINIMAL}method: {{type: delores_m, queue_size: 1024, barlow: {{lambda: 0.1}}}}\n"
        ),
        &[],
    )
    .unwrap()
    .spec;
    assert_eq!(old, new);
    assert_eq!(old.hash(), new.hash());
}

/// Runs recorded before the `method:` block (their spec.yaml in the old layout, their
/// run.json with the old hash) are still found by today's suite members.
#[test]
fn runs_recorded_in_the_old_layout_are_found_by_todays_specs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = slicer::run::RunDir::open(
        &root.join("results/runs/20261126-233348-study_baselines-byol_a-75d571f5"),
    )
    .unwrap();
    let suite = slicer::experiment::suite::Suite::load(
        &root.join("experiments/study_baselines.yaml"),
        &[format!("output.root={}", root.join("results").display())],
    )
    .unwrap();
    let member = suite
        .members
        .iter()
        .find(|m| m.name == "byol_a" && m.seed == 1)
        .unwrap();
    let today = member.spec.spec.hash();
    assert_ne!(
        run.provenance().unwrap().spec_hash,
        today,
        "recorded before"
    );
    assert!(run.made_by(&today).unwrap());
    let found: Vec<String> = member.runs().unwrap().into_iter().map(|r| r.id).collect();
    assert!(found.contains(&run.id), "{found:?}");
    for member in &suite.members {
        assert!(
            member.scored_run().unwrap().is_some(),
            "{} seed {} lost its committed run",
            member.name,
            member.seed
        );
    }
}

#[test]
fn bad_augmentation_values_are_problems_before_any_work() {
    let err = load(
        &format!("{MINIMAL}augment:\n  rrc: {{freq_scale: [1.5, 0.6]}}\n"),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.key, "augment.rrc.freq_scale", "{err}");
    let err = load(MINIMAL, &["augment.kmix.sample_fraction=0"]).unwrap_err();
    assert_eq!(err.key, "augment.kmix.sample_fraction", "{err}");
    let err = load(MINIMAL, &["augment.mixup.ratio=2"]).unwrap_err();
    assert_eq!(err.key, "augment.mixup.ratio", "{err}");
    assert!(
        load(MINIMAL, &["augment.rrc.freq_scale=[1.0, 1.0]"]).is_ok(),
        "one scale keeps the axis unscaled"
    );
}

#[test]
fn evaluation_steps_must_rise_from_one() {
    for (steps, key) in [
        ("[0, 10]", "eval.at_steps.0"),
        ("[10, 10]", "eval.at_steps.1"),
        ("[20, 10, 30]", "eval.at_steps.1"),
    ] {
        let err = load(MINIMAL, &[&format!("+eval.at_steps={steps}")]).unwrap_err();
        assert_eq!(err.key, key, "{steps}: {err}");
    }
    let spec = load(MINIMAL, &["+eval.at_steps=[1, 10, 30]"]).unwrap();
    let plain = load(MINIMAL, &[]).unwrap();
    assert_ne!(
        spec.spec.hash(),
        plain.spec.hash(),
        "the steps are part of the spec"
    );
    assert_eq!(
        plain.spec.hash(),
        load(MINIMAL, &["+eval.at_steps=[]"]).unwrap().spec.hash(),
        "no steps: the hash of a spec without the key"
    );
}

/// The dotted paths of every numeric leaf under `value` (sequence items by index).
fn numeric_keys(value: &yaml_serde::Value, prefix: &str) -> Vec<String> {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        yaml_serde::Value::Number(_) => vec![prefix.to_owned()],
        yaml_serde::Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| k.as_str().map(|k| numeric_keys(v, &join(k))))
            .flatten()
            .collect(),
        yaml_serde::Value::Sequence(items) => items
            .iter()
            .enumerate()
            .flat_map(|(i, v)| numeric_keys(v, &join(&i.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every numeric key of the main and smoke specs, set to zero, negative, huge, NaN and small
/// values, loads or fails with a spec error that names a key: no value panics while the spec
/// is read and validated (`scripts/spec_sweep.py --run` does the same through whole runs).
#[test]
fn no_numeric_value_panics_while_a_spec_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let values = [
        "0",
        "-1",
        "1e30",
        "NaN",
        ".nan",
        "99999999999",
        "1",
        "3",
        "1000",
        "0.5",
    ];
    for spec in ["experiments/slicer.yaml", "experiments/smoke.yaml"] {
        let path = root.join(spec);
        let resolved = LoadedSpec::load(&path, &[]).unwrap().resolved_yaml();
        let keys = numeric_keys(&yaml_serde::from_str(&resolved).unwrap(), "");
        assert!(keys.len() > 40, "{spec}: {keys:?}");
        for key in &keys {
            for value in values {
                let set = vec![format!("{key}={value}")];
                let outcome = std::panic::catch_unwind(|| LoadedSpec::load(&path, &set));
                match outcome {
                    Err(_) => panic!("{spec}: --set {key}={value} panicked"),
                    Ok(Err(e)) => assert!(!e.key.is_empty(), "{spec}: {key}={value}: {e}"),
                    Ok(Ok(_)) => {}
                }
            }
        }
    }
}

/// The values that used to panic at load time or in the run, or to stop a run on a non-finite
/// loss, name their key and the range.
#[test]
fn values_that_used_to_panic_are_spec_errors_naming_the_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (spec, set, key, says) in [
        (
            "slicer.yaml",
            "train.batch_size=0",
            "train.batch_size",
            "at least 2",
        ),
        (
            "smoke.yaml",
            "train.batch_size=0",
            "train.batch_size",
            "at least 2",
        ),
        (
            "smoke.yaml",
            "method.queue_size=0",
            "method.queue_size",
            "positive multiple",
        ),
        (
            "smoke.yaml",
            "frontend.n_mels=1",
            "frontend.n_mels",
            "at least 8",
        ),
        (
            "smoke.yaml",
            "frontend.n_mels=3",
            "frontend.n_mels",
            "at least 8",
        ),
        (
            "slicer.yaml",
            "frontend.n_mels=7",
            "frontend.n_mels",
            "at least 8",
        ),
        (
            "smoke.yaml",
            "method.temperature=0",
            "method.temperature",
            "positive",
        ),
        (
            "smoke.yaml",
            "method.cluster_temperature=.nan",
            "method.cluster_temperature",
            "positive",
        ),
        (
            "smoke.yaml",
            "method.ema_momentum=1000",
            "method.ema_momentum",
            "[0, 1]",
        ),
        (
            "smoke.yaml",
            "optimizer.beta1=1",
            "optimizer.beta1",
            "[0, 1)",
        ),
        (
            "smoke.yaml",
            "optimizer.beta2=3",
            "optimizer.beta2",
            "[0, 1)",
        ),
        (
            "smoke.yaml",
            "optimizer.lr=-1",
            "optimizer.lr",
            "at least 0",
        ),
    ] {
        let err =
            LoadedSpec::load(&root.join("experiments").join(spec), &[set.to_owned()]).unwrap_err();
        assert_eq!(err.key, key, "{spec} --set {set}: {err}");
        assert!(err.message.contains(says), "{spec} --set {set}: {err}");
    }
    assert!(
        LoadedSpec::load(
            &root.join("experiments/smoke.yaml"),
            &["frontend.n_mels=8".to_owned()]
        )
        .is_ok(),
        "8 mel bands pool to one"
    );
}
