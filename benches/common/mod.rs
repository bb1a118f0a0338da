//! Timing and JSON output shared by the benches, in the record shape of
//! benches/reference/bench_torch.py so that benches/reference/bench_summary.py reads both.

use std::time::Instant;

/// Busy CPU seconds of the whole machine (/proc/stat ticks) and of this process (nanosecond
/// schedstat of every thread, the analogue of Python's `process_time`), on Linux.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = cpu
        .iter()
        .sum::<u64>()
        .saturating_sub(cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0));
    let own_ns: u64 = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    (busy as f64 * TICK_S, own_ns as f64 * 1e-9)
}

const TICK_S: f64 = 0.01;

/// Logical CPUs.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One timed repetition.
pub struct Rep {
    /// Wall seconds.
    pub wall: f64,
    /// CPU seconds other processes used meanwhile.
    pub others: f64,
}

/// Times `f` after `warmup` calls, repeating until at least `min_total_s` seconds (and `reps`).
pub fn time_reps(reps: usize, warmup: usize, min_total_s: f64, mut f: impl FnMut()) -> Vec<Rep> {
    let t0 = Instant::now();
    for _ in 0..warmup.max(1) {
        f();
    }
    let per_call = t0.elapsed().as_secs_f64() / warmup.max(1) as f64;
    let reps = reps.max((min_total_s / per_call.max(1e-6)).ceil() as usize);
    (0..reps)
        .map(|_| {
            let (b0, m0) = cpu_seconds();
            let start = Instant::now();
            f();
            let wall = start.elapsed().as_secs_f64();
            let (b1, m1) = cpu_seconds();
            let own = m1 - m0;
            // Others cannot exceed the cores this process left idle (as bench_torch.py caps it).
            let idle_left = (nproc() as f64 * wall - own).max(0.0);
            let others = (b1 - b0 - own).clamp(0.0, idle_left);
            Rep { wall, others }
        })
        .collect()
}

/// Median, if any.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Prints one JSON line: `fields` (impl, bench, sizes...) plus timing statistics over `reps`,
/// with `work` units of `unit` done per repetition.
pub fn emit(mut fields: serde_json::Value, warmup: usize, reps: &[Rep], work: f64, unit: &str) {
    let times: Vec<f64> = reps.iter().map(|r| r.wall).collect();
    let med = median(times.clone()).expect("at least one rep");
    let total: f64 = times.iter().sum();
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let others_total = reps.iter().map(|r| r.others).sum::<f64>() / total;
    let quiet = if min >= 0.2 {
        median(
            reps.iter()
                .filter(|r| r.others / r.wall <= 0.1)
                .map(|r| r.wall)
                .collect(),
        )
    } else if others_total <= 0.1 {
        Some(med)
    } else {
        None
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1: f64 = load
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    let timing = serde_json::json!({
        "impl": "rust",
        "median_s": med, "min_s": min, "max_s": times.iter().cloned().fold(0.0, f64::max),
        "reps": times.len(), "warmup": warmup, "times_s": times,
        "throughput": work / med, "throughput_unit": unit,
        "threads": rayon::current_num_threads(), "nproc": nproc(),
        "others_total": (others_total * 1000.0).round() / 1000.0,
        "median_quiet_s": quiet, "throughput_quiet": quiet.map(|q| work / q),
        "load_before": {"load1": load1},
        "lib_version": env!("CARGO_PKG_VERSION"),
    });
    let map = fields.as_object_mut().expect("fields are an object");
    map.extend(timing.as_object().expect("object").clone());
    println!("{fields}");
}

/// The value after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    arg_parsed(name).unwrap_or(default)
}

/// The value after `name` on the command line, parsed, if present.
pub fn arg_parsed<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}
