//! Requests within a store server's limits: ids, updates and records are split into
//! consecutive chunks bounded by count and by estimated bytes, sent one request after
//! another, and a write the server answers as too large (413) is sent again in halves.
//! What Chroma and Qdrant share; the embedded store writes one transaction and needs none.

use std::future::Future;

/// Ids per read, delete or metadata update request: keeps bodies and answers small.
pub(crate) const IDS_PER_REQUEST: usize = 1_000;
/// Rows per page when a store lists what a collection holds.
pub(crate) const ROWS_PER_PAGE: usize = 2_000;

/// How much one request may carry: `max_items` items whose estimated bytes add up to at
/// most `max_bytes` (an item over the byte limit by itself still goes, alone).
#[derive(Clone, Copy)]
pub(crate) struct Limits<T> {
    pub max_items: usize,
    pub max_bytes: usize,
    pub bytes_of: fn(&T) -> usize,
}

impl<T> Limits<T> {
    /// At most `max_items` a request, whatever their size (ids).
    pub(crate) fn items(max_items: usize) -> Self {
        Limits {
            max_items,
            max_bytes: usize::MAX,
            bytes_of: |_| 0,
        }
    }

    /// Consecutive runs of `items` within these limits.
    pub(crate) fn chunks<'a>(&self, items: &'a [T]) -> Vec<&'a [T]> {
        let max_items = self.max_items.max(1);
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, 0usize);
        for (i, item) in items.iter().enumerate() {
            let b = (self.bytes_of)(item);
            if i - start >= max_items || (i > start && bytes.saturating_add(b) > self.max_bytes) {
                out.push(&items[start..i]);
                start = i;
                bytes = 0;
            }
            bytes = bytes.saturating_add(b);
        }
        if start < items.len() {
            out.push(&items[start..]);
        }
        out
    }
}

/// Sends `items` a chunk within `limits` a request, one request after another, and returns
/// the answers in order; the first error ends it.
pub(crate) async fn send_in_chunks<'a, T, R, E, F, Fut>(
    items: &'a [T],
    limits: &Limits<T>,
    mut send: F,
) -> Result<Vec<R>, E>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let mut answers = Vec::new();
    for chunk in limits.chunks(items) {
        answers.push(send(chunk).await?);
    }
    Ok(answers)
}

/// Writes `records` a chunk within `limits` a request, one request after another; a chunk
/// the store refuses as too large (`too_large`, a 413: the estimate fell short of the
/// server's limit) is sent again in halves until each part is taken or one record alone is
/// refused. The first other error ends it.
pub(crate) async fn write_in_chunks<'a, T, E, F, Fut>(
    records: &'a [T],
    limits: &Limits<T>,
    mut send: F,
    too_large: impl Fn(&E) -> bool,
) -> Result<(), E>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    for chunk in limits.chunks(records) {
        let mut pending = vec![chunk];
        while let Some(part) = pending.pop() {
            match send(part).await {
                Ok(()) => {}
                Err(e) if part.len() > 1 && too_large(&e) => {
                    tracing::debug!(
                        rows = part.len(),
                        "the store answered 413; halving the write"
                    );
                    let (a, b) = part.split_at(part.len() / 2);
                    pending.push(b);
                    pending.push(a);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunks: Vec<&[usize]>) -> Vec<usize> {
        chunks.iter().map(|c| c.len()).collect()
    }

    /// Items that weigh what they say.
    fn by_value(max_items: usize, max_bytes: usize) -> Limits<usize> {
        Limits {
            max_items,
            max_bytes,
            bytes_of: |n| *n,
        }
    }

    #[test]
    fn chunks_are_bounded_by_count_and_by_bytes() {
        let items = [1usize; 7];
        assert_eq!(sizes(by_value(3, usize::MAX).chunks(&items)), [3, 3, 1]);
        assert_eq!(sizes(by_value(100, 2).chunks(&items)), [2, 2, 2, 1]);
        assert_eq!(sizes(Limits::items(1_000).chunks(&items)), [7]);
        assert!(Limits::<usize>::items(10).chunks(&[]).is_empty());
        // One item over the byte limit still goes, alone.
        assert_eq!(sizes(by_value(100, 5).chunks(&[9, 9, 1])), [1, 1, 1]);
    }

    #[tokio::test]
    async fn chunks_are_sent_in_order_until_the_first_error() {
        let items: Vec<usize> = (0..5).collect();
        let answers: Result<Vec<usize>, ()> =
            send_in_chunks(&items, &Limits::items(2), |c| async move { Ok(c.len()) }).await;
        assert_eq!(answers, Ok(vec![2, 2, 1]));
        let mut sent = Vec::new();
        let failed = send_in_chunks(&items, &Limits::items(2), |c: &[usize]| {
            sent.push(c.to_vec());
            async move {
                match c[0] {
                    2 => Err("refused"),
                    _ => Ok(()),
                }
            }
        })
        .await;
        assert_eq!(failed, Err("refused"));
        assert_eq!(
            sent,
            [vec![0, 1], vec![2, 3]],
            "nothing is sent after an error"
        );
    }

    #[tokio::test]
    async fn a_write_refused_as_too_large_is_sent_again_in_halves() {
        let records: Vec<usize> = (0..8).collect();
        let mut sent = Vec::new();
        // The server takes at most 3 records a request; anything larger is a 413.
        let result = write_in_chunks(
            &records,
            &Limits::items(8),
            |part: &[usize]| {
                sent.push(part.to_vec());
                let len = part.len();
                async move {
                    match len {
                        0..=3 => Ok(()),
                        _ => Err("413"),
                    }
                }
            },
            |e| *e == "413",
        )
        .await;
        assert_eq!(result, Ok(()));
        let taken: Vec<usize> = sent
            .iter()
            .filter(|p| p.len() <= 3)
            .flatten()
            .copied()
            .collect();
        assert_eq!(taken, records, "every record is written once, in order");

        let mut tries = 0;
        let alone = write_in_chunks(
            &records[..1],
            &Limits::items(8),
            |_: &[usize]| {
                tries += 1;
                async { Err("413") }
            },
            |e| *e == "413",
        )
        .await;
        assert_eq!(
            alone,
            Err("413"),
            "one record alone that is too large fails"
        );
        assert_eq!(tries, 1);
    }
}
