//! The binary's logging: the terminal (RUST_LOG, default info; colours only when stderr is a
//! terminal and `NO_COLOR` is unset) and the open run's `run.log` (info, without colours; see
//! `slicer::experiment::RunLog`).

use std::io::IsTerminal;

use slicer::experiment::RunLog;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; call once, first.
pub fn init() {
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(colours_on_stderr())
                .with_writer(std::io::stderr)
                .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .fmt_fields(PlainFields::default())
                .with_writer(RunLog::default)
                .with_filter(LevelFilter::INFO),
        )
        .init();
}

/// Whether the terminal layer may colour its output: stderr is a terminal and the user has
/// not asked for plain text (<https://no-color.org>).
fn colours_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// tracing's default field format under a type of its own: span fields are formatted once
/// per format type and cached, so without it the log file would get the terminal's colours.
#[derive(Default)]
struct PlainFields(fmt::format::DefaultFields);

impl<'w> fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}
