//! Progress reporting without printing: the library reports through this trait and the
//! binary draws it (indicatif); tests and library users can pass [`Silent`].

/// Receives progress of long stages.
pub trait Progress: Sync {
    /// A stage named `label` begins with `total` units of work, counted in `unit` (plural:
    /// `steps`, `clips`, `epochs`, `files`).
    fn start(&self, label: &str, total: u64, unit: &str);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The current stage is done.
    fn finish(&self);
    /// A short status line for the current stage (loss, speed, ...).
    fn message(&self, _status: &str) {}
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64, _: &str) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
