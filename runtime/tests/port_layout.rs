//! Structural fingerprints of message types declared the way apps declare them: the layout
//! comes from the struct definition, two builds of "the same" message that differ in a
//! field get different hashes and a report naming that field, and both the manifest check
//! and a running service refuse such a peer when a port opens.
//!
//! Two versions of one message live in two modules (`v1::Pose`, `v2::Pose`), so they share
//! their `TYPE_NAME`, as they would in two separately built executables.
#![deny(unsafe_code)]

use takt::port::{
    DifferenceKind, ExpectedType, Field, Message, Placed, PortNode, PortOpenError, Shape, Sizing,
    TypeLayout,
};

mod v1 {
    takt::message! {
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Pose {
            pub time_ns: u64,
            pub heading_rad: f64,
            pub lateral_m: f64,
        }
    }

    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Track {
            pub id: u32,
            pub valid: u32,
            pub range_m: f64,
        }
    }

    takt::message! {
        /// A message nesting another one and an array of them.
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Scene {
            pub time_ns: u64,
            pub track: Track,
            pub others: [Track; 4],
        }
    }

    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Image {
            pub rows: [[u8; 64]; 32],
        }
    }
}

mod v2 {
    // Same name, size and alignment as v1::Pose; `heading_rad` and `lateral_m` swapped.
    takt::message! {
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Pose {
            pub time_ns: u64,
            pub lateral_m: f64,
            pub heading_rad: f64,
        }
    }

    // `range_m` became `i64`.
    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Track {
            pub id: u32,
            pub valid: u32,
            pub range_m: i64,
        }
    }

    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Scene {
            pub time_ns: u64,
            pub track: Track,
            pub others: [Track; 4],
        }
    }

    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Image {
            pub rows: [[u8; 64]; 16],
        }
    }
}

mod narrow {
    // `heading_rad` as `f32`, padded so the struct is still `Pod`: a smaller struct.
    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Pose {
            pub time_ns: u64,
            pub heading_rad: f32,
            pub _pad: u32,
        }
    }
}

#[test]
fn swapped_f64_fields_change_the_hash_and_the_first_is_named() {
    let (a, b) = (v1::Pose::fingerprint(), v2::Pose::fingerprint());
    assert_eq!((a.name, a.size, a.align), (b.name, b.size, b.align));
    assert_ne!(a.hash, b.hash);
    assert_ne!(a, b);
    let d = v1::Pose::layout()
        .first_difference(&v2::Pose::layout())
        .expect("the layouts differ");
    assert_eq!(d.path, "heading_rad");
    assert_eq!(
        d.kind,
        DifferenceKind::Field {
            ours: Placed {
                type_name: "f64".into(),
                offset: 8
            },
            theirs: Placed {
                type_name: "f64".into(),
                offset: 16
            },
        }
    );
    assert_eq!(
        d.to_string(),
        "field heading_rad: f64 at offset 8 vs f64 at offset 16"
    );
}

#[test]
fn a_narrower_type_at_the_same_offset_is_named() {
    assert_ne!(
        v1::Pose::fingerprint().size,
        narrow::Pose::fingerprint().size
    );
    let d = v1::Pose::layout()
        .first_difference(&narrow::Pose::layout())
        .unwrap();
    assert_eq!(
        d.to_string(),
        "field heading_rad: f64 at offset 8 vs f32 at offset 8"
    );
    // The field missing on the narrow side comes next; checked through a trimmed layout.
    let mut trimmed = v1::Pose::layout();
    if let Shape::Struct { fields } = &mut trimmed.shape {
        fields.pop();
    }
    assert_eq!(
        v1::Pose::layout()
            .first_difference(&trimmed)
            .unwrap()
            .to_string(),
        "field lateral_m (f64 at offset 16) missing on the other side"
    );
}

#[test]
fn a_nested_difference_is_named_by_its_path() {
    assert_ne!(v1::Scene::fingerprint().hash, v2::Scene::fingerprint().hash);
    let d = v1::Scene::layout()
        .first_difference(&v2::Scene::layout())
        .unwrap();
    assert_eq!(d.path, "track.range_m");
    assert_eq!(
        d.to_string(),
        "field track.range_m: f64 at offset 8 vs i64 at offset 8"
    );
}

#[test]
fn array_lengths_are_part_of_the_layout() {
    let (a, b) = (v1::Image::layout(), v2::Image::layout());
    assert_ne!(a.hash(), b.hash());
    assert_eq!(
        a.first_difference(&b).unwrap().to_string(),
        "field rows: [[u8; 64]; 32] at offset 0 vs [[u8; 64]; 16] at offset 0"
    );
}

#[test]
fn a_layout_lists_every_field_with_its_offset() {
    let layout = v1::Scene::layout();
    assert_eq!(layout.name, "Scene");
    assert_eq!(layout.size, std::mem::size_of::<v1::Scene>() as u64);
    let Shape::Struct { fields } = &layout.shape else {
        panic!("a message is a struct: {layout:?}");
    };
    let placed: Vec<(&str, u64, &str)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.offset, f.ty.name.as_str()))
        .collect();
    assert_eq!(
        placed,
        [
            (
                "time_ns",
                std::mem::offset_of!(v1::Scene, time_ns) as u64,
                "u64"
            ),
            (
                "track",
                std::mem::offset_of!(v1::Scene, track) as u64,
                "Track"
            ),
            (
                "others",
                std::mem::offset_of!(v1::Scene, others) as u64,
                "[Track; 4]"
            ),
        ]
    );
    // The nested message's layout is the one it has on its own.
    assert_eq!(fields[1].ty, v1::Track::layout());
    assert_eq!(fields[1].ty, <v1::Track as Field>::type_layout());
}

#[test]
fn the_hash_of_a_fixed_type_is_pinned() {
    // This constant changes only if the canonical encoding or the hash function changes
    // (see takt::port::layout). Such a change makes every deployed executable's messages
    // incompatible with new ones: bump it deliberately, never to make this test pass.
    // The value was also computed by an independent implementation of the documented
    // encoding (a few lines of Python), not only copied from this one's output.
    const PINNED: u64 = 0xf5ad_e5f9_08e2_4f17;
    let fp = v1::Pose::fingerprint();
    assert_eq!(fp.hash, PINNED, "{:#018x}", fp.hash);
    assert_eq!(fp.hash, v1::Pose::layout().hash());
}

fn deployment(test: &str) -> String {
    format!("t{}-layout-{test}", std::process::id())
}

const SIZING: Sizing = Sizing {
    buffer: 2,
    history: 1,
    max_borrowed: 2,
};

#[test]
fn opening_against_another_layout_names_the_field() {
    let node = PortNode::new(&deployment("manifest")).unwrap();
    let expected = v1::Pose::layout();
    let err = node
        .reader::<v2::Pose>("pose", &expected, SIZING)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, PortOpenError::TypeMismatch { difference: Some(d), .. } if d.path == "lateral_m"),
        "{text}"
    );
    assert!(
        text.contains("field lateral_m: f64 at offset 8 vs f64 at offset 16"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");

    // Only a fingerprint on the other side: refused by hash, without a field.
    let err = node
        .reader::<v2::Pose>("pose", &v1::Pose::fingerprint(), SIZING)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PortOpenError::TypeMismatch {
                difference: None,
                ..
            }
        ),
        "{err}"
    );

    // The same layout opens.
    let same = ExpectedType::from(&expected);
    node.reader::<v1::Pose>("pose", same, SIZING)
        .expect("the same layout opens");
}

#[test]
fn a_running_service_refuses_a_peer_with_the_same_name_and_another_layout() {
    let node = PortNode::new(&deployment("service")).unwrap();
    let _w = node
        .writer::<v1::Pose>("pose", &v1::Pose::fingerprint(), SIZING)
        .unwrap();
    // Another executable's build of `Pose`, consistent with its own manifest/catalog.
    let err = node
        .reader::<v2::Pose>("pose", &v2::Pose::fingerprint(), SIZING)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PortOpenError::TypeMismatch { .. }), "{text}");
    assert!(text.contains("running service"), "{text}");
    let running = format!("layout {:016x}", v1::Pose::fingerprint().hash);
    let code = format!("layout {:016x}", v2::Pose::fingerprint().hash);
    assert!(text.contains(&running) && text.contains(&code), "{text}");
    // The identical build still connects.
    node.reader::<v1::Pose>("pose", &v1::Pose::fingerprint(), SIZING)
        .expect("same layout connects");
}

/// `TypeLayout` is plain data a catalog can carry; a hand-built copy of a derived layout
/// compares equal to it and hashes the same.
#[test]
fn a_derived_layout_equals_the_same_layout_built_by_hand() {
    use takt::port::FieldLayout;
    let by_hand = TypeLayout::structure(
        "Pose",
        24,
        8,
        vec![
            FieldLayout::new("time_ns", 0, TypeLayout::primitive("u64", 8, 8)),
            FieldLayout::new("heading_rad", 8, TypeLayout::primitive("f64", 8, 8)),
            FieldLayout::new("lateral_m", 16, TypeLayout::primitive("f64", 8, 8)),
        ],
    );
    assert_eq!(by_hand, v1::Pose::layout());
    assert_eq!(by_hand.hash(), v1::Pose::fingerprint().hash);
}
