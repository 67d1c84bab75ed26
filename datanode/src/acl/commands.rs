//! The command table as ACL rules see it: plain data that `cmd` makes from its table and
//! passes to whatever applies rules, so that the users and their compiled permissions need
//! nothing of `cmd`.

/// One command or subcommand of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The id dispatch gives it: the table index, plus one more than the subcommand index
    /// in the high bits.
    pub id: u32,
    /// Lower-case name (`get`, or `setname` for a subcommand).
    pub name: &'static str,
    /// The command a subcommand belongs to.
    pub parent: Option<&'static str>,
    /// Its categories, one bit per entry of [`super::CATEGORIES`] (see `acl::bit`).
    pub categories: u32,
}

/// Every command and subcommand of the table, in table order.
#[derive(Debug)]
pub struct Commands {
    list: Vec<Command>,
}

impl Commands {
    pub fn new(list: Vec<Command>) -> Commands {
        Commands { list }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Command> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the table has the command `name`, or its subcommand `sub` when one is given
    /// (names in lower case, as the table's are).
    pub fn has(&self, name: &str, sub: Option<&str>) -> bool {
        self.list.iter().any(|c| match sub {
            None => c.parent.is_none() && c.name == name,
            Some(sub) => c.parent == Some(name) && c.name == sub,
        })
    }
}
