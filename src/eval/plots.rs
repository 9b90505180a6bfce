//! Plots of a run, drawn with `plotters` into SVG files: a metric per
//! iteration per task (one line per task), and the reward histogram of each
//! iteration's samples with the filter threshold τ marked. The functions take
//! plain data, so the replay and the pipeline call them with whatever they
//! folded from the event log.
//!
//! SVG only: plotters' PNG backend needs a font file to draw text, and the
//! build keeps no system font dependency (SVG text is laid out by the
//! viewer).

use anyhow::{ensure, Context, Result};
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("drawing {}: {e:?}", path.display())
}

/// Plots show users' results: drawn into memory, then written `0600` like
/// every file of a run directory.
fn write_svg(path: &Path, svg: &str) -> Result<()> {
    store::write_private_file(path, svg.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// One point of a [`Series`]: a mean over `n` examples with the half-width
/// of its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// EM iteration (0 = the SFT checkpoint θ¹).
    pub iteration: u32,
    /// The metric's mean over the examples.
    pub mean: f64,
    /// Half-width of the 95% confidence interval of the mean ([`ci95`]).
    pub ci95: f64,
    /// Number of examples.
    pub n: usize,
}

/// The mean of `values` and the half-width of its 95% confidence interval,
/// Student's t: t₀.₉₇₅,ₙ₋₁ · s / √n (s the sample standard deviation);
/// the half-width is 0 for fewer than two values.
pub fn ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = match statrs::distribution::StudentsT::new(0.0, 1.0, (n - 1) as f64) {
        Ok(t) => statrs::distribution::ContinuousCDF::inverse_cdf(&t, 0.975) * (var / n as f64).sqrt(),
        Err(_) => 0.0,
    };
    (mean, half)
}

/// One line of [`plot_metric_per_iteration`]: a label (task) and its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label (e.g. the task name or "macro average").
    pub label: String,
    /// Points, any order.
    pub points: Vec<Point>,
}

/// Draws `metric` against the iteration, one line per series, each mean
/// with its 95% confidence interval as an error bar and its n written next
/// to it (so a reader sees whether a change is larger than the noise), into
/// an SVG file at `path` (800×500 px).
///
/// # Errors
/// No points at all, non-finite values, or a file that cannot be written.
pub fn plot_metric_per_iteration(path: &Path, metric: &str, series: &[Series]) -> Result<()> {
    let all: Vec<Point> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    ensure!(!all.is_empty(), "no points to plot for {metric}");
    ensure!(all.iter().all(|p| p.mean.is_finite() && p.ci95.is_finite()), "non-finite {metric} value");
    let max_it = all.iter().map(|p| p.iteration).max().unwrap_or(0).max(1);
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.mean - p.ci95), b.max(p.mean + p.ci95)));
    let pad = ((hi - lo) * 0.1).max(0.01);
    let e = err(path);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric} per iteration (mean, 95% CI, n)"), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.25f64..(f64::from(max_it) + 0.25), (lo - pad)..(hi + pad))
            .map_err(&e)?;
        chart.configure_mesh().x_desc("iteration").y_desc(metric).x_labels(max_it as usize + 1).draw().map_err(&e)?;
        let nseries = series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let mut pts = s.points.clone();
            pts.sort_by_key(|p| p.iteration);
            // Series side by side around each iteration so error bars do not overlap.
            let dx = (k as f64 - (nseries - 1.0) / 2.0) * 0.06;
            let xy: Vec<(f64, f64)> = pts.iter().map(|p| (f64::from(p.iteration) + dx, p.mean)).collect();
            let color = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))
                .map_err(&e)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(xy.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(&e)?;
            chart
                .draw_series(pts.iter().zip(&xy).map(|(p, (x, _))| {
                    PathElement::new(vec![(*x, p.mean - p.ci95), (*x, p.mean + p.ci95)], color.stroke_width(1))
                }))
                .map_err(&e)?;
            chart
                .draw_series(pts.iter().zip(&xy).map(|(p, (x, y))| {
                    Text::new(format!("n={}", p.n), (*x + 0.02, *y), ("sans-serif", 12).into_font().color(&color))
                }))
                .map_err(&e)?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(&e)?;
        root.present().map_err(&e)?;
    }
    write_svg(path, &svg)
}

/// Draws one reward histogram per iteration (rewards in [0, 1], `bins`
/// equal bins), stacked vertically, with a red vertical line at `tau` (the
/// filter threshold), into an SVG file at `path`.
///
/// # Errors
/// No iterations, `bins` = 0, a reward outside [0, 1] or non-finite, or a
/// file that cannot be written.
pub fn plot_reward_histograms(path: &Path, iterations: &[(u32, Vec<f32>)], tau: f32, bins: usize) -> Result<()> {
    ensure!(!iterations.is_empty(), "no iterations to plot");
    ensure!(bins > 0, "histogram needs at least one bin");
    for (it, r) in iterations {
        if let Some(bad) = r.iter().find(|x| !(0.0..=1.0).contains(*x)) {
            anyhow::bail!("iteration {it}: reward {bad} outside [0, 1]");
        }
    }
    let e = err(path);
    let height = 220 * iterations.len() as u32 + 40;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let panels = root.split_evenly((iterations.len(), 1));
        for ((it, rewards), area) in iterations.iter().zip(panels.iter()) {
            let mut counts = vec![0u32; bins];
            for r in rewards {
                let b = ((*r * bins as f32) as usize).min(bins - 1);
                counts[b] += 1;
            }
            let kept = rewards.iter().filter(|r| **r >= tau).count();
            let top = counts.iter().copied().max().unwrap_or(0).max(1);
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("iteration {it}: {} samples, {kept} with reward ≥ τ = {tau}", rewards.len()),
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f32..1f32, 0u32..top + top / 10 + 1)
                .map_err(&e)?;
            chart.configure_mesh().x_desc("reward").y_desc("samples").draw().map_err(&e)?;
            let w = 1.0 / bins as f32;
            chart
                .draw_series(counts.iter().enumerate().map(|(b, c)| {
                    let x0 = b as f32 * w;
                    Rectangle::new([(x0, 0), (x0 + w * 0.95, *c)], COLORS[0].filled())
                }))
                .map_err(&e)?;
            chart
                .draw_series(LineSeries::new(vec![(tau, 0), (tau, top + top / 10 + 1)], RED.stroke_width(2)))
                .map_err(&e)?;
        }
        root.present().map_err(&e)?;
    }
    write_svg(path, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(u32, f64)]) -> Vec<Point> {
        v.iter().map(|&(iteration, mean)| Point { iteration, mean, ci95: 0.05, n: 24 }).collect()
    }

    #[test]
    fn the_interval_is_students_t_over_root_n() {
        // scipy.stats.t.interval(0.95, 3, loc=mean, scale=sem): mean 2.5,
        // sem = 1.2910/2 = 0.6455, t(0.975, 3) = 3.1824 → half-width 2.0543.
        let (m, h) = ci95(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((h - 2.0543).abs() < 1e-3, "{h}");
        assert_eq!(ci95(&[0.4]), (0.4, 0.0));
    }

    #[test]
    fn writes_svgs_with_tau_and_series() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.svg");
        plot_metric_per_iteration(
            &p,
            "judge",
            &[
                Series { label: "email-completion".into(), points: pts(&[(0, 0.3), (1, 0.35), (2, 0.4)]) },
                Series { label: "topic-writing".into(), points: pts(&[(0, 0.2), (2, 0.3)]) },
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.contains("<svg") && svg.contains("topic-writing") && svg.contains("judge per iteration"));
        assert!(svg.contains("n=24") && svg.contains("95% CI"), "n and the interval are drawn");
        let h = dir.path().join("h.svg");
        plot_reward_histograms(&h, &[(1, vec![0.0, 0.5, 1.0, 1.0]), (2, vec![0.9, 1.0])], 1.0, 10).unwrap();
        let svg = std::fs::read_to_string(&h).unwrap();
        assert!(svg.contains("iteration 2: 2 samples, 1 with reward"), "{}", &svg[..svg.len().min(2000)]);
        // Both are private to their owner, like every file of a run directory.
        use std::os::unix::fs::PermissionsExt;
        for f in [&p, &h] {
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
        }
        assert!(plot_reward_histograms(&h, &[(1, vec![1.5])], 1.0, 10).is_err());
        assert!(plot_metric_per_iteration(&p, "x", &[]).is_err());
    }
}
