//! Parallel clip loading with the `skip_bad_files` policy.

use rayon::prelude::*;

use super::clip::ClipAudio;
use crate::error::Result;
use crate::progress::Progress;

/// Clips that loaded, and the ones skipped because they were unreadable.
#[derive(Debug)]
pub struct LoadedClips {
    /// `(index into the input, samples)` for every clip that loaded, in input order.
    pub loaded: Vec<(usize, Vec<f32>)>,
    /// `(index, error message)` for every skipped clip.
    pub skipped: Vec<(usize, String)>,
}

/// Loads `clips` at `sample_rate` in parallel, reporting progress as stage `label`. With
/// `skip_bad_files` an unreadable clip is skipped (and logged); without it the first error
/// (in input order) is returned.
pub fn load_clips(
    clips: &[ClipAudio],
    sample_rate: u32,
    skip_bad_files: bool,
    label: &str,
    progress: &dyn Progress,
) -> Result<LoadedClips> {
    map_clips(
        clips,
        sample_rate,
        skip_bad_files,
        label,
        progress,
        |_, s| s,
    )
}

/// [`load_clips`], keeping only `keep(index, samples)` of each clip: the decoded samples are
/// dropped as soon as it returns, so memory holds the kept parts, not the whole clips.
pub fn map_clips(
    clips: &[ClipAudio],
    sample_rate: u32,
    skip_bad_files: bool,
    label: &str,
    progress: &dyn Progress,
    keep: impl Fn(usize, Vec<f32>) -> Vec<f32> + Sync,
) -> Result<LoadedClips> {
    progress.start(label, clips.len() as u64, "clips");
    let results: Vec<Result<Vec<f32>>> = clips
        .par_iter()
        .enumerate()
        .map(|(i, clip)| {
            let r = clip.load(sample_rate).map(|s| keep(i, s));
            progress.advance(1);
            r
        })
        .collect();
    progress.finish();
    let mut out = LoadedClips {
        loaded: Vec::with_capacity(clips.len()),
        skipped: Vec::new(),
    };
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(samples) => out.loaded.push((i, samples)),
            Err(e) if skip_bad_files => {
                tracing::warn!("skipping unreadable clip: {e}");
                out.skipped.push((i, e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    if !out.skipped.is_empty() {
        tracing::warn!(
            "skipped {} of {} clips (skip_bad_files: true)",
            out.skipped.len(),
            clips.len()
        );
    }
    Ok(out)
}
