//! Verify's map of in-flight I/Os (SPDK bdevperf's `job->outstanding`):
//! one bit per I/O slot of a job's share, set while a write + read-back
//! pair is in flight there, so no two in-flight I/Os overlap.

/// The in-flight I/O slots of one verify job.
pub(crate) struct Outstanding {
    bits: Vec<u64>,
}

impl Outstanding {
    /// A map of `slots` I/O slots, none in flight.
    pub(crate) fn new(slots: u64) -> Outstanding {
        Outstanding {
            bits: vec![0; slots.div_ceil(64) as usize],
        }
    }

    fn bit(n: u64) -> (usize, u64) {
        ((n / 64) as usize, 1u64 << (n % 64))
    }

    /// From slot `n` on, the first free one, marked in flight: after `n`
    /// each candidate comes from `next` (the job's sequential cursor, as
    /// SPDK advances it). Gives up after `tries` candidates (`None`: all
    /// were in flight; the queue depth is at most the slots, so it does
    /// not happen).
    pub(crate) fn claim(
        &mut self,
        mut n: u64,
        tries: u64,
        mut next: impl FnMut() -> u64,
    ) -> Option<u64> {
        for _ in 0..tries {
            let (w, b) = Self::bit(n);
            let word = self.bits.get_mut(w)?;
            if *word & b == 0 {
                *word |= b;
                return Some(n);
            }
            n = next();
        }
        None
    }

    /// Slot `n` is no longer in flight.
    pub(crate) fn release(&mut self, n: u64) {
        let (w, b) = Self::bit(n);
        if let Some(word) = self.bits.get_mut(w) {
            *word &= !b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_in_flight_is_skipped_until_released() {
        let mut m = Outstanding::new(4);
        let mut cursor = 0u64;
        let mut next = || {
            cursor = (cursor + 1) % 4;
            cursor
        };
        assert_eq!(m.claim(0, 4, &mut next), Some(0));
        // Slot 0 is busy: the next candidate, 1, is taken instead.
        assert_eq!(m.claim(0, 4, &mut next), Some(1));
        m.release(0);
        assert_eq!(m.claim(0, 4, || 3), Some(0));
    }

    #[test]
    fn with_every_slot_in_flight_nothing_is_handed_out() {
        let mut m = Outstanding::new(2);
        assert_eq!(m.claim(0, 2, || 1), Some(0));
        assert_eq!(m.claim(1, 2, || 0), Some(1));
        assert_eq!(m.claim(0, 2, || 1), None);
    }
}
