use std::process::ExitCode;

use producer::Args;

#[tokio::main]
async fn main() -> ExitCode {
    common::memory::keep_freed_memory();
    let args: Args = common::cli::parse();
    args.log.init();
    common::storm::spawn_flusher();
    let pushgateway = args.pushgateway_url.clone();
    let summary = producer::run(args, common::shutdown::signal_received()).await;
    if let Some(url) = &pushgateway {
        producer::push::outcome(url, &summary).await;
    }
    let interrupted = producer::run::interrupted_by(&summary);
    let code = common::cli::exit("producer", summary);
    interrupted.map_or(code, |signal| {
        ExitCode::from(common::shutdown::exit_code(signal))
    })
}
