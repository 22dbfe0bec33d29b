//! The size of an answer: every tool's answer is cut to [`MAX_ANSWER_BYTES`] of JSON (what
//! the client receives, once as structured content and once as its text), by the tool's own
//! rule of what goes first (the lowest-ranked answer, the longest list).

use serde::Serialize;

/// Serialized answers are cut to this size: about 4,000 tokens (docs/agents.md).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The length of `answer`'s JSON, as the client receives it.
pub fn json_len<T: Serialize>(answer: &T) -> usize {
    serde_json::to_string(answer).map_or(usize::MAX, |s| s.len())
}

/// Cuts `answer` with `cut` (one step each call; false when there is nothing left to cut)
/// until its JSON fits [`MAX_ANSWER_BYTES`]; true when it fits.
pub fn fit<T: Serialize>(answer: &mut T, mut cut: impl FnMut(&mut T) -> bool) -> bool {
    loop {
        if json_len(answer) <= MAX_ANSWER_BYTES {
            return true;
        }
        if !cut(answer) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_cut_step_by_step_until_it_fits() {
        let mut items: Vec<String> = (0..100).map(|i| format!("{i:0>400}")).collect();
        assert!(fit(&mut items, |v| v.pop().is_some()));
        assert!(json_len(&items) <= MAX_ANSWER_BYTES);
        assert!(
            json_len(&items) > MAX_ANSWER_BYTES - 450,
            "cut no more than needed"
        );
        let mut stuck = "x".repeat(20_000);
        assert!(!fit(&mut stuck, |_| false));
    }
}
