use durable_runtime::activity;

#[activity]
async fn resize(image: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(image)
}

fn main() {}
