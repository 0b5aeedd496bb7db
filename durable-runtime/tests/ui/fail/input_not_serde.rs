use durable_runtime::{activity, ActivityContext};

pub struct Invoice {
    pub cents: u64,
}

#[activity]
async fn bill(_ctx: ActivityContext, invoice: Invoice) -> Result<u64, String> {
    Ok(invoice.cents)
}

fn main() {
    let _ = bill;
}
