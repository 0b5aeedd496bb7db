//! Guards the other test of this package against testing nothing: here JSON objects must keep
//! their keys in insertion order.

#![forbid(unsafe_code)]

#[test]
fn maps_keep_insertion_order() {
    let value: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["b", "a"], "serde_json/preserve_order is off");
}
