//! [`map`]: a function applied to every item on at most `concurrency`
//! threads at once, results in item order: how one worker keeps a server's
//! continuous batching fed with several requests in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` of each item of `items`, in order, run on `concurrency` scoped
/// threads (1: on this thread). Every item is run, even after one fails.
pub fn map<T: Sync, R: Send>(items: &[T], concurrency: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = concurrency.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *slots[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).expect("every item was run"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_item_order_whatever_the_concurrency() {
        let items: Vec<u64> = (0..50).collect();
        for c in [1, 3, 8, 100] {
            let out = super::map(&items, c, |x| {
                std::thread::sleep(std::time::Duration::from_micros(50 - x));
                x * 2
            });
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "concurrency {c}");
        }
        assert!(super::map(&Vec::<u8>::new(), 4, |x| *x).is_empty());
    }
}
