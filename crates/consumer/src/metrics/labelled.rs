//! A counter family whose label values are known in advance: each value's counter is taken
//! from the family once, so counting is an atomic add with no label lookup, and every value is
//! rendered at 0 from the start (Prometheus counts no increase into a series' first sample, so
//! an alert on `increase()` would miss the first event otherwise).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use common::metrics::Label;

#[derive(Debug)]
pub struct Labelled<const N: usize> {
    label: &'static str,
    values: [&'static str; N],
    counters: [Counter; N],
    family: Family<Label<&'static str>, Counter>,
}

impl<const N: usize> Labelled<N> {
    pub fn new(label: &'static str, values: [&'static str; N]) -> Self {
        let family = Family::<Label<&'static str>, Counter>::default();
        let counters = values.map(|value| family.get_or_create(&[(label, value)]).clone());
        Labelled {
            label,
            values,
            counters,
            family,
        }
    }

    /// The family, for the registry.
    pub fn family(&self) -> Family<Label<&'static str>, Counter> {
        self.family.clone()
    }

    /// Counts one `value`; a value outside the set (one added without updating the list)
    /// counts under `other`.
    pub fn add(&self, value: &str) {
        match self.values.iter().position(|v| *v == value) {
            Some(i) => {
                self.counters[i].inc();
            }
            None => {
                self.family.get_or_create(&[(self.label, "other")]).inc();
            }
        }
    }
}
