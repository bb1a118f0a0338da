//! The `experiment` binary: resolved-spec printing, errors before any work, and a smoke run.

use crate::common;

use std::path::Path;
use std::process::Command;

fn experiment(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn print_config_shows_resolved_defaults_and_overrides() {
    let (ok, stdout, _) = experiment(&[
        "experiments/slicer.yaml",
        "--print-config",
        "--set",
        "frontend.n_mels=80",
    ]);
    assert!(ok);
    assert!(
        stdout.contains("n_mels: 80")
            && stdout.contains("hop_length: 160")
            && stdout.contains("pad_mode: reflect"),
        "{stdout}"
    );
}

#[test]
fn a_bad_spec_fails_before_any_work_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        format!(
            "output: {{root: {}}}\ndata:\n  pretrain: {{type: synthetic}}\n  windowseconds: 1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = experiment(&[spec.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.yaml:4")
            && stderr.contains("windowseconds")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "no run folder is created for a bad spec"
    );
    let (ok, _, stderr) = experiment(&["experiments/slicer.yaml", "--set", "probe.epoch=3"]);
    assert!(!ok && stderr.contains("no key `probe.epoch`"), "{stderr}");
    let (ok, _, stderr) = experiment(&["experiments/nope.yaml"]);
    assert!(
        !ok && stderr.contains("nope.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

fn test_accuracies(run: &Path) -> Vec<(String, String, String, u64, f64)> {
    slicer::results::read_scores(&run.join("scores.parquet"))
        .unwrap()
        .into_iter()
        .filter(|r| r.metric == "test_accuracy")
        .map(|r| (r.encoder, r.task, r.protocol, r.seed, r.value))
        .collect()
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn smoke_run_pretrains_evaluates_and_summarises_and_stages_rerun_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("output.root={}", dir.path().display());
    let (ok, stdout, stderr) = experiment(&["experiments/smoke.yaml", "--set", &root]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("pre-training (slicer): 6 steps"),
        "{stdout}"
    );
    for row in [
        "| slicer | smoke (",
        "| random_init | smoke (",
        "| bag_of_frames | smoke (",
        "| linear_lape (max test over epochs: selects on test) |",
        "| vowels | environment | avg | seeds |",
    ] {
        assert!(stdout.contains(row), "{row} not in {stdout}");
    }
    // The job ends on its own run: its table's file, its folder, then how to rebuild the
    // table over every run.
    let tail: Vec<&str> = stdout.trim_end().lines().rev().take(3).collect();
    assert!(
        tail[0].contains("rebuilt by `--stage summary`")
            && tail[1].starts_with("run folder: ")
            && tail[2].starts_with("this run's table: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("InfoNCE per direction") && stdout.contains("chance ln 17 = 2.83"),
        "{stdout}"
    );
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    for file in [
        "spec.yaml",
        "run.json",
        "norm_stats.json",
        "features.json",
        "metrics.parquet",
        "scores.parquet",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    for file in ["lape_table.md", "lape_table.parquet"] {
        assert!(run.join(file).is_file(), "the run's {file} missing");
        assert!(
            !dir.path().join(file).exists(),
            "a run rewrote the table over every run ({file})"
        );
    }
    assert!(
        stdout.contains(&format!(
            "this run's table: {}",
            run.join("lape_table.md").display()
        )),
        "{stdout}"
    );
    // The run's log holds what the terminal showed from the run folder on, without colours.
    let log = std::fs::read_to_string(run.join("run.log")).unwrap();
    assert!(
        log.contains("normalisation: mean")
            && log.contains("checkpoint")
            && !log.contains('\u{1b}'),
        "{log}"
    );
    let first = test_accuracies(run);
    // 2 tasks x (3 encoders) x 2 probe seeds x (linear + linear_lape).
    assert_eq!(first.len(), 2 * 3 * 2 * 2);

    let (ok, _, stderr) =
        experiment(&["experiments/smoke.yaml", "--set", &root, "--stage", "embed"]);
    assert!(!ok && stderr.contains("--resume"), "{stderr}");

    // Re-scoring the run reads features and embeddings from the caches and reproduces
    // every score.
    let embeddings = dir.path().join("cache").join("embeddings");
    let cached: Vec<_> = std::fs::read_dir(&embeddings).unwrap().collect();
    assert_eq!(cached.len(), 2 * 2 * 3, "2 encoders x 2 tasks x 3 splits");
    let run_arg = run.to_str().unwrap();
    let (ok, stdout, stderr) = experiment(&[
        "experiments/smoke.yaml",
        "--set",
        &root,
        "--stage",
        "probe",
        "--resume",
        run_arg,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(test_accuracies(run), first);
    assert_eq!(
        std::fs::read_dir(&embeddings).unwrap().count(),
        cached.len()
    );
    assert!(stdout.contains("LAPE table"), "{stdout}");

    let (ok, stdout, stderr) = experiment(&[
        "experiments/smoke.yaml",
        "--set",
        &root,
        "--stage",
        "summary",
    ]);
    assert!(ok && stdout.contains("| slicer | smoke ("), "{stderr}");
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn convert_then_embed_reports_bad_files_and_needs_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::fixtures_dir();
    let model = dir.path().join("byola");
    let (ok, stdout, stderr) = experiment(&[
        "convert",
        fixtures.join("byola_format_d64.pth").to_str().unwrap(),
        model.to_str().unwrap(),
    ]);
    assert!(ok && stdout.contains("d=64"), "{stderr}");
    let good = fixtures.join("chirp_1s.wav");
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, b"RIFF not really").unwrap();
    let out = dir.path().join("e.parquet");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "embed",
            "--model",
            model.to_str().unwrap(),
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        experiment(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, _, stderr) = run(&[]);
    assert!(!ok && stderr.contains("--norm-mean"), "{stderr}");
    let (ok, _, stderr) = run(&["--norm-mean", "-5", "--norm-std", "4"]);
    assert!(
        !ok && stderr.contains("bad.wav") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(!out.exists());
    let (ok, stdout, stderr) = run(&[
        "--norm-mean",
        "-5",
        "--norm-std",
        "4",
        "--skip-bad-files",
        "--frames",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 files skipped"), "{stdout}");
    let rows = slicer::results::read_embeddings(&out).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].embedding.len(), 64);

    // Statistics given to `convert` are stored: that folder embeds without them, the same.
    let with_stats = dir.path().join("byola-with-stats");
    let (ok, _, stderr) = experiment(&[
        "convert",
        fixtures.join("byola_format_d64.pth").to_str().unwrap(),
        with_stats.to_str().unwrap(),
        "--norm-mean",
        "-5",
        "--norm-std",
        "4",
    ]);
    assert!(ok, "{stderr}");
    let stored = dir.path().join("stored.parquet");
    let (ok, _, stderr) = experiment(&[
        "embed",
        "--model",
        with_stats.to_str().unwrap(),
        good.to_str().unwrap(),
        "--out",
        stored.to_str().unwrap(),
        "--frames",
    ]);
    assert!(ok, "{stderr}");
    let again = slicer::results::read_embeddings(&stored).unwrap();
    assert_eq!(again[0].embedding, rows[0].embedding);

    // A folder: its audio files below it, sorted; other files are not audio.
    let folder = dir.path().join("clips");
    std::fs::create_dir_all(folder.join("b")).unwrap();
    std::fs::copy(&good, folder.join("b/two.wav")).unwrap();
    std::fs::copy(&good, folder.join("one.wav")).unwrap();
    std::fs::write(folder.join("notes.txt"), "not audio").unwrap();
    let (ok, _, stderr) = experiment(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        folder.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--norm-mean",
        "-5",
        "--norm-std",
        "4",
    ]);
    assert!(ok, "{stderr}");
    let rows = slicer::results::read_embeddings(&out).unwrap();
    let files: Vec<_> = rows.iter().map(|r| r.path.clone()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].ends_with("b/two.wav") && files[1].ends_with("one.wav"),
        "{files:?}"
    );
    let (ok, _, stderr) = experiment(&[
        "embed",
        "--model",
        "/no/such/model",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("/no/such/model") && stderr.contains("no such file or folder"),
        "{stderr}"
    );

    // The converted model as an external row of an experiment, next to nothing else.
    let root = format!("output.root={}", dir.path().display());
    let encoders = format!(
        "eval.encoders=[{{external: {{source: {}, name: byola_fixture}}}}]",
        model.display()
    );
    let (ok, stdout, stderr) = experiment(&[
        "experiments/smoke.yaml",
        "--set",
        &root,
        "--set",
        &encoders,
        "--set",
        "eval.floor=false",
        "--stage",
        "probe",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("| byola_fixture | smoke ("), "{stdout}");
    // It was scored on BYOL-A's log-mels: the cache holds the spec's features (computed for
    // the run's own stages) and those of BYOL-A's front end, 2 tasks x 3 splits each.
    let cached = std::fs::read_dir(dir.path().join("cache/features"))
        .unwrap()
        .count();
    assert_eq!(
        cached,
        2 * 2 * 3,
        "the spec's and BYOL-A's front ends, 2 tasks x 3 splits"
    );
}

/// `embed` on a BYOL-A `.pth` gives the embedding BYOL-A's own code computes for the wave
/// (`byola_pipeline.safetensors`), through the CLI a user runs.
#[test]
fn embed_of_a_byola_checkpoint_matches_byola_s_code() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::fixtures_dir();
    let out = dir.path().join("e.parquet");
    let expected = f.join("byola_pipeline.safetensors");
    let (_, stats) = common::read_f32(&expected, "norm_stats");
    let (mean, std) = (stats[0].to_string(), stats[1].to_string());
    let (model, wave) = (f.join("byola_format_d64.pth"), f.join("chirp_1s.wav"));
    // The embedding of the wave, with `extra` arguments.
    let embed = |extra: &[&str]| {
        let mut args = vec![
            "embed",
            "--model",
            model.to_str().unwrap(),
            wave.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--norm-mean",
            &mean,
            "--norm-std",
            &std,
        ];
        args.extend_from_slice(extra);
        let (ok, _, stderr) = experiment(&args);
        assert!(ok, "{stderr}");
        slicer::results::read_embeddings(&out).unwrap()
    };
    let rows = embed(&[]);
    let (_, want) = common::read_f32(&expected, "embedding");
    for (a, b) in rows[0].embedding.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 + 1e-3 * b.abs(), "{a} vs {b}");
    }
    // The Slaney (LAPE) front end forced on it gives another embedding.
    let rows = embed(&["--frontend", "lape"]);
    let off = rows[0]
        .embedding
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(off > 1e-2, "the front end made no difference: {off}");
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn a_suite_runs_each_member_once_and_tables_them() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.yaml");
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    std::fs::write(
        &suite,
        format!(
            "suite: tiny\nbase: {}\ncommon:\n  output: {{root: {}}}\n  eval: {{encoders: [pretrained], floor: false}}\n  train: {{epochs: 1}}\nmembers:\n  - {{name: slicer_no_cluster, method: {{cluster_weight: 0.0}}}}\n  - {{name: byol_a, method: {{type: byol_a, hidden_dim: 16, projection_dim: 8}}}}\n  - {{name: random_init, method: random_init, eval: {{floor: true}}}}\n",
            smoke.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = experiment(&[suite.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let table = std::fs::read_to_string(dir.path().join("suites/tiny/lape_table.md")).unwrap();
    for row in [
        "| slicer | slicer_no_cluster (",
        "| byol_a | byol_a (",
        "| random_init | random_init (",
        "| bag_of_frames | random_init (",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}\n{stdout}");
    }
    let (ok, stdout, stderr) = experiment(&[suite.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("already finished").count(), 3, "{stdout}");

    std::fs::write(
        &suite,
        format!(
            "suite: bad\nbase: {}\nmembers:\n  - {{method: byol_a}}\n",
            smoke.display()
        ),
    )
    .unwrap();
    let (ok, _, stderr) = experiment(&[suite.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("members.0") && stderr.contains("no `name`"),
        "{stderr}"
    );
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn a_seeded_suite_runs_every_seed_and_tables_the_paired_gains() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("seeded.yaml");
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.yaml");
    let write = |seeds: &str| {
        std::fs::write(
            &suite,
            format!(
                "suite: seeded\nbase: {}\nseeds: {seeds}\ncommon:\n  output: {{root: {}}}\n  eval: {{encoders: [pretrained, random_init], floor: false}}\n  train: {{epochs: 1}}\n  probe: {{protocols: [logistic]}}\nmembers:\n  - {{name: slicer}}\n",
                smoke.display(),
                dir.path().display()
            ),
        )
        .unwrap()
    };
    write("[1, 2]");
    let (ok, stdout, stderr) = experiment(&[suite.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("pre-training seed 2"), "{stdout}");
    let runs = std::fs::read_dir(dir.path().join("runs")).unwrap().count();
    assert_eq!(runs, 2, "one run per seed");
    let table = std::fs::read_to_string(dir.path().join("suites/seeded/seed_table.md")).unwrap();
    assert!(
        table.contains("| slicer | slicer |") && table.contains("| slicer | random_init |"),
        "{table}"
    );
    assert!(
        table.contains("gain over random_init") && table.contains(" ["),
        "{table}"
    );
    assert!(dir
        .path()
        .join("suites/seeded/seed_table.parquet")
        .is_file());
    let lape = std::fs::read_to_string(dir.path().join("suites/seeded/lape_table.md")).unwrap();
    assert!(
        lape.contains("slicer seed 1") && lape.contains("slicer seed 2"),
        "{lape}"
    );
    write("[3, 3]");
    let (ok, _, stderr) = experiment(&[suite.to_str().unwrap()]);
    assert!(!ok && stderr.contains("seed 3 is listed twice"), "{stderr}");

    // One spec, --seeds: run once per seed, then its seed table.
    let root = format!("output.root={}", dir.path().join("spec").display());
    let (ok, stdout, stderr) = experiment(&[
        "experiments/smoke.yaml",
        "--seeds",
        "4,5",
        "--set",
        &root,
        "--set",
        "train.epochs=1",
        "--set",
        "probe.protocols=[logistic]",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("pre-training seed 5"), "{stdout}");
    let table =
        std::fs::read_to_string(dir.path().join("spec/suites/smoke/seed_table.md")).unwrap();
    assert!(table.contains("| smoke | slicer |"), "{table}");
}

#[test]
fn a_spec_inherits_its_base_and_overrides_it() {
    let (ok, stdout, stderr) = experiment(&["experiments/methods/byol_a.yaml", "--print-config"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("name: byol_a")
            && stdout.contains("method:\n  type: byol_a\n  ema_decay: 0.99")
            && stdout.contains("kmix: null")
            && stdout.contains("clips: 600"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("queue_size"),
        "the base's SLICER block is replaced, not merged into: {stdout}"
    );
}

#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn launch_runs_cpu_ranks_that_stay_in_step_and_rank_0_evaluates() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args([
            "launch",
            "--processes",
            "2",
            "experiments/smoke.yaml",
            "--set",
        ])
        .arg(format!("output.root={}", root.path().display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn,slicer::train=info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Each rank logs the digest of its final state; the trainer also compared them at
    // every checkpoint (a mismatch fails the job).
    let digests: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split("final state ").nth(1))
        .map(|d| d.chars().take(16).collect())
        .collect();
    assert_eq!(digests.len(), 2, "{stderr}");
    assert_eq!(digests[0], digests[1], "{stderr}");
    let runs: Vec<_> = std::fs::read_dir(root.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "one run folder for the whole job");
    let run = &runs[0];
    assert!(run.join("scores.parquet").exists(), "rank 0 evaluates");
    assert!(run.join("checkpoints").read_dir().unwrap().count() > 0);
    assert!(
        !run.join("rendezvous").exists(),
        "the rendezvous file is removed"
    );
}

/// Two "nodes" that share no folder: one `experiment launch` per rank, started as a cluster
/// launcher would (torchrun's variables), meeting at rank 0's socket on loopback. The ranks
/// end bit-identical (and were compared at every checkpoint); only rank 0's root gets the
/// run, and rank 1 cleans its scratch folder up.
#[test]
#[ignore = "slow tier: end to end; run with `cargo test -- --ignored`"]
fn two_nodes_meet_at_rank_0s_socket_and_stay_in_step() {
    let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nodes: Vec<_> = roots
        .iter()
        .enumerate()
        .map(|(rank, root)| {
            Command::new(env!("CARGO_BIN_EXE_experiment"))
                .args(["launch", "experiments/smoke.yaml", "--set"])
                .arg(format!("output.root={}", root.path().display()))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("RUST_LOG", "warn,slicer::train=info")
                .env("NO_COLOR", "1")
                .env("RAYON_NUM_THREADS", "1")
                .envs([
                    ("RANK", rank.to_string()),
                    ("WORLD_SIZE", "2".into()),
                    ("LOCAL_RANK", "0".into()),
                    ("MASTER_ADDR", "127.0.0.1".into()),
                    ("MASTER_PORT", port.to_string()),
                ])
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = nodes
        .into_iter()
        .map(|n| n.wait_with_output().unwrap())
        .collect();
    let mut digests = Vec::new();
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        digests.extend(
            stderr
                .lines()
                .filter_map(|l| l.split("final state ").nth(1))
                .map(|d| d.chars().take(16).collect::<String>()),
        );
    }
    assert_eq!(digests.len(), 2, "{digests:?}");
    assert_eq!(digests[0], digests[1]);
    let runs: Vec<_> = std::fs::read_dir(roots[0].path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("scores.parquet").exists(), "rank 0 evaluates");
    assert!(
        !roots[1].path().join("runs").exists(),
        "rank 1 writes nothing under the job's output.root"
    );
}
