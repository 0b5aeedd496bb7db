//! The input hashes recorded in histories are pinned: a change here would make every stored
//! history look non-deterministic on replay.
//!
//! `.ci/run` also builds this file with `serde_json/preserve_order` (`tests/preserve_order/`),
//! under which a JSON object keeps its keys in insertion order: the hash must not change.

#![forbid(unsafe_code)]

use durable_runtime::history::stable_hash;
use serde_json::{json, Value};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// Values and the hashes every release has recorded for them (computed by serde_json's
/// compact writer over sorted keys, FNV-1a 64).
fn pins() -> Vec<(Value, u64)> {
    vec![
        (json!("Step 1"), 0x3579_0a5a_b545_e612),
        (json!(null), 0x5b9b_c4ba_5281_08e4),
        (json!(true), 0x5b5c_98ef_514d_bfa5),
        (json!(-17), 0xde53_da17_ddf8_5294),
        (json!(u64::MAX), 0xedf2_a76b_38fc_3c54),
        (json!(0.1), 0x4e18_dd18_1d0a_2066),
        (json!(-2.5e-300), 0x62b8_14f3_1010_d78e),
        (
            json!("quote \" backslash \\ newline \n tab \t nul \u{0} é 🦀"),
            0x4e7e_c196_21e2_d0af,
        ),
        (json!([]), 0x0961_2b07_b5ec_b5a5),
        (json!({}), 0x08f4_4b07_b590_1a25),
        (
            json!([1, "two", [3.5, null], {"k": false}]),
            0xe609_9c43_c967_7491,
        ),
        // Keys written out of order, at every depth: the hash sees them sorted.
        (
            parse(r#"{"b": 1, "a": [true, "x"]}"#),
            0x53ff_724a_f1f3_9aeb,
        ),
        (
            parse(
                r#"{"zeta": {"y": 2, "x": 1, "é": 0, "Z": 3}, "alpha": [{"d": 4, "c": 3}], "": ""}"#,
            ),
            0x686a_e45d_9b9b_fb9e,
        ),
        (
            json!(["order-1", 1_700_000_000_000u64]),
            0x8dc7_b86a_01a4_fc1f,
        ),
    ]
}

#[test]
fn hashes_are_pinned() {
    let mut wrong = Vec::new();
    for (value, pinned) in pins() {
        let actual = stable_hash(&value);
        if actual != pinned {
            wrong.push(format!("{value}: {actual:#018x}, pinned {pinned:#018x}"));
        }
    }
    assert!(wrong.is_empty(), "hashes changed:\n{}", wrong.join("\n"));
}

#[test]
fn key_order_does_not_matter_at_any_depth() {
    let a = parse(r#"{"b": 1, "a": {"d": [{"f": 1, "e": 2}], "c": null}}"#);
    let b = parse(r#"{"a": {"c": null, "d": [{"e": 2, "f": 1}]}, "b": 1}"#);
    assert_eq!(stable_hash(&a), stable_hash(&b));
    // Insertion order built up in code, as `Serialize` impls produce it.
    let mut map = serde_json::Map::new();
    map.insert("b".into(), json!(1));
    map.insert("a".into(), json!([true, "x"]));
    assert_eq!(
        stable_hash(&Value::Object(map)),
        stable_hash(&parse(r#"{"a":[true,"x"],"b":1}"#))
    );
}
