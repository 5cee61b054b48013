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

/// The exit code of a run that `signal` stopped before its goal: 128 + the signal's number, as
/// a shell reports a process that signal killed (130 for SIGINT, 143 for SIGTERM), so a
/// supervisor tells "interrupted" from "failed" (1) and "done" (0), though the run itself
/// stopped cleanly.
pub fn exit_code(signal: &str) -> u8 {
    match signal {
        "SIGINT" => 130,
        _ => 143,
    }
}
