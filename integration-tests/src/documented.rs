//! What the API's answers are checked against: docs/openapi.json (the parts of JSON Schema it
//! uses) and the reference OpenMetrics parser.

use std::io::Write;
use std::path::Path;

/// The metric families in `text`, as the reference OpenMetrics parser (prometheus-client's,
/// in Python: `$OPENMETRICS_PYTHON`, or the one `.ci/run` installs) reads them; it fails on
/// text that is not OpenMetrics.
pub fn openmetrics_families(text: &str) -> Vec<String> {
    let python = std::env::var_os("OPENMETRICS_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ci-tools/venv/bin/python")
        });
    let mut child = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nfor f in parse(sys.stdin.read()): print(f.name)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run .ci/run (it installs prometheus-client), or set OPENMETRICS_PYTHON \
                 to a python with prometheus-client",
                python.display()
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("to the parser");
    let out = child.wait_with_output().expect("the parser");
    assert!(
        out.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// docs/openapi.json.
pub fn openapi() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.json"))
        .expect("docs/openapi.json is JSON")
}

/// Whether `v` is what `schema` (of `root`, the OpenAPI document) says: the parts of JSON
/// Schema the file uses (`$ref`, `oneOf`, `enum`, `type`, `minimum`, `required`,
/// `properties`, `additionalProperties: false`, `items`).
pub fn conforms(
    root: &serde_json::Value,
    v: &serde_json::Value,
    schema: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    let s = match schema["$ref"].as_str() {
        Some(r) => root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r}: not in the document")),
        None => schema,
    };
    if let Some(alternatives) = s["oneOf"].as_array() {
        let matching = alternatives
            .iter()
            .filter(|a| conforms(root, v, a, at).is_ok())
            .count();
        return if matching == 1 {
            Ok(())
        } else {
            Err(format!("{at}: {v} matches {matching} of {alternatives:?}"))
        };
    }
    if let Some(values) = s["enum"].as_array()
        && !values.contains(v)
    {
        return Err(format!("{at}: {v} is none of {values:?}"));
    }
    let types: Vec<&str> = match &s["type"] {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    };
    let is = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("type {other} in the document"),
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return Err(format!("{at}: {v} is not {types:?}"));
    }
    if let (Some(min), Some(x)) = (s["minimum"].as_f64(), v.as_f64())
        && x < min
    {
        return Err(format!("{at}: {x} is under {min}"));
    }
    if let Some(object) = v.as_object() {
        for key in s["required"].as_array().into_iter().flatten() {
            let key = key.as_str().expect("a key");
            if !object.contains_key(key) {
                return Err(format!("{at}: no {key} in {v}"));
            }
        }
        let properties = s["properties"].as_object();
        for (key, x) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => conforms(root, x, sub, &format!("{at}.{key}"))?,
                None if s["additionalProperties"] == false => {
                    return Err(format!("{at}: {key} is not in the document"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (s.get("items"), v.as_array()) {
        for (i, x) in array.iter().enumerate() {
            conforms(root, x, items, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Asserts that `answer` is the 200 answer docs/openapi.json gives `method path`.
pub fn assert_documented(
    doc: &serde_json::Value,
    method: &str,
    path: &str,
    answer: &serde_json::Value,
) {
    let schema =
        &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: no 200 JSON answer in docs/openapi.json"
    );
    if let Err(e) = conforms(doc, answer, schema, &format!("{method} {path}")) {
        panic!("docs/openapi.json disagrees with the VM: {e}");
    }
}
