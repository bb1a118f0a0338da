//! Parallel clip loading with the `skip_bad_files` policy.

use rayon::prelude::*;

use super::clip::ClipAudio;
use crate::error::Result;
use crate::progress::Progress;

/// Clips that loaded (their samples, or what was kept of them), and the ones skipped
/// because they were unreadable.
#[derive(Debug)]
pub struct LoadedClips<T = Vec<f32>> {
    /// `(index into the input, samples)` for every clip that loaded, in input order.
    pub loaded: Vec<(usize, T)>,
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
    let mut out = LoadedClips {
        loaded: Vec::with_capacity(clips.len()),
        skipped: Vec::new(),
    };
    let load = ClipLoad {
        sample_rate,
        skip_bad_files,
        label,
        progress,
    };
    load.in_chunks(clips, clips.len(), keep, |part| {
        out.loaded.extend(part.loaded);
        out.skipped.extend(part.skipped);
        Ok(())
    })?;
    Ok(out)
}

/// How [`ClipLoad::in_chunks`] loads: the model's rate, the `skip_bad_files` policy, and the
/// progress stage.
#[derive(Clone, Copy)]
pub struct ClipLoad<'a> {
    /// Rate to resample to.
    pub sample_rate: u32,
    /// Skip (and log) unreadable clips instead of stopping at the first.
    pub skip_bad_files: bool,
    /// Progress stage name.
    pub label: &'a str,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

impl ClipLoad<'_> {
    /// [`map_clips`] `chunk` clips at a time: `consume` gets each chunk's result (indices
    /// into `clips`) before the next chunk loads, so memory holds one chunk's kept parts.
    pub fn in_chunks<T: Send>(
        &self,
        clips: &[ClipAudio],
        chunk: usize,
        keep: impl Fn(usize, Vec<f32>) -> T + Sync,
        mut consume: impl FnMut(LoadedClips<T>) -> Result<()>,
    ) -> Result<()> {
        let chunk = chunk.max(1);
        self.progress.start(self.label, clips.len() as u64, "clips");
        let mut skipped = 0;
        let outcome = clips.chunks(chunk).enumerate().try_for_each(|(c, part)| {
            let offset = c * chunk;
            let results: Vec<Result<T>> = part
                .par_iter()
                .enumerate()
                .map(|(j, clip)| {
                    let r = clip.load(self.sample_rate).map(|s| keep(offset + j, s));
                    self.progress.advance(1);
                    r
                })
                .collect();
            let mut out = LoadedClips {
                loaded: Vec::with_capacity(part.len()),
                skipped: Vec::new(),
            };
            for (j, result) in results.into_iter().enumerate() {
                match result {
                    Ok(samples) => out.loaded.push((offset + j, samples)),
                    Err(e) if self.skip_bad_files => {
                        tracing::warn!("skipping unreadable clip: {e}");
                        out.skipped.push((offset + j, e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
            }
            skipped += out.skipped.len();
            consume(out)
        });
        self.progress.finish();
        outcome?;
        if skipped > 0 {
            tracing::warn!(
                "skipped {skipped} of {} clips (skip_bad_files: true)",
                clips.len()
            );
        }
        Ok(())
    }
}
