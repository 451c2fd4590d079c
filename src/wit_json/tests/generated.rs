//! Random types and values, drawn by the fuzz targets' generators from seeded bytes: every value
//! writes JSON its type's schema accepts, and reads back from that text as the same value.

use arbitrary::Unstructured;

use super::*;
use crate::fuzzing::{TypeShape, arbitrary_type, arbitrary_val, seeded_bytes};

/// The JSON fuzz targets' types, with maps keyed by any type too.
const SHAPE: TypeShape = TypeShape {
    any_map_keys: true,
    ..TypeShape::JSON
};
/// Bytes behind each type and each value: enough for strings and lists of varied lengths.
const BYTES: usize = 512;
/// Values checked in all, up to ten of each type.
const VALUES: usize = 10_000;
const VALUES_PER_TYPE: u64 = 10;

#[test]
fn generated_values_round_trip_and_match_their_schema() {
    let mut checked = 0;
    let mut case = 0u64;
    while checked < VALUES {
        assert!(case < 5000, "only {checked} values in {case} types");
        let type_seed = case << 8;
        case += 1;
        let ty = arbitrary_type(
            &mut Unstructured::new(&seeded_bytes(type_seed, BYTES)),
            &SHAPE,
        )
        .expect("a type is drawn from any bytes");
        let sch = schema(&ty);
        jsonschema::draft202012::meta::validate(&sch).unwrap_or_else(|e| panic!("{e}: {sch:#}"));
        let validator = jsonschema::draft202012::new(&sch).unwrap();
        for draw in 1..=VALUES_PER_TYPE {
            let bytes = seeded_bytes(type_seed | draw, BYTES);
            // Empty enums and variants have no values: a draw that reaches one yields none.
            let Ok(val) = arbitrary_val(&mut Unstructured::new(&bytes), &ty) else {
                continue;
            };
            let json = val_to_json(&ty, &val).unwrap_or_else(|e| panic!("{ty:?} {val:?}: {e}"));
            assert!(validator.is_valid(&json), "{json} vs {sch:#}");
            let text = json.to_string();
            let back = json_to_val(&ty, &serde_json::from_str(&text).unwrap())
                .unwrap_or_else(|e| panic!("{ty:?}: {text}: {e}"));
            assert_eq!(back, val, "{ty:?} via {text}");
            checked += 1;
        }
    }
}
