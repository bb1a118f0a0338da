//! indicatif progress bars for the library's progress reports.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use slicer::progress::Progress;

/// indicatif bars for the library's progress reports (hidden when stderr is not a terminal).
#[derive(Default)]
pub struct Bars(Mutex<Option<ProgressBar>>);

impl Progress for Bars {
    fn start(&self, label: &str, total: u64, unit: &str) {
        let bar = ProgressBar::new(total).with_prefix(label.to_owned());
        let rate_unit = unit.to_owned();
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{rate}}, eta {{eta}}) {{msg}}"
            ))
            .expect("valid template")
            .with_key(
                "rate",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2} {rate_unit}/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
        );
        *self.0.lock().expect("not poisoned") = Some(bar);
    }
    fn advance(&self, n: u64) {
        if let Some(bar) = self.0.lock().expect("not poisoned").as_ref() {
            bar.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.0.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }
    fn message(&self, status: &str) {
        if let Some(bar) = self.0.lock().expect("not poisoned").as_ref() {
            bar.set_message(status.to_owned());
        }
    }
}
