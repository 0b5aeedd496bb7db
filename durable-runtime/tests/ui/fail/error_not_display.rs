use durable_runtime::{activity, ActivityContext};

#[derive(Debug)]
pub enum BillingError {
    Declined,
}

#[activity]
async fn bill(_ctx: ActivityContext, cents: u64) -> Result<u64, BillingError> {
    if cents == 0 {
        return Err(BillingError::Declined);
    }
    Ok(cents)
}

fn main() {
    let _ = bill;
}
