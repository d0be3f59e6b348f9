//! A count and rate for long operations, on standard error when it is a terminal; nothing when
//! it is piped or redirected, so logs and scripts see only the results.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// The progress of one operation: shown, or nothing at all.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// Progress of `what` over `total` items, when it is known.
    pub(crate) fn new(what: &str, total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::new(total),
                "{msg} {pos}/{len} ({per_sec}, {elapsed})",
            ),
            None => (
                ProgressBar::no_length(),
                "{msg} {pos} ({per_sec}, {elapsed})",
            ),
        };
        // The templates are constants that parse; should one not, the default style is kept.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        Progress(Some(bar))
    }

    /// One more item done.
    pub(crate) fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Prints `line` above the progress, which stays below it.
    pub(crate) fn println(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Takes the progress off the terminal.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
