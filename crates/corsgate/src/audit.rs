//! `corsgate audit`: verify the store from the outside, and make the key
//! pair that signs it.

use crate::AuditCommand;
use corsgate_store::{PublicKey, Signer, Signing, Store};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Run an `audit` subcommand.
pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Keygen {
            private_key,
            public_key,
        } => match Signer::generate_files(&private_key, &public_key) {
            Ok(s) => {
                println!(
                    "audit signing key {} written: private {} (mode 0600; set admin.auditKeyFile to it), public {}",
                    s.public().id(),
                    private_key.display(),
                    public_key.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        AuditCommand::Verify {
            data_dir,
            config,
            public_keys,
            expect_head,
        } => {
            let mut keys = Vec::new();
            for p in &public_keys {
                match PublicKey::read(p) {
                    Ok(k) => keys.push(k),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let checked = match &config {
                Some(c) => crate::fleet::verify(c, &keys, expect_head.as_deref()),
                None => verify(&data_dir, &keys, expect_head.as_deref()),
            };
            match checked {
                Ok((text, intact)) => {
                    print!("{text}");
                    ExitCode::from(if intact { 0 } else { 1 })
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The report `audit verify` prints, and whether the store is intact.
fn verify(
    data_dir: &Path,
    keys: &[PublicKey],
    expect_head: Option<&str>,
) -> Result<(String, bool), String> {
    if !data_dir.join("corsgate.db").exists() {
        return Err(format!("{}: no corsgate.db here", data_dir.display()));
    }
    let store = Store::open(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let r = store
        .verify_with(keys, expect_head)
        .map_err(|e| format!("{}: cannot read the store: {e}", data_dir.display()))?;
    Ok(render(&r))
}

/// The report as printed, and whether the store is intact: the same words
/// whichever backend was checked.
pub(crate) fn render(r: &corsgate_store::Report) -> (String, bool) {
    let mut out = String::new();
    if !r.problems.is_empty() {
        for p in &r.problems {
            let _ = writeln!(out, "audit log TAMPERED: {p}");
        }
        return (out, false);
    }
    let _ = writeln!(
        out,
        "audit log intact: {} entries, hash chain verified",
        r.entries
    );
    let _ = match &r.signing {
        Signing::Unchecked => writeln!(
            out,
            "signatures: NOT checked (give --public-key; without it a recomputed chain passes)"
        ),
        Signing::Unsigned => writeln!(
            out,
            "signatures: none (the store was written without a key)"
        ),
        Signing::Head {
            key_id,
            unsigned_before,
            other_keys,
        } => writeln!(
            out,
            "signatures: every entry from {} on verified; head signed by key {key_id}{}{}",
            unsigned_before + 1,
            if *unsigned_before > 0 {
                format!(" (the {unsigned_before} entries before signing began are covered by it)")
            } else {
                String::new()
            },
            if *other_keys > 0 {
                format!(", {other_keys} earlier key(s)")
            } else {
                String::new()
            }
        ),
    };
    let _ = writeln!(
        out,
        "versions: {}, each matching its content hash and its audit entry",
        r.versions
    );
    if let Some((seq, hash)) = &r.head {
        let _ = writeln!(out, "head: entry {seq} {hash}");
    }
    if let (Some(at), Some((seq, _))) = (r.expected_at, &r.head) {
        let _ = writeln!(
            out,
            "expected head found at entry {at}: nothing before it was removed or rewritten; {} entries since",
            seq - at
        );
    }
    (out, true)
}
