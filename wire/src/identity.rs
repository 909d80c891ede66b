//! Who a connection is: the user and the roles its token granted
//! (docs/security.md, "Client tokens"). One definition for the node that checks
//! tokens, the entities that act on roles and the tools that sign tokens.

use std::fmt;
use std::str::FromStr;

use crate::Prio;

/// A role a token may grant (docs/security.md, "Client tokens").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A moderator.
    Mod,
    /// A VIP viewer: preferred over ordinary items in a live room under overload.
    Vip,
    /// A paying user: their live items are never dropped.
    Paid,
    /// A system account: its live items are never dropped.
    System,
    /// An operator.
    Admin,
}

impl Role {
    /// Every role, in bit order.
    pub const ALL: [Role; 5] = [Role::Mod, Role::Vip, Role::Paid, Role::System, Role::Admin];

    /// The role's name in a token's `roles` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mod => "mod",
            Role::Vip => "vip",
            Role::Paid => "paid",
            Role::System => "system",
            Role::Admin => "admin",
        }
    }

    /// The role a claim names, or `None` for a name this node does not know.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `mod`, `vip`, `paid`, `system`, `admin`.
///
/// Only strict parsing (operator input such as `chorusctl token issue --roles`)
/// reports it; tokens' unknown role names are ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected mod, vip, paid, system or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::from_name(s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A set of [`Role`]s, one bit each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

impl Roles {
    /// No role: an ordinary user.
    pub const NONE: Roles = Roles(0);

    /// This set plus `role`.
    #[must_use]
    pub const fn with(self, role: Role) -> Roles {
        Roles(self.0 | role.bit())
    }

    /// Adds `role`.
    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    /// Whether `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in the set, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }

    /// The roles named in a token's `roles` claim; unknown names are ignored.
    pub fn from_claim<'a>(names: impl IntoIterator<Item = &'a str>) -> Roles {
        names.into_iter().filter_map(Role::from_name).collect()
    }

    /// The `prio` of this user's live items (docs/protocol.md §7.9): the highest of
    /// `system`, `paid`, `vip` held, else `normal`.
    pub fn prio(self) -> Prio {
        if self.contains(Role::System) {
            Prio::System
        } else if self.contains(Role::Paid) {
            Prio::Paid
        } else if self.contains(Role::Vip) {
            Prio::Vip
        } else {
            Prio::Normal
        }
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(Roles::NONE, Roles::with)
    }
}

/// Strict parse of a comma-separated list (`"vip,paid"`; empty means none), for
/// operator input.
impl FromStr for Roles {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Role::from_str)
            .collect()
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Comma-separated role names, e.g. `vip,paid`.
impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, role) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(role.as_str())?;
        }
        Ok(())
    }
}

/// Who a connection is, once its `hello` is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (a valid id).
    pub user: String,
    /// The roles the token granted (none for a `dev` token).
    pub roles: Roles,
}
