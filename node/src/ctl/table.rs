//! Aligned text tables, the way `kubectl get` and `ps` print them: a header row in
//! capitals, columns padded to their widest cell, two spaces between columns, no
//! borders, no trailing spaces.

/// A table being filled row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(width(cell(row, i)));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, column_width) in widths.iter().enumerate() {
                let text = cell(row, i);
                line.push_str(text);
                if i + 1 < columns {
                    let pad = column_width - width(text) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn cell(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

/// Display width: one column per character, which holds for the ids, addresses
/// and numbers tables show (node ids are ASCII by the id rule).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// Label/value lines, the labels padded to the longest: for one record.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let label_width = pairs.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let line = format!("{label:<label_width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
