//! When the next snapshot goes out: a trailing debounce after the last change of a burst,
//! capped so that a burst that never pauses is still sent soon after its first change (a
//! revoked binding must take effect within seconds, whatever the debounce window).

use std::time::Duration;

use tokio::time::Instant;

/// The longest a change waits before the snapshot that holds it is sent.
pub const MAX_SEND_DELAY: Duration = Duration::from_secs(2);

/// The pending burst of changes, if any.
#[derive(Debug, Clone)]
pub struct SendSchedule {
    debounce: Duration,
    max_delay: Duration,
    /// The first and the last change of the burst not yet sent.
    burst: Option<(Instant, Instant)>,
}

impl SendSchedule {
    pub fn new(debounce: Duration, max_delay: Duration) -> Self {
        SendSchedule {
            debounce,
            max_delay,
            burst: None,
        }
    }

    /// Something in the snapshot changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, now));
    }

    /// When the pending burst is to be sent: `debounce` after its last change, and never
    /// later than `max_delay` after its first.
    pub fn due(&self) -> Option<Instant> {
        self.burst
            .map(|(first, last)| (last + self.debounce).min(first + self.max_delay))
    }

    /// The burst is being sent: nothing is pending.
    pub fn sent(&mut self) {
        self.burst = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lone_change_is_sent_one_debounce_window_later() {
        let t0 = Instant::now();
        let mut s = SendSchedule::new(500 * MS, MAX_SEND_DELAY);
        assert_eq!(s.due(), None);
        s.changed(t0);
        assert_eq!(s.due(), Some(t0 + 500 * MS));
        s.sent();
        assert_eq!(s.due(), None);
    }

    #[test]
    fn each_change_of_a_burst_pushes_the_send_back_but_never_past_the_cap() {
        let t0 = Instant::now();
        let mut s = SendSchedule::new(500 * MS, MAX_SEND_DELAY);
        s.changed(t0);
        s.changed(t0 + 300 * MS);
        assert_eq!(s.due(), Some(t0 + 800 * MS));
        // A change every 300 ms, for ever: sent 2 s after the first.
        for i in 2..10 {
            s.changed(t0 + i * 300 * MS);
        }
        assert_eq!(s.due(), Some(t0 + MAX_SEND_DELAY));
    }

    #[test]
    fn a_debounce_window_longer_than_the_cap_waits_only_the_cap() {
        // The chart's DEBOUNCE_WINDOW_MS is 10 s: access rules must not wait that long.
        let t0 = Instant::now();
        let mut s = SendSchedule::new(Duration::from_secs(10), MAX_SEND_DELAY);
        s.changed(t0);
        assert_eq!(s.due(), Some(t0 + MAX_SEND_DELAY));
        s.sent();
        s.changed(t0 + Duration::from_secs(5));
        assert_eq!(s.due(), Some(t0 + Duration::from_secs(7)), "a new burst");
    }
}
