use std::process::ExitCode;

use clap::Parser;
use producer::Args;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    common::storm::spawn_flusher();
    let summary = producer::run(args, common::shutdown::signal_received()).await;
    common::cli::exit("producer", summary)
}
