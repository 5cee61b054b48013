use std::process::ExitCode;
use std::sync::Arc;

use consumer::metrics::Metrics;
use consumer::Args;

async fn await_run(args: Args, wait: consumer::cli::AwaitArgs) -> ExitCode {
    let group = args.group_id.clone();
    let done = tokio::task::spawn_blocking(move || consumer::await_run::run(&args, &wait)).await;
    let summary = done.map_err(anyhow::Error::from).and_then(|r| r).map(|o| {
        format!(
            "{} users written to Cassandra in {:.1} s (group {group})",
            o.written, o.seconds
        )
    });
    common::cli::exit("await-run", summary)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = common::cli::parse();
    if args.healthcheck {
        return match consumer::http::check(args.http_addr).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    args.log.init();
    common::storm::spawn_flusher();
    if let Some(consumer::cli::Command::AwaitRun(wait)) = args.command.clone() {
        return await_run(args, wait).await;
    }
    let metrics = Arc::new(Metrics::new());
    let listener = match consumer::http::bind(args.http_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(consumer::http::serve(listener, metrics.clone()));
    let summary = consumer::run(args, metrics, common::shutdown::signal_received()).await;
    common::cli::exit("consumer", summary)
}
