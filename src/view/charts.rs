//! The view's charts, drawn on the server as SVG text with plotters: an
//! iteration's reward histogram by decision with the τ line, an M-step's
//! training curve, and a judge's score distribution.
//!
//! No user or model text is drawn into a chart (captions and labels are
//! numbers and fixed words), so the SVG can be placed in a page as it is.

use plotters::prelude::*;

/// The histogram's sample classes, in stacking order, with their legend
/// words and colours.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RewardClass {
    /// Kept in D_t.
    Kept,
    /// Below τ.
    BelowTau,
    /// At or above τ but over the per-input cap.
    OverCap,
    /// Dropped for a zero reward.
    ZeroReward,
    /// Dropped for having no reasoning.
    NoReasoning,
    /// Dropped for running to the token limit.
    Unfinished,
    /// No filter decision logged.
    Undecided,
}

impl RewardClass {
    /// Every class, in stacking order.
    pub const ALL: [RewardClass; 7] = [
        RewardClass::Kept,
        RewardClass::BelowTau,
        RewardClass::OverCap,
        RewardClass::ZeroReward,
        RewardClass::NoReasoning,
        RewardClass::Unfinished,
        RewardClass::Undecided,
    ];

    /// The class of a filter decision.
    pub fn of(decision: Option<events::Decision>) -> Self {
        match decision {
            Some(events::Decision::Kept) => Self::Kept,
            Some(events::Decision::BelowThreshold) => Self::BelowTau,
            Some(events::Decision::OverCap) => Self::OverCap,
            Some(events::Decision::NoReasoning) => Self::NoReasoning,
            Some(events::Decision::ZeroReward) => Self::ZeroReward,
            Some(events::Decision::Unfinished) => Self::Unfinished,
            None => Self::Undecided,
        }
    }

    /// The legend's words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::BelowTau => "below τ",
            Self::OverCap => "over the cap",
            Self::ZeroReward => "zero reward",
            Self::NoReasoning => "no reasoning",
            Self::Unfinished => "unfinished",
            Self::Undecided => "undecided",
        }
    }

    /// Fill colour.
    pub fn color(self) -> RGBColor {
        match self {
            Self::Kept => RGBColor(46, 139, 87),
            Self::BelowTau => RGBColor(150, 150, 150),
            Self::OverCap => RGBColor(230, 145, 30),
            Self::ZeroReward => RGBColor(190, 60, 60),
            Self::NoReasoning => RGBColor(140, 80, 170),
            Self::Unfinished => RGBColor(70, 110, 190),
            Self::Undecided => RGBColor(205, 205, 205),
        }
    }
}

fn svg_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// The reward histogram of one iteration: `bins` equal bins over [0, 1]
/// (wider when a reward falls outside), each bar stacked by
/// [`RewardClass`] (its colours; the page's table is the legend, so that
/// no legend box hides a bar), with a red line at `tau` when known.
/// 720×300 px.
///
/// # Errors
/// `bins` = 0, a non-finite reward, or a plotters failure.
pub fn reward_histogram(rewards: &[(f32, RewardClass)], tau: Option<f32>, bins: usize) -> anyhow::Result<String> {
    anyhow::ensure!(bins > 0, "a histogram needs at least one bin");
    if let Some((r, _)) = rewards.iter().find(|(r, _)| !r.is_finite()) {
        anyhow::bail!("reward {r} is not a finite number");
    }
    let lo = rewards.iter().map(|(r, _)| *r).fold(0f32, f32::min).min(tau.unwrap_or(0.0));
    let hi = rewards.iter().map(|(r, _)| *r).fold(1f32, f32::max).max(tau.unwrap_or(1.0));
    let width = (hi - lo) / bins as f32;
    let mut counts = vec![[0u32; RewardClass::ALL.len()]; bins];
    for (r, class) in rewards {
        let b = (((r - lo) / width) as usize).min(bins - 1);
        let c = RewardClass::ALL.iter().position(|k| k == class).unwrap_or(RewardClass::ALL.len() - 1);
        counts[b][c] += 1;
    }
    let top = counts.iter().map(|c| c.iter().sum::<u32>()).max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(svg_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0u32..top + top / 10 + 1)
            .map_err(svg_err)?;
        chart.configure_mesh().x_desc("reward").y_desc("samples").draw().map_err(svg_err)?;
        for (c, class) in RewardClass::ALL.iter().enumerate() {
            // One series per class that has samples, in stacking order.
            if counts.iter().all(|b| b[c] == 0) {
                continue;
            }
            let color = class.color();
            chart
                .draw_series(counts.iter().enumerate().filter(|(_, b)| b[c] > 0).map(|(b, stack)| {
                    let below: u32 = stack[..c].iter().sum();
                    let x0 = lo + b as f32 * width;
                    Rectangle::new([(x0, below), (x0 + width * 0.95, below + stack[c])], color.filled())
                }))
                .map_err(svg_err)?;
        }
        if let Some(tau) = tau {
            chart
                .draw_series(LineSeries::new(vec![(tau, 0), (tau, top + top / 10 + 1)], RED.stroke_width(2)))
                .map_err(svg_err)?;
        }
        root.present().map_err(svg_err)?;
    }
    Ok(svg)
}

/// An M-step's training curve: loss against optimizer step (one point per
/// `TrainingProgress` record). 720×260 px.
///
/// # Errors
/// No points, a non-finite loss, or a plotters failure.
pub fn training_curve(points: &[(u64, f32)]) -> anyhow::Result<String> {
    anyhow::ensure!(!points.is_empty(), "no training progress to draw");
    if let Some((s, l)) = points.iter().find(|(_, l)| !l.is_finite()) {
        anyhow::bail!("step {s}: loss {l} is not a finite number");
    }
    let (s0, s1) = (points.iter().map(|p| p.0).min().unwrap_or(0), points.iter().map(|p| p.0).max().unwrap_or(1));
    let l0 = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let l1 = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let pad = ((l1 - l0) * 0.1).max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(svg_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(s0 as f64..(s1.max(s0 + 1)) as f64, f64::from(l0 - pad)..f64::from(l1 + pad))
            .map_err(svg_err)?;
        chart.configure_mesh().x_desc("optimizer step").y_desc("loss").draw().map_err(svg_err)?;
        let line: Vec<(f64, f64)> = points.iter().map(|(s, l)| (*s as f64, f64::from(*l))).collect();
        chart.draw_series(LineSeries::new(line.clone(), BLUE.stroke_width(2))).map_err(svg_err)?;
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, BLUE.filled()))).map_err(svg_err)?;
        root.present().map_err(svg_err)?;
    }
    Ok(svg)
}

/// A judge's probability of each score 0..=n−1 as bars, the most probable
/// in green. 480×220 px.
///
/// # Errors
/// An empty distribution, a probability outside [0, 1], or a plotters
/// failure.
pub fn score_distribution(p: &[f32]) -> anyhow::Result<String> {
    anyhow::ensure!(!p.is_empty(), "no score distribution to draw");
    if let Some(x) = p.iter().find(|x| !(0.0..=1.0).contains(*x)) {
        anyhow::bail!("probability {x} is outside [0, 1]");
    }
    let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a))).unwrap_or(0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (480, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(svg_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d((0u32..p.len() as u32 - 1).into_segmented(), 0f32..1f32)
            .map_err(svg_err)?;
        chart.configure_mesh().disable_x_mesh().x_desc("judge score").y_desc("probability").draw().map_err(svg_err)?;
        chart
            .draw_series(p.iter().enumerate().map(|(i, &v)| {
                let color = if i == best { RGBColor(46, 139, 87) } else { RGBColor(70, 110, 180) };
                let x = i as u32;
                Rectangle::new([(SegmentValue::Exact(x), 0f32), (SegmentValue::Exact(x + 1), v)], color.filled())
            }))
            .map_err(svg_err)?;
        root.present().map_err(svg_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_stacks_classes_and_draws_tau() {
        let rewards = [(0.1, RewardClass::BelowTau), (0.95, RewardClass::Kept), (0.97, RewardClass::OverCap)];
        let svg = reward_histogram(&rewards, Some(0.9), 10).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        let fill = |c: RewardClass| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.color().0, c.color().1, c.color().2);
        for class in [RewardClass::Kept, RewardClass::BelowTau, RewardClass::OverCap] {
            assert_eq!(svg.matches(&fill(class)).count(), 1, "one bar of {class:?}: {svg}");
        }
        assert!(!svg.contains(&fill(RewardClass::NoReasoning)), "a class with no samples has no bar");
        assert!(svg.contains("#FF0000"), "no τ line");
        assert!(reward_histogram(&[(f32::NAN, RewardClass::Kept)], None, 10).is_err());
        assert!(reward_histogram(&rewards, None, 0).is_err());
    }

    #[test]
    fn curves_and_distributions_refuse_what_they_cannot_draw() {
        assert!(training_curve(&[(1, 2.5), (2, 2.0)]).unwrap().contains("optimizer step"));
        assert!(training_curve(&[]).is_err());
        assert!(training_curve(&[(1, f32::INFINITY)]).is_err());
        let svg = score_distribution(&[0.0, 0.1, 0.9]).unwrap();
        assert!(svg.matches("<rect").count() >= 3);
        assert!(score_distribution(&[]).is_err());
        assert!(score_distribution(&[1.5]).is_err());
    }
}
