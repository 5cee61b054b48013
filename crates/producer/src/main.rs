use std::process::ExitCode;

use clap::Parser;
use producer::Args;

#[tokio::main]
async fn main() -> ExitCode {
    common::memory::keep_freed_memory();
    let args = Args::parse();
    args.log.init();
    common::storm::spawn_flusher();
    let pushgateway = args.pushgateway_url.clone();
    let summary = producer::run(args, common::shutdown::signal_received()).await;
    if let Some(url) = &pushgateway {
        producer::push::outcome(url, &summary).await;
    }
    common::cli::exit("producer", summary)
}
