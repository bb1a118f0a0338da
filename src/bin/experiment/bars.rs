//! indicatif progress bars for the library's progress reports.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use slicer::progress::Progress;

/// indicatif bars for the library's progress reports (hidden when stderr is not a terminal).
#[derive(Default)]
pub struct Bars(Mutex<Option<ProgressBar>>);

impl Progress for Bars {
    fn start(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total).with_prefix(label.to_owned());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {pos}/{len} clips ({per_sec}, eta {eta})",
            )
            .expect("valid template")
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
