use std::process::ExitCode;

use clap::Parser;
use producer::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    common::storm::spawn_flusher();
    match producer::run(args, common::shutdown::signal_received()).await {
        Ok(summary) => {
            tracing::info!("summary: {summary}");
            println!("summary: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("producer failed: {e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
