use durable_runtime::{activity, ActivityContext};

#[activity]
unsafe extern "C" fn poke(_ctx: ActivityContext) -> Result<(), String> {
    Ok(())
}

fn main() {}
