use durable_runtime::{activity, ActivityContext};

/// Resizes the image on the blocking thread pool.
#[activity(blocking)]
pub fn resize(ctx: ActivityContext, (width, height): (u32, u32)) -> Result<Vec<u8>, std::io::Error> {
    let _ = ctx.attempt();
    Ok(vec![0; (width * height) as usize])
}

#[activity(blocking)]
fn checksum(_ctx: ActivityContext) -> Result<u32, String> {
    Ok(0)
}
