use durable_runtime::{activity, ActivityContext};

#[activity]
async fn shout<'a>(_ctx: ActivityContext, text: String) -> Result<String, String>
where
    'a: 'static,
{
    Ok(text.to_uppercase())
}

fn main() {}
