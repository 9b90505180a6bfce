//! The learning-rate schedule of the paper (Appendix B): linear warm-up over
//! `warmup_steps`, then linear decay to `final_lr_fraction` × the peak at
//! `max_steps`.

/// Linear warm-up then linear decay; a pure function of the step number, so
/// resuming needs only the step.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LinearSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps (W).
    pub warmup_steps: u64,
    /// Total steps (S).
    pub max_steps: u64,
    /// Learning rate at step S as a fraction of the peak (f).
    pub final_fraction: f64,
}

impl LinearSchedule {
    /// The learning rate of optimiser step `step` (1-based: the first update
    /// is step 1).
    ///
    /// `step ≤ W`: `peak · step / W`; after: `peak · (1 − (1 − f) · (step − W)
    /// / (S − W))`, so step S gets `f · peak`. Steps past S stay at `f · peak`.
    pub fn lr(&self, step: u64) -> f64 {
        let step = step.max(1);
        if step <= self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps as f64;
        }
        let span = self.max_steps.saturating_sub(self.warmup_steps);
        if span == 0 {
            return self.peak;
        }
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.peak * (1.0 - (1.0 - self.final_fraction) * progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_peak_and_floor() {
        let s = LinearSchedule { peak: 5e-6, warmup_steps: 250, max_steps: 10_000, final_fraction: 0.1 };
        assert!((s.lr(1) - 5e-6 / 250.0).abs() < 1e-18);
        assert!((s.lr(125) - 2.5e-6).abs() < 1e-15);
        assert!((s.lr(250) - 5e-6).abs() < 1e-15);
        assert!(s.lr(251) < 5e-6 && s.lr(251) > 4.99e-6);
        assert!((s.lr(10_000) - 5e-7).abs() < 1e-15);
        assert!((s.lr(20_000) - 5e-7).abs() < 1e-15);
        let mid = 250 + (10_000 - 250) / 2;
        assert!((s.lr(mid) - 5e-6 * 0.55).abs() < 1e-9);
    }

    #[test]
    fn no_warmup() {
        let s = LinearSchedule { peak: 1e-4, warmup_steps: 0, max_steps: 4, final_fraction: 0.1 };
        let lrs: Vec<f64> = (1..=4).map(|t| s.lr(t)).collect();
        let want = [1e-4 * (1.0 - 0.9 * 0.25), 1e-4 * (1.0 - 0.9 * 0.5), 1e-4 * (1.0 - 0.9 * 0.75), 1e-5];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }
}
