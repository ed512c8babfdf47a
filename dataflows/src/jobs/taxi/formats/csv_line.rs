//! Splitting one CSV line into fields with `csv-core` (RFC 4180 quoting), reusing buffers across lines.

/// A reusable CSV line splitter.
pub struct CsvLine {
    reader: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    fields: Vec<(usize, usize)>,
}

impl Default for CsvLine {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvLine {
    /// A splitter with empty buffers.
    pub fn new() -> Self {
        CsvLine { reader: csv_core::Reader::new(), output: vec![0; 1024], ends: vec![0; 64], fields: Vec::new() }
    }

    /// Splits `line` (no line terminator) into its fields.
    ///
    /// # Errors
    /// A reason for the dead-letter output: invalid UTF-8 in a field.
    pub fn split<'a>(&'a mut self, line: &[u8]) -> Result<Vec<&'a str>, String> {
        self.reader.reset();
        if self.output.len() < line.len() + 1 {
            self.output.resize(line.len() + 1, 0);
        }
        if self.ends.len() < line.len() + 1 {
            self.ends.resize(line.len() + 1, 0);
        }
        // Feed the line; once it is consumed, the empty remainder tells csv-core the input has ended.
        let (mut consumed, mut written, mut nends) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) =
                self.reader.read_record(&line[consumed..], &mut self.output[written..], &mut self.ends[nends..]);
            consumed += nin;
            written += nout;
            nends += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => self.output.resize(self.output.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
            }
        }
        self.fields.clear();
        let mut start = 0;
        for &end in &self.ends[..nends] {
            self.fields.push((start, end));
            start = end;
        }
        let out = &self.output;
        self.fields
            .iter()
            .enumerate()
            .map(|(i, &(s, e))| std::str::from_utf8(&out[s..e]).map_err(|_| format!("field {}: invalid UTF-8", i + 1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_quoted_and_empty_fields() {
        let mut c = CsvLine::new();
        assert_eq!(c.split(b"a,b,,d").unwrap(), ["a", "b", "", "d"]);
        assert_eq!(c.split(b"\"x,y\",2").unwrap(), ["x,y", "2"]);
        assert_eq!(c.split(b"single").unwrap(), ["single"]);
        assert_eq!(c.split(b"1,2,").unwrap(), ["1", "2", ""]);
        let long = "9".repeat(5000);
        assert_eq!(c.split(format!("{long},1").as_bytes()).unwrap(), [long.as_str(), "1"]);
        assert!(c.split(b"\xff\xfe,1").is_err());
    }
}
