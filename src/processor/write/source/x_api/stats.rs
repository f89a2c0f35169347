//! What the stream did ([`StreamStats`], [`Reconnects`]), for the caller to
//! print or export.

use super::reconnect::Failure;

/// What the stream did, for the caller to print or export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Connections that answered 200.
    pub connections: u64,
    /// Records sent that are JSON objects other than X system messages
    /// (tweets, in practice).
    pub messages: u64,
    /// X system messages (`errors` without `data`), also sent as records.
    pub system_messages: u64,
    /// Lines that are not a JSON object (invalid UTF-8 included), sent as
    /// records for the transform to file as dead letters.
    pub malformed: u64,
    /// Blank keep-alive lines.
    pub heartbeats: u64,
    /// Lines cut short by the end of their connection: not sent.
    pub partial_lines: u64,
    /// Lines longer than [`StreamOptions::max_line`]: not sent.
    pub oversize_lines: u64,
    /// The bytes of those partial and oversize lines.
    pub dropped_bytes: u64,
    /// The most bytes held at once for an incomplete line: at most
    /// [`StreamOptions::max_line`] + 1 (its `\r`).
    pub max_buffered: u64,
    pub reconnects: Reconnects,
}

/// Reconnects by the [`Failure`] that caused them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconnects {
    pub dropped: u64,
    pub stalled: u64,
    pub network: u64,
    pub http: u64,
    pub rate_limited: u64,
}

impl Reconnects {
    pub fn total(&self) -> u64 {
        self.dropped + self.stalled + self.network + self.http + self.rate_limited
    }

    pub(super) fn count(&mut self, failure: Failure) {
        let counter = match failure {
            Failure::Dropped => &mut self.dropped,
            Failure::Stalled => &mut self.stalled,
            Failure::Network => &mut self.network,
            Failure::Http => &mut self.http,
            Failure::RateLimited => &mut self.rate_limited,
        };
        *counter += 1;
    }
}
