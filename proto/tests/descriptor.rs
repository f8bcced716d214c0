//! The embedded descriptor set decodes, names the API, and documents it.

use std::collections::{BTreeMap, BTreeSet};

use dualchain_proto::{FILE_DESCRIPTOR_SET, PACKAGE};
use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
}

fn package_files(set: &FileDescriptorSet) -> Vec<&FileDescriptorProto> {
    set.file
        .iter()
        .filter(|file| file.package() == PACKAGE)
        .collect()
}

#[test]
fn names_the_four_services_and_their_methods() {
    let set = descriptor_set();
    let files = package_files(&set);
    assert!(!files.is_empty(), "no file of package {PACKAGE}");

    // service -> [(method, client_streaming, server_streaming)]
    let mut services: BTreeMap<String, Vec<(String, bool, bool)>> = BTreeMap::new();
    for file in &files {
        for service in &file.service {
            let methods = service
                .method
                .iter()
                .map(|m| {
                    (
                        m.name().to_owned(),
                        m.client_streaming(),
                        m.server_streaming(),
                    )
                })
                .collect();
            services.insert(service.name().to_owned(), methods);
        }
    }

    let expected: BTreeMap<String, Vec<(String, bool, bool)>> = [
        (
            "Transactions",
            vec![
                ("SubmitTransactions", true, false),
                ("SubmitBatch", false, false),
            ],
        ),
        (
            "Node",
            vec![
                ("GetStatus", false, false),
                ("GetBlock", false, false),
                ("StreamFinality", false, true),
                ("StreamOrdering", false, true),
            ],
        ),
        (
            "Admin",
            vec![
                ("PauseChain", false, false),
                ("ResumeChain", false, false),
                ("TriggerSnapshot", false, false),
                ("SetFaultInjection", false, false),
                ("GetFaultInjection", false, false),
            ],
        ),
        (
            "CrossChain",
            vec![
                ("GetRecord", false, false),
                ("GetAttestation", false, false),
                ("GetBlockRecords", false, false),
            ],
        ),
    ]
    .into_iter()
    .map(|(service, methods)| {
        (
            service.to_owned(),
            methods
                .into_iter()
                .map(|(m, cs, ss)| (m.to_owned(), cs, ss))
                .collect(),
        )
    })
    .collect();

    assert_eq!(services, expected);
}

#[test]
fn chain_enum_has_the_contract_values() {
    let set = descriptor_set();
    let chain = package_files(&set)
        .into_iter()
        .flat_map(|f| &f.enum_type)
        .find(|e| e.name() == "Chain")
        .expect("enum Chain");
    let values: Vec<(&str, i32)> = chain.value.iter().map(|v| (v.name(), v.number())).collect();
    assert_eq!(
        values,
        [
            ("CHAIN_UNSPECIFIED", 0),
            ("CHAIN_ALPHA", 1),
            ("CHAIN_DELTA", 2)
        ]
    );
}

/// Every service, rpc, message, field, enum and enum value of the package has
/// a leading comment in the .proto source (source info is kept in the set).
#[test]
fn every_element_is_documented() {
    // Field numbers of descriptor.proto used in SourceCodeInfo paths.
    const FILE_MESSAGE: i32 = 4;
    const FILE_ENUM: i32 = 5;
    const FILE_SERVICE: i32 = 6;
    const MESSAGE_FIELD: i32 = 2;
    const MESSAGE_NESTED: i32 = 3;
    const MESSAGE_ENUM: i32 = 4;
    const ENUM_VALUE: i32 = 2;
    const SERVICE_METHOD: i32 = 2;

    fn check_enum(
        e: &prost_types::EnumDescriptorProto,
        path: Vec<i32>,
        name: &str,
        out: &mut Vec<(Vec<i32>, String)>,
    ) {
        out.push((path.clone(), format!("enum {name}")));
        for (i, v) in e.value.iter().enumerate() {
            let mut p = path.clone();
            p.extend([ENUM_VALUE, i as i32]);
            out.push((p, format!("enum value {name}.{}", v.name())));
        }
    }

    fn check_message(
        m: &prost_types::DescriptorProto,
        path: Vec<i32>,
        name: &str,
        out: &mut Vec<(Vec<i32>, String)>,
    ) {
        out.push((path.clone(), format!("message {name}")));
        for (i, f) in m.field.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_FIELD, i as i32]);
            out.push((p, format!("field {name}.{}", f.name())));
        }
        for (i, nested) in m.nested_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_NESTED, i as i32]);
            check_message(nested, p, &format!("{name}.{}", nested.name()), out);
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_ENUM, i as i32]);
            check_enum(e, p, &format!("{name}.{}", e.name()), out);
        }
    }

    let set = descriptor_set();
    let mut undocumented = Vec::new();
    let mut elements = 0;
    for file in package_files(&set) {
        let documented: BTreeSet<&[i32]> = file
            .source_code_info
            .as_ref()
            .expect("source info kept in the descriptor set")
            .location
            .iter()
            .filter(|l| !l.leading_comments().trim().is_empty())
            .map(|l| l.path.as_slice())
            .collect();

        let mut wanted = Vec::new();
        for (i, m) in file.message_type.iter().enumerate() {
            check_message(m, vec![FILE_MESSAGE, i as i32], m.name(), &mut wanted);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            check_enum(e, vec![FILE_ENUM, i as i32], e.name(), &mut wanted);
        }
        for (i, s) in file.service.iter().enumerate() {
            wanted.push((
                vec![FILE_SERVICE, i as i32],
                format!("service {}", s.name()),
            ));
            for (j, method) in s.method.iter().enumerate() {
                wanted.push((
                    vec![FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32],
                    format!("rpc {}.{}", s.name(), method.name()),
                ));
            }
        }
        elements += wanted.len();
        for (path, what) in wanted {
            if !documented.contains(path.as_slice()) {
                undocumented.push(format!("{}: {what}", file.name()));
            }
        }
    }
    assert!(elements > 100, "suspiciously few elements: {elements}");
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
}
