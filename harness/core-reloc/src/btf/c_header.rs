//! BTF to a compilable C header (`vmlinux.h`), as `bpftool btf dump file X format c` writes it
//! for libbpf-bootstrap-style programs.
//!
//! Two passes, as libbpf's `btf_dump.c` does it (semantics studied there, code our own):
//! 1. order: a depth-first topological sort over "strong" links (a type used by value, or an
//!    anonymous type defined inline, must be complete first) while "weak" links (a named struct
//!    or typedef reached through a pointer) only need a forward declaration;
//! 2. emit: each ordered type is written once, preceded by the forward declarations it needs.
//!
//! Both passes and the alignment computation run on explicit stacks: every id is on a stack at
//! most once, so the depth is bounded by the type count and a type cycle that C cannot express is
//! an error, never a stack overflow. Declarations nest (an anonymous struct inside a function
//! pointer's parameter inside an anonymous union ...); that recursion is bounded by
//! [`MAX_NESTING`] with a clear error.
//!
//! Names follow C: identifiers that are C keywords or not identifiers at all get a `_` suffix or
//! `_` replacements; two distinct types with one name get `___2`, `___3` (a CO-RE flavor, so
//! relocations still match the kernel's type), in the order names are first written, as bpftool
//! does, so both headers name the same types the same way.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Btf, BtfError, Kind, Type, TypeBody};

/// Deepest nesting of inline definitions and parameter lists in one declaration.
pub const MAX_NESTING: usize = 128;
/// Largest gap between two members filled with padding fields (bits): 16 MiB.
const MAX_PADDING_BITS: i64 = 1 << 27;
/// The kernel's `__builtin_va_list` typedef (x86: `struct __va_list_tag[1]`, 24 bytes) is not
/// the BPF target's (8 bytes): written under this CO-RE flavor of its name, structs holding a
/// `va_list` keep the kernel's layout.
pub const VA_LIST_FLAVOR: &str = "__builtin_va_list___btf";
/// Pointer size of the BPF target, in bytes.
const PTR_SIZE: u32 = 8;

/// Why a BTF cannot be rendered as a C header.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CHeaderError {
    /// The BTF itself is unreadable.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// A type refers to a type id past the last one.
    #[error("type #{id} refers to type #{target}, past the last type #{last}")]
    BadReference {
        /// The referring type.
        id: u32,
        /// The id it refers to.
        target: u32,
        /// The last type id.
        last: u32,
    },
    /// A type contains itself by value.
    #[error("type #{id}: a type cycle C cannot express (a type contains itself by value)")]
    Cycle {
        /// A type on the cycle.
        id: u32,
    },
    /// A kind where a declaration cannot have it (a FUNC as a member type...).
    #[error("type #{id}: a {kind} cannot appear in a declaration ({context})")]
    Unexpected {
        /// The type.
        id: u32,
        /// Its kind.
        kind: Kind,
        /// Where it appeared.
        context: &'static str,
    },
    /// Declarations nest deeper than the renderer follows.
    #[error("type #{id}: declarations nest deeper than {MAX_NESTING} levels")]
    TooDeep {
        /// The type where it gave up.
        id: u32,
    },
    /// Members whose offsets leave a gap no padding can express.
    #[error("type #{id}: a gap of {bits} bits between members is too large to pad")]
    GapTooLarge {
        /// The struct.
        id: u32,
        /// The gap, in bits.
        bits: i64,
    },
}

/// Renders the whole BTF as a C header: every named struct, union, enum and typedef (and the
/// anonymous top-level enums), then the kfunc prototypes, inside `__VMLINUX_H__` guards and the
/// `preserve_access_index` pragma.
pub fn render_c_header(btf: &Btf) -> Result<String, CHeaderError> {
    let mut dumper = Dumper::new(btf)?;
    let mut out = String::with_capacity(btf.type_section().len() / 2);
    out.push_str(PRELUDE);
    for id in 1..dumper.types.len() as u32 {
        dumper.dump_type(id, &mut out)?;
    }
    dumper.kfuncs(&mut out)?;
    out.push_str(EPILOGUE);
    Ok(out)
}

const PRELUDE: &str = "#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

#ifndef __ksym
#define __ksym __attribute__((section(\".ksyms\")))
#endif

#ifndef __weak
#define __weak __attribute__((weak))
#endif

";

const EPILOGUE: &str = "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Unvisited,
    /// On the ordering stack (only structs and unions are marked so, as in libbpf).
    Ordering,
    Ordered,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Emit {
    NotEmitted,
    Emitting,
    Emitted,
}

/// Which C namespace a name lives in: tags (struct/union/enum) or ordinary identifiers
/// (typedefs and enumerators).
#[derive(Clone, Copy)]
enum Namespace {
    Tags,
    Idents,
}

struct Dumper<'a> {
    btf: &'a Btf,
    /// Every type decoded once; index = id, 0 = void.
    types: Vec<Type<'a>>,
    /// Referenced by another type (an unreferenced anonymous enum is a top-level definition).
    referenced: Vec<bool>,
    order: Vec<Order>,
    emit: Vec<Emit>,
    fwd_emitted: Vec<bool>,
    /// On the ordering stack, for the kinds without an `Order::Ordering` state: bit 0 reached
    /// by value, bit 1 through a pointer.
    order_busy: Vec<u8>,
    /// On the emission stack, for the kinds without an `Emit::Emitting` state.
    on_stack: Vec<bool>,
    /// The C name of each named type once resolved (first use decides `___N`).
    names: Vec<Option<String>>,
    seen_tags: HashMap<String, usize>,
    seen_idents: HashMap<String, usize>,
    /// Alignment in bytes, memoized; `None` = not computed yet. 0 = unknown (void, fwd, func).
    align: Vec<Option<u32>>,
    /// On the alignment pass's stack (a separate pass: it runs in the middle of emission).
    align_busy: Vec<bool>,
    queue: Vec<u32>,
}

impl<'a> Dumper<'a> {
    fn new(btf: &'a Btf) -> Result<Dumper<'a>, CHeaderError> {
        let count = btf.type_count();
        let mut types = Vec::with_capacity(count as usize);
        for id in 0..count {
            types.push(btf.type_by_id(id)?);
        }
        let mut referenced = vec![false; count as usize];
        let last = count - 1;
        for t in &types {
            for target in references(t) {
                if target > last {
                    return Err(CHeaderError::BadReference {
                        id: t.id,
                        target,
                        last,
                    });
                }
                referenced[target as usize] = true;
            }
        }
        let n = count as usize;
        let mut order = vec![Order::Unvisited; n];
        let mut emit = vec![Emit::NotEmitted; n];
        // void needs no definition.
        order[0] = Order::Ordered;
        emit[0] = Emit::Emitted;
        Ok(Dumper {
            btf,
            types,
            referenced,
            order,
            emit,
            fwd_emitted: vec![false; n],
            order_busy: vec![0; n],
            on_stack: vec![false; n],
            names: vec![None; n],
            seen_tags: HashMap::new(),
            seen_idents: HashMap::new(),
            align: vec![None; n],
            align_busy: vec![false; n],
            queue: Vec::new(),
        })
    }

    fn ty(&self, id: u32) -> &Type<'a> {
        // Every id reached was checked against the type count in `new`.
        &self.types[id as usize]
    }

    fn dump_type(&mut self, id: u32, out: &mut String) -> Result<(), CHeaderError> {
        self.queue.clear();
        self.order_type(id)?;
        let queue = std::mem::take(&mut self.queue);
        for &queued in &queue {
            self.emit_type(queued, out)?;
        }
        self.queue = queue;
        Ok(())
    }

    // ---------------------------------------------------------------- pass 1: order

    /// Topologically orders `root` and what it needs, appending definitions to `self.queue`.
    fn order_type(&mut self, root: u32) -> Result<(), CHeaderError> {
        struct Frame {
            id: u32,
            through_ptr: bool,
            /// Next child to visit.
            next: usize,
            strong: bool,
        }
        let mut stack: Vec<Frame> = Vec::new();
        // The result of the child that just finished (true = strong link).
        let mut result = match self.order_enter(root, false)? {
            Some(_) => return Ok(()),
            None => {
                stack.push(Frame {
                    id: root,
                    through_ptr: false,
                    next: 0,
                    strong: false,
                });
                None
            }
        };
        while let Some(frame) = stack.last_mut() {
            if let Some(strong) = result.take() {
                frame.strong |= strong;
            }
            let t = &self.types[frame.id as usize];
            let (child, through_ptr) = match order_child(t, frame.next, frame.through_ptr) {
                Some(c) => c,
                None => {
                    let Some(done) = stack.pop() else { break };
                    result = Some(self.order_leave(done.id, done.through_ptr, done.strong));
                    continue;
                }
            };
            frame.next += 1;
            match self.order_enter(child, through_ptr)? {
                Some(strong) => result = Some(strong),
                None => stack.push(Frame {
                    id: child,
                    through_ptr,
                    next: 0,
                    strong: false,
                }),
            }
        }
        Ok(())
    }

    /// Visits `id`: `Some(strong)` when it is decided at once, `None` when its children must
    /// be ordered first (it is then on the stack).
    fn order_enter(&mut self, id: u32, through_ptr: bool) -> Result<Option<bool>, CHeaderError> {
        let i = id as usize;
        let (kind, named) = (self.types[i].kind, !self.types[i].name.is_empty());
        match self.order[i] {
            Order::Ordered => return Ok(Some(true)),
            Order::Ordering => {
                // A loop through a pointer to a named struct: a forward declaration breaks it.
                if kind.is_composite() && through_ptr && named {
                    return Ok(Some(false));
                }
                return Err(CHeaderError::Cycle { id });
            }
            Order::Unvisited => {}
        }
        // A typedef or pointer may be met again below itself, through a pointer to a named
        // struct (which ends the walk); met again in the same way, the walk would never end.
        let mark = 1u8 << u8::from(through_ptr);
        if self.order_busy[i] & mark != 0 {
            return Err(CHeaderError::Cycle { id });
        }
        Ok(match kind {
            Kind::Void => Some(true),
            Kind::Int | Kind::Float => {
                self.order[i] = Order::Ordered;
                Some(false)
            }
            Kind::Struct | Kind::Union => {
                if through_ptr && named {
                    return Ok(Some(false));
                }
                self.order[i] = Order::Ordering;
                None
            }
            Kind::Enum | Kind::Enum64 | Kind::Fwd => {
                if named || !self.referenced[i] {
                    self.queue.push(id);
                }
                self.order[i] = Order::Ordered;
                Some(true)
            }
            Kind::Func | Kind::Var | Kind::DataSec | Kind::DeclTag => {
                self.order[i] = Order::Ordered;
                Some(false)
            }
            Kind::Ptr
            | Kind::Array
            | Kind::Typedef
            | Kind::Const
            | Kind::Volatile
            | Kind::Restrict
            | Kind::TypeTag
            | Kind::FuncProto => {
                self.order_busy[i] |= mark;
                None
            }
        })
    }

    /// Finishes `id` once its children are ordered; returns whether the link to it is strong.
    fn order_leave(&mut self, id: u32, through_ptr: bool, child_strong: bool) -> bool {
        let i = id as usize;
        self.order_busy[i] &= !(1u8 << u8::from(through_ptr));
        let named = !self.types[i].name.is_empty();
        match self.types[i].kind {
            Kind::Struct | Kind::Union => {
                if named {
                    self.queue.push(id);
                }
                self.order[i] = Order::Ordered;
                true
            }
            Kind::Ptr => {
                self.order[i] = Order::Ordered;
                child_strong
            }
            Kind::Typedef => {
                // Like a struct: through a pointer, a weak target needs only the typedef
                // emitted early (as its own forward declaration).
                if through_ptr && !child_strong {
                    return false;
                }
                self.queue.push(id);
                self.order[i] = Order::Ordered;
                true
            }
            _ => child_strong,
        }
    }

    // ---------------------------------------------------------------- pass 2: emit

    /// Writes `root` as a top-level definition with the forward declarations it needs first.
    fn emit_type(&mut self, root: u32, out: &mut String) -> Result<(), CHeaderError> {
        struct Frame {
            id: u32,
            /// The named type being defined that this one is part of (0 = top level).
            cont: u32,
            next: usize,
        }
        let mut stack = Vec::new();
        if self.emit_enter(root, 0, out)? {
            stack.push(Frame {
                id: root,
                cont: 0,
                next: 0,
            });
        }
        while let Some(frame) = stack.last_mut() {
            let t = &self.types[frame.id as usize];
            let child = emit_child(t, frame.next, frame.cont);
            match child {
                Some((child, cont)) => {
                    frame.next += 1;
                    if self.emit_enter(child, cont, out)? {
                        stack.push(Frame {
                            id: child,
                            cont,
                            next: 0,
                        });
                    }
                }
                None => {
                    let Some(done) = stack.pop() else { break };
                    self.emit_leave(done.id, done.cont, out)?;
                }
            }
        }
        Ok(())
    }

    /// Visits `id` for emission; true when its children must be visited (it is then on the stack).
    fn emit_enter(&mut self, id: u32, cont: u32, out: &mut String) -> Result<bool, CHeaderError> {
        let i = id as usize;
        let top_level = cont == 0;
        let (kind, named) = (self.types[i].kind, !self.types[i].name.is_empty());
        match self.emit[i] {
            Emit::Emitted => return Ok(false),
            Emit::Emitting => {
                // Reached again while being defined: a forward declaration is enough.
                if self.fwd_emitted[i] {
                    return Ok(false);
                }
                match kind {
                    Kind::Struct | Kind::Union => {
                        if id == cont {
                            return Ok(false);
                        }
                        if !named {
                            return Err(CHeaderError::Cycle { id });
                        }
                        self.struct_fwd(id, out);
                        out.push_str(";\n\n");
                        self.fwd_emitted[i] = true;
                    }
                    Kind::Typedef => {
                        if !self.is_compiler_builtin(id) {
                            self.typedef_def(id, out)?;
                            out.push_str(";\n\n");
                        }
                        self.fwd_emitted[i] = true;
                    }
                    _ => {}
                }
                return Ok(false);
            }
            Emit::NotEmitted => {}
        }
        if self.on_stack[i] {
            return Err(CHeaderError::Cycle { id });
        }
        match kind {
            Kind::Int => {
                self.missing_alias(id, out);
                self.emit[i] = Emit::Emitted;
                Ok(false)
            }
            Kind::Enum | Kind::Enum64 => {
                if top_level {
                    self.enum_def(id, 0, out);
                    out.push_str(";\n\n");
                }
                self.emit[i] = Emit::Emitted;
                Ok(false)
            }
            Kind::Fwd => {
                self.fwd_def(id, out);
                out.push_str(";\n\n");
                self.emit[i] = Emit::Emitted;
                Ok(false)
            }
            Kind::Typedef => {
                self.emit[i] = Emit::Emitting;
                Ok(true)
            }
            Kind::Struct | Kind::Union => {
                self.emit[i] = Emit::Emitting;
                if top_level || !named {
                    return Ok(true);
                }
                if !self.fwd_emitted[i] && id != cont {
                    self.struct_fwd(id, out);
                    out.push_str(";\n\n");
                    self.fwd_emitted[i] = true;
                }
                self.emit[i] = Emit::NotEmitted;
                Ok(false)
            }
            Kind::Ptr
            | Kind::Const
            | Kind::Volatile
            | Kind::Restrict
            | Kind::TypeTag
            | Kind::Array
            | Kind::FuncProto => {
                self.on_stack[i] = true;
                Ok(true)
            }
            Kind::Void | Kind::Float | Kind::Func | Kind::Var | Kind::DataSec | Kind::DeclTag => {
                Ok(false)
            }
        }
    }

    fn emit_leave(&mut self, id: u32, cont: u32, out: &mut String) -> Result<(), CHeaderError> {
        let i = id as usize;
        self.on_stack[i] = false;
        match self.types[i].kind {
            Kind::Typedef => {
                if !self.fwd_emitted[i] && !self.is_compiler_builtin(id) {
                    self.typedef_def(id, out)?;
                    out.push_str(";\n\n");
                }
                self.emit[i] = Emit::Emitted;
            }
            Kind::Struct | Kind::Union => {
                if cont == 0 {
                    self.struct_def(id, 0, 0, out)?;
                    out.push_str(";\n\n");
                    self.emit[i] = Emit::Emitted;
                } else {
                    self.emit[i] = Emit::NotEmitted;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `__builtin_va_list` is the compiler's own: redefining it breaks the build. Only its
    /// void form (old GCC) is left to the compiler; a real one is written under a flavor name
    /// (see [`VA_LIST_FLAVOR`]).
    fn is_compiler_builtin(&self, id: u32) -> bool {
        let t = self.ty(id);
        t.name == "__builtin_va_list" && matches!(t.body, TypeBody::Ref { target: 0 })
    }

    // ---------------------------------------------------------------- definitions

    fn struct_fwd(&mut self, id: u32, out: &mut String) {
        let word = if self.ty(id).kind == Kind::Union {
            "union"
        } else {
            "struct"
        };
        let name = self.name(id, Namespace::Tags);
        out.push_str(word);
        if !name.is_empty() {
            out.push(' ');
            out.push_str(&name);
        }
    }

    fn fwd_def(&mut self, id: u32, out: &mut String) {
        let word = if self.ty(id).kind_flag {
            "union"
        } else {
            "struct"
        };
        let name = self.name(id, Namespace::Tags);
        let _ = write!(out, "{word} {name}");
    }

    fn typedef_def(&mut self, id: u32, out: &mut String) -> Result<(), CHeaderError> {
        let name = self.name(id, Namespace::Idents);
        let TypeBody::Ref { target } = self.ty(id).body else {
            return Ok(());
        };
        // Old GCC wrote this typedef to void; the compiler's own type is what was meant.
        if target == 0 && name == "__gnuc_va_list" {
            out.push_str("typedef __builtin_va_list __gnuc_va_list");
            return Ok(());
        }
        out.push_str("typedef ");
        let decl = self.decl(target, &name, 0, 0)?;
        out.push_str(&decl);
        Ok(())
    }

    /// GCC's internal `__PolyN_t` base types (Arm SIMD) have no C spelling: alias them.
    fn missing_alias(&mut self, id: u32, out: &mut String) {
        const ALIASES: [(&str, &str); 4] = [
            ("__Poly8_t", "unsigned char"),
            ("__Poly16_t", "unsigned short"),
            ("__Poly64_t", "unsigned long long"),
            ("__Poly128_t", "unsigned __int128"),
        ];
        let name = self.ty(id).name;
        if let Some((_, base)) = ALIASES.iter().find(|(n, _)| *n == name) {
            let _ = write!(out, "typedef {base} {name};\n\n");
        }
    }

    fn enum_def(&mut self, id: u32, lvl: usize, out: &mut String) {
        let name = self.name(id, Namespace::Tags);
        out.push_str("enum");
        if !name.is_empty() {
            out.push(' ');
            out.push_str(&name);
        }
        let t = &self.types[id as usize];
        let (kind, values) = (t.kind, t.enum_values().to_vec());
        let TypeBody::Enum { size, signed, .. } = t.body else {
            return;
        };
        if values.is_empty() {
            return;
        }
        out.push_str(" {");
        for v in &values {
            let base = c_identifier(v.name);
            // Enumerators share the ordinary namespace with typedefs (and other enums' values).
            let count = bump(&mut self.seen_idents, &base);
            let _ = write!(out, "\n{}{base}", indent(lvl + 1));
            if count > 1 {
                let _ = write!(out, "___{count}");
            }
            out.push_str(" = ");
            out.push_str(&enum_value(kind, signed, v.value));
            out.push(',');
        }
        let _ = write!(out, "\n{}}}", indent(lvl));
        if let Some(attr) = enum_size_attribute(kind, size, signed, &values) {
            out.push_str(attr);
        }
    }

    /// `struct NAME { ... }` at indentation `lvl`, members at `lvl + 1`.
    fn struct_def(
        &mut self,
        id: u32,
        lvl: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<(), CHeaderError> {
        self.struct_body(id, Some(id), lvl, depth, out)
    }

    /// An unnamed member whose type is a named struct or union (or a typedef of one): GCC's
    /// and clang's `-fms-extensions` accept it, plain C does not. Returns the composite whose
    /// body must be written inline as an anonymous member instead.
    fn tagged_anonymous_member(&self, name: &str, ty: u32, bits: i64) -> Option<u32> {
        if !name.is_empty() || bits != 0 {
            return None;
        }
        let direct = self.ty(ty);
        if direct.kind.is_composite() && direct.name.is_empty() {
            return None;
        }
        let resolved = self.btf.skip_mods_and_typedefs(ty).ok()?;
        self.ty(resolved).kind.is_composite().then_some(resolved)
    }

    /// The definition of composite `id`, headed `struct NAME` (the name of `header_of`) or,
    /// with `None`, as an anonymous `struct`.
    fn struct_body(
        &mut self,
        id: u32,
        header_of: Option<u32>,
        lvl: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<(), CHeaderError> {
        if depth > MAX_NESTING {
            return Err(CHeaderError::TooDeep { id });
        }
        let t = &self.types[id as usize];
        let is_struct = t.kind == Kind::Struct;
        let members = t.members().to_vec();
        let TypeBody::Composite { size, .. } = t.body else {
            return Ok(());
        };
        let packed = is_struct && self.is_packed(id)?;
        let struct_align = self.align_of(id)?;
        match header_of {
            Some(named) => self.struct_fwd(named, out),
            None => out.push_str(if is_struct { "struct" } else { "union" }),
        }
        out.push_str(" {");
        let mut off: i64 = 0;
        let mut prev_bitfield = false;
        for m in &members {
            let bits = m.bitfield_size as i64;
            let m_off = m.bit_offset as i64;
            let m_align = if packed { 1 } else { self.align_of(m.ty)? };
            let in_bitfield = prev_bitfield && bits != 0;
            padding(id, off, m_off, m_align, in_bitfield, lvl + 1, out)?;
            let _ = write!(out, "\n{}", indent(lvl + 1));
            match self.tagged_anonymous_member(m.name, m.ty, bits) {
                // `struct tag;` would declare the tag, not a member: write its body inline.
                Some(body) => self.struct_body(body, None, lvl + 1, depth + 1, out)?,
                None => {
                    let decl = self.decl(m.ty, &c_identifier(m.name), lvl + 1, depth + 1)?;
                    out.push_str(&decl);
                }
            }
            if bits != 0 {
                let _ = write!(out, ": {bits}");
                off = m_off + bits;
                prev_bitfield = true;
            } else {
                off = m_off + self.size_of(m.ty)? as i64 * 8;
                prev_bitfield = false;
            }
            out.push(';');
        }
        let mut union_fix = UnionFix::Natural;
        if is_struct {
            padding(id, off, size as i64 * 8, struct_align, false, lvl + 1, out)?;
        } else {
            union_fix = self.union_fix(&members, size)?;
            if let UnionFix::Pad { bytes, .. } = union_fix {
                // Unnamed bitfields in an anonymous struct: room, but no member.
                let _ = write!(out, "\n{}struct {{", indent(lvl + 1));
                padding(id, 0, bytes as i64 * 8, 1, false, lvl + 2, out)?;
                let _ = write!(out, "\n{}}};", indent(lvl + 1));
            }
        }
        if !members.is_empty() || size != 0 {
            let _ = write!(out, "\n{}}}", indent(lvl));
        } else {
            out.push('}');
        }
        match union_fix {
            _ if packed => out.push_str(" __attribute__((packed))"),
            UnionFix::Packed | UnionFix::Pad { packed: true, .. } => {
                out.push_str(" __attribute__((packed))")
            }
            UnionFix::Aligned(n) => {
                let _ = write!(out, " __attribute__((aligned({n})))");
            }
            UnionFix::Natural | UnionFix::Pad { packed: false, .. } => {}
        }
        Ok(())
    }

    /// What a union needs so the compiler gives it its BTF size: its members' natural size is
    /// the largest member rounded up to the strictest member alignment.
    fn union_fix(
        &mut self,
        members: &[super::Member<'_>],
        size: u32,
    ) -> Result<UnionFix, CHeaderError> {
        let mut end_bits: u64 = 0;
        let mut max_align: u64 = 1;
        for m in members {
            let bits = match m.bitfield_size {
                0 => self.size_of(m.ty)? as u64 * 8,
                bits => bits as u64,
            };
            end_bits = end_bits.max(m.bit_offset as u64 + bits);
            max_align = max_align.max(self.align_of(m.ty)?.max(1) as u64);
        }
        Ok(union_fix(end_bits.div_ceil(8), max_align, size as u64))
    }

    fn size_of(&self, id: u32) -> Result<u32, CHeaderError> {
        match self.ty(id).kind {
            // A flexible or zero-length array of something sizeless still takes no room.
            Kind::Array => match self.ty(id).body {
                TypeBody::Array(a) if a.len == 0 => Ok(0),
                _ => Ok(self.btf.resolve_size(id)?),
            },
            _ => Ok(self.btf.resolve_size(id)?),
        }
    }

    // ---------------------------------------------------------------- declarations

    /// The C declaration of `name` with type `id` (`name` may be empty: an abstract declarator).
    /// Walks the chain of pointers, arrays, function prototypes and qualifiers iteratively and
    /// builds the declarator outward from the name; only inline definitions and parameter
    /// lists recurse, bounded by [`MAX_NESTING`].
    fn decl(
        &mut self,
        id: u32,
        name: &str,
        lvl: usize,
        depth: usize,
    ) -> Result<String, CHeaderError> {
        if depth > MAX_NESTING {
            return Err(CHeaderError::TooDeep { id });
        }
        let mut declarator = name.to_string();
        // The declarator so far starts with `*`: an array or function suffix needs parentheses.
        let mut pointer_first = false;
        // Qualifiers and type tags waiting for the pointer or base type they apply to.
        let mut quals: Vec<u32> = Vec::new();
        let mut cur = id;
        let mut steps = 0usize;
        let base = loop {
            steps += 1;
            if steps > self.types.len() {
                return Err(CHeaderError::Cycle { id });
            }
            let t = &self.types[cur as usize];
            match (&t.body, t.kind) {
                (TypeBody::Ptr { target }, _) => {
                    let mut star = String::from("*");
                    for &q in &quals {
                        star.push(' ');
                        star.push_str(&self.qualifier(q));
                    }
                    if !quals.is_empty() && !declarator.is_empty() {
                        star.push(' ');
                    }
                    quals.clear();
                    declarator.insert_str(0, &star);
                    pointer_first = true;
                    cur = *target;
                }
                (
                    TypeBody::Ref { target },
                    Kind::Const | Kind::Volatile | Kind::Restrict | Kind::TypeTag,
                ) => {
                    quals.push(cur);
                    cur = *target;
                }
                (TypeBody::Array(a), _) => {
                    // Qualifiers on an array itself (a GCC artefact) mean nothing in C.
                    quals.clear();
                    if pointer_first {
                        declarator = format!("({declarator})");
                    }
                    let _ = write!(declarator, "[{}]", a.len);
                    pointer_first = false;
                    cur = a.elem;
                }
                (TypeBody::FuncProto { ret, params }, _) => {
                    // Qualifiers on a function type (GCC's `volatile` for noreturn) likewise.
                    quals.clear();
                    if pointer_first {
                        declarator = format!("({declarator})");
                    }
                    let (ret, params) = (*ret, params.clone());
                    self.parameter_list(&params, lvl, depth, &mut declarator)?;
                    pointer_first = false;
                    cur = ret;
                }
                (_, Kind::Func | Kind::Var | Kind::DataSec | Kind::DeclTag) => {
                    return Err(CHeaderError::Unexpected {
                        id: cur,
                        kind: t.kind,
                        context: "a member, parameter or typedef's type",
                    });
                }
                _ => break cur,
            }
        };
        let mut text = String::new();
        // C qualifiers go before the base type, type tags after it.
        for &q in &quals {
            if self.ty(q).kind != Kind::TypeTag {
                text.push_str(&self.qualifier(q));
                text.push(' ');
            }
        }
        self.base_type(base, lvl, depth, &mut text)?;
        for &q in &quals {
            if self.ty(q).kind == Kind::TypeTag {
                text.push(' ');
                text.push_str(&self.qualifier(q));
            }
        }
        if !declarator.is_empty() {
            if !declarator.starts_with('[') || !name.is_empty() {
                text.push(' ');
            }
            text.push_str(&declarator);
        }
        Ok(text)
    }

    /// `(int a, char *b)`, `(void)` or `(int, ...)` after a function declarator.
    fn parameter_list(
        &mut self,
        params: &[crate::btf::Param<'_>],
        lvl: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<(), CHeaderError> {
        out.push('(');
        if params.is_empty() || (params.len() == 1 && params[0].ty == 0) {
            out.push_str("void");
        }
        for (i, p) in params.iter().enumerate() {
            if params.len() == 1 && p.ty == 0 {
                break;
            }
            if i > 0 {
                out.push_str(", ");
            }
            if i == params.len() - 1 && p.ty == 0 {
                out.push_str("...");
                break;
            }
            let param = self.decl(p.ty, &c_identifier(p.name), lvl, depth + 1)?;
            out.push_str(&param);
        }
        out.push(')');
        Ok(())
    }

    fn qualifier(&self, id: u32) -> String {
        let t = self.ty(id);
        match t.kind {
            Kind::Const => "const".into(),
            Kind::Volatile => "volatile".into(),
            Kind::Restrict => "restrict".into(),
            // kind_flag set: the tag is a plain attribute (e.g. `address_space(1)`), written as
            // such only when it cannot break out of the attribute's parentheses.
            _ if t.kind_flag && is_plain_attribute(t.name) => {
                format!("__attribute__(({}))", t.name)
            }
            _ => format!("__attribute__((btf_type_tag(\"{}\")))", c_string(t.name)),
        }
    }

    /// The base of a declaration: `int`, `struct foo`, an inline anonymous definition, ...
    fn base_type(
        &mut self,
        id: u32,
        lvl: usize,
        depth: usize,
        out: &mut String,
    ) -> Result<(), CHeaderError> {
        let t = &self.types[id as usize];
        let named = !t.name.is_empty();
        match &t.body {
            TypeBody::Void => out.push_str("void"),
            TypeBody::Int(int) => out.push_str(&int_spelling(t.name, int.size, int.encoding)),
            TypeBody::Float { size } => out.push_str(float_spelling(t.name, *size)),
            TypeBody::Composite { .. } if !named => self.struct_def(id, lvl, depth + 1, out)?,
            TypeBody::Composite { .. } => self.struct_fwd(id, out),
            TypeBody::Enum { .. } if !named => self.enum_def(id, lvl, out),
            TypeBody::Enum { .. } => {
                let name = self.name(id, Namespace::Tags);
                let _ = write!(out, "enum {name}");
            }
            TypeBody::Fwd { .. } => self.fwd_def(id, out),
            TypeBody::Ref { .. } if t.kind == Kind::Typedef => {
                let name = self.name(id, Namespace::Idents);
                out.push_str(&name);
            }
            _ => {
                return Err(CHeaderError::Unexpected {
                    id,
                    kind: t.kind,
                    context: "the base of a declaration",
                })
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- names

    /// The C name of a named type; resolved on first use, with `___N` for the N-th distinct
    /// type of that name in its namespace.
    fn name(&mut self, id: u32, namespace: Namespace) -> String {
        let i = id as usize;
        if let Some(name) = &self.names[i] {
            return name.clone();
        }
        let t = &self.types[i];
        if t.name.is_empty() {
            return String::new();
        }
        let base = match (&t.body, t.name) {
            (TypeBody::Ref { target }, "__builtin_va_list") if *target != 0 => {
                VA_LIST_FLAVOR.to_string()
            }
            _ => c_identifier(t.name).into_owned(),
        };
        // A forward declaration or an empty enum names an existing type, never a new one.
        let declares_only = t.kind == Kind::Fwd || (t.kind.is_any_enum() && t.vlen() == 0);
        let name = if declares_only {
            base
        } else {
            let seen = match namespace {
                Namespace::Tags => &mut self.seen_tags,
                Namespace::Idents => &mut self.seen_idents,
            };
            match bump(seen, &base) {
                1 => base,
                n => format!("{base}___{n}"),
            }
        };
        self.names[i] = Some(name.clone());
        name
    }

    // ---------------------------------------------------------------- layout

    /// Alignment of `id` in bytes as the compiler would infer it from the BTF alone
    /// (a struct whose members are not naturally placed counts as packed: 1); 0 = unknown.
    fn align_of(&mut self, root: u32) -> Result<u32, CHeaderError> {
        if let Some(a) = self.align[root as usize] {
            return Ok(a);
        }
        // Post-order over by-value dependencies on an explicit stack: (id, next member).
        let mut stack: Vec<(u32, usize)> = vec![(root, 0)];
        self.align_busy[root as usize] = true;
        while let Some(&mut (id, ref mut next)) = stack.last_mut() {
            let t = &self.types[id as usize];
            let dep = match &t.body {
                TypeBody::Ref { target } => (*next == 0).then_some(*target),
                TypeBody::Array(a) => (*next == 0).then_some(a.elem),
                TypeBody::Composite { members, .. } => members.get(*next).map(|m| m.ty),
                _ => None,
            };
            if let Some(dep) = dep {
                *next += 1;
                if self.align[dep as usize].is_none() {
                    if self.align_busy[dep as usize] {
                        for &(busy, _) in &stack {
                            self.align_busy[busy as usize] = false;
                        }
                        return Err(CHeaderError::Cycle { id: dep });
                    }
                    stack.push((dep, 0));
                    self.align_busy[dep as usize] = true;
                }
                continue;
            }
            let align = self.align_here(id);
            self.align[id as usize] = Some(align);
            self.align_busy[id as usize] = false;
            stack.pop();
        }
        Ok(self.align[root as usize].unwrap_or(0))
    }

    /// Alignment of `id` once its dependencies' alignments are known.
    fn align_here(&self, id: u32) -> u32 {
        let t = self.ty(id);
        let known = |dep: u32| self.align[dep as usize].unwrap_or(0);
        match &t.body {
            TypeBody::Int(i) => i.size.min(PTR_SIZE),
            TypeBody::Enum { size, .. } | TypeBody::Float { size } => (*size).min(PTR_SIZE),
            TypeBody::Ptr { .. } => PTR_SIZE,
            TypeBody::Ref { target } => known(*target),
            TypeBody::Array(a) => known(a.elem),
            TypeBody::Composite { size, members } => {
                let mut max_align = 1;
                for m in members {
                    let align = known(m.ty);
                    if align == 0 {
                        return 0;
                    }
                    max_align = max_align.max(align);
                    if m.bitfield_size == 0 && m.bit_offset % (8 * align) != 0 {
                        return 1;
                    }
                }
                if size % max_align != 0 {
                    return 1;
                }
                max_align
            }
            _ => 0,
        }
    }

    /// A struct needs `__attribute__((packed))` when a member is not at its natural alignment
    /// or its size is not a multiple of its alignment.
    fn is_packed(&mut self, id: u32) -> Result<bool, CHeaderError> {
        let (members, size) = match &self.ty(id).body {
            TypeBody::Composite { members, size } => (members.clone(), *size),
            _ => return Ok(false),
        };
        let mut max_align = 1;
        for m in &members {
            let align = self.align_of(m.ty)?;
            if align != 0 && m.bitfield_size == 0 && m.bit_offset % (8 * align) != 0 {
                return Ok(true);
            }
            max_align = max_align.max(align);
        }
        Ok(size % max_align != 0)
    }

    // ---------------------------------------------------------------- kfuncs

    /// `extern` prototypes of the functions tagged `bpf_kfunc`, as bpftool writes them.
    fn kfuncs(&mut self, out: &mut String) -> Result<(), CHeaderError> {
        out.push_str("\n/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n");
        for i in 1..self.types.len() {
            let t = &self.types[i];
            let TypeBody::DeclTag {
                target,
                component_idx: -1,
            } = t.body
            else {
                continue;
            };
            if t.name != "bpf_kfunc" {
                continue;
            }
            let func = &self.types[target as usize];
            let TypeBody::Func { proto, .. } = func.body else {
                continue;
            };
            let name = c_identifier(func.name);
            let decl = self.decl(proto, &name, 0, 0)?;
            let _ = writeln!(out, "extern {decl} __weak __ksym;");
        }
        out.push_str("#endif\n\n");
        Ok(())
    }
}

/// Every type id `t` refers to.
fn references(t: &Type<'_>) -> Vec<u32> {
    match &t.body {
        TypeBody::Ptr { target } | TypeBody::Ref { target } => vec![*target],
        TypeBody::Array(a) => vec![a.elem, a.index],
        TypeBody::Composite { members, .. } => members.iter().map(|m| m.ty).collect(),
        TypeBody::FuncProto { ret, params } => std::iter::once(*ret)
            .chain(params.iter().map(|p| p.ty))
            .collect(),
        TypeBody::Func { proto, .. } => vec![*proto],
        TypeBody::Var { ty, .. } => vec![*ty],
        TypeBody::DataSec { vars, .. } => vars.iter().map(|v| v.ty).collect(),
        TypeBody::DeclTag { target, .. } => vec![*target],
        TypeBody::Void | TypeBody::Int(_) | TypeBody::Enum { .. } | TypeBody::Fwd { .. } => {
            vec![]
        }
        TypeBody::Float { .. } => vec![],
    }
}

/// The `index`-th child the ordering pass visits from `t`, and whether it is reached through a
/// pointer.
fn order_child(t: &Type<'_>, index: usize, through_ptr: bool) -> Option<(u32, bool)> {
    match &t.body {
        TypeBody::Ptr { target } => (index == 0).then_some((*target, true)),
        TypeBody::Array(a) => (index == 0).then_some((a.elem, false)),
        TypeBody::Composite { members, .. } => members.get(index).map(|m| (m.ty, false)),
        TypeBody::Ref { target } => (index == 0).then_some((*target, through_ptr)),
        TypeBody::FuncProto { ret, params } => match index {
            0 => Some((*ret, through_ptr)),
            i => params.get(i - 1).map(|p| (p.ty, through_ptr)),
        },
        _ => None,
    }
}

/// The `index`-th child the emission pass visits from `t` and the container it is part of.
fn emit_child(t: &Type<'_>, index: usize, cont: u32) -> Option<(u32, u32)> {
    match &t.body {
        TypeBody::Ptr { target } => (index == 0).then_some((*target, cont)),
        TypeBody::Ref { target } if t.kind == Kind::Typedef => {
            (index == 0).then_some((*target, t.id))
        }
        TypeBody::Ref { target } => (index == 0).then_some((*target, cont)),
        TypeBody::Array(a) => (index == 0).then_some((a.elem, cont)),
        TypeBody::Composite { members, .. } => {
            // Members of a named struct are part of it; an anonymous one is part of its container.
            let cont = if t.name.is_empty() { cont } else { t.id };
            members.get(index).map(|m| (m.ty, cont))
        }
        TypeBody::FuncProto { ret, params } => match index {
            0 => Some((*ret, cont)),
            i => params.get(i - 1).map(|p| (p.ty, cont)),
        },
        _ => None,
    }
}

/// Explicit padding from bit `cur` to bit `next` so that the compiler, laying out the next
/// member (alignment `next_align` bytes) naturally, puts it exactly at `next`. Uses anonymous
/// bitfields of the widest type that reaches an aligned boundary, with a `T: 0` marker when the
/// compiler would otherwise not align there by itself.
fn padding(
    id: u32,
    cur: i64,
    next: i64,
    next_align: u32,
    in_bitfield: bool,
    lvl: usize,
    out: &mut String,
) -> Result<(), CHeaderError> {
    const PADS: [(&str, i64); 4] = [("long", 64), ("int", 32), ("short", 16), ("char", 8)];
    if cur >= next {
        return Ok(());
    }
    if next - cur > MAX_PADDING_BITS {
        return Err(CHeaderError::GapTooLarge {
            id,
            bits: next - cur,
        });
    }
    let next_align = next_align.max(1) as i64 * 8;
    let round_up = |v: i64, to: i64| (v + to - 1) / to * to;
    let mut cur = cur;
    // The widest pad type whose next boundary is not past `next`.
    let (mut pad_type, mut pad_bits) = PADS[PADS.len() - 1];
    let mut aligned_at = round_up(cur, pad_bits);
    for (name, bits) in PADS {
        let at = round_up(cur, bits);
        (pad_type, pad_bits, aligned_at) = (name, bits, at);
        if at <= next {
            break;
        }
    }
    if aligned_at > cur && aligned_at <= next {
        // A `T: 0` (or, inside a run of bitfields, `T: n`) marker is needed when the compiler
        // would not reach that boundary by itself: the next member's own alignment is weaker,
        // or the remaining gap would fit in the hole before the boundary.
        let weaker_next = aligned_at == next && round_up(cur, next_align) != aligned_at;
        let fits_in_hole = aligned_at != next && next - aligned_at <= aligned_at - cur;
        if in_bitfield || weaker_next || fits_in_hole {
            let width = if in_bitfield { aligned_at - cur } else { 0 };
            let _ = write!(out, "\n{}{pad_type}: {width};", indent(lvl));
        }
        cur = aligned_at;
    }
    while cur < next {
        let bits = (next - cur).min(pad_bits);
        // Full-width pads of the chosen type, then the narrowest type holding the remainder.
        let name = if bits == pad_bits {
            pad_type
        } else {
            PADS.iter()
                .rev()
                .find(|(_, width)| *width >= bits)
                .map_or("long", |(name, _)| name)
        };
        let _ = write!(out, "\n{}{name}: {bits};", indent(lvl));
        cur += bits;
    }
    Ok(())
}

/// How a union reaches its BTF size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnionFix {
    /// Its members give it that size.
    Natural,
    /// Smaller than its members' alignment allows: `packed`.
    Packed,
    /// Larger: an alignment that rounds the members up to the size (`__aligned` in the kernel).
    Aligned(u64),
    /// Larger, with no such alignment: a padding struct of `bytes`, and `packed` when the size
    /// is no multiple of the members' alignment.
    Pad { bytes: u64, packed: bool },
}

fn union_fix(end_bytes: u64, max_align: u64, size: u64) -> UnionFix {
    let natural = end_bytes.div_ceil(max_align) * max_align;
    if natural == size {
        return UnionFix::Natural;
    }
    if size < natural {
        // `packed` drops the alignment; the size is then the largest member's end.
        return if end_bytes == size {
            UnionFix::Packed
        } else {
            UnionFix::Pad {
                bytes: size,
                packed: true,
            }
        };
    }
    let mut n = max_align * 2;
    while n <= size {
        if end_bytes.div_ceil(n) * n == size {
            return UnionFix::Aligned(n);
        }
        n *= 2;
    }
    UnionFix::Pad {
        bytes: size,
        packed: !size.is_multiple_of(max_align),
    }
}

/// Tabs for indentation level `lvl` (capped, like bpftool's).
fn indent(lvl: usize) -> &'static str {
    const TABS: &str = "\t\t\t\t\t\t\t\t\t\t\t\t\t";
    &TABS[..lvl.min(TABS.len())]
}

fn bump(seen: &mut HashMap<String, usize>, name: &str) -> usize {
    let count = seen.entry(name.to_string()).or_insert(0);
    *count += 1;
    *count
}

/// C keywords (C17 and the GNU/clang spellings) that a BTF name may not be used as.
/// C23's `bool`, `true`, `false` are left alone: the kernel defines them itself.
const C_KEYWORDS: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "_Alignas",
    "_Alignof",
    "_Atomic",
    "_Bool",
    "_Complex",
    "_Generic",
    "_Imaginary",
    "_Noreturn",
    "_Static_assert",
    "_Thread_local",
    "_BitInt",
    "_Float16",
    "asm",
    "typeof",
    "__asm",
    "__asm__",
    "__attribute",
    "__attribute__",
    "__typeof",
    "__typeof__",
    "__inline",
    "__inline__",
    "__restrict",
    "__restrict__",
    "__volatile",
    "__volatile__",
    "__const",
    "__const__",
    "__signed",
    "__signed__",
    "__extension__",
    "__label__",
    "__int128",
    "__auto_type",
    "__alignof",
    "__alignof__",
    "__real__",
    "__imag__",
    "__thread",
    "__bf16",
];

/// `name` as a C identifier: characters outside `[A-Za-z0-9_]` become `_`, a leading digit gets
/// a `_` prefix, and a C keyword gets a `_` suffix.
pub fn c_identifier(name: &str) -> Cow<'_, str> {
    let valid = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if valid && !C_KEYWORDS.contains(&name) {
        return Cow::Borrowed(name);
    }
    let mut out = if valid {
        name.to_string()
    } else {
        let mut s = String::with_capacity(name.len() + 1);
        if name.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            s.push('_');
        }
        s.extend(
            name.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
        s
    };
    if C_KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    Cow::Owned(out)
}

/// A BTF INT's name when it is a valid C spelling, otherwise the C type of its size and sign
/// (other producers name them `u8`, `i32`, ...).
fn int_spelling(name: &str, size: u32, encoding: u8) -> String {
    const WORDS: [&str; 8] = [
        "signed", "unsigned", "char", "short", "int", "long", "_Bool", "__int128",
    ];
    if !name.is_empty() && name.split_whitespace().all(|w| WORDS.contains(&w)) {
        return name.to_string();
    }
    let signed = encoding & super::INT_SIGNED != 0;
    if encoding & super::INT_BOOL != 0 {
        return "_Bool".into();
    }
    let base = match size {
        1 if encoding & super::INT_CHAR != 0 => return "char".into(),
        1 => "char",
        2 => "short",
        4 => "int",
        16 => "__int128",
        _ => "long long",
    };
    format!("{} {base}", if signed { "signed" } else { "unsigned" })
}

fn float_spelling(name: &str, size: u32) -> &str {
    const NAMES: [&str; 6] = [
        "float",
        "double",
        "long double",
        "_Float16",
        "__bf16",
        "__float128",
    ];
    if NAMES.contains(&name) {
        return name;
    }
    match size {
        2 => "_Float16",
        4 => "float",
        _ => "double",
    }
}

/// `name(args)` made of identifier characters, digits, commas and spaces, parentheses balanced.
fn is_plain_attribute(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return false,
            ')' => depth -= 1,
            c if c.is_ascii_alphanumeric() || c == '_' || c == ',' || c == ' ' => {}
            _ => return false,
        }
    }
    depth == 0 && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// A string for inside a C string literal.
fn c_string(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_ascii_graphic() || c == ' ' => vec![c],
            _ => vec!['_'],
        })
        .collect()
}

/// An enumerator's value as a C constant of the enum's width and sign.
fn enum_value(kind: Kind, signed: bool, value: u64) -> String {
    match (kind, signed) {
        (Kind::Enum, true) => (value as i32).to_string(),
        (Kind::Enum, false) => (value as u32).to_string(),
        // The most negative value has no literal of its own.
        (_, true) if value as i64 == i64::MIN => "(-9223372036854775807LL - 1)".into(),
        (_, true) => format!("{}LL", value as i64),
        (_, false) => format!("{value}ULL"),
    }
}

/// The `mode` attribute that gives an enum its BTF size when its values alone would not.
fn enum_size_attribute(
    kind: Kind,
    size: u32,
    signed: bool,
    values: &[super::EnumValue<'_>],
) -> Option<&'static str> {
    let as_i64 = |v: u64| match (kind, signed) {
        (Kind::Enum, true) => v as i32 as i64,
        (Kind::Enum, false) => v as u32 as i64,
        (_, true) => v as i64,
        // An unsigned value past i64::MAX certainly needs 64 bits.
        (_, false) => i64::try_from(v).unwrap_or(i64::MAX),
    };
    // The compiler picks int, then unsigned int, then a 64-bit type.
    let fits_int = values
        .iter()
        .all(|v| i32::try_from(as_i64(v.value)).is_ok());
    let fits_uint = values
        .iter()
        .all(|v| u32::try_from(as_i64(v.value)).is_ok());
    let natural = if fits_int || fits_uint { 4 } else { 8 };
    match size {
        1 => Some(" __attribute__((mode(byte)))"),
        2 => Some(" __attribute__((mode(HI)))"),
        8 if natural == 4 => Some(" __attribute__((mode(word)))"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
