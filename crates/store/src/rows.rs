//! Reading rows as whatever SQLite holds.
//!
//! SQLite lets any column hold any type (`UPDATE audit SET version =
//! 'abc'` succeeds), and a typed read of such a row fails as a database
//! error, which would make a tampered store look merely unreadable. Rows
//! are therefore read as raw values and converted here, so that a value of
//! the wrong type becomes [`Tamper::Malformed`], naming the row and column.

use crate::Tamper;
use rusqlite::types::Value;
use rusqlite::Connection;

/// One row's raw values, with what is needed to name a bad one.
pub(crate) struct Cells<'a> {
    table: &'static str,
    columns: &'a [&'static str],
    rowid: i64,
    values: Vec<Value>,
}

/// A value of the wrong type, already named.
pub(crate) type Malformed = Tamper;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

impl Cells<'_> {
    fn bad(&self, i: usize, want: &'static str) -> Tamper {
        Tamper::Malformed {
            table: self.table,
            row: self.rowid,
            column: self.columns[i],
            found: kind(&self.values[i]),
            want,
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, Malformed> {
        match &self.values[i] {
            Value::Integer(n) => Ok(*n),
            _ => Err(self.bad(i, "an integer")),
        }
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, Malformed> {
        match &self.values[i] {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            _ => Err(self.bad(i, "an integer or null")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, Malformed> {
        match &self.values[i] {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(self.bad(i, "text")),
        }
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, Malformed> {
        match &self.values[i] {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.bad(i, "text or null")),
        }
    }
}

/// Run `sql` (whose first column is the table's integer key) and convert
/// each row with `convert`.
pub(crate) fn read<T>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    columns: &[&'static str],
    convert: impl Fn(&Cells) -> Result<T, Malformed>,
) -> rusqlite::Result<Vec<Result<T, Tamper>>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| r.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()?;
        // The key is an INTEGER PRIMARY KEY (the rowid): always an integer.
        let rowid = match values[0] {
            Value::Integer(n) => n,
            _ => 0,
        };
        let cells = Cells {
            table,
            columns,
            rowid,
            values,
        };
        out.push(convert(&cells));
    }
    Ok(out)
}
