//! Sound events on a background, for event-detection tasks (HEAR's `event` embedding type):
//! 1-3 instrument notes of the demo's timbres, each cut to 0.25-0.9 s, placed at random
//! onsets on a 4-s bed of the demo's environment scenes. The held-out factors are the demo
//! tasks' own: the notes' pitch range and the background mixture follow the split.

use rand::Rng;

use super::{dsp, Generator};
use crate::data::Split;

/// Length of every event clip in seconds.
pub const EVENT_CLIP_SECONDS: f64 = 4.0;

/// Clip indices of the demo generators from here on are used by event clips only, so no
/// event clip reuses a labelled task clip.
const FIRST_RENDER_INDEX: u64 = 1 << 32;

/// One event in a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index into [`event_classes`].
    pub class: usize,
    /// Onset, seconds from the clip's start.
    pub start_s: f64,
    /// Offset, seconds from the clip's start.
    pub end_s: f64,
}

/// The event labels: the demo's instrument timbres.
pub fn event_classes() -> Vec<String> {
    Generator::Instruments.classes()
}

/// Renders event clip `index` of `split` ([`dsp::SR`] Hz, [`EVENT_CLIP_SECONDS`] long) and
/// its events in onset order.
pub fn render_event_clip(split: Split, seed: u64, index: u64) -> (Vec<f32>, Vec<Event>) {
    let rng = &mut crate::rng::stream_indexed(seed, &format!("synthetic/events/{split}"), index);
    let second = dsp::SR as usize;
    let beds = EVENT_CLIP_SECONDS as usize;
    let scenes = Generator::Environment.classes().len();
    let mut clip: Vec<f32> = (0..beds as u64)
        .flat_map(|k| {
            let scene = rng.random_range(0..scenes);
            let render = FIRST_RENDER_INDEX + index * beds as u64 + k;
            Generator::Environment.render(scene, split, seed, render)
        })
        .map(|x| 0.3 * x)
        .collect();
    let classes = event_classes().len();
    let mut events: Vec<Event> = Vec::new();
    for e in 0..rng.random_range(1..=3u64) {
        let class = rng.random_range(0..classes);
        let seconds = rng.random_range(0.25..0.9);
        let start_s = rng.random_range(0.0..EVENT_CLIP_SECONDS - seconds);
        let note =
            Generator::Instruments.render(class, split, seed, FIRST_RENDER_INDEX + index * 3 + e);
        let (start, len) = ((start_s * dsp::SR) as usize, (seconds * dsp::SR) as usize);
        let fade = (0.02 * dsp::SR) as usize;
        let peak = note.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
        for (i, x) in note.iter().take(len).enumerate() {
            let taper = ((len - i) as f32 / fade as f32).min(1.0);
            if let Some(y) = clip.get_mut(start + i) {
                *y += 0.6 * x / peak * taper;
            }
        }
        events.push(Event {
            class,
            start_s: start as f64 / dsp::SR,
            end_s: (start + len) as f64 / dsp::SR,
        });
    }
    let peak = clip.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.95 {
        clip.iter_mut().for_each(|x| *x *= 0.95 / peak);
    }
    debug_assert_eq!(clip.len(), beds * second);
    events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    (clip, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_clips_are_deterministic_with_events_inside_the_clip() {
        let (a, events) = render_event_clip(Split::Test, 3, 7);
        assert_eq!(
            (a.clone(), events.clone()),
            render_event_clip(Split::Test, 3, 7)
        );
        assert_eq!(a.len(), (EVENT_CLIP_SECONDS * dsp::SR) as usize);
        assert!((1..=3).contains(&events.len()));
        for e in &events {
            assert!(e.start_s >= 0.0 && e.end_s <= EVENT_CLIP_SECONDS && e.end_s > e.start_s);
            assert!(e.class < event_classes().len());
        }
        assert!(a.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
        assert_ne!(
            render_event_clip(Split::Train, 3, 7).0,
            a,
            "the split changes the audio"
        );
    }
}
