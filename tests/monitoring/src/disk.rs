//! The machine's own disks, measured beside Prometheus: `df` sampled through a test, so that a
//! disk alert can be told apart as true (this machine's disk really was that full, e.g. while
//! the image builds that run beside the healthy test filled it) or false (the rule or the
//! exporter is wrong). A true one is the machine's state, not the pipeline's; a false one still
//! fails the test.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Alerts about a filesystem's free share, whose threshold is read from the rules file.
const DISK_ALERTS: [&str; 2] = ["DiskSpaceLow", "DiskNearlyFull"];
const RULES: &str = "docker/monitoring/prometheus/rules/services.rules.yml";
/// Finer than Prometheus' 15 s scrape, so a dip that lasted an alert's `for:` is seen.
const EVERY: Duration = Duration::from_secs(5);

/// The lowest free share (available over used + available, as `df` and the rules count it)
/// each mountpoint showed since [`DiskWatch::start`].
#[derive(Debug)]
pub struct DiskWatch {
    lowest: Arc<Mutex<HashMap<String, f64>>>,
    /// (alert, mountpoint) already reported as true, so a polling caller says it once.
    said: Mutex<HashSet<(String, String)>>,
    thresholds: HashMap<&'static str, f64>,
    task: tokio::task::JoinHandle<()>,
}

impl DiskWatch {
    pub fn start() -> DiskWatch {
        let rules_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(RULES);
        let rules = std::fs::read_to_string(&rules_path)
            .unwrap_or_else(|e| panic!("{}: {e}", rules_path.display()));
        let thresholds = DISK_ALERTS
            .iter()
            .map(|&name| (name, threshold(&rules, name)))
            .collect();
        let lowest = Arc::new(Mutex::new(HashMap::new()));
        let sink = lowest.clone();
        let task = tokio::spawn(async move {
            loop {
                let sample = free_shares().await;
                {
                    let mut lowest = sink.lock().expect("disk samples");
                    for (mount, share) in sample {
                        let low = lowest.entry(mount).or_insert(share);
                        *low = f64::min(*low, share);
                    }
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        DiskWatch {
            lowest,
            said: Mutex::new(HashSet::new()),
            thresholds,
            task,
        }
    }

    /// Whether an alert (its labels) is a disk alert that `df` confirms: its mountpoint was
    /// under the rule's threshold at some sample. Says so, once per alert and mountpoint.
    pub fn confirms(&self, labels: &Value) -> bool {
        let name = labels["alertname"].as_str().unwrap_or_default();
        let Some(&threshold) = self.thresholds.get(name) else {
            return false;
        };
        let mount = labels["mountpoint"].as_str().unwrap_or_default();
        let lowest = self
            .lowest
            .lock()
            .expect("disk samples")
            .get(mount)
            .copied();
        match lowest {
            Some(share) if share < threshold => {
                let first = self
                    .said
                    .lock()
                    .expect("said")
                    .insert((name.to_string(), mount.to_string()));
                if !first {
                    return true;
                }
                println!(
                    "{name} on {mount} is true of this machine (df saw {:.1} % free, the rule's \
                     threshold is {:.0} %): the machine's disk, not the pipeline",
                    share * 100.0,
                    threshold * 100.0
                );
                true
            }
            _ => false,
        }
    }
}

impl Drop for DiskWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The number after `<` in the named alert's expression.
fn threshold(rules: &str, alert: &str) -> f64 {
    let block = rules
        .split("- alert: ")
        .find(|b| b.starts_with(alert) && b[alert.len()..].starts_with(char::is_whitespace))
        .unwrap_or_else(|| panic!("{RULES} has no alert {alert}"));
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("< ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{alert} in {RULES}: no `< threshold` line"))
}

/// Each real filesystem's available / (used + available), from `df` in bytes.
async fn free_shares() -> Vec<(String, f64)> {
    let out = tokio::process::Command::new("df")
        .args(["-P", "-B1", "-x", "tmpfs", "-x", "ramfs", "-x", "devtmpfs"])
        .output()
        .await
        .expect("run df");
    parse_df(&String::from_utf8_lossy(&out.stdout))
}

fn parse_df(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (used, avail): (f64, f64) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
            let mount = f.get(5..)?.join(" ");
            (used + avail > 0.0).then(|| (mount, avail / (used + avail)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_thresholds_are_read() {
        let rules = "      - alert: DiskSpaceLow\n        expr: |\n          a\n          < 0.15\n\
                     \n      - alert: DiskNearlyFull\n        expr: |\n          a\n          < 0.05\n";
        assert_eq!(threshold(rules, "DiskSpaceLow"), 0.15);
        assert_eq!(threshold(rules, "DiskNearlyFull"), 0.05);
    }

    #[test]
    fn the_real_rules_have_both_thresholds() {
        let rules = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(RULES),
        )
        .expect("rules file");
        for name in DISK_ALERTS {
            let t = threshold(&rules, name);
            assert!(t > 0.0 && t < 1.0, "{name}: {t}");
        }
    }

    #[test]
    fn df_counts_free_as_the_rules_do() {
        let df = "Filesystem 1-blocks Used Available Capacity Mounted on\n\
                  /dev/vda 252000 77000 15000 84% /\n\
                  /dev/vdb 100 0 0 0% /mnt/my disk\n";
        let shares = parse_df(df);
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].0, "/");
        assert!((shares[0].1 - 15.0 / 92.0).abs() < 1e-9);
    }
}
