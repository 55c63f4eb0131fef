//! Why a CO-RE relocation could not be decided or applied, one enum per step, so a caller or a
//! test can tell the failures apart. Every message reads as the engine's `String`s used to.

use super::kind::RelocKind;
use crate::btf::BtfError;

/// A type relation walk (field compatibility, type compatibility, type matching) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    /// A type id in the walk does not resolve.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// The walk went deeper than the engine follows (looping or absurd BTF).
    #[error("{0}")]
    TooDeep(&'static str),
}

/// An access string that cannot be followed through its root type (local or target).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not a colon-separated list of numbers.
    #[error("malformed access string {0:?}")]
    Malformed(String),
    /// More steps than libbpf accepts.
    #[error("access string too long")]
    TooLong,
    /// A step index above `i32::MAX`.
    #[error("access index out of range")]
    IndexOutOfRange,
    /// Type-based relocations always use the access string `"0"`.
    #[error("type-based relocation needs access string \"0\", got {0:?}")]
    NotTypeAccess(String),
    /// An enumerator relocation whose root is not an enum or whose index is not an enumerator.
    #[error("enum value relocation must index an enumerator of an enum")]
    NotEnumerator,
    /// A kind the spec parser has no rule for.
    #[error("unknown relocation kind")]
    UnknownKind,
    /// A member step past the composite's last member.
    #[error("member index {idx} out of range at step {step}")]
    MemberOutOfRange {
        /// The member index asked for.
        idx: u32,
        /// Which step of the access string.
        step: usize,
    },
    /// An array step past the array's length (and the array is not flexible).
    #[error("array index {idx} out of range at step {step}")]
    ArrayIndexOutOfRange {
        /// The element index asked for.
        idx: u32,
        /// Which step of the access string.
        step: usize,
    },
    /// A step into a type that has no members or elements.
    #[error("access step {step} reaches type #{id} of kind {kind}, not a struct, union or array")]
    NotComposite {
        /// Which step of the access string.
        step: usize,
        /// The type reached.
        id: u32,
        /// Its kind.
        kind: crate::btf::Kind,
    },
    /// A field or enumerator spec without accessors.
    #[error("empty local spec")]
    Empty,
    /// Matching a target went deeper than the longest access string.
    #[error("struct/union/array nesting too deep")]
    TooDeep,
    /// A bit offset that does not fit 64 bits.
    #[error("offset overflow")]
    OffsetOverflow,
    /// The local accessor names a member its type does not have.
    #[error("local member index out of range")]
    LocalMemberOutOfRange,
    /// A type id in the spec does not resolve.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// Checking a matched member's or type's compatibility failed.
    #[error(transparent)]
    Compat(#[from] CompatError),
}

/// Computing the local or the target value of a matched relocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// A field or enumerator spec without accessors.
    #[error("empty {0} spec")]
    EmptySpec(&'static str),
    /// The access ends at an array element, where only offset and size mean something.
    #[error("{0} cannot be applied to an array element")]
    NotForArrayElement(RelocKind),
    /// The spec's member index is past its composite's members.
    #[error("member index out of range")]
    MemberOutOfRange,
    /// The spec's enumerator index is past its enum's values.
    #[error("enumerator index out of range")]
    EnumeratorOutOfRange,
    /// A bitfield whose type is not an integer or enum.
    #[error("bitfield of a type that is neither int nor enum")]
    BitfieldType,
    /// A bitfield whose type has size 0.
    #[error("bitfield of a zero-sized type")]
    ZeroSizedBitfield,
    /// A bitfield that no single load of up to 8 bytes covers.
    #[error("bitfield cannot be read with a 64-bit load")]
    BitfieldTooWide,
    /// A field wider than a 64-bit register, for the shift relocations.
    #[error("field wider than 64 bits")]
    FieldTooWide,
    /// The kind reached the wrong value rule (field, type or enumerator).
    #[error("{kind} is not {family} relocation")]
    WrongFamily {
        /// The relocation kind.
        kind: RelocKind,
        /// "a field", "a type", "an enum value".
        family: &'static str,
    },
    /// A type id in the spec does not resolve.
    #[error(transparent)]
    Btf(#[from] BtfError),
}

/// The instruction a decision is applied to is not what the decision expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// No instruction at that index.
    #[error("instruction index out of range")]
    OutOfRange,
    /// An ALU instruction with a register source carries no value to relocate.
    #[error("ALU instruction does not use an immediate operand")]
    NotImmediate,
    /// An ALU immediate other than the decision's local value.
    #[error("instruction #{index} (ALU) has immediate {found}, expected {expected}")]
    UnexpectedImmediate {
        /// Instruction index.
        index: usize,
        /// The immediate found.
        found: i32,
        /// The local value the compiler should have written.
        expected: u64,
    },
    /// A memory access offset other than the decision's local value.
    #[error("instruction #{index} (LDX/ST/STX) has offset {found}, expected {expected}")]
    UnexpectedOffset {
        /// Instruction index.
        index: usize,
        /// The offset found.
        found: i16,
        /// The local value the compiler should have written.
        expected: u64,
    },
    /// A target offset that does not fit an instruction's 16-bit offset.
    #[error("instruction #{index} (LDX/ST/STX): offset {offset} too large")]
    OffsetTooLarge {
        /// Instruction index.
        index: usize,
        /// The target offset.
        offset: u64,
    },
    /// A memory access whose size bits name no size.
    #[error("bad memory access size")]
    BadAccessSize,
    /// A memory access of another size than the local field's.
    #[error("instruction #{index} accesses {found} bytes, expected {expected}")]
    UnexpectedAccessSize {
        /// Instruction index.
        index: usize,
        /// Bytes the instruction accesses.
        found: u32,
        /// The local field's size.
        expected: u32,
    },
    /// A target field size no load or store has.
    #[error("instruction #{index}: cannot access a {size}-byte field")]
    UnsupportedAccessSize {
        /// Instruction index.
        index: usize,
        /// The target field's size.
        size: u32,
    },
    /// A `ld_imm64` at the last instruction.
    #[error("ld_imm64 without second half")]
    MissingSecondHalf,
    /// A `ld_imm64` with a pseudo source, an offset, or a second half that is not plain.
    #[error("instruction #{index} (ld_imm64) has unexpected form")]
    MalformedLdImm64 {
        /// Instruction index.
        index: usize,
    },
    /// A `ld_imm64` value other than the decision's local value.
    #[error("instruction #{index} (ld_imm64) has value {found}, expected {expected}")]
    UnexpectedImm64 {
        /// Instruction index.
        index: usize,
        /// The 64-bit value found.
        found: u64,
        /// The local value the compiler should have written.
        expected: u64,
    },
    /// An instruction class that carries no relocatable value (jumps, calls...).
    #[error("instruction #{index} (opcode {code:#04x}) cannot carry a CO-RE relocation")]
    NotRelocatable {
        /// Instruction index.
        index: usize,
        /// Its opcode.
        code: u8,
    },
}

/// Why one CO-RE relocation failed (and fails the program's load, as in libbpf).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A `bpf_core_relo_kind` this engine (and libbpf) does not know.
    #[error("unknown relocation kind {0}")]
    UnknownKind(u32),
    /// The relocation's local root type does not resolve in the object's BTF.
    #[error(transparent)]
    LocalType(BtfError),
    /// The access string does not follow through the local root type.
    #[error(transparent)]
    LocalSpec(SpecError),
    /// The local root type has no name to look candidates up by.
    #[error("relocations against anonymous types are not supported")]
    AnonymousType,
    /// Matching the local spec against one target candidate failed (not "did not match").
    #[error("matching target candidate {name} (#{id}): {error}")]
    Candidate {
        /// The candidate's C name, e.g. `struct task_struct`.
        name: String,
        /// Its id in the target BTF.
        id: u32,
        /// What went wrong (boxed: keeps every error of the engine small to return).
        #[source]
        error: Box<SpecError>,
    },
    /// Two candidates put the field at different bit offsets.
    #[error("ambiguous: candidates resolve to bit offsets {first} and {second}")]
    AmbiguousOffsets {
        /// The first matching candidate's bit offset.
        first: u64,
        /// Another candidate's.
        second: u64,
    },
    /// Two candidates give different values (or one poisons and the other does not).
    #[error("ambiguous: candidates resolve to values {first} and {second}")]
    AmbiguousValues {
        /// The first matching candidate's value.
        first: u64,
        /// Another candidate's.
        second: u64,
    },
    /// Computing a value failed.
    #[error(transparent)]
    Calc(#[from] CalcError),
    /// The decision does not fit its instruction.
    #[error(transparent)]
    Patch(#[from] PatchError),
}
