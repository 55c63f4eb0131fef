//! The kernel as a third oracle (`harness --kernel-core`): each program the harness loaded is
//! loaded again with its instructions as linked, before CO-RE, and its relocations as
//! `core_relos` (5.17+), so the kernel relocates it itself; the two translations are compared
//! up to map ids ([`crate::libbpf::normalise`]).

use serde::{Deserialize, Serialize};

use crate::Xlated;

/// One object's comparison in one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCoreObject {
    /// The object's name, as in the manifest.
    pub object: String,
    /// The kernel cannot relocate by itself (no `core_relos` before 5.17): nothing compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Every program of the object, compared or why not.
    pub programs: Vec<KernelCoreProgram>,
}

/// One program's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCoreProgram {
    /// The program (function) name.
    pub program: String,
    /// CO-RE relocations the program has (0: nothing for the kernel to relocate).
    pub relocations: u32,
    /// How the kernel's relocation compared with ours.
    pub outcome: KernelCoreOutcome,
}

/// How the kernel's own relocation of one program compared with ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KernelCoreOutcome {
    /// The kernel's translation of its own relocation equals ours.
    Identical {
        /// Translated instructions.
        insns: u32,
    },
    /// Both loaded, translated differently (each side's first instructions carried).
    Differs {
        /// Our load's translation.
        ours: Xlated,
        /// The kernel-relocated load's translation.
        kernel: Xlated,
    },
    /// Ours loaded, the kernel's relocation of the same program was refused.
    KernelRefused {
        /// The load error and the verifier's last line.
        reason: String,
    },
    /// Ours did not load or has no CO-RE relocation: nothing to compare.
    NotCompared {
        /// Why.
        reason: String,
    },
}
