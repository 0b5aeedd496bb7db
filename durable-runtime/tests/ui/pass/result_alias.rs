//! Return types that are aliases of `Result`: `anyhow::Result<T>`, `std::io::Result<T>`, a
//! local alias ending in `Result`; and context types written with their full path.

use durable_runtime::{activity, orchestrator, Runtime};

type FormatResult<T> = Result<T, std::fmt::Error>;

#[activity]
async fn read_config(
    _ctx: durable_runtime::ActivityContext,
    key: String,
) -> std::io::Result<String> {
    Ok(key)
}

#[activity]
async fn format_it(_ctx: durable_runtime::ActivityContext, n: u64) -> FormatResult<String> {
    Ok(n.to_string())
}

#[orchestrator]
async fn configure(
    ctx: durable_runtime::OrchestrationContext,
    key: String,
) -> anyhow::Result<String> {
    let value = ctx.call(read_config, key).await?;
    let n = ctx.call(format_it, 7).await?;
    Ok(format!("{value}{n}"))
}

fn main() {
    let _builder = Runtime::builder()
        .activity(read_config)
        .activity(format_it)
        .orchestrator(configure);
}
