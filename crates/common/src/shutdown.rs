use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGTERM (Compose, Airflow) or SIGINT (Ctrl-C).
pub async fn signal_received() -> &'static str {
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
