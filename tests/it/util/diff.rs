//! A line diff for assertion messages.

/// A line diff of two texts (longest common subsequence): changed lines only, each with
/// its line number on its own side.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let (n, m) = (e.len(), a.len());
    if n * m > 4_000_000 {
        // Too long for the table: the first line that differs.
        let at = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(n.min(m));
        return format!(
            "- expected {:>4}: {}\n+ actual   {:>4}: {}\n(first difference only; {n} vs {m} lines)\n",
            at + 1,
            e.get(at).unwrap_or(&"<end>"),
            at + 1,
            a.get(at).unwrap_or(&"<end>")
        );
    }
    // lcs[i][j]: length of the LCS of e[i..] and a[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && e[i] == a[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- expected {:>4}: {}\n", i + 1, e[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ actual   {:>4}: {}\n", j + 1, a[j]));
            j += 1;
        }
    }
    out
}

#[test]
fn line_diff_names_lines_on_both_sides() {
    let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
    assert_eq!(
        d,
        "- expected    2: b\n+ actual      2: x\n+ actual      4: d\n"
    );
    assert_eq!(line_diff("same\n", "same\n"), "");
}
