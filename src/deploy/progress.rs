//! Live progress of a stack operation: one line a resource event with the
//! elapsed time and a `[done/total]` count. On a terminal a status line is
//! redrawn under the events; in CI (`CI` set) or when not a terminal, plain
//! lines only, so logs stay readable.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::StackEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    verb: String,
    stack: String,
    started: Instant,
    total: usize,
    finished: BTreeSet<String>,
    bar: Option<ProgressBar>,
    quiet: bool,
    last_line: Instant,
}

/// In plain mode, a quiet stretch longer than this gets a "still working" line.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Whether to redraw a status line: a terminal, and not CI.
pub fn live() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

impl Progress {
    /// `total` is how many resources the operation touches.
    pub fn new(verb: &str, stack: &str, total: usize) -> Self {
        let bar = live().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed:>4} {msg}")
                    .expect("a valid template"),
            );
            bar.set_message(format!("{verb} {stack}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Self {
            verb: verb.to_string(),
            stack: stack.to_string(),
            started: now,
            total,
            finished: BTreeSet::new(),
            bar,
            quiet: false,
            last_line: now,
        }
    }

    /// A progress that prints nothing (for callers that report otherwise).
    pub fn quiet() -> Self {
        let now = Instant::now();
        Self {
            verb: String::new(),
            stack: String::new(),
            started: now,
            total: 0,
            finished: BTreeSet::new(),
            bar: None,
            quiet: true,
            last_line: now,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn line(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        self.last_line = Instant::now();
        match &self.bar {
            // On a terminal the bar owns the screen: lines go above it.
            Some(bar) => bar.println(text),
            None => tracing::info!(stack = %self.stack, "{text}"),
        }
    }

    /// Reports one event; `terminal` when the resource reached a final status.
    pub fn event(&mut self, event: &StackEvent, terminal: bool) {
        let logical = event.logical_resource_id().unwrap_or("?");
        let is_stack = event.resource_type() == Some("AWS::CloudFormation::Stack");
        if terminal && !is_stack {
            self.finished.insert(logical.to_string());
        }
        let done = self.finished.len().min(self.total);
        let status = event.resource_status().map(|s| s.as_str()).unwrap_or("?");
        let reason = event
            .resource_status_reason()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let kind = if is_stack {
            "stack".to_string()
        } else {
            event.resource_type().unwrap_or("?").to_string()
        };
        self.line(&format!(
            "[{done:>2}/{}] {:>6.1}s {logical:<32} {kind:<40} {status}{reason}",
            self.total,
            self.started.elapsed().as_secs_f64()
        ));
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    /// Called between polls: in plain mode, says it is still working after a
    /// quiet stretch, so a CI log never looks hung.
    pub fn tick(&mut self) {
        if self.bar.is_none() && self.last_line.elapsed() >= HEARTBEAT {
            let text = format!(
                "[{:>2}/{}] {:>6.1}s still {} {}",
                self.finished.len().min(self.total),
                self.total,
                self.started.elapsed().as_secs_f64(),
                self.verb.to_lowercase(),
                self.stack
            );
            self.line(&text);
        }
    }

    /// Ends the operation with its final status.
    pub fn finish(&mut self, status: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            let elapsed_s = self.started.elapsed().as_secs_f64();
            let done = self.finished.len().min(self.total);
            tracing::info!(
                stack = %self.stack,
                status,
                elapsed_s,
                done,
                total = self.total,
                "{} {}: {status} after {elapsed_s:.1}s [{done}/{}]",
                self.verb,
                self.stack,
                self.total
            );
        }
    }
}
