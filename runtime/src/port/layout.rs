//! The structural layout of a message type: what both ends of a channel must agree on,
//! byte for byte, and the hash that stands for it in a [`Fingerprint`].
//!
//! Owns: the [`Field`] contract (the field types a message may contain), the owned,
//! serializable [`TypeLayout`] description, its canonical byte encoding and FNV-1a hash,
//! and [`TypeLayout::first_difference`], which names the first field two layouts disagree
//! on. It must never be written by hand for a message: the
//! [`message!`](crate::message) macro derives it from the struct definition. It knows
//! nothing of shared memory, manifests or threads.
//!
//! # Why a declarative macro wraps the struct
//!
//! [`message!`](crate::message) takes the struct definition itself
//! (`takt::message! { #[derive(..)] pub struct X { .. } }`), so the field list is written
//! once, and the layout comes from the compiler (`core::mem::offset_of!`, `size_of`,
//! `align_of`, and [`Field`] for each field's type), so it cannot drift from the type. A
//! `macro_rules!` macro needs no proc-macro crate (no syn/quote build, no second crate to
//! version with takt), and its `unsafe impl ZeroCopySend` expands from takt, so app crates
//! stay `#![deny(unsafe_code)]`. Its limit, only plain non-generic structs with named
//! fields, is exactly the shape a message should have.
//!
//! # Canonical encoding
//!
//! [`TypeLayout::hash`] is FNV-1a 64 over this byte string (all integers `u64`
//! little-endian, every string UTF-8 prefixed by its length in bytes, so the encoding is
//! prefix-free and two different layouts never encode to the same bytes):
//!
//! ```text
//! type      := tag name size align body
//! name      := len:u64 bytes
//! primitive := tag b'P', body empty                      (name: "u8" .. "f64")
//! array     := tag b'A', body = len:u64 type(element)    (name: "[u8; 4096]")
//! struct    := tag b'S', body = count:u64 field*         (name: the message's TYPE_NAME)
//! field     := name offset:u64 type                      (in declaration order)
//! ```
//!
//! The encoding is part of the wire contract between separately built executables: a
//! change to it changes every message's hash, so a test pins the hash of one small type.
//!
//! # Naming the first difference
//!
//! [`TypeLayout::first_difference`] compares top-down: the type's name first, then its
//! fields in offset order (a field present on both sides is compared by offset and type,
//! recursing into a nested struct or array of the same type name, with a dotted path such
//! as `track.range_m` or `samples[i].x`), then size and alignment.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Layout fingerprint of a message type: what both ends of a port must agree on. Built by
/// `Message::fingerprint` from the type's structural layout, never by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The message's `TYPE_NAME`.
    pub name: &'static str,
    pub size: usize,
    pub align: usize,
    /// FNV-1a 64 over the canonical encoding of the type's structural layout
    /// ([`TypeLayout::hash`]): the type's name, size and alignment, and for every field,
    /// recursively, its name, offset and type (name, size, alignment, and the element type
    /// and length of arrays or the fields of nested messages). The encoding is written
    /// down in this module's docs.
    pub hash: u64,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (size {}, align {}, layout {:016x})",
            self.name, self.size, self.align, self.hash
        )
    }
}

/// A type that may appear as a field of a message: `u8`, `u16`, `u32`, `u64`, `i8`, `i16`,
/// `i32`, `i64`, `f32`, `f64`, arrays `[T; N]` of such types, and structs declared with
/// [`message!`](crate::message).
///
/// Implemented by takt for the primitives and arrays and by `message!` for structs, never
/// by hand: the layout it reports is what the fingerprint hashes. `usize`, `bool`, `char`,
/// pointers and references are left out on purpose: their size or valid bit patterns
/// differ between targets, or they mean nothing in another process.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a takt message",
    label = "not an allowed message field type",
    note = "allowed: u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, arrays `[T; N]` of allowed types, and structs declared with `takt::message!`"
)]
pub trait Field: Copy + 'static {
    /// The structural layout of this type.
    fn type_layout() -> TypeLayout;
}

macro_rules! primitive_fields {
    ($($t:ty),+) => {
        $(
            impl Field for $t {
                fn type_layout() -> TypeLayout {
                    TypeLayout::primitive(
                        ::core::stringify!($t),
                        ::core::mem::size_of::<$t>(),
                        ::core::mem::align_of::<$t>(),
                    )
                }
            }
        )+
    };
}

primitive_fields!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

impl<T: Field, const N: usize> Field for [T; N] {
    fn type_layout() -> TypeLayout {
        TypeLayout::array(T::type_layout(), N)
    }
}

/// The structural layout of a message type or one of its fields, owned and serializable,
/// so that a catalog or bundle can carry it to a process that does not link the type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeLayout {
    /// `u8` .. `f64` for primitives, `[T; N]` for arrays, the message name for structs.
    pub name: String,
    pub size: u64,
    pub align: u64,
    pub shape: Shape,
}

/// What a [`TypeLayout`] is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    Primitive,
    Array {
        elem: Box<TypeLayout>,
        len: u64,
    },
    /// Fields in declaration order, which for `#[repr(C)]` is increasing offset.
    Struct {
        fields: Vec<FieldLayout>,
    },
}

/// One field of a struct layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldLayout {
    pub name: String,
    /// Byte offset from the start of the enclosing struct.
    pub offset: u64,
    pub ty: TypeLayout,
}

impl FieldLayout {
    pub fn new(name: &str, offset: usize, ty: TypeLayout) -> FieldLayout {
        FieldLayout {
            name: name.to_string(),
            offset: offset as u64,
            ty,
        }
    }
}

impl TypeLayout {
    /// A primitive type (`u8` .. `f64`).
    pub fn primitive(name: &str, size: usize, align: usize) -> TypeLayout {
        TypeLayout {
            name: name.to_string(),
            size: size as u64,
            align: align as u64,
            shape: Shape::Primitive,
        }
    }

    /// `[elem; len]`, named `[<elem name>; <len>]`.
    pub fn array(elem: TypeLayout, len: usize) -> TypeLayout {
        TypeLayout {
            name: format!("[{}; {len}]", elem.name),
            size: elem.size * len as u64,
            align: elem.align,
            shape: Shape::Array {
                elem: Box::new(elem),
                len: len as u64,
            },
        }
    }

    /// A struct called `name` (its message name) with `fields` in declaration order.
    pub fn structure(
        name: &str,
        size: usize,
        align: usize,
        fields: Vec<FieldLayout>,
    ) -> TypeLayout {
        TypeLayout {
            name: name.to_string(),
            size: size as u64,
            align: align as u64,
            shape: Shape::Struct { fields },
        }
    }

    /// FNV-1a 64 over the canonical encoding (see the module docs): the `hash` of a
    /// [`Fingerprint`].
    pub fn hash(&self) -> u64 {
        let mut h = FNV_OFFSET_BASIS;
        self.encode(&mut |bytes| h = fnv1a_step(h, bytes));
        h
    }

    /// The canonical encoding the hash is computed over (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut |bytes| out.extend_from_slice(bytes));
        out
    }

    fn encode(&self, out: &mut impl FnMut(&[u8])) {
        let tag: &[u8] = match self.shape {
            Shape::Primitive => b"P",
            Shape::Array { .. } => b"A",
            Shape::Struct { .. } => b"S",
        };
        out(tag);
        encode_str(&self.name, out);
        out(&self.size.to_le_bytes());
        out(&self.align.to_le_bytes());
        match &self.shape {
            Shape::Primitive => {}
            Shape::Array { elem, len } => {
                out(&len.to_le_bytes());
                elem.encode(out);
            }
            Shape::Struct { fields } => {
                out(&(fields.len() as u64).to_le_bytes());
                for f in fields {
                    encode_str(&f.name, out);
                    out(&f.offset.to_le_bytes());
                    f.ty.encode(out);
                }
            }
        }
    }

    /// The fingerprint of a message called `name` with this layout.
    pub fn fingerprint(&self, name: &'static str) -> Fingerprint {
        Fingerprint {
            name,
            size: self.size as usize,
            align: self.align as usize,
            hash: self.hash(),
        }
    }

    /// The first place where `other` differs from `self`, `None` if they are equal. `self`
    /// is "ours" and `other` "theirs" in the result. See the module docs for the order.
    pub fn first_difference(&self, other: &TypeLayout) -> Option<LayoutDifference> {
        difference_at(self, other, "")
    }
}

fn encode_str(s: &str, out: &mut impl FnMut(&[u8])) {
    out(&(s.len() as u64).to_le_bytes());
    out(s.as_bytes());
}

/// A type and where it sits in its enclosing struct, one side of a [`LayoutDifference`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub type_name: String,
    pub offset: u64,
}

impl Placed {
    fn of(f: &FieldLayout) -> Placed {
        Placed {
            type_name: f.ty.name.clone(),
            offset: f.offset,
        }
    }
}

impl fmt::Display for Placed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.type_name, self.offset)
    }
}

/// The first place two [`TypeLayout`]s disagree, from [`TypeLayout::first_difference`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutDifference {
    /// Where: empty for the type itself, else the field's path (`heading_rad`,
    /// `track.range_m`, `samples[i].x`). Offsets are relative to the enclosing struct.
    pub path: String,
    pub kind: DifferenceKind,
}

/// What differs at a [`LayoutDifference`]'s path; "ours" is the layout
/// `first_difference` was called on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The types have different names (different messages, primitives or arrays).
    Name {
        ours: String,
        theirs: String,
    },
    /// One is a primitive, array or struct, the other something else.
    Shape {
        ours: &'static str,
        theirs: &'static str,
    },
    ArrayLength {
        ours: u64,
        theirs: u64,
    },
    /// A field both sides have, at different offsets or with different types.
    Field {
        ours: Placed,
        theirs: Placed,
    },
    /// A field only we have.
    MissingOnOtherSide {
        ours: Placed,
    },
    /// A field only the other side has.
    OnlyOnOtherSide {
        theirs: Placed,
    },
    /// The same fields at the same offsets, declared in another order (only possible with
    /// zero-sized fields).
    FieldOrder,
    Size {
        ours: u64,
        theirs: u64,
    },
    Align {
        ours: u64,
        theirs: u64,
    },
}

impl fmt::Display for LayoutDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.path;
        let at = |f: &mut fmt::Formatter<'_>| {
            if p.is_empty() {
                Ok(())
            } else {
                write!(f, "field {p}: ")
            }
        };
        match &self.kind {
            DifferenceKind::Field { ours, theirs } => write!(f, "field {p}: {ours} vs {theirs}"),
            DifferenceKind::MissingOnOtherSide { ours } => {
                write!(f, "field {p} ({ours}) missing on the other side")
            }
            DifferenceKind::OnlyOnOtherSide { theirs } => {
                write!(f, "field {p} ({theirs}) only on the other side")
            }
            DifferenceKind::Name { ours, theirs } => {
                at(f)?;
                write!(f, "type `{ours}` vs `{theirs}`")
            }
            DifferenceKind::Shape { ours, theirs } => {
                at(f)?;
                write!(f, "{ours} vs {theirs}")
            }
            DifferenceKind::ArrayLength { ours, theirs } => {
                at(f)?;
                write!(f, "array length {ours} vs {theirs}")
            }
            DifferenceKind::FieldOrder => {
                at(f)?;
                write!(f, "the same fields declared in another order")
            }
            DifferenceKind::Size { ours, theirs } => {
                at(f)?;
                write!(f, "size {ours} vs {theirs}")
            }
            DifferenceKind::Align { ours, theirs } => {
                at(f)?;
                write!(f, "align {ours} vs {theirs}")
            }
        }
    }
}

fn shape_name(s: &Shape) -> &'static str {
    match s {
        Shape::Primitive => "a primitive",
        Shape::Array { .. } => "an array",
        Shape::Struct { .. } => "a struct",
    }
}

fn difference_at(ours: &TypeLayout, theirs: &TypeLayout, path: &str) -> Option<LayoutDifference> {
    if ours == theirs {
        return None;
    }
    let found = |kind| {
        Some(LayoutDifference {
            path: path.to_string(),
            kind,
        })
    };
    if ours.name != theirs.name {
        return found(DifferenceKind::Name {
            ours: ours.name.clone(),
            theirs: theirs.name.clone(),
        });
    }
    match (&ours.shape, &theirs.shape) {
        (Shape::Struct { fields: a }, Shape::Struct { fields: b }) => {
            if let Some(d) = fields_difference(a, b, path) {
                return Some(d);
            }
        }
        (Shape::Array { elem: a, len: la }, Shape::Array { elem: b, len: lb }) => {
            if la != lb {
                return found(DifferenceKind::ArrayLength {
                    ours: *la,
                    theirs: *lb,
                });
            }
            if let Some(d) = difference_at(a, b, &format!("{path}[i]")) {
                return Some(d);
            }
        }
        (Shape::Primitive, Shape::Primitive) => {}
        (a, b) => {
            return found(DifferenceKind::Shape {
                ours: shape_name(a),
                theirs: shape_name(b),
            })
        }
    }
    if ours.size != theirs.size {
        return found(DifferenceKind::Size {
            ours: ours.size,
            theirs: theirs.size,
        });
    }
    // Name, shape, fields and size are equal, and the layouts are not: only the alignment
    // is left.
    found(DifferenceKind::Align {
        ours: ours.align,
        theirs: theirs.align,
    })
}

/// Walks the union of both sides' fields in offset order (ours first at equal offsets),
/// each name once, and reports the first that is not identical on both sides.
fn fields_difference(
    ours: &[FieldLayout],
    theirs: &[FieldLayout],
    path: &str,
) -> Option<LayoutDifference> {
    let mut order: Vec<&FieldLayout> = ours.iter().chain(theirs).collect();
    // Stable: at equal offsets our field comes first.
    order.sort_by_key(|f| f.offset);
    let mut seen: Vec<&str> = Vec::with_capacity(order.len());
    for field in order {
        let name = field.name.as_str();
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let field_path = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        let found = |kind| {
            Some(LayoutDifference {
                path: field_path.clone(),
                kind,
            })
        };
        let a = ours.iter().find(|f| f.name == name);
        let b = theirs.iter().find(|f| f.name == name);
        match (a, b) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                if a.offset == b.offset && a.ty.name == b.ty.name {
                    // Same place, same type name: the difference is inside (a nested
                    // struct or array of them), so name the innermost field.
                    if let Some(d) = difference_at(&a.ty, &b.ty, &field_path) {
                        return Some(d);
                    }
                }
                return found(DifferenceKind::Field {
                    ours: Placed::of(a),
                    theirs: Placed::of(b),
                });
            }
            (Some(a), None) => {
                return found(DifferenceKind::MissingOnOtherSide {
                    ours: Placed::of(a),
                })
            }
            (None, Some(b)) => {
                return found(DifferenceKind::OnlyOnOtherSide {
                    theirs: Placed::of(b),
                })
            }
            (None, None) => unreachable!("every name in `order` comes from one of the sides"),
        }
    }
    if ours != theirs {
        return Some(LayoutDifference {
            path: path.to_string(),
            kind: DifferenceKind::FieldOrder,
        });
    }
    None
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a_step(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The name a message type carries in iceoryx2's service configuration:
/// `<TYPE_NAME>@<hash as 16 hex digits>`. iceoryx2 refuses to connect ports whose payload
/// type names differ, so two processes built with the same message name but different
/// field layouts cannot share a topic, whichever starts first.
pub fn service_type_name(fingerprint: &Fingerprint) -> String {
    format!("{}@{:016x}", fingerprint.name, fingerprint.hash)
}

/// Splits a [`service_type_name`] back into the message name and layout hash.
pub fn parse_service_type_name(s: &str) -> Option<(&str, u64)> {
    let (name, hash) = s.split_once('@')?;
    if hash.len() != 16 {
        return None;
    }
    Some((name, u64::from_str_radix(hash, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_at(name: &str, offset: usize) -> FieldLayout {
        FieldLayout::new(name, offset, f64::type_layout())
    }

    fn pose(fields: Vec<FieldLayout>, size: usize) -> TypeLayout {
        TypeLayout::structure("Pose", size, 8, fields)
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_step(FNV_OFFSET_BASIS, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_step(FNV_OFFSET_BASIS, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fnv1a_step(FNV_OFFSET_BASIS, b"foobar"),
            0x8594_4171_f739_67e8
        );
    }

    #[test]
    fn canonical_encoding_is_as_documented() {
        let t = TypeLayout::structure(
            "T",
            4,
            4,
            vec![FieldLayout::new("v", 0, u32::type_layout())],
        );
        let mut expected = Vec::new();
        let str_ = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        expected.push(b'S');
        str_(&mut expected, "T");
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        str_(&mut expected, "v");
        expected.extend_from_slice(&0u64.to_le_bytes());
        expected.push(b'P');
        str_(&mut expected, "u32");
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        assert_eq!(t.canonical_bytes(), expected);
        assert_eq!(t.hash(), fnv1a_step(FNV_OFFSET_BASIS, &expected));
    }

    #[test]
    fn swapped_fields_hash_differently_and_the_first_is_named() {
        let ours = pose(vec![f64_at("x_m", 0), f64_at("y_m", 8)], 16);
        let theirs = pose(vec![f64_at("y_m", 0), f64_at("x_m", 8)], 16);
        assert_ne!(ours.hash(), theirs.hash());
        let d = ours.first_difference(&theirs).expect("they differ");
        assert_eq!(d.path, "x_m");
        assert_eq!(
            d.to_string(),
            "field x_m: f64 at offset 0 vs f64 at offset 8"
        );
        // From the other side, the other field comes first.
        let d = theirs.first_difference(&ours).unwrap();
        assert_eq!(
            d.to_string(),
            "field y_m: f64 at offset 0 vs f64 at offset 8"
        );
        assert_eq!(ours.first_difference(&ours.clone()), None);
    }

    #[test]
    fn a_narrower_field_is_named_before_the_size() {
        let ours = pose(vec![f64_at("t", 0), f64_at("heading_rad", 8)], 16);
        let theirs = pose(
            vec![
                f64_at("t", 0),
                FieldLayout::new("heading_rad", 8, f32::type_layout()),
            ],
            12,
        );
        let d = ours.first_difference(&theirs).unwrap();
        assert_eq!(
            d.to_string(),
            "field heading_rad: f64 at offset 8 vs f32 at offset 8"
        );
    }

    #[test]
    fn missing_fields_are_named_on_either_side() {
        let ours = pose(vec![f64_at("t", 0), f64_at("lateral_m", 8)], 16);
        let theirs = pose(vec![f64_at("t", 0)], 8);
        let d = ours.first_difference(&theirs).unwrap();
        assert_eq!(
            d.kind,
            DifferenceKind::MissingOnOtherSide {
                ours: Placed {
                    type_name: "f64".into(),
                    offset: 8
                }
            }
        );
        assert_eq!(
            d.to_string(),
            "field lateral_m (f64 at offset 8) missing on the other side"
        );
        assert_eq!(
            theirs.first_difference(&ours).unwrap().to_string(),
            "field lateral_m (f64 at offset 8) only on the other side"
        );
    }

    #[test]
    fn nested_and_array_differences_carry_a_path() {
        let track = |range: TypeLayout| {
            TypeLayout::structure(
                "Track",
                16,
                8,
                vec![f64_at("t", 0), FieldLayout::new("range_m", 8, range)],
            )
        };
        let outer = |inner: TypeLayout| {
            TypeLayout::structure(
                "Scene",
                8 + inner.size as usize * 2,
                8,
                vec![
                    f64_at("t", 0),
                    FieldLayout::new("track", 8, inner.clone()),
                    FieldLayout::new(
                        "history",
                        8 + inner.size as usize,
                        TypeLayout::array(inner, 1),
                    ),
                ],
            )
        };
        let ours = outer(track(f64::type_layout()));
        let theirs = outer(track(i64::type_layout()));
        assert_eq!(
            ours.first_difference(&theirs).unwrap().to_string(),
            "field track.range_m: f64 at offset 8 vs i64 at offset 8"
        );
        // Only inside the array element.
        let mut only_history = ours.clone();
        if let Shape::Struct { fields } = &mut only_history.shape {
            fields[2].ty = TypeLayout::array(track(i64::type_layout()), 1);
        }
        assert_eq!(
            ours.first_difference(&only_history).unwrap().path,
            "history[i].range_m"
        );
    }

    #[test]
    fn array_lengths_are_compared() {
        let rows = |n| TypeLayout::array(TypeLayout::array(u8::type_layout(), 4096), n);
        assert_eq!(rows(1024).name, "[[u8; 4096]; 1024]");
        assert_ne!(rows(1024).hash(), rows(512).hash());
        let frame = |n| {
            TypeLayout::structure(
                "Frame",
                4096 * n,
                1,
                vec![FieldLayout::new("pixels", 0, rows(n))],
            )
        };
        assert_eq!(
            frame(1024)
                .first_difference(&frame(512))
                .unwrap()
                .to_string(),
            "field pixels: [[u8; 4096]; 1024] at offset 0 vs [[u8; 4096]; 512] at offset 0"
        );
        // The bare arrays: same name shape, length named.
        assert_eq!(
            TypeLayout::array(u8::type_layout(), 4)
                .first_difference(&TypeLayout::array(u8::type_layout(), 8))
                .unwrap()
                .to_string(),
            "type `[u8; 4]` vs `[u8; 8]`"
        );
    }

    #[test]
    fn top_level_name_size_and_align_are_reported() {
        let a = pose(vec![f64_at("t", 0)], 8);
        let mut b = a.clone();
        b.name = "Posture".into();
        assert_eq!(
            a.first_difference(&b).unwrap().to_string(),
            "type `Pose` vs `Posture`"
        );
        let mut b = a.clone();
        b.size = 16;
        assert_eq!(a.first_difference(&b).unwrap().to_string(), "size 8 vs 16");
        let mut b = a.clone();
        b.align = 16;
        assert_eq!(a.first_difference(&b).unwrap().to_string(), "align 8 vs 16");
        let mut b = a.clone();
        b.shape = Shape::Primitive;
        assert_eq!(
            a.first_difference(&b).unwrap().to_string(),
            "a struct vs a primitive"
        );
    }

    #[test]
    fn every_field_of_the_encoding_changes_the_hash() {
        let base = pose(vec![f64_at("x", 0), f64_at("y", 8)], 16);
        let variants = [
            pose(vec![f64_at("x", 0), f64_at("z", 8)], 16),
            pose(
                vec![f64_at("x", 0), FieldLayout::new("y", 8, i64::type_layout())],
                16,
            ),
            pose(vec![f64_at("x", 0), f64_at("y", 16)], 16),
            pose(vec![f64_at("x", 0), f64_at("y", 8)], 24),
            TypeLayout::structure("Pose", 16, 16, vec![f64_at("x", 0), f64_at("y", 8)]),
            TypeLayout::structure("Posf", 16, 8, vec![f64_at("x", 0), f64_at("y", 8)]),
            pose(vec![f64_at("x", 0)], 16),
        ];
        for v in &variants {
            assert_ne!(base.hash(), v.hash(), "{v:?}");
            assert!(base.first_difference(v).is_some(), "{v:?}");
        }
    }

    #[test]
    fn layouts_round_trip_through_serde() {
        let t = TypeLayout::structure(
            "Frame",
            16,
            8,
            vec![
                f64_at("t", 0),
                FieldLayout::new(
                    "rows",
                    8,
                    TypeLayout::array(TypeLayout::array(u8::type_layout(), 4), 2),
                ),
            ],
        );
        // Through bincode, the format takt's control messages and bundles use.
        let bytes = bincode::serde::encode_to_vec(&t, bincode::config::standard()).unwrap();
        let back: TypeLayout =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .unwrap()
                .0;
        assert_eq!(t, back);
    }

    #[test]
    fn service_type_names_round_trip() {
        let fp = pose(vec![f64_at("x", 0)], 8).fingerprint("Pose");
        let s = service_type_name(&fp);
        assert_eq!(parse_service_type_name(&s), Some(("Pose", fp.hash)));
        assert_eq!(parse_service_type_name("Pose"), None);
        assert_eq!(parse_service_type_name("Pose@12"), None);
    }
}
