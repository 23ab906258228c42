//! An ITI-65-like Provide Document Bundle as a store transaction: Patient, Binary,
//! DocumentReference, SubmissionSet List and the holder's DDCC Folder, all linked by
//! `urn:uuid:` fullUrls. Shared by the tests, the crash loader and the benchmark.

use ddcc_store::{FolderUpsert, TxEntry, TxOp, TxRequest};
use serde_json::{json, Value};

pub const DOC_ID_SYSTEM: &str = "urn:ietf:rfc:3986";

/// The document's masterIdentifier value, unique per (run, i).
pub fn doc_identifier(run: &str, i: usize) -> String {
    format!("urn:uuid:{run}-{i:08}")
}

pub fn hcid(run: &str, i: usize, holders: usize) -> String {
    format!("HC-{run}-{}", i % holders.max(1))
}

pub fn folder_template(hcid: &str, patient_ref: &str) -> Value {
    json!({
        "resourceType": "List",
        "extension": [{"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
                       "valueCodeableConcept": {"coding": [{"system": "http://smart.who.int/ddcc/CodeSystem/DDCCFolderDesignationTypeCodesystem", "code": "ddcc"}]}}],
        "identifier": [{"use": "usual", "system": "http://smart.who.int/ddcc/HCID", "value": hcid}],
        "status": "current",
        "mode": "working",
        "title": "DDCC Folder",
        "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "folder"}]},
        "subject": {"reference": patient_ref},
        "entry": []
    })
}

pub fn iti65_request(run: &str, i: usize, holders: usize) -> TxRequest {
    let u = |what: &str| format!("urn:uuid:{run}-{what}-{i:08}");
    let (pat, bin, dr, ss) = (u("pat"), u("bin"), u("dr"), u("ss"));
    let day = 1 + i % 28;
    let h = hcid(run, i, holders);
    let entries = vec![
        TxEntry {
            full_url: Some(pat.clone()),
            op: TxOp::Create {
                resource: json!({"resourceType": "Patient", "identifier": [{"system": "http://example.org/paper", "value": format!("P-{run}-{i}")}]}),
            },
        },
        TxEntry {
            full_url: Some(bin.clone()),
            op: TxOp::Create {
                resource: json!({"resourceType": "Binary", "contentType": "application/fhir+json", "data": "eyJyZXNvdXJjZVR5cGUiOiJCdW5kbGUifQ=="}),
            },
        },
        TxEntry {
            full_url: Some(dr.clone()),
            op: TxOp::Create {
                resource: json!({
                    "resourceType": "DocumentReference",
                    "masterIdentifier": {"system": DOC_ID_SYSTEM, "value": doc_identifier(run, i)},
                    "status": "current",
                    "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "11369-6"}]}],
                    "subject": {"reference": pat},
                    "date": format!("2021-03-{day:02}T10:00:00Z"),
                    "content": [{"attachment": {"contentType": "application/fhir+json", "url": bin}}]
                }),
            },
        },
        TxEntry {
            full_url: Some(ss.clone()),
            op: TxOp::Create {
                resource: json!({
                    "resourceType": "List",
                    "identifier": [{"system": DOC_ID_SYSTEM, "value": u("ssid")}],
                    "status": "current",
                    "mode": "working",
                    "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
                    "subject": {"reference": pat},
                    "entry": [{"item": {"reference": dr}}]
                }),
            },
        },
        TxEntry {
            full_url: Some(u("folder")),
            op: TxOp::Folder(FolderUpsert {
                hcid: h.clone(),
                template: folder_template(&h, &pat),
                add: vec![dr],
                remove: vec![],
            }),
        },
    ];
    TxRequest::new(entries)
}
