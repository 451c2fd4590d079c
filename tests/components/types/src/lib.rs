//! The `types` test component: functions that together use every WIT value type, so the
//! gateway's schema generation and value conversion can be tested against real exports.

wit_bindgen::generate!({ path: "wit", world: "types" });

use exports::example::types::counters::{self, Counter, GuestCounter};
use exports::example::types::directory::{self, ParseError, Permissions, Person, Role};
use std::cell::Cell;

struct Component;

impl Guest for Component {
    fn area(s: Shape) -> f64 {
        match s {
            Shape::Circle(c) => std::f64::consts::PI * c.radius * c.radius,
            Shape::Rectangle(r) => (r.max.x - r.min.x).abs() * (r.max.y - r.min.y).abs(),
            Shape::Point => 0.0,
        }
    }

    fn scale(s: Shape, factor: f32) -> Shape {
        let factor = f64::from(factor);
        let scale_point = |p: Point| Point {
            x: p.x * factor,
            y: p.y * factor,
        };
        match s {
            Shape::Circle(c) => Shape::Circle(CircleParams {
                center: scale_point(c.center),
                radius: c.radius * factor.abs(),
            }),
            Shape::Rectangle(r) => Shape::Rectangle(Rect {
                min: scale_point(r.min),
                max: scale_point(r.max),
            }),
            Shape::Point => Shape::Point,
        }
    }

    fn negate(value: bool) -> bool {
        !value
    }

    fn echo_u64(value: u64) -> u64 {
        value
    }

    fn echo_s64(value: i64) -> i64 {
        value
    }

    fn max_u64() -> u64 {
        u64::MAX
    }

    fn min_s64() -> i64 {
        i64::MIN
    }

    fn echo_small_integers(
        a: i8,
        b: i16,
        c: i32,
        d: u8,
        e: u16,
        f: u32,
    ) -> (i8, i16, i32, u8, u16, u32) {
        (a, b, c, d, e, f)
    }

    fn echo_f32(value: f32) -> f32 {
        value
    }

    fn echo_f64(value: f64) -> f64 {
        value
    }

    fn special_f64(which: SpecialFloat) -> f64 {
        match which {
            SpecialFloat::Nan => f64::NAN,
            SpecialFloat::PositiveInfinity => f64::INFINITY,
            SpecialFloat::NegativeInfinity => f64::NEG_INFINITY,
        }
    }

    fn next_char(c: char) -> char {
        match c {
            char::MAX => '\0',
            '\u{D7FF}' => '\u{E000}',
            _ => char::from_u32(u32::from(c) + 1).unwrap_or('\0'),
        }
    }

    fn reverse_string(text: String) -> String {
        text.chars().rev().collect()
    }
}

impl directory::Guest for Component {
    fn make_person(
        name: String,
        age: u8,
        height_m: f32,
        active: bool,
        role: Role,
        permissions: Permissions,
        tags: Vec<String>,
        email: Option<String>,
    ) -> Person {
        Person {
            name,
            age,
            height_m,
            active,
            role,
            permissions,
            tags,
            email,
            address: None,
        }
    }

    fn echo_person(p: Person) -> Person {
        p
    }

    fn permissions_for(role: Role) -> Permissions {
        match role {
            Role::Admin => Permissions::all(),
            Role::Editor => Permissions::READ | Permissions::WRITE,
            Role::Viewer => Permissions::READ,
        }
    }

    fn describe_permissions(permissions: Permissions) -> Vec<String> {
        [
            (Permissions::READ, "read"),
            (Permissions::WRITE, "write"),
            (Permissions::EXECUTE, "execute"),
            (Permissions::SHARE, "share"),
        ]
        .into_iter()
        .filter(|(flag, _)| permissions.contains(*flag))
        .map(|(_, name)| name.to_string())
        .collect()
    }

    fn find_email(people: Vec<Person>, name: String) -> Option<String> {
        people.into_iter().find(|p| p.name == name)?.email
    }

    fn nested_option(depth: u8) -> Option<Option<String>> {
        match depth {
            0 => None,
            1 => Some(None),
            _ => Some(Some("deep".to_string())),
        }
    }

    fn echo_nested_option(value: Option<Option<String>>) -> Option<Option<String>> {
        value
    }

    fn validate_age(age: i32) -> Result<(), String> {
        if (0..=150).contains(&age) {
            Ok(())
        } else {
            Err(format!("age {age} is outside 0..=150"))
        }
    }

    fn parse_port(text: String) -> Result<u32, ParseError> {
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::NotANumber);
        }
        match text.parse::<u32>() {
            Ok(port) if port <= u32::from(u16::MAX) => Ok(port),
            _ => Err(ParseError::OutOfRange),
        }
    }

    fn first_word(text: String) -> Result<String, ()> {
        text.split_whitespace().next().map(str::to_string).ok_or(())
    }

    fn transpose(matrix: Vec<Vec<i32>>) -> Result<Vec<Vec<i32>>, String> {
        let width = matrix.first().map_or(0, Vec::len);
        if let Some((index, row)) = matrix.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(format!(
                "row {index} has {} elements, row 0 has {width}",
                row.len()
            ));
        }
        Ok((0..width)
            .map(|column| matrix.iter().map(|row| row[column]).collect())
            .collect())
    }

    fn empty_list() -> Vec<u32> {
        Vec::new()
    }

    fn reverse_bytes(mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }

    fn swap(pair: (String, u32)) -> (u32, String) {
        (pair.1, pair.0)
    }

    fn min_max(values: Vec<i32>) -> Option<(i32, i32)> {
        Some((*values.iter().min()?, *values.iter().max()?))
    }

    fn zip(keys: Vec<String>, values: Vec<i64>) -> Vec<(String, i64)> {
        keys.into_iter().zip(values).collect()
    }
}

impl exports::math::Guest for Component {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn divide(a: i32, b: i32) -> Result<i32, String> {
        if b == 0 {
            return Err(format!("{a} / 0: division by zero"));
        }
        a.checked_div(b)
            .ok_or_else(|| format!("{a} / {b}: the result does not fit s32"))
    }
}

/// The state behind the `counter` resource.
struct CounterState {
    value: Cell<u32>,
}

impl GuestCounter for CounterState {
    fn new(start: u32) -> Self {
        Self {
            value: Cell::new(start),
        }
    }

    fn increment(&self) -> u32 {
        let next = self.value.get().wrapping_add(1);
        self.value.set(next);
        next
    }

    fn value(&self) -> u32 {
        self.value.get()
    }
}

impl counters::Guest for Component {
    type Counter = CounterState;

    fn new_counter(start: u32) -> Counter {
        Counter::new(CounterState::new(start))
    }

    fn read_counter(c: counters::CounterBorrow<'_>) -> u32 {
        c.get::<CounterState>().value()
    }

    fn max_value() -> u32 {
        u32::MAX
    }
}

export!(Component);
