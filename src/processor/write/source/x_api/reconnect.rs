//! X's reconnect schedule ([`ReconnectPolicy`], pure: it only says how long
//! to wait after each kind of [`Failure`]) and the [`Sleeper`] that waits it
//! out (tokio's timer, or a recorder in tests).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hyper::StatusCode;

/// Why a connection ended (or never started), for the reconnect schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// An established stream ended cleanly or broke mid-way.
    Dropped,
    /// An established stream sent nothing, not even a heartbeat, for the
    /// stall timeout.
    Stalled,
    /// No HTTP response: connect, TLS or request error, or no response head
    /// within the stall timeout.
    Network,
    /// A status worth retrying: 5xx or 408.
    Http,
    /// HTTP 429 (or the legacy 420).
    RateLimited,
}

/// X's reconnect schedule (see the module documentation), without a clock:
/// it only says how long to wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconnectPolicy {
    network: u32,
    http: u32,
    rate_limited: u32,
    failing: bool,
}

impl ReconnectPolicy {
    pub const NETWORK_STEP: Duration = Duration::from_millis(250);
    pub const NETWORK_MAX: Duration = Duration::from_secs(16);
    pub const HTTP_FIRST: Duration = Duration::from_secs(5);
    pub const HTTP_MAX: Duration = Duration::from_secs(320);
    pub const RATE_LIMITED_FIRST: Duration = Duration::from_secs(60);
    pub const RATE_LIMITED_MAX: Duration = Duration::from_secs(960);

    pub fn new() -> Self {
        Self::default()
    }

    /// The wait before the next attempt, and one more step on the schedule
    /// of that kind of failure. Each kind keeps its own count, as X
    /// describes one schedule per kind.
    pub fn next_delay(&mut self, failure: Failure) -> Duration {
        let first_since_data = !self.failing;
        self.failing = true;
        match failure {
            // X: "Once an established connection drops, attempt to reconnect
            // immediately"; only when that attempt fails does it slow down.
            Failure::Dropped | Failure::Stalled if first_since_data => Duration::ZERO,
            Failure::Dropped | Failure::Stalled | Failure::Network => {
                self.network = self.network.saturating_add(1);
                Self::NETWORK_STEP
                    .saturating_mul(self.network)
                    .min(Self::NETWORK_MAX)
            }
            Failure::Http => {
                self.http = self.http.saturating_add(1);
                doubling(Self::HTTP_FIRST, self.http, Self::HTTP_MAX)
            }
            Failure::RateLimited => {
                self.rate_limited = self.rate_limited.saturating_add(1);
                doubling(
                    Self::RATE_LIMITED_FIRST,
                    self.rate_limited,
                    Self::RATE_LIMITED_MAX,
                )
            }
        }
    }

    /// A connection delivered data: every schedule starts over.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

fn doubling(first: Duration, attempt: u32, max: Duration) -> Duration {
    // Past 2^16 every schedule is long since at its cap; stopping there keeps
    // the shift and the multiplication from overflowing.
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max)
}

pub(super) fn status_failure(status: StatusCode) -> Option<Failure> {
    match status.as_u16() {
        420 | 429 => Some(Failure::RateLimited),
        408 | 500..=599 => Some(Failure::Http),
        _ => None,
    }
}

/// A future that completes after a delay.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Waits out reconnect delays: tokio's timer in production, a recorder in
/// tests (so that a 320 s backoff takes no time and can be asserted).
pub trait Sleeper: Send + Sync {
    fn sleep(&self, delay: Duration) -> Sleep;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, delay: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(delay))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn delays(policy: &mut ReconnectPolicy, failure: Failure, n: usize) -> Vec<Duration> {
        (0..n).map(|_| policy.next_delay(failure)).collect()
    }

    #[test]
    fn network_errors_back_off_linearly_by_250_ms_to_16_s() {
        let mut policy = ReconnectPolicy::new();
        let expected: Vec<Duration> = (1..=100u64).map(|n| MS((250 * n).min(16_000))).collect();
        assert_eq!(delays(&mut policy, Failure::Network, 100), expected);
        assert_eq!(
            expected[63],
            S(16),
            "the cap is reached at the 64th attempt"
        );
        assert_eq!(expected[62], MS(15_750));
    }

    #[test]
    fn http_errors_back_off_exponentially_from_5_s_to_320_s() {
        let mut policy = ReconnectPolicy::new();
        let mut expected: Vec<Duration> = [5, 10, 20, 40, 80, 160, 320].map(S).to_vec();
        expected.extend(std::iter::repeat_n(S(320), 43));
        assert_eq!(delays(&mut policy, Failure::Http, 50), expected);
    }

    #[test]
    fn rate_limits_back_off_exponentially_from_60_s_to_960_s() {
        let mut policy = ReconnectPolicy::new();
        let mut expected: Vec<Duration> = [60, 120, 240, 480, 960].map(S).to_vec();
        expected.extend(std::iter::repeat_n(S(960), 45));
        assert_eq!(delays(&mut policy, Failure::RateLimited, 50), expected);
    }

    #[test]
    fn schedules_stay_at_their_caps_without_overflow() {
        let mut policy = ReconnectPolicy::new();
        for _ in 0..100_000 {
            policy.next_delay(Failure::Network);
            policy.next_delay(Failure::Http);
            policy.next_delay(Failure::RateLimited);
        }
        assert_eq!(policy.next_delay(Failure::Network), S(16));
        assert_eq!(policy.next_delay(Failure::Http), S(320));
        assert_eq!(policy.next_delay(Failure::RateLimited), S(960));
        let mut saturated = ReconnectPolicy {
            network: u32::MAX,
            http: u32::MAX,
            rate_limited: u32::MAX,
            failing: true,
        };
        assert_eq!(saturated.next_delay(Failure::Network), S(16));
        assert_eq!(saturated.next_delay(Failure::Http), S(320));
        assert_eq!(saturated.next_delay(Failure::RateLimited), S(960));
    }

    #[test]
    fn a_drop_or_stall_reconnects_at_once_then_backs_off_as_network() {
        for failure in [Failure::Dropped, Failure::Stalled] {
            let mut policy = ReconnectPolicy::new();
            assert_eq!(
                delays(&mut policy, failure, 4),
                [Duration::ZERO, MS(250), MS(500), MS(750)],
                "{failure:?}"
            );
        }
        let mut policy = ReconnectPolicy::new();
        assert_eq!(policy.next_delay(Failure::Dropped), Duration::ZERO);
        assert_eq!(policy.next_delay(Failure::Stalled), MS(250));
        assert_eq!(policy.next_delay(Failure::Network), MS(500));
    }

    #[test]
    fn only_the_first_failure_after_data_is_immediate() {
        for before in [Failure::Network, Failure::Http, Failure::RateLimited] {
            let mut policy = ReconnectPolicy::new();
            policy.next_delay(before);
            assert_ne!(
                policy.next_delay(Failure::Dropped),
                Duration::ZERO,
                "{before:?}"
            );
        }
    }

    #[test]
    fn each_kind_keeps_its_own_count() {
        let mut policy = ReconnectPolicy::new();
        let seq = [
            Failure::Network,
            Failure::Http,
            Failure::RateLimited,
            Failure::Network,
            Failure::Http,
            Failure::RateLimited,
            Failure::Dropped,
        ];
        let got: Vec<Duration> = seq.iter().map(|&f| policy.next_delay(f)).collect();
        assert_eq!(got, [MS(250), S(5), S(60), MS(500), S(10), S(120), MS(750)]);
    }

    #[test]
    fn reset_starts_every_schedule_over() {
        let mut policy = ReconnectPolicy::new();
        delays(&mut policy, Failure::Network, 5);
        delays(&mut policy, Failure::Http, 5);
        delays(&mut policy, Failure::RateLimited, 5);
        policy.reset();
        assert_eq!(policy, ReconnectPolicy::new());
        assert_eq!(policy.clone().next_delay(Failure::Dropped), Duration::ZERO);
        assert_eq!(policy.clone().next_delay(Failure::Network), MS(250));
        assert_eq!(policy.clone().next_delay(Failure::Http), S(5));
        assert_eq!(policy.clone().next_delay(Failure::RateLimited), S(60));
    }

    #[test]
    fn statuses_map_to_their_schedule_or_stop() {
        let of = |code: u16| status_failure(StatusCode::from_u16(code).unwrap());
        for code in [500, 502, 503, 504, 599, 408] {
            assert_eq!(of(code), Some(Failure::Http), "{code}");
        }
        for code in [429, 420] {
            assert_eq!(of(code), Some(Failure::RateLimited), "{code}");
        }
        for code in [400, 401, 403, 404, 406, 409, 410, 413, 416, 302] {
            assert_eq!(of(code), None, "{code}");
        }
    }
}
