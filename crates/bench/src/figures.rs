//! Rounds of one measurement, and how they are reported: every round, the mean and the
//! spread, so a reader can tell a real difference from the machine's drift.

/// One figure measured once per round.
#[derive(Debug, Default, Clone)]
pub struct Series(Vec<f64>);

impl Series {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    /// "mean (min–max, ±spread%)" with `digits` decimals.
    pub fn describe(&self, digits: usize) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let spread = (max - min) / 2.0 / self.mean().abs().max(f64::MIN_POSITIVE) * 100.0;
        format!(
            "{:.digits$} ({min:.digits$}–{max:.digits$}, ±{spread:.0}%)",
            self.mean()
        )
    }
}

/// A comparison's lines: both means (`digits` decimals) with their spread, and the ratio
/// of the means with the spread of the per-round ratios, against `goal` (e.g. ">= 0.90").
/// Each side is (its name, its rounds).
pub fn report(
    what: &str,
    (name, ours): (&str, &Series),
    (base_name, base): (&str, &Series),
    unit: &str,
    digits: usize,
    goal: &str,
) {
    let ratios = Series(ours.0.iter().zip(&base.0).map(|(p, b)| p / b).collect());
    let width = name.len().max(base_name.len()).max("ratio".len());
    println!("{what}: {name:<width$} {} {unit}", ours.describe(digits));
    println!(
        "{what}: {base_name:<width$} {} {unit}",
        base.describe(digits)
    );
    println!(
        "{what}: {:<width$} {:.2} (per round {}; goal {goal})",
        "ratio",
        ours.mean() / base.mean(),
        ratios.describe(2)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_reads_as_mean_range_and_half_the_range_in_percent() {
        let mut rows = Series::default();
        for v in [90.0, 110.0, 100.0] {
            rows.push(v);
        }
        assert_eq!(rows.mean(), 100.0);
        assert_eq!(rows.describe(0), "100 (90–110, ±10%)");
        assert_eq!(Series::default().mean(), 0.0);
    }
}
