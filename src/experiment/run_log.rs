//! The run's own log: what the library logs while a run is open also goes to that run's
//! `run.log`. The binary adds [`RunLog`] as a second writer of its tracing subscriber; the
//! experiment layer points it at each run folder it creates or resumes.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The open `run.log`, if any.
static CURRENT: Mutex<Option<File>> = Mutex::new(None);

/// From now on, log lines also go to `path` (appended: a resumed run keeps its earlier log).
pub(super) fn log_to(path: &Path) -> Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// A log writer for a tracing subscriber: writes to the current run's `run.log`, or
/// nowhere before a run is open. `RunLog::default` is its `MakeWriter`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}
