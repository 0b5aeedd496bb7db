//! The POC's two workflows written with durable, served over HTTP (arrives with the demo issue).

fn main() {
    println!("durable demo: the POC's workflows and HTTP API arrive with the demo issue.");
    println!("Meanwhile, `cargo test --workspace` runs them end to end on a virtual clock.");
}
