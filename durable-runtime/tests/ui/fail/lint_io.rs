use std::net::TcpStream;

use durable_runtime::{orchestrator, OrchestrationContext};

// Stands in for the `reqwest` crate.
mod reqwest {
    pub async fn get(_url: &str) -> Result<String, String> {
        Ok(String::new())
    }
}

#[orchestrator]
async fn sync_inventory(_ctx: OrchestrationContext) -> Result<String, String> {
    let config = std::fs::read_to_string("inventory.toml").map_err(|e| e.to_string())?;
    let _ = tokio::fs::write("copy.toml", &config).await;
    let _ = TcpStream::connect("warehouse:9000");
    let body = reqwest::get("https://warehouse/stock").await?;
    Ok(config + &body)
}

fn main() {
    let _ = sync_inventory;
}
