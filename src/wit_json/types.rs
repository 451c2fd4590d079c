//! Our own model of WIT value types, and how it is built from a `wit_parser::Resolve`.
//!
//! The model is independent of wasmtime's type handles so that tests and fuzzers can build types
//! by hand, and it holds only what the JSON side needs: the structure, the names and the docs.
//! Aliases are resolved away while building; everything that cannot cross a JSON boundary
//! (resources, futures, streams, error contexts) is refused with a reason naming where it sits.

use wit_parser::{Handle, Resolve, Type, TypeDefKind};

/// The deepest type nesting we accept. Real signatures are a handful of levels deep; the limit
/// keeps every recursive walk over a type (here, in the schema and in the converters) bounded.
pub const MAX_TYPE_DEPTH: usize = 100;

/// The most type nodes one signature may expand to. WIT types are DAGs (a named type can be used
/// many times) but our model is a tree, so a small hostile WIT could otherwise expand
/// exponentially.
pub const MAX_TYPE_NODES: usize = 100_000;

/// A WIT value type.
#[derive(Debug, Clone, PartialEq)]
pub enum WitType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<WitType>),
    /// `list<T, N>`: exactly `N` elements.
    FixedList(Box<WitType>, u32),
    /// `map<K, V>`.
    Map(Box<WitType>, Box<WitType>),
    Tuple(Vec<WitType>),
    Record(Record),
    Variant(Variant),
    Enum(Enum),
    Option(Box<WitType>),
    Result {
        ok: Option<Box<WitType>>,
        err: Option<Box<WitType>>,
    },
    Flags(Flags),
}

impl WitType {
    /// Every scalar type, in WIT's order: what generators of arbitrary types pick leaves from.
    pub const SCALARS: [WitType; 13] = [
        WitType::Bool,
        WitType::S8,
        WitType::U8,
        WitType::S16,
        WitType::U16,
        WitType::S32,
        WitType::U32,
        WitType::S64,
        WitType::U64,
        WitType::F32,
        WitType::F64,
        WitType::Char,
        WitType::String,
    ];
}

/// A `record`. Field order is declaration order, which is also the order wasmtime expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: Option<String>,
    pub docs: Option<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub docs: Option<String>,
    pub ty: WitType,
}

/// A `variant`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: Option<String>,
    pub docs: Option<String>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub docs: Option<String>,
    pub ty: Option<WitType>,
}

/// An `enum`.
#[derive(Debug, Clone, PartialEq)]
pub struct Enum {
    pub name: Option<String>,
    pub docs: Option<String>,
    pub cases: Vec<Named>,
}

/// A `flags` type.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub name: Option<String>,
    pub docs: Option<String>,
    pub names: Vec<Named>,
}

/// An enum case or a flag: a name with its docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub docs: Option<String>,
}

/// What a function takes and returns, in our model.
#[derive(Debug, Clone, PartialEq)]
pub struct FuncSignature {
    pub name: String,
    pub docs: Option<String>,
    pub params: Vec<Param>,
    pub result: Option<WitType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: WitType,
}

/// A function whose signature cannot be expressed in JSON, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("function `{function}` cannot be called with JSON: {reason}")]
pub struct Unsupported {
    pub function: String,
    /// Names the parameter (or the result) and the place inside its type, e.g.
    /// "parameter `c`: resource `counter` cannot be passed as JSON".
    pub reason: String,
}

impl WitType {
    /// The WIT spelling of this type, abbreviated for nested types; used in error messages.
    /// The name and bounds of an integer type for "expected …" messages (`u8 (0..=255)`);
    /// `None` for any other type.
    pub fn integer_range(&self) -> Option<String> {
        let (min, max): (i128, i128) = match self {
            WitType::S8 => (i8::MIN.into(), i8::MAX.into()),
            WitType::U8 => (u8::MIN.into(), u8::MAX.into()),
            WitType::S16 => (i16::MIN.into(), i16::MAX.into()),
            WitType::U16 => (u16::MIN.into(), u16::MAX.into()),
            WitType::S32 => (i32::MIN.into(), i32::MAX.into()),
            WitType::U32 => (u32::MIN.into(), u32::MAX.into()),
            WitType::S64 => (i64::MIN.into(), i64::MAX.into()),
            WitType::U64 => (u64::MIN.into(), u64::MAX.into()),
            _ => return None,
        };
        Some(format!("{} ({min}..={max})", self.wit_name()))
    }

    pub fn wit_name(&self) -> String {
        match self {
            WitType::Bool => "bool".into(),
            WitType::S8 => "s8".into(),
            WitType::U8 => "u8".into(),
            WitType::S16 => "s16".into(),
            WitType::U16 => "u16".into(),
            WitType::S32 => "s32".into(),
            WitType::U32 => "u32".into(),
            WitType::S64 => "s64".into(),
            WitType::U64 => "u64".into(),
            WitType::F32 => "f32".into(),
            WitType::F64 => "f64".into(),
            WitType::Char => "char".into(),
            WitType::String => "string".into(),
            WitType::List(_) => "list".into(),
            WitType::FixedList(_, n) => format!("list<_, {n}>"),
            WitType::Map(..) => "map".into(),
            WitType::Tuple(items) => format!("tuple of {}", items.len()),
            WitType::Record(r) => named("record", &r.name),
            WitType::Variant(v) => named("variant", &v.name),
            WitType::Enum(e) => named("enum", &e.name),
            WitType::Option(_) => "option".into(),
            WitType::Result { .. } => "result".into(),
            WitType::Flags(f) => named("flags", &f.name),
        }
    }
}

fn named(kind: &str, name: &Option<String>) -> String {
    match name {
        Some(name) => format!("{kind} `{name}`"),
        None => kind.to_string(),
    }
}

/// Builds our model of `func`'s signature from the `resolve` it belongs to.
///
/// Fails with [`Unsupported`] when a parameter or the result uses a type that has no JSON form
/// (resources, futures, streams, error contexts), or a type deeper than [`MAX_TYPE_DEPTH`] or
/// larger than [`MAX_TYPE_NODES`]. Never panics, even on an inconsistent `Resolve`.
pub fn signature(
    resolve: &Resolve,
    func: &wit_parser::Function,
) -> Result<FuncSignature, Unsupported> {
    let mut builder = Builder { resolve, nodes: 0 };
    let unsupported = |whose: String, problem: Problem| Unsupported {
        function: func.name.clone(),
        reason: problem.describe(&whose),
    };
    let mut params = Vec::with_capacity(func.params.len());
    for param in &func.params {
        let ty = builder
            .build(&param.ty, 0)
            .map_err(|p| unsupported(format!("parameter `{}`", param.name), p))?;
        params.push(Param {
            name: param.name.clone(),
            ty,
        });
    }
    let result = match &func.result {
        Some(ty) => Some(
            builder
                .build(ty, 0)
                .map_err(|p| unsupported("result".into(), p))?,
        ),
        None => None,
    };
    Ok(FuncSignature {
        name: func.name.clone(),
        docs: func.docs.contents.clone(),
        params,
        result,
    })
}

/// Why a type could not be built, and where (a path inside the parameter's type, innermost
/// segment last once unwound).
struct Problem {
    at: Vec<String>,
    what: String,
}

impl Problem {
    fn new(what: String) -> Self {
        Problem {
            at: Vec::new(),
            what,
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.at.push(segment);
        self
    }

    fn describe(&self, whose: &str) -> String {
        if self.at.is_empty() {
            format!("{whose}: {}", self.what)
        } else {
            let at: String = self.at.iter().rev().map(String::as_str).collect();
            format!("{whose} at `{at}`: {}", self.what)
        }
    }
}

struct Builder<'a> {
    resolve: &'a Resolve,
    nodes: usize,
}

impl Builder<'_> {
    fn build(&mut self, ty: &Type, depth: usize) -> Result<WitType, Problem> {
        if depth > MAX_TYPE_DEPTH {
            return Err(Problem::new(format!(
                "type nesting deeper than {MAX_TYPE_DEPTH} levels"
            )));
        }
        self.nodes += 1;
        if self.nodes > MAX_TYPE_NODES {
            return Err(Problem::new(format!(
                "the signature's types expand to more than {MAX_TYPE_NODES} nodes"
            )));
        }
        Ok(match ty {
            Type::Bool => WitType::Bool,
            Type::U8 => WitType::U8,
            Type::U16 => WitType::U16,
            Type::U32 => WitType::U32,
            Type::U64 => WitType::U64,
            Type::S8 => WitType::S8,
            Type::S16 => WitType::S16,
            Type::S32 => WitType::S32,
            Type::S64 => WitType::S64,
            Type::F32 => WitType::F32,
            Type::F64 => WitType::F64,
            Type::Char => WitType::Char,
            Type::String => WitType::String,
            Type::ErrorContext => {
                return Err(Problem::new(
                    "`error-context` cannot be passed as JSON".into(),
                ));
            }
            Type::Id(id) => {
                let Some(def) = self.resolve.types.get(*id) else {
                    return Err(Problem::new("reference to an unknown type".into()));
                };
                self.build_def(def, depth)?
            }
        })
    }

    fn boxed(&mut self, ty: &Type, depth: usize, segment: &str) -> Result<Box<WitType>, Problem> {
        self.build(ty, depth + 1)
            .map(Box::new)
            .map_err(|p| p.within(segment.to_string()))
    }

    fn build_def(&mut self, def: &wit_parser::TypeDef, depth: usize) -> Result<WitType, Problem> {
        let name = def.name.clone();
        let docs = def.docs.contents.clone();
        Ok(match &def.kind {
            // An alias: the target carries the structure (and its own docs).
            TypeDefKind::Type(target) => self.build(target, depth + 1)?,
            TypeDefKind::Record(record) => {
                let mut fields = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    let ty = self
                        .build(&field.ty, depth + 1)
                        .map_err(|p| p.within(format!(".{}", field.name)))?;
                    fields.push(Field {
                        name: field.name.clone(),
                        docs: field.docs.contents.clone(),
                        ty,
                    });
                }
                WitType::Record(Record { name, docs, fields })
            }
            TypeDefKind::Variant(variant) => {
                let mut cases = Vec::with_capacity(variant.cases.len());
                for case in &variant.cases {
                    let ty = match &case.ty {
                        Some(ty) => Some(
                            self.build(ty, depth + 1)
                                .map_err(|p| p.within(format!(".{}", case.name)))?,
                        ),
                        None => None,
                    };
                    cases.push(Case {
                        name: case.name.clone(),
                        docs: case.docs.contents.clone(),
                        ty,
                    });
                }
                WitType::Variant(Variant { name, docs, cases })
            }
            TypeDefKind::Enum(e) => WitType::Enum(Enum {
                name,
                docs,
                cases: e
                    .cases
                    .iter()
                    .map(|c| Named {
                        name: c.name.clone(),
                        docs: c.docs.contents.clone(),
                    })
                    .collect(),
            }),
            TypeDefKind::Flags(flags) => WitType::Flags(Flags {
                name,
                docs,
                names: flags
                    .flags
                    .iter()
                    .map(|f| Named {
                        name: f.name.clone(),
                        docs: f.docs.contents.clone(),
                    })
                    .collect(),
            }),
            TypeDefKind::Tuple(tuple) => {
                let mut items = Vec::with_capacity(tuple.types.len());
                for (i, ty) in tuple.types.iter().enumerate() {
                    items.push(
                        self.build(ty, depth + 1)
                            .map_err(|p| p.within(format!("[{i}]")))?,
                    );
                }
                WitType::Tuple(items)
            }
            TypeDefKind::Option(ty) => WitType::Option(self.boxed(ty, depth, ".some")?),
            TypeDefKind::Result(result) => WitType::Result {
                ok: match &result.ok {
                    Some(ty) => Some(self.boxed(ty, depth, ".ok")?),
                    None => None,
                },
                err: match &result.err {
                    Some(ty) => Some(self.boxed(ty, depth, ".err")?),
                    None => None,
                },
            },
            TypeDefKind::List(ty) => WitType::List(self.boxed(ty, depth, "[]")?),
            TypeDefKind::FixedLengthList(ty, n) => {
                WitType::FixedList(self.boxed(ty, depth, "[]")?, *n)
            }
            TypeDefKind::Map(key, value) => WitType::Map(
                self.boxed(key, depth, "{key}")?,
                self.boxed(value, depth, "{value}")?,
            ),
            TypeDefKind::Handle(Handle::Own(id) | Handle::Borrow(id)) => {
                return Err(Problem::new(format!(
                    "resource `{}` cannot be passed as JSON",
                    self.resource_name(*id)
                )));
            }
            TypeDefKind::Resource => {
                return Err(Problem::new(format!(
                    "resource `{}` cannot be passed as JSON",
                    name.as_deref().unwrap_or("<anonymous>")
                )));
            }
            TypeDefKind::Future(_) => {
                return Err(Problem::new("`future` cannot be passed as JSON".into()));
            }
            TypeDefKind::Stream(_) => {
                return Err(Problem::new("`stream` cannot be passed as JSON".into()));
            }
            TypeDefKind::Unknown => {
                return Err(Problem::new("type of unknown structure".into()));
            }
        })
    }

    /// The name of a resource behind a handle, following aliases (`use` makes alias types) a
    /// bounded number of steps.
    fn resource_name(&self, mut id: wit_parser::TypeId) -> String {
        for _ in 0..=MAX_TYPE_DEPTH {
            let Some(def) = self.resolve.types.get(id) else {
                break;
            };
            match &def.kind {
                TypeDefKind::Type(Type::Id(next)) => id = *next,
                _ => return def.name.clone().unwrap_or_else(|| "<anonymous>".into()),
            }
        }
        "<unknown>".into()
    }
}
