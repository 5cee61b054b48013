//! What every binary's metrics registry holds beside its own metrics (build info, process
//! metrics), how a registry is rendered (OpenMetrics text, by `prometheus-client`), and the
//! reference of its metrics that docs/metrics.md carries, read back from that rendering so
//! the page cannot drift from the code.

use prometheus_client::encoding::text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text. Prometheus parses it (and so sees a counter's type
/// on its `_total` samples); the Pushgateway parses it as its text format, which it is for
/// gauges (an OpenMetrics counter's `# TYPE` line would not name its samples there).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label set of a family with one label.
pub type Label<V> = [(&'static str, V); 1];

/// `<binary>_build_info{version, revision} 1`: which build is running. The revision is
/// `BUILD_REVISION` at compile time (an image build passes the commit), `unknown` without it,
/// so that a build from a source tarball stays reproducible.
pub fn build_info(
    registry: &mut Registry,
    binary: &str,
    version: &'static str,
    revision: Option<&'static str>,
) {
    let info = Family::<[(&'static str, &'static str); 2], Gauge>::default();
    info.get_or_create(&[
        ("version", version),
        ("revision", revision.unwrap_or("unknown")),
    ])
    .set(1);
    registry.register(
        format!("{binary}_build_info"),
        "1, labelled with the version and revision of the running build",
        info,
    );
}

/// The standard `process_*` metrics (resident and virtual memory, CPU seconds, open and
/// maximum file descriptors, threads, start time), read from /proc at each scrape. On other
/// systems only the start time and uptime: the crate reads Linux's /proc.
pub fn process(registry: &mut Registry) {
    #[cfg(not(target_os = "linux"))]
    tracing::info!(
        "process metrics: only the start time and uptime on this system (the collector reads \
         Linux's /proc)"
    );
    if let Err(e) =
        kubert_prometheus_process::register(registry.sub_registry_with_prefix("process"))
    {
        tracing::warn!("process metrics unavailable: {e} (is /proc mounted?)");
    }
}

/// The registry as OpenMetrics text, `# EOF` included.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a metric.
    if let Err(e) = text::encode(&mut out, registry) {
        tracing::error!("metrics could not be rendered: {e}");
    }
    out
}

/// One metric family as a reader of docs/metrics.md needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// As queried: a counter's samples carry `_total`.
    pub name: String,
    pub kind: String,
    pub labels: Vec<String>,
    pub help: String,
}

/// The families of a rendered registry, in order, with the label names their samples carry
/// (`le` of a histogram's buckets left out: every histogram has it).
pub fn describe(rendered: &str) -> Vec<Described> {
    let mut families: Vec<Described> = Vec::new();
    let mut helps = std::collections::HashMap::new();
    for line in rendered.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            helps.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            families.push(Described {
                name: match kind {
                    "counter" => format!("{name}_total"),
                    _ => name.to_string(),
                },
                kind: kind.to_string(),
                labels: Vec::new(),
                help: helps.remove(name).unwrap_or_default(),
            });
        } else if let (Some(family), Some((_, labels))) =
            (families.last_mut(), line.split_once('{'))
        {
            let labels = labels.split('}').next().unwrap_or("");
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let key = pair.split('=').next().unwrap_or("").to_string();
                if key != "le" && !family.labels.contains(&key) {
                    family.labels.push(key);
                }
            }
        }
    }
    families
}

/// A markdown table of `families`, for docs/metrics.md.
pub fn reference_table(families: &[Described]) -> String {
    let mut out = String::from("| Name | Type | Labels | Meaning |\n| --- | --- | --- | --- |\n");
    for f in families {
        let labels = if f.labels.is_empty() {
            String::new()
        } else {
            f.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.name,
            f.kind,
            labels,
            f.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn build_info_and_a_counter_render_and_describe_themselves() {
        let mut registry = Registry::default();
        build_info(&mut registry, "thing", "1.2.3", None);
        let counter = Counter::<u64>::default();
        registry.register("thing_events", "Events | seen", counter.clone());
        counter.inc();
        let text = render(&registry);
        assert!(
            text.contains("thing_build_info{version=\"1.2.3\",revision=\"unknown\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nthing_events_total 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let described = describe(&text);
        assert_eq!(
            described,
            vec![
                Described {
                    name: "thing_build_info".into(),
                    kind: "gauge".into(),
                    labels: vec!["version".into(), "revision".into()],
                    help: "1, labelled with the version and revision of the running build.".into(),
                },
                Described {
                    name: "thing_events_total".into(),
                    kind: "counter".into(),
                    labels: vec![],
                    help: "Events | seen.".into(),
                },
            ]
        );
        assert!(reference_table(&described)
            .contains("| `thing_events_total` | counter |  | Events \\| seen. |\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_have_the_standard_names() {
        let mut registry = Registry::default();
        process(&mut registry);
        let text = render(&registry);
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(&format!("\n{name}")), "{name}: {text}");
        }
    }
}
