//! Expansion snapshots: each `tests/expand/<case>.rs` expanded and pretty-printed must equal
//! the checked-in `tests/expand/<case>.expanded.rs`.
//!
//! After an intended change to the generated code, regenerate the snapshots with
//! `DURABLE_OVERWRITE=1 cargo test -p durable-macros` and review the diff like code.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::entry;
use crate::kind::Kind;

/// Expands the attributed function in `source` the way the compiler would call the macro.
fn expand_source(source: &str) -> String {
    let mut file: syn::File = syn::parse_str(source).expect("the case parses as Rust");
    let mut output = TokenStream::new();
    for item in file.items.drain(..) {
        let syn::Item::Fn(mut function) = item else {
            output.extend(item.into_token_stream());
            continue;
        };
        let position = function.attrs.iter().position(|attr| {
            attr.path().is_ident("activity") || attr.path().is_ident("orchestrator")
        });
        let Some(position) = position else {
            output.extend(function.into_token_stream());
            continue;
        };
        let attr = function.attrs.remove(position);
        let kind = if attr.path().is_ident("activity") {
            Kind::Activity
        } else {
            Kind::Orchestrator
        };
        let args = match attr.meta {
            syn::Meta::List(list) => list.tokens,
            _ => TokenStream::new(),
        };
        output.extend(entry::attribute(kind, args, function.into_token_stream()));
    }
    let expanded: syn::File = syn::parse2(output).expect("the expansion parses as a file");
    prettyplease::unparse(&expanded)
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/expand exists")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs")
                && !path.to_string_lossy().ends_with(".expanded.rs")
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn expansions_match_snapshots() {
    let overwrite = std::env::var_os("DURABLE_OVERWRITE").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    let cases = cases();
    assert!(!cases.is_empty(), "no cases in tests/expand");
    for case in cases {
        let source = std::fs::read_to_string(&case).expect("a readable case");
        let actual = expand_source(&source);
        let snapshot = case.with_extension("expanded.rs");
        if overwrite {
            std::fs::write(&snapshot, &actual).expect("a writable snapshot");
            continue;
        }
        match std::fs::read_to_string(&snapshot) {
            Ok(expected) if expected == actual => {}
            Ok(_) => mismatches.push(format!(
                "{} differs from its expansion:\n{actual}",
                snapshot.display()
            )),
            Err(_) => mismatches.push(format!("{} is missing", snapshot.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nregenerate with DURABLE_OVERWRITE=1 cargo test -p durable-macros",
        mismatches.join("\n\n")
    );
}
